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
