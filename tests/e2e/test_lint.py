"""`snakemake --lint` finds nothing in the workflow (log/benchmark/conda on every rule, no hard-coded
path params, ...)."""

import shutil
import subprocess

from conftest import BIN, ROOT, snakemake


def test_snakemake_lint_is_clean(tmp_path):
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    proc = snakemake(tmp_path, "--lint", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in out, out[-6000:]
    assert "Congratulations, your workflow is in a good condition" in out


def test_workflow_files_are_snakefmt_formatted():
    proc = subprocess.run(
        [str(BIN / "snakefmt"), "--check", "Snakefile", "workflow/"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
