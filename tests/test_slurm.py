"""The demo workflow through a real single-node SLURM cluster (snakemake-executor-plugin-slurm).

Needs root and Debian's slurm packages: tests/slurm/up.sh installs them with apt when missing
(.ci/run runs this in CI as root). The cluster advertises one GPU so `gpu=1` jobs schedule.
"""

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from conftest import BIN, ROOT, small_config, snakemake

# both tests share the module's cluster; xdist_group keeps them on one worker where --dist loadgroup applies
pytestmark = [pytest.mark.slurm, pytest.mark.e2e, pytest.mark.xdist_group("slurm")]

SLURM_ARGS = ("--executor", "slurm", "--jobs", "4", "--latency-wait", "5",
              "--default-resources", "slurm_partition=debug", "mem_mb=500", "runtime=10",
              "--slurm-no-account", "--slurm-status-command", "squeue",
              "--slurm-init-seconds-before-status-checks", "1",
              # the demo's embed jobs need far less than the 8 GB the rule reserves for real data;
              # asking for less keeps them schedulable on a small CI node
              "--set-resources", "embed:mem_mb=2000")


@pytest.fixture(scope="module")
def slurm_cluster():
    if os.geteuid() != 0 or not shutil.which("apt-get") and not shutil.which("slurmctld"):
        pytest.fail("the SLURM test needs root (and apt-get to install slurm); run it through .ci/run")
    # One cluster per machine (/etc/slurm/slurm.conf and the daemons' ports are shared): whichever
    # xdist worker or pytest session gets here second waits until the first cluster is down.
    with open(Path(tempfile.gettempdir()) / "audiofold-slurm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # not under pytest's tmp dir: that is private to root, and munged runs as the munge user
        state = Path(tempfile.mkdtemp(prefix="audiofold-slurm-"))
        state.chmod(0o755)
        try:
            subprocess.run(["bash", str(ROOT / "tests/slurm/up.sh"), str(state)], check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as err:
            subprocess.run(["bash", str(ROOT / "tests/slurm/down.sh"), str(state)])
            pytest.fail(f"could not start SLURM:\n{err.stdout}\n{err.stderr}")
        yield state
        subprocess.run(["bash", str(ROOT / "tests/slurm/down.sh"), str(state)], check=True)
        shutil.rmtree(state, ignore_errors=True)


def _jobs(part: str, workdir: Path) -> list[str]:
    """`scontrol -o show job` lines (finished jobs stay listed for MinJobAge) of one run that contain part."""
    out = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if part in line and f" WorkDir={workdir} " in line]


def _small(kind="classification"):
    config = small_config(kind)
    config["resources"] = {"gpu_backbones": ["logmel"]}  # the logmel embed jobs ask for the advertised GPU
    config["heads"] = {"linear": config["heads"]["linear"]}  # fewer jobs: every SLURM job pays a start-up
    return config


def test_demo_through_slurm_equals_local_run(slurm_cluster, workdir, tmp_path_factory):
    local = tmp_path_factory.mktemp("local")
    (local / "config.yaml").write_text(yaml.safe_dump(_small(), sort_keys=False))
    t0 = time.perf_counter()
    snakemake(local, "--cores", "2")
    local_s = time.perf_counter() - t0

    wd = workdir(_small())
    t0 = time.perf_counter()
    snakemake(wd, *SLURM_ARGS)
    slurm_s = time.perf_counter() - t0
    print(f"demo wall time: local {local_s:.1f} s, SLURM {slurm_s:.1f} s")

    assert (wd / "results/submission.csv").read_bytes() == (local / "results/submission.csv").read_bytes()
    embed_jobs = _jobs("Comment=rule_embed_", wd)
    logmel = [j for j in embed_jobs if "_logmel_" in j]
    assert logmel and len(logmel) < len(embed_jobs), "embed jobs of both backbones should have gone through SLURM"
    for job in embed_jobs:
        wants_gpu = job in logmel
        assert ("TresPerJob=gres:gpu:1" in job) == wants_gpu, job
        assert "JobState=COMPLETED" in job, job


def test_killed_job_is_retried(slurm_cluster, workdir):
    """Cancel the first embed job while it runs: with --retries 1 Snakemake resubmits it and the run completes."""
    wd = workdir(_small())
    cmd_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(wd),
           "--configfile", str(wd / "config.yaml"), *SLURM_ARGS, "--retries", "1", "--until", "embed"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=cmd_env)
    killed = None
    deadline = time.monotonic() + 300
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        queue = subprocess.run(["squeue", "-h", "-o", "%i %T %k"], capture_output=True, text=True).stdout
        running = [line.split()[0] for line in queue.splitlines() if " RUNNING " in line and "rule_embed" in line]
        if running:
            killed = running[0]
            subprocess.run(["scancel", "--signal=KILL", "--full", killed], check=True)
        time.sleep(0.2)
    log, _ = proc.communicate(timeout=600)
    assert killed, f"no embed job was seen running:\n{log[-3000:]}"
    assert proc.returncode == 0, log[-6000:]
    n_shards = small_config("classification")["cv"]["n_folds"] + 1
    assert len(list((wd / "results/embeddings").rglob("*.npz"))) == 2 * n_shards
    embed_jobs = _jobs("Comment=rule_embed_", wd)
    assert len(embed_jobs) == 2 * n_shards + 1, "the killed job should have been submitted again"
    assert any(j.startswith(f"JobId={killed} ") and "JobState=COMPLETED" not in j for j in embed_jobs), embed_jobs
