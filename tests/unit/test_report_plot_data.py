"""The plot-data tables `dvc plots` reads: blend OOF vs truth and one score per target/class."""

import numpy as np

from audiofold.report import oof_vs_truth_table, per_output_scores
from audiofold.tasks import TaskSpec

MT = TaskSpec("multitarget", "id", ["a", "b"])
CLS = TaskSpec("classification", "id", ["label"], classes=["x", "y", "z"])
ML = TaskSpec("multilabel", "id", ["labels"], classes=["p", "q"], label_sep=",")


def test_regression_table_is_long_per_target_and_scores_are_pearson():
    y = np.array([[1.0, 5.0], [2.0, 4.0], [3.0, 3.0]])
    P = np.array([[1.1, 3.0], [2.1, 4.0], [2.9, 5.0]])
    table = oof_vs_truth_table(y, P, MT)
    assert list(table.columns) == ["row", "output", "truth", "predicted"]
    assert table[table.output == "b"].predicted.tolist() == [3.0, 4.0, 5.0]
    scores = per_output_scores(y, P, MT)
    assert scores.metric.unique().tolist() == ["pearson"]
    a, b = scores.score.tolist()
    assert a > 0.99 and b < -0.99  # target b is predicted in reverse order


def test_classification_table_names_classes_and_scores_f1_per_class():
    y = np.array([0, 1, 2, 2])
    P = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.6, 0.2, 0.2]])
    table = oof_vs_truth_table(y, P, CLS)
    assert table.truth.tolist() == ["x", "y", "z", "z"] and table.predicted.tolist() == ["x", "y", "z", "x"]
    scores = per_output_scores(y, P, CLS)
    assert scores.output.tolist() == ["x", "y", "z"]
    assert scores.score.tolist() == [round(2 / 3, 6), 1.0, round(2 / 3, 6)]


def test_multilabel_scores_are_lwlrap_per_class():
    y = np.array([[1, 0], [0, 1], [1, 1]])
    P = np.array([[0.9, 0.1], [0.8, 0.7], [0.6, 0.4]])
    assert len(oof_vs_truth_table(y, P, ML)) == 6
    scores = per_output_scores(y, P, ML)
    assert scores.metric.unique().tolist() == ["lwlrap"] and scores.output.tolist() == ["p", "q"]
    assert scores.score.iloc[0] == 1.0 and scores.score.iloc[1] < 1.0  # q ranks below p on clip 2


def test_scores_table_names_the_in_sample_and_the_nested_blend(tmp_path):
    from audiofold.report import IN_SAMPLE, NESTED, scores_table, write_scores_html

    fold = {0: {"rmse": 1.0}, 1: {"rmse": 1.2}}
    summary = {
        "task": "regression",
        "primary": "rmse",
        "greater_is_better": False,
        "candidates": {
            "b/h/main": {
                "overall": {"rmse": 1.1},
                "per_fold": fold,
                "calibrated_overall": {"rmse": 1.05},
                "calibration": {"method": "isotonic", "applied": True},
            }
        },
        "blend": {
            "in_sample": {"overall": {"rmse": 1.0}, "per_fold": fold, "note": "chosen on these rows"},
            "nested": {"overall": {"rmse": 1.08}, "per_fold": fold, "note": "chosen on the other folds"},
            "weights": {"b/h/main": 1.0},
            "rounding": {
                "mode": "auto",
                "applied": False,
                "step": 0.5,
                "criterion": "rmse",
                "rounded": 1.02,
                "unrounded": 1.0,
            },
        },
    }
    table = scores_table(summary)
    assert table["candidate"].tolist() == ["b/h/main", IN_SAMPLE, NESTED]
    assert table["OOF rmse"].tolist() == [1.1, 1.0, 1.08]
    write_scores_html(summary, tmp_path / "t.html")
    html = (tmp_path / "t.html").read_text()
    assert "chosen on the other folds" in html and "not applied" in html and "unrounded 1.0000" in html
    assert "Nested blend vs nested best single" not in html  # nothing to say without the comparison

    single = {"overall": {"rmse": 1.1}, "per_fold": fold, "chosen": ["b/h/main"] * 2}
    single["blend_minus_single"] = {
        "unit": "groups",
        "n_units": 12,
        "n_resamples": 1000,
        "seed": 0,
        "metrics": {"rmse": {"difference": -0.02, "ci_low": -0.05, "ci_high": 0.01, "a_at_least_as_good": 0.81}},
    }
    summary["blend"]["nested"]["best_single"] = single
    write_scores_html(summary, tmp_path / "t.html")
    html = (tmp_path / "t.html").read_text()
    assert "rmse difference -0.0200 (lower is better), 95 % interval -0.0500 to +0.0100" in html
    assert "resamples of the 12 groups; the blend is at least as good in 81 %" in html
    assert "Warning" not in html
    single["warning"] = "the nested best single (b/h/main) beats <the blend>"
    write_scores_html(summary, tmp_path / "t.html")
    assert (
        "<b>Warning</b>: the nested best single (b/h/main) beats &lt;the blend&gt;" in (tmp_path / "t.html").read_text()
    )
