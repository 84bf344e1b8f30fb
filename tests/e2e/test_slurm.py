"""The demo workflow through a real single-node SLURM cluster (snakemake-executor-plugin-slurm).

Needs root and Debian's slurm packages (.ci/system-packages.sh installs them; .ci/run runs this in CI
as root); without them it skips, naming what is missing. The cluster advertises one GPU so `gpu=1` jobs schedule.
"""

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import BIN, ROOT, requires_root, requires_tool, small_config, snakemake

# One test function, so one cluster per run: xdist may put two tests of a module on two workers, and a
# second cluster starting right after the first one's teardown is what hung a CI run.
pytestmark = [
    pytest.mark.slurm,
    pytest.mark.e2e,
    requires_root,
    *(
        requires_tool(tool, why=f"Debian's {package} package; the test starts a SLURM cluster")
        for tool, package in (
            ("slurmctld", "slurmctld"),
            ("slurmd", "slurmd"),
            ("squeue", "slurm-client"),
            ("munged", "munge"),
        )
    ),
]

# two jobs side by side on the 2-core test node (the rules ask for 2 threads for real data); the local
# run uses the same threads, so the fine-tuned model is trained alike in both
ONE_THREAD_JOBS = ("--set-threads", "embed=1", "audio_store=1", "finetune=1")
SLURM_ARGS = (
    "--executor",
    "slurm",
    "--jobs",
    "4",
    "--latency-wait",
    "5",
    "--default-resources",
    "slurm_partition=debug",
    "mem_mb=500",
    "runtime=10",
    "--slurm-no-account",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "1",
    # the demo's embed jobs need far less than the 8 GB the rule reserves for real data;
    # asking for less keeps them schedulable on a small CI node
    "--set-resources",
    "embed:mem_mb=2000",
    "finetune:mem_mb=2000",
    *ONE_THREAD_JOBS,
)


@pytest.fixture(scope="module")
def slurm_cluster():
    # One cluster per machine (/etc/slurm/slurm.conf and the daemons' ports are shared): whichever
    # xdist worker or pytest session gets here second waits until the first cluster is down.
    with open(Path(tempfile.gettempdir()) / "audiofold-slurm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # not under pytest's tmp dir: that is private to root, and munged runs as the munge user
        state = Path(tempfile.mkdtemp(prefix="audiofold-slurm-"))
        state.chmod(0o755)
        try:
            subprocess.run(
                ["bash", str(ROOT / "tests/e2e/slurm/up.sh"), str(state)], check=True, capture_output=True, text=True
            )
        except subprocess.CalledProcessError as err:
            subprocess.run(["bash", str(ROOT / "tests/e2e/slurm/down.sh"), str(state)])
            pytest.fail(f"could not start SLURM:\n{err.stdout}\n{err.stderr}")
        yield state
        subprocess.run(["bash", str(ROOT / "tests/e2e/slurm/down.sh"), str(state)], check=True)
        shutil.rmtree(state, ignore_errors=True)


def _jobs(part: str, workdir: Path) -> list[str]:
    """`scontrol -o show job` lines (finished jobs stay listed for MinJobAge) of one run that contain part."""
    out = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if part in line and f" WorkDir={workdir} " in line]


def _small():
    config = small_config("classification")
    # the logmel embed jobs and the fine-tune jobs ask for the advertised GPU
    config["resources"] = {"gpu_backbones": ["logmel"], "gpu_finetune": ["cnn"]}
    # one tiny fine-tuned candidate (a from-scratch CNN, one epoch): 3 fold jobs and an audio store per chunk
    config["finetune"] = {
        "cnn": {
            "encoder": {"type": "cnn", "n_mels": 32, "channels": [8, 16]},
            "epochs": 1,
            "batch_size": 8,
            "crop_seconds": 1.0,
            "tta_crops": 1,
            "num_workers": 0,  # no DataLoader worker processes to start
        }
    }
    config["heads"] = {"linear": config["heads"]["linear"]}  # fewer jobs: every SLURM job pays a start-up
    config["cv"]["test_predictions"] = "folds"  # no refit jobs, for the same reason
    # 90 + 20 clips in chunks of at most 14: 7 + 2 chunks, 18 embed jobs over two backbones
    config["audio"] = {**config["audio"], "shard_clips": 14}
    return config


