"""What a run prints last: the summary of metrics.json on success, the failed rules and their logs on error.

The warnings' parts of metrics.json come from the steps that write them (shift, duplicates, the nested
best single's bootstrap); the failure logs are Snakemake 9's own formatting (and a real run's excerpt).
"""

import io
import shlex

import numpy as np
import pandas as pd
import pytest
from snakemake.cli import parse_config
from snakemake.logging import DefaultFormatter

from audiofold.duplicates import summarise_pairs
from audiofold.ensemble.blend_nested import single_beats_blend
from audiofold.ensemble.bootstrap import paired_bootstrap
from audiofold.io import save_npz, write_json
from audiofold.run_summary import (
    failed_jobs,
    failure_lines,
    on_error,
    on_success,
    report_command,
    success_lines,
)
from audiofold.shift import shift_report
from audiofold.tasks import TaskSpec

REG = TaskSpec(kind="regression", id_column="id", label_columns=["rating"])


def scores(rmse, mae=0.5, pearson=0.7):
    return {"mae": mae, "pearson": pearson, "rmse": rmse}


def metrics_summary(shift: dict, duplicates: dict, single_extra: dict | None = None) -> dict:
    """metrics.json as report.summarise writes it for a regression demo run (candidates cut to one)."""
    per_fold = {str(k): scores(0.6 + 0.01 * k) for k in range(3)}
    return {
        "task": "regression",
        "primary": "rmse",
        "greater_is_better": False,
        "candidates": {
            "logmel/knn/main": {"overall": scores(0.9073), "per_fold": per_fold, "calibration": {}},
        },
        "blend": {
            "in_sample": {"overall": scores(0.6101), "per_fold": per_fold, "note": "optimistic"},
            "nested": {
                "overall": scores(0.6576),
                "per_fold": per_fold,
                "folds": [{"fold": 0, "method": "greedy", "weights": {"logmel/linear/main": 1.0}}],
                "best_single": {
                    "overall": scores(0.6854),
                    "per_fold": per_fold,
                    "chosen": ["logmel/linear/main", "mfcc/linear/main", "logmel/linear/main"],
                    **(single_extra or {}),
                },
                "note": "honest",
            },
            "method": "grid",
            "method_requested": "auto",
            "weights": {"logmel/linear/main": 0.6, "mfcc/linear/main": 0.4},
            "criterion": "rmse",
        },
        "baseline": scores(0.9613),
        "shift": shift,
        "folds": {"scheme": "stratified k-fold on label bins, 3 folds, seed 42"},
        "duplicates": duplicates,
    }


def shift_part(tmp_path, offset: float) -> dict:
    """shift.json of the shift step on train/test embeddings whose first dimensions differ by ``offset``."""
    rng = np.random.default_rng(0)
    X_train, X_test = rng.standard_normal((300, 16)), rng.standard_normal((100, 16))
    X_test[:, :4] += offset
    save_npz(tmp_path / "train0.npz", ids=np.array([f"a{i}" for i in range(300)]), X=X_train.astype(np.float32))
    save_npz(tmp_path / "test0.npz", ids=np.array([f"t{i}" for i in range(100)]), X=X_test.astype(np.float32))
    return shift_report([tmp_path / "train0.npz"], [tmp_path / "test0.npz"], "logmel", 0, tmp_path / "shift.json")


def duplicates_part(pair_kinds: list[tuple[str, str]]) -> dict:
    """duplicates.json for pairs given as (kind, split of the second clip)."""
    pairs = pd.DataFrame(
        [
            {"id_a": f"a{i}", "id_b": f"b{i}", "split_a": "train", "split_b": split, "fold_a": 0, "fold_b": 1,
             "similarity": 1.0, "kind": kind}
            for i, (kind, split) in enumerate(pair_kinds)
        ],
        columns=["id_a", "id_b", "split_a", "split_b", "fold_a", "fold_b", "similarity", "kind"],
    )  # fmt: skip
    return summarise_pairs(
        pairs, backbone="logmel", threshold=0.995, exact_sets=1, merged_sets=0, split_sets=1, n_train=90, n_test=20
    )


def finished_run(tmp_path, summary: dict, results: str = "out") -> str:
    """A results folder holding metrics.json and the submission; its path as the config names it."""
    folder = tmp_path / results
    write_json(folder / "metrics.json", summary)
    (folder / "submission.csv").write_text("id,rating\nt0,3.5\n")
    return str(folder)


