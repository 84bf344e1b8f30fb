import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

try:  # structured node ids (pytest >= 9.2): see _keep_xdist_groups
    from _pytest.nodeid import NodeId
except ImportError:
    NodeId = ()

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Daemons (slurmctld, munged) live in sbin, which a non-root PATH often lacks.
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
INSTALL_HINT = ".ci/system-packages.sh installs it (as root; `make test` runs it)"

# A session starts hundreds of Pythons (every rule job, every snakemake). Where PYTHONDONTWRITEBYTECODE
# is set and the venv has no .pyc (uv installs none), each one recompiled pandas, scikit-learn and
# torch: ~2 s a start-up, half a demo run's time. A prefix keeps the .pyc out of the sources and the venv.
if os.environ.get("PYTHONDONTWRITEBYTECODE") and not os.environ.get("PYTHONPYCACHEPREFIX"):
    os.environ["PYTHONPYCACHEPREFIX"] = str(ROOT / ".pytest_cache" / "pycache")
    del os.environ["PYTHONDONTWRITEBYTECODE"]


def find_tool(*names: str) -> str | None:
    """The first of ``names`` on PATH or in sbin (alternatives, e.g. chromium, chromium-browser)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *SBIN])
    return next((found for name in names if (found := shutil.which(name, path=search))), None)


def requires_tool(*names: str, why: str):
    """Skip marker for a test that runs a system tool for real: without any of ``names`` installed it
    skips, and the reason (shown by pytest -ra) names the tool and how to get it."""
    return pytest.mark.skipif(
        find_tool(*names) is None, reason=f"{' or '.join(names)} not installed ({why}); {INSTALL_HINT}"
    )


requires_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root (starts system daemons); run it through .ci/run"
)


def snakemake(
    workdir: Path, *args: str, check: bool = True, configfile: str = "config.yaml", timeout: float | None = None
) -> subprocess.CompletedProcess:
    """Run the project's Snakefile in ``workdir`` with the test interpreter's snakemake.

    ``configfile`` is relative to ``workdir``; relative paths inside it resolve against ``workdir``,
    as for a user running snakemake there.
    """
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONUNBUFFERED": "1"}
    cmd = [
        str(BIN / "snakemake"),
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / configfile),
        *args,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        out, errs = (x.decode() if isinstance(x, bytes) else (x or "") for x in (err.stdout, err.stderr))
        raise AssertionError(
            f"snakemake {' '.join(args)} still running after {timeout}s:\n{out[-3000:]}\n{errs[-4000:]}"
        ) from None
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@pytest.fixture(autouse=True)
def _keep_thread_variables(monkeypatch):
    """A test that calls run_rule in-process sets the thread variables for its "job" (limit_threads);
    undo that after each test, or every later test of the worker inherits them (`nproc` honours
    OMP_NUM_THREADS: the SLURM test node once came up with 1 CPU and its 2-thread jobs pended forever)."""
    for var in THREAD_VARIABLES:
        monkeypatch.setenv(var, os.environ.get(var, ""))  # records the value (or absence) to restore
        if not os.environ[var]:
            monkeypatch.delenv(var)


@pytest.hookimpl(trylast=True)  # after xdist's own hook, whose group suffix this checks
def pytest_collection_modifyitems(config, items):
    """Longest first: the SLURM test, then the other end-to-end runs, then the quick tests. Under
    xdist (`make test`: --dist loadgroup --no-loadscope-reorder) a worker takes the next test in this
    order whenever it runs low, so a long test no longer starts last and runs alone on one worker."""
    if getattr(config.option, "loadgroup", False):  # set on xdist workers under --dist loadgroup
        _keep_xdist_groups(items)
    items.sort(key=lambda item: 0 if item.get_closest_marker("slurm") else 1 if item.get_closest_marker("e2e") else 2)


def _keep_xdist_groups(items) -> None:
    """pytest-xdist 3.8 sends an `xdist_group` to one worker by appending "@group" to `item._nodeid`,
    which pytest 9.2's structured node ids ignore (pytest-dev/pytest-xdist#1386): every group was spread
    over both workers and each built the module's fixtures. Append it to the id pytest 9.2 reads; a
    no-op once xdist's suffix shows in the node id again (or on a pytest without structured ids)."""
    for item in items:
        names = sorted(
            {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}
        )
        suffix = f"@{'_'.join(names)}"
        if names and not item.nodeid.endswith(suffix) and isinstance(getattr(item, "_id", None), NodeId):
            item._id = NodeId.parse(item.nodeid + suffix)


TEST_CONFIG = ROOT / ".test/config.yaml"


def small_config(kind: str, **overrides) -> dict:
    """The workflow's test config (.test/config.yaml: the demo, 90 clips, 3 folds) on one task kind."""
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config["demo"]["kind"] = kind
    for key, value in overrides.items():
        config[key] = value
    return config


def demo_config(kind: str) -> dict:
    """The test config on one kind: the demo runs that several end-to-end modules share (finished_runs)."""
    config = small_config(kind)
    if kind == "multilabel":  # seed 004's setting: 5 deterministic crops per clip, embeddings averaged
        config["backbones"]["logmel"].update(crop_seconds=1.0, tta={"n_crops": 5})
    return config


def jobs_to_run(workdir, *extra):
    """Rule name -> job count of what a dry run would execute."""
    out = snakemake(
        workdir, "-n", *extra, "--quiet", "rules"
    ).stdout  # after --configfile, before --quiet: both take lists
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("job", "total"):
            counts[parts[0]] = int(parts[1])
    return counts


@pytest.fixture
def workdir(tmp_path):
    def make(config: dict) -> Path:
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        return tmp_path

    return make


class FinishedRuns:
    """Full workflow runs shared by every test of a session (every xdist worker too): each distinct
    config runs once, under a file lock, and a test gets its own copy (file times kept, so Snakemake
    sees it as up to date). A demo run costs minutes on two cores; the tests that only read a finished
    run, or change one thing after it, need not pay for it again."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, config: dict) -> Path:
        """The shared finished run of ``config`` (made now if no test has made it yet). Read only."""
        key = hashlib.blake2b(json.dumps(config, sort_keys=True).encode(), digest_size=8).hexdigest()
        run = self.root / key
        with open(self.root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (self.root / f"{key}.done").exists():
                shutil.rmtree(run, ignore_errors=True)  # a run that failed earlier in the session
                run.mkdir()
                (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
                snakemake(run, "--cores", "2")
                (self.root / f"{key}.done").touch()
        return run

    def copy(self, config: dict, dest: Path) -> Path:
        """A private copy of the finished run of ``config`` in ``dest``, to change and rerun."""
        shutil.copytree(self.path(config), dest, symlinks=True, dirs_exist_ok=True)
        return dest


@pytest.fixture(scope="session")
def finished_runs(tmp_path_factory, request) -> FinishedRuns:
    # xdist workers share the parent of their base temp dirs; without xdist (also `-p no:xdist`, which
    # takes away the worker_id fixture) it is the session's own
    base = tmp_path_factory.getbasetemp()
    worker = hasattr(request.config, "workerinput")
    return FinishedRuns((base.parent if worker else base) / "finished-runs")
