"""benchmarks/blend_selection.py: its shipped-`auto` rule is the real nested blend, its other rules
really change what is compared, and the pools are what their names say."""

import importlib.util

import numpy as np
from scipy.special import softmax

from audiofold import metrics
from audiofold.ensemble.blend_nested import nested_blend
from audiofold.ensemble.options import BlendOptions
from audiofold.tasks import TaskSpec

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("blend_selection", ROOT / "benchmarks" / "blend_selection.py")
selection = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(selection)

CLS = TaskSpec("classification", "id", ["label"], classes=list("abcd"))


def _candidates(seed=0, n=240):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    names = ["aisfx/knn/main", "aisfx/prompt/main", "aisfx/prompt/main+pl", "logmel/knn/main"]
    return y, {
        name: softmax(2 * np.eye(4)[y] + rng.normal(0, 1 + 0.3 * i, (n, 4)), axis=1) for i, name in enumerate(names)
    }


def _result(pools: dict) -> dict:
    """What main() writes for a run of 240 rows over 4 folds, with these pools' rows."""
    return {
        "run": "x",
        "task": "classification",
        "primary": "accuracy",
        "n_rows": 240,
        "n_folds": 4,
        "setup": {"backbones": ["aisfx", "logmel"], "heads": ["knn", "prompt"], "pseudo_labels": True},
        "pools": pools,
    }


def test_pools_split_by_backbone_head_and_round_and_drop_singletons():
    y, candidates = _candidates()
    pools = selection.pools(list(candidates))
    assert pools["all"] == list(candidates)
    assert pools["no +pl"] == ["aisfx/knn/main", "aisfx/prompt/main", "logmel/knn/main"]
    assert pools["backbone aisfx"] == ["aisfx/knn/main", "aisfx/prompt/main", "aisfx/prompt/main+pl"]
    assert "backbone logmel" not in pools  # one candidate: nothing to blend
    assert pools["without logmel"] == pools["backbone aisfx"]
    assert "without aisfx" not in pools
    assert pools["head prompt"] == ["aisfx/prompt/main", "aisfx/prompt/main+pl"]
    assert pools["main variants"] == ["aisfx/knn/main", "aisfx/prompt/main", "logmel/knn/main"]


def test_the_auto_rule_is_the_shipped_nested_blend_and_the_others_compare_more():
    y, candidates = _candidates(1)
    folds = np.arange(len(y)) % 4
    row = selection.score_pool(candidates, y, folds, CLS)
    shipped, chosen = nested_blend(candidates, y, folds, CLS)
    assert row["auto"]["nested"] == metrics.accuracy(y, shipped, CLS)
    assert row["auto"]["methods"] == [c["method"] for c in chosen]
    assert all(m != "single" for m in row["auto"]["methods"] + row["auto on primary"]["methods"])
    for rule in selection.RULES:
        assert 0.25 < row[rule]["nested"] <= 1.0 and len(row[rule]["methods"]) == 4
    # with single among the methods, its cross-fitted score is compared (and recorded per fold)
    fit = selection.rule_fit_blend(with_single=True, on_primary=True)
    result, _ = fit(
        candidates,
        y,
        folds,
        CLS,
        BlendOptions(
            method="auto",
            step=0.1,
            max_candidates=6,
            greedy_rounds=25,
            per_class=False,
            per_class_min_positives=10,
            per_class_shrinkage=10.0,
        ),
    )
    assert list(result["method_scores"]) == ["single", "grid", "greedy", "stack"]
    assert result["method"] in result["method_scores"]
    text = selection.markdown(_result({"all": row}))
    assert "| all | 4 | " in text and "- auto+single: " in text
    assert "Candidates: backbones aisfx, logmel; heads knn, prompt; with the teacher-student round (+pl)." in text


def test_one_rule_and_leave_one_backbone_out_pools_render_what_each_backbone_adds():
    y, candidates = _candidates(2)
    folds = np.arange(len(y)) % 4
    pools = selection.pools(list(candidates))
    rows = {
        pool: selection.score_pool({n: candidates[n] for n in pools[pool]}, y, folds, CLS, ["auto"])
        for pool in ("all", "without logmel")
    }
    assert list(rows["all"]) == ["n_candidates", "best_single_nested", "auto"]
    text = selection.markdown(_result(rows))
    gain = rows["all"]["auto"]["nested"] - rows["without logmel"]["auto"]["nested"]
    loss_drop = rows["without logmel"]["auto"]["scores"]["log_loss"] - rows["all"]["auto"]["scores"]["log_loss"]
    assert rows["all"]["auto"]["scores"]["accuracy"] == rows["all"]["auto"]["nested"]
    assert f"- logmel: accuracy {gain:+.4f}, macro_f1 " in text and f"log_loss {loss_drop:+.4f}" in text
    assert "auto+single" not in text and "per pool (better" not in text