def _workdir(path: Path, config: dict) -> Path:
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_demo_through_slurm(slurm_cluster, tmp_path_factory):
    """The demo in many chunks through SLURM, one embed job cancelled while it runs: Snakemake submits
    it again (--retries 1), GPU requests go where configured (logmel embed jobs, fine-tune jobs), and the
    submission, fine-tuned candidate included, is a local run's."""
    config = _small()
    local = _workdir(tmp_path_factory.mktemp("local"), config)
    t0 = time.perf_counter()
    snakemake(local, "--cores", "2", *ONE_THREAD_JOBS)
    local_s = time.perf_counter() - t0

    wd = _workdir(tmp_path_factory.mktemp("slurm"), config)
    t0 = time.perf_counter()
    killed, log = _run_cancelling_one_embed_job(slurm_cluster, wd)
    print(f"demo wall time: local {local_s:.1f} s, SLURM {time.perf_counter() - t0:.1f} s")

    assert (wd / "results/submission.csv").read_bytes() == (local / "results/submission.csv").read_bytes()
    n_chunks = pd.read_csv(wd / "results/validation/clips.csv", dtype=str)["chunk"].nunique()
    assert n_chunks >= 8, "the embed step should run in many chunks"
    assert len(list((wd / "results/embeddings").rglob("*.npz"))) == 2 * n_chunks
    embed_jobs = _jobs("Comment=rule_embed_", wd)
    assert len(embed_jobs) == 2 * n_chunks + 1, f"the cancelled job should have been submitted again:\n{log[-3000:]}"
    assert any(j.startswith(f"JobId={killed} ") and "JobState=CANCELLED" in j for j in embed_jobs), embed_jobs
    logmel = [j for j in embed_jobs if "_logmel_" in j]
    assert logmel and len(logmel) < len(embed_jobs), "embed jobs of both backbones should have gone through SLURM"
    for job in embed_jobs:
        assert ("TresPerJob=gres:gpu:1" in job) == (job in logmel), job
        assert "JobState=COMPLETED" in job or job.startswith(f"JobId={killed} "), job
    # resources.gpu_finetune: each fold's fine-tune job went to SLURM with the GPU request, and finished
    finetune_jobs = _jobs("Comment=rule_finetune_wildcards_", wd)
    assert len(finetune_jobs) == 3, f"one fine-tune job per fold:\n{log[-3000:]}"
    for job in finetune_jobs:
        assert "TresPerJob=gres:gpu:1" in job and "JobState=COMPLETED" in job, job
    stores = _jobs("Comment=rule_audio_store_", wd)
    assert len(stores) == n_chunks and not any("gres:gpu" in j for j in stores), stores
    assert "ft-cnn/finetune/main" in json.loads((wd / "results/metrics.json").read_text())["candidates"]


def _cluster_state(state: Path) -> str:
    """What SLURM thinks is going on, for a failure message: queue, node reasons, controller log tail."""
    out = []
    for cmd in (
        ["squeue", "--states=all", "-o", "%i %T %r %k"],
        ["sinfo", "-R"],
        ["tail", "-n", "40", str(state / "log/slurmctld.log")],
    ):
        out.append(f"$ {' '.join(cmd)}\n" + subprocess.run(cmd, capture_output=True, text=True).stdout)
    return "\n".join(out)


def _run_cancelling_one_embed_job(state: Path, wd: Path) -> tuple[str, str]:
    """Run the workflow through SLURM and scancel the first embed job seen running, as an admin or a
    preemption does (the job ends CANCELLED at once). Returns the cancelled job id and the run's log."""
    cmd_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [
        str(BIN / "snakemake"),
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(wd),
        "--configfile",
        str(wd / "config.yaml"),
        *SLURM_ARGS,
        "--retries",
        "1",
    ]
    # to a file, not a pipe: nothing reads a pipe while the loop below waits, and a full one would stall the run
    log_path = wd / "snakemake-slurm.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=cmd_env)
    killed = None
    deadline = time.monotonic() + 600
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        queue = subprocess.run(["squeue", "-h", "-o", "%i %T %k"], capture_output=True, text=True).stdout
        running = [line.split()[0] for line in queue.splitlines() if " RUNNING " in line and "rule_embed" in line]
        if running:
            killed = running[0]
            subprocess.run(["scancel", killed], check=True)
        time.sleep(0.2)
    try:
        proc.wait(timeout=1800)  # a job SLURM can never start would otherwise wait forever
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        tail = log_path.read_text()[-3000:]
        pytest.fail(f"Snakemake did not finish (job cancelled: {killed}):\n{tail}\n{_cluster_state(state)}")
    log = log_path.read_text()
    assert killed, f"no embed job was seen running:\n{log[-3000:]}"
    assert proc.returncode == 0, log[-6000:]
    return killed, log