def test_a_finished_run_names_the_submission_the_three_scores_and_the_report_command(tmp_path):
    summary = metrics_summary(shift_part(tmp_path, 0.0), duplicates_part([]))
    results = finished_run(tmp_path, summary)
    lines = success_lines(results, outputs=["x.csv", f"{results}/metrics.json"])
    text = "\n".join(lines)
    assert lines[1] == f"  submission: {results}/submission.csv"
    assert "rmse (lower is better)" in text
    # which score is which: nested blend first, beside the in-sample one, then the nested best single
    nested, in_sample, single = lines[3:6]
    assert "nested" in nested and "honest" in nested and nested.endswith("0.6576")
    assert "in-sample" in in_sample and in_sample.endswith("0.6101")
    assert "best single, nested (logmel/linear/main, mfcc/linear/main)" in single and single.endswith("0.6854")
    assert "WARNING" not in text  # no shift (AUC near 0.5), no duplicates, the blend holds
    assert lines[-1] == f"  HTML report: snakemake --report {results}/report.html"


def test_shift_duplicates_and_a_better_single_are_warned(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.standard_normal((90, 1))
    single = y + 0.1 * rng.standard_normal((90, 1))
    blend = y + 0.8 * rng.standard_normal((90, 1))  # the blend is far worse than the single candidate
    comparison = paired_bootstrap(y, blend, single, REG, n_resamples=200, seed=0)
    warning = single_beats_blend(comparison, REG, ["logmel/linear/main"])
    assert warning, "the bootstrap should find the single candidate better"
    shift = shift_part(tmp_path, 1.5)
    summary = metrics_summary(
        shift,
        duplicates_part([("exact", "train"), ("near", "train"), ("near", "test")]),
        {"blend_minus_single": comparison, "warning": warning},
    )
    summary["blend"]["shift_weighted"] = {"overall": scores(0.7345), "n": 90, "effective_n": 31.6}
    warnings = [line for line in success_lines(finished_run(tmp_path, summary)) if "WARNING" in line]
    assert len(warnings) == 4, warnings
    assert f"ROC AUC {shift['auc']:.3f}" in warnings[0] and "overstate" in warnings[0]
    assert "Shift-weighted nested estimate: 0.7345 (worth 32 of 90 rows)" in warnings[0]
    assert "2 duplicate pair(s) of training clips lie in different folds (1 identical, 1 near)" in warnings[1]
    assert "1 training clip(s) duplicate test clips (0 identical, 1 near)" in warnings[2]
    assert "validation/duplicates.csv" in warnings[1]
    assert warnings[3] == f"  WARNING: {warning}"


def test_a_nested_score_that_was_not_computed_says_why(tmp_path):
    summary = metrics_summary(shift_part(tmp_path, 0.0), duplicates_part([]))
    summary["blend"]["nested"] = {"overall": None, "per_fold": {}, "folds": [], "skipped": "only one candidate"}
    text = "\n".join(success_lines(finished_run(tmp_path, summary)))
    assert "not computed (only one candidate)" in text and "best single, nested (honest)" in text
    assert "0.6101" in text


def test_a_run_of_another_target_or_without_metrics_is_one_line(tmp_path):
    results = finished_run(tmp_path, metrics_summary(shift_part(tmp_path, 0.0), duplicates_part([])))
    other = success_lines(results, outputs=[f"{results}/embeddings/logmel/train0.npz"])
    assert len(other) == 1 and "not among its outputs" in other[0]
    # the same file however the path is spelled
    assert len(success_lines(results, outputs=[f"{results}/./metrics.json"])) > 1
    missing = success_lines(str(tmp_path / "empty"), outputs=None)
    assert len(missing) == 1 and "not found" in missing[0]


def test_a_broken_metrics_json_prints_one_line_and_does_not_raise(tmp_path):
    (tmp_path / "metrics.json").write_text("{")
    out = io.StringIO()
    on_success(str(tmp_path), out=out)
    assert out.getvalue().count("\n") == 1 and "no summary" in out.getvalue()
    write_json(tmp_path / "metrics.json", {"primary": "rmse"})  # keys missing
    out = io.StringIO()
    on_success(str(tmp_path), out=out)
    assert out.getvalue().count("\n") == 1 and "KeyError" in out.getvalue()


def test_the_report_command_repeats_the_config_options_snakemake_reads_back(tmp_path):
    assert report_command("results") == "snakemake --report results/report.html"  # `make report`
    overrides = parse_config(["results_dir=my results", "cv={n_folds: 3, auto_groups: False}", "seed=1", "note="])
    command = report_command("my results", ["my.yaml"], overrides)
    words = shlex.split(command)
    assert words[:3] == ["snakemake", "--configfile", "my.yaml"] and words[-2:] == [
        "--report",
        "my results/report.html",
    ]
    assert parse_config(words[words.index("--config") + 1 : -2]) == overrides


def job_error(rule: str, log: list[str], jobid: int = 3) -> str:
    """Snakemake's own text for a failed job (what its main log holds)."""
    return DefaultFormatter().format_job_error(
        dict(
            rule_name=rule, msg=None, rule_msg=None, jobid=jobid, input=["in.npz"], output=[f"{rule}.npz"],
            log=log, conda_env=None, shellcmd=None, aux={}, indent=False,
        )
    )  # fmt: skip


def group_error(rules: list[tuple[str, list[str]]]) -> str:
    return DefaultFormatter().format_group_error(
        dict(
            msg="group failed", aux_logs=["group.log"],
            job_error_info=[{"rule_name": r, "jobid": i, "output": ["o"], "log": log} for i, (r, log) in enumerate(rules)],
        )
    )  # fmt: skip


def test_failed_jobs_are_read_from_snakemakes_job_and_group_errors():
    text = "\n".join(
        [
            "Building DAG of jobs...",
            "Error in rule train, jobid: 7",  # the bare message line, before its block
            job_error("train", ["results/logs/train/logmel/linear/0.log"], jobid=7),
            "Select jobs to execute...",
            job_error("all", []),
            group_error([("embed", ["results/logs/embed/a.log", "results/logs/embed/b.log"]), ("decode", [])]),
        ]
    )
    assert failed_jobs(text) == [
        ("train", ["results/logs/train/logmel/linear/0.log"]),
        ("all", []),
        ("embed", ["results/logs/embed/a.log", "results/logs/embed/b.log"]),
        ("decode", []),
    ]
    assert failed_jobs("nothing failed here\n    log: x.log") == []


# Excerpt of the main log of a real run whose validate step met an unreadable clip.
REAL_LOG = """\
[Sun Dec  6 15:17:44 2026]
localcheckpoint validate:
    input: train.csv, test.csv, results/validation/hashes.csv
    output: results/validation/report.json, results/validation/clips.csv
    log: results/logs/validate.log
    jobid: 0
[Sun Dec  6 15:17:58 2026]
Error in rule validate:
    message: None
    jobid: 0
    input: train.csv, test.csv, results/validation/hashes.csv
    output: results/validation/report.json, results/validation/clips.csv
    log: results/logs/validate.log (check log file(s) for error details)
Logfile results/logs/validate.log:
================================================================================
2026-12-06 15:17:57,684 INFO audiofold.rule.validate: rule validate  started
Shutting down, this might take some time.
Exiting because a job execution failed. Look above for error messages
"""

RULE_LOG = """\
2026-12-06 15:17:57,684 INFO audiofold.rule.validate: rule validate  started
2026-12-06 15:17:57,707 INFO audiofold.tables: read train.csv as UTF-8
2026-12-06 15:17:57,888 ERROR audiofold.rule.validate: 1 clip(s) cannot be used:
  train id 'tr3' (train/tr3.wav): unreadable: cannot decode audio file train/tr3.wav
Fix or remove these files/rows, or set audio.bad_audio to 'skip' in config.yaml.
2026-12-06 15:17:57,900 INFO audiofold.rule.validate: cleanup
"""


def test_a_failed_rule_is_named_with_its_log_and_its_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the log paths are relative to the working directory, as in a run
    (tmp_path / "main.log").write_text(REAL_LOG)
    (tmp_path / "results/logs").mkdir(parents=True)
    (tmp_path / "results/logs/validate.log").write_text(RULE_LOG)
    out = io.StringIO()
    on_error([str(tmp_path / "main.log")], out=out)
    assert out.getvalue().splitlines() == [
        "audiofold: the run failed",
        "  rule validate failed: see results/logs/validate.log",
        "    1 clip(s) cannot be used:",
        "      train id 'tr3' (train/tr3.wav): unreadable: cannot decode audio file train/tr3.wav",
        "    Fix or remove these files/rows, or set audio.bad_audio to 'skip' in config.yaml.",
    ]
    # a rule without a log, and a rule log with no error record (an unexpected exception goes to stderr)
    (tmp_path / "results/logs/validate.log").write_text(RULE_LOG.replace("ERROR", "INFO"))
    (tmp_path / "two.log").write_text(REAL_LOG + job_error("all", []))
    lines = failure_lines(str(tmp_path / "two.log"))
    assert lines[1:] == [
        "  rule validate failed: see results/logs/validate.log",
        f"  rule all failed (it has no log file): see {tmp_path / 'two.log'}",
    ]


@pytest.mark.parametrize("log", [None, [], "missing.log", ["unparsable.log"]])
def test_a_log_without_failed_rules_points_at_the_log_and_does_not_raise(tmp_path, monkeypatch, log):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "unparsable.log").write_bytes(b"\xff\xfe binary \x00 junk")
    out = io.StringIO()
    on_error(log, out=out)
    assert out.getvalue().startswith("audiofold: the run failed; see ") and out.getvalue().count("\n") == 1
