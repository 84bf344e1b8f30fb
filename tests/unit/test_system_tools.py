"""System tools the tests need: .ci/system-packages.sh installs only what is missing (or says what is
missing and carries on), and a test needing a missing tool skips with the tool named in the summary."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import ROOT, find_tool

SCRIPT = ROOT / ".ci/system-packages.sh"
ALL_TOOLS = ("ffmpeg", "slurmctld", "slurmd", "squeue", "munged", "chromium")


def test_find_tool_takes_the_first_installed_alternative():
    assert find_tool("audiofold-no-such-tool") is None
    assert find_tool("audiofold-no-such-tool", "sh") == shutil.which("sh")


def test_missing_tool_skips_with_the_reason_in_the_summary(tmp_path):
    (tmp_path / "test_tool.py").write_text(
        textwrap.dedent("""
        from conftest import requires_tool

        @requires_tool("audiofold-no-such-tool", why="plays the part of chromium")
        def test_needs_missing():
            raise AssertionError("must not run")

        @requires_tool("audiofold-no-such-tool", "sh", why="any one of them will do")
        def test_has_alternative():
            pass
    """)
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-ra",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            str(tmp_path / "test_tool.py"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 1 skipped" in proc.stdout
    skip = next(line for line in proc.stdout.splitlines() if line.startswith("SKIPPED"))
    assert (
        "audiofold-no-such-tool not installed (plays the part of chromium); .ci/system-packages.sh installs it" in skip
    )


def _bin(tmp_path: Path, tools, uid: int, apt_rc: int = 0) -> Path:
    """A PATH folder with stand-ins for ``tools``, ``id`` reporting ``uid`` and an apt-get that logs its
    arguments; plus the few coreutils the script runs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    scripts = {tool: "#!/bin/sh\n" for tool in tools}
    scripts["id"] = f"#!/bin/sh\necho {uid}\n"
    scripts["apt-get"] = (
        f'#!/bin/sh\necho "$*" >> {tmp_path}/apt.log\n'
        + ('echo "E: Unable to locate package chromium"\n' if apt_rc else "")
        + f"exit {apt_rc}\n"
    )
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    for name in ("mktemp", "rm", "tail"):
        (bin_dir / name).symlink_to(shutil.which(name))
    return bin_dir


def _run(tmp_path, tools, uid=0, apt_rc=0):
    env = {**os.environ, "PATH": str(_bin(tmp_path, tools, uid, apt_rc))}
    proc = subprocess.run(["/bin/bash", str(SCRIPT)], capture_output=True, text=True, env=env)
    log = tmp_path / "apt.log"
    return proc, log.read_text().splitlines() if log.is_file() else []


# Only ffmpeg and chromium go missing here: the script also looks in sbin, where CI's real slurm lives.
def test_system_packages_installs_only_what_is_missing(tmp_path):
    proc, apt = _run(tmp_path / "all", ALL_TOOLS)
    assert (proc.returncode, proc.stdout, proc.stderr, apt) == (0, "", "", [])  # nothing missing: silent, no apt

    proc, apt = _run(tmp_path / "root", ("slurmctld", "slurmd", "squeue", "munged"))
    assert proc.returncode == 0, proc.stderr
    assert apt == ["update -qq", "install -y -qq --no-install-recommends ffmpeg chromium"]
    assert proc.stderr == "installing system packages: ffmpeg chromium\n"

    proc, apt = _run(tmp_path / "user", ALL_TOOLS[:-1], uid=1000)  # not root: says what is missing, carries on
    assert proc.returncode == 0 and apt == []
    assert "missing: chromium" in proc.stderr and "skip" in proc.stderr and "apt-get install" in proc.stderr

    proc, apt = _run(tmp_path / "offline", ALL_TOOLS[:-1], apt_rc=100)
    assert proc.returncode == 1 and apt == ["update -qq"]
    assert "E: Unable to locate package chromium" in proc.stderr and "could not install: chromium" in proc.stderr
