"""The workflow's test configuration, run the way CI runs it: `snakemake --directory .test`."""

import pandas as pd
import pytest
import yaml

from conftest import ROOT, TEST_CONFIG

pytestmark = pytest.mark.e2e


def test_dot_test_config_is_the_small_demo():
    config = yaml.safe_load(TEST_CONFIG.read_text())
    assert config["demo"]["enabled"] and config["demo"]["n_train"] == 90 and config["cv"]["n_folds"] == 3
    # every other section is the default config's, so .test exercises the same steps
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert {k: v for k, v in config.items() if k not in ("demo", "cv")} == {
        k: v for k, v in default.items() if k not in ("demo", "cv")
    }


def test_dot_test_runs_end_to_end(finished_runs):
    # The shared run of .test/config.yaml, made as CI's `snakemake --directory .test` makes it (a copy
    # elsewhere, so a run leaves nothing in the checkout), and reused by the tests that read a finished run.
    workdir = finished_runs.path(yaml.safe_load(TEST_CONFIG.read_text()))
    assert yaml.safe_load((workdir / "config.yaml").read_text()) == yaml.safe_load(TEST_CONFIG.read_text())
    submission = pd.read_csv(workdir / "results/submission.csv")
    assert len(submission) == yaml.safe_load(TEST_CONFIG.read_text())["demo"]["n_test"]
    assert (workdir / "results/metrics.json").is_file()
