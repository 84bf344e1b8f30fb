"""The lock (requirements.lock.txt) and the conda environments (envs/*.yaml) agree with pyproject.toml.

The lock must pin every dependency of pyproject.toml (runtime + test extra) to one exact version
inside its specifier, and torch/torchaudio to the one pair that imports together; a dependency
changed in pyproject.toml without `make lock` fails here. conda itself cannot be installed on these
machines, so the env files are checked, not built: their pip requirements must match pyproject.toml
(dependencies + the slurm extra) one to one and be constrained by the lock.
"""

import tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from conftest import ROOT

LOCK = ROOT / "requirements.lock.txt"
ENVS = {"cpu": ROOT / "envs/audiofold-cpu.yaml", "cuda": ROOT / "envs/audiofold-cuda.yaml"}


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["slurm"]
    return {Requirement(r).name.lower(): str(Requirement(r).specifier) for r in reqs}


def _lock_pins() -> dict[str, Version]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        (spec,) = req.specifier  # exactly one `==` per locked package
        assert spec.operator == "==", f"lock line not an exact pin: {line!r}"
        pins.setdefault(req.name.lower().replace("_", "-"), []).append(Version(spec.version))
    return pins


def test_lock_pins_every_dependency_inside_its_specifier():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _lock_pins()
    for line in project["dependencies"] + project["optional-dependencies"]["test"]:
        req = Requirement(line)
        versions = pins.get(req.name.lower().replace("_", "-"))
        assert versions, f"{req.name} is in pyproject.toml but not in requirements.lock.txt: run `make lock`"
        for version in versions:
            assert version in req.specifier, f"lock has {req.name}=={version}, outside {req.specifier}: run `make lock`"


def test_torch_pair_is_pinned_exactly():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = {Requirement(r).name: str(Requirement(r).specifier) for r in project["dependencies"]}
    # torchaudio 2.11.1 beside torch 2.11.0 fails to import: a wildcard is not a pin
    assert specs["torch"] == "==2.11.0" and specs["torchaudio"] == "==2.11.0"
    pins = _lock_pins()
    assert pins["torch"] == [Version("2.11.0")] and pins["torchaudio"] == [Version("2.11.0")]


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
    reqs = {
        Requirement(line).name.lower(): str(Requirement(line).specifier)
        for line in pip_lines
        if not line.startswith("-")
    }
    assert reqs == _pyproject_requirements()
    assert "-e .." in options, "the env installs audiofold itself"
    assert "-c ../requirements.lock.txt" in options, "the env takes the lock's exact versions"
    cpu_index = any("download.pytorch.org/whl/cpu" in o for o in options)
    assert cpu_index == (variant == "cpu"), "CPU variant takes CPU torch wheels; CUDA variant PyPI's CUDA builds"


# The rule environments (envs/rule-*.yaml, the `conda:` directives): Snakemake copies an env file into
# .snakemake/conda/ before creating it, so they cannot use relative pip paths (-c ../lock, -e ..) and
# pin every package inline instead; audiofold comes from the workflow's src/ (see the Snakefile).
RULE_ENVS = {"full": ROOT / "envs/rule-models.yaml", "slim": ROOT / "envs/rule-slim.yaml"}
MODEL_PACKAGES = {"torch", "torchaudio", "transformers", "lightgbm", "optuna", "ctranslate2", "onnxruntime"}
ORCHESTRATION = {"snakemake", "dvc"}  # drive the run from outside; no rule job imports them


def _rule_env_pins(path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    lines = [line for line in _pip_section(env) if not line.startswith("-")]
    assert not any(line.startswith(("-c", "-e", "-r")) for line in _pip_section(env)), "no relative pip paths"
    pins = {}
    for line in lines:
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"{path.name}: {line!r} is not an exact pin"
        pins[req.name.lower()] = spec.version
    return pins


def _lock_pin_for_py311(name: str) -> str:
    from packaging.markers import Marker

    env = {
        "python_version": "3.11",
        "python_full_version": "3.11.9",
        "sys_platform": "linux",
        "platform_system": "Linux",
    }
    for line in LOCK.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and Requirement(line).name.lower() == name:
            req = Requirement(line)
            if req.marker is None or Marker(str(req.marker)).evaluate(env):
                return next(iter(req.specifier)).version
    raise AssertionError(f"{name} is not in requirements.lock.txt")


@pytest.mark.parametrize("variant", sorted(RULE_ENVS))
def test_rule_env_pins_are_the_locks(variant):
    for name, version in _rule_env_pins(RULE_ENVS[variant]).items():
        assert version == _lock_pin_for_py311(name), f"{RULE_ENVS[variant].name}: {name}=={version}, lock differs"


def test_rule_envs_cover_the_runtime_dependencies():
    full, slim = (set(_rule_env_pins(RULE_ENVS[v])) for v in ("full", "slim"))
    runtime = set(_pyproject_requirements()) - ORCHESTRATION - {"snakemake-executor-plugin-slurm"}
    assert full == runtime
    assert slim == runtime - MODEL_PACKAGES


def test_every_rule_names_an_existing_env_and_slim_rules_import_without_torch():
    import re
    import subprocess
    import sys

    uses = {}
    for smk in (ROOT / "workflow/rules").glob("*.smk"):
        rule = None
        lines = smk.read_text().splitlines()
        for i, line in enumerate(lines):
            if m := re.match(r"\s*(?:rule|checkpoint) (\w+):", line):
                rule = m.group(1)
            if line.strip() == "conda:":
                env = (smk.parent / lines[i + 1].strip().strip('"')).resolve()
                assert env in {p.resolve() for p in RULE_ENVS.values()}, f"rule {rule}: unknown env {env}"
                uses[rule] = env
            if m := re.match(r"\s*script:", line):
                uses.setdefault(rule, None)
                assert uses[rule] is not None, f"rule {rule} has a script but no conda: directive"
    slim_scripts = [ROOT / "scripts" / f"{rule}.py" for rule, env in uses.items() if env == RULE_ENVS["slim"].resolve()]
    assert slim_scripts
    imports = sorted(
        {
            line
            for script in slim_scripts
            for line in script.read_text().splitlines()
            if line.startswith("from audiofold")
        }
    )
    # none of them imports a package the slim env lacks, directly or through another module
    code = "\n".join([*imports, "import sys", f"print(sorted(set(sys.modules) & set({sorted(MODEL_PACKAGES)!r})))"])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]", f"slim rules import {proc.stdout.strip()}"
