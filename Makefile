# Two entry points: `make run` (whole pipeline on the embedded demo) and `make test`.
PYTHON ?= python3
VENV ?= .venv
CORES ?= 8
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install run test report dryrun clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	# Packages that ship pretrained weights (aisfx, distillmos backbones); --no-deps because their
	# pins (numpy 1.23, librosa 0.9, transformers) would downgrade ours; what they import is already here.
	$(BIN)/python -m pip install --quiet --no-deps aisfx==0.1.2 distillmos==0.9.1 xls-r-sqa==0.1.0
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/snakemake --cores $(CORES)

dryrun: install
	$(BIN)/snakemake -n

report: run
	$(BIN)/snakemake --report results/report.html

test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations=15

clean:
	rm -rf results .snakemake
