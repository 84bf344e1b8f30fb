"""envs/*.yaml (conda environments) list exactly pyproject.toml's runtime dependencies.

conda itself cannot be installed on these machines, so the files are checked, not built: the pip
requirements must parse and match pyproject.toml (dependencies + the slurm extra) one to one.
"""

import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from conftest import ROOT

ENVS = {"cpu": ROOT / "envs/audiofold-cpu.yaml", "cuda": ROOT / "envs/audiofold-cuda.yaml"}


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["slurm"]
    return {Requirement(r).name.lower(): str(Requirement(r).specifier) for r in reqs}


def _pip_section(env: dict) -> list[str]:
    sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1, "one pip: section expected"
    return sections[0]


@pytest.mark.parametrize("variant", sorted(ENVS))
def test_env_matches_pyproject(variant):
    env = yaml.safe_load(ENVS[variant].read_text())
    assert env["name"] == f"audiofold-{variant}"
    conda_pkgs = [d for d in env["dependencies"] if isinstance(d, str)]
    assert "pip" in conda_pkgs and "ffmpeg" in conda_pkgs
    python = next(d for d in conda_pkgs if d.startswith("python"))
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert python.split("=")[1] in SpecifierSet(requires)

    pip_lines = _pip_section(env)
    options = [line for line in pip_lines if line.startswith("-")]
    reqs = {Requirement(line).name.lower(): str(Requirement(line).specifier) for line in pip_lines if not line.startswith("-")}
    assert reqs == _pyproject_requirements()
    assert "-e .." in options, "the env installs audiofold itself"
    cpu_index = any("download.pytorch.org/whl/cpu" in o for o in options)
    assert cpu_index == (variant == "cpu"), "CPU variant takes CPU torch wheels; CUDA variant PyPI's CUDA builds"
