"""train_fold + collect without Snakemake, on synthetic embeddings with a known signal."""

import numpy as np
import pytest

from audiofold import metrics
from audiofold.collect_oof import collect
from audiofold.errors import DataError
from audiofold.heads import LinearHead
from audiofold.io import load_npz, read_json, save_npz
from audiofold.tasks import TaskSpec
from audiofold.train import take, train_fold

TASK = TaskSpec("classification", "id", ["y"], classes=["a", "b", "c"])


def write_shards(tmp_path, n=90, n_folds=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.normal(size=(n, 8)).astype(np.float32)
    X[:, 0] += 6 * y  # class signal in one dimension
    folds = rng.permutation(np.arange(n) % n_folds)
    ids = np.array([f"c{i:03d}" for i in range(n)])
    shards = []
    for k in range(n_folds):
        shards.append(tmp_path / f"emb/fold{k}.npz")
        rows = np.flatnonzero(folds == k)[::-1]  # shard order differs from table order on purpose
        save_npz(shards[-1], ids=ids[rows], X=X[rows])
    test = tmp_path / "emb/test0.npz"
    X_test = rng.normal(size=(12, 8)).astype(np.float32)
    X_test[:, 0] += 6 * (np.arange(12) % 3)
    save_npz(test, ids=np.array([f"t{i}" for i in range(12)]), X=X_test)
    save_npz(tmp_path / "targets.npz", ids=ids, y=y, fold=folds)
    return shards, [test], folds, y


def train(tmp_path, shards, tests, fold, head_params, preds="p.npz", model="m.joblib", **options):
    """train_fold on write_shards' files (targets at tmp_path / targets.npz)."""
    return train_fold(
        train_shards=shards,
        test_shards=tests,
        targets_path=tmp_path / "targets.npz",
        task=options.pop("task", TASK),
        fold=fold,
        head_params=head_params,
        seed=0,
        model_out=tmp_path / model,
        preds_out=tmp_path / preds,
        **options,
    )


def test_train_then_collect_gives_full_oof_and_fold_averaged_test(tmp_path):
    shards, tests, folds, y = write_shards(tmp_path)
    pred_paths = []
    for k in range(3):
        pred_paths.append(tmp_path / f"preds/fold{k}.npz")
        info = train(tmp_path, shards, tests, k, {"type": "linear"}, f"preds/fold{k}.npz", f"models/fold{k}.joblib")
        assert info["n_val"] == int((folds == k).sum()) and info["variants"] == ["main"]
        part = load_npz(pred_paths[-1])
        assert part["val__main"].shape == (info["n_val"], 3) and part["test__main"].shape == (12, 3)
        assert read_json(tmp_path / f"preds/fold{k}.meta.json")["fold"] == k

    scores = collect(
        pred_paths,
        tmp_path / "targets.npz",
        TASK,
        tmp_path / "oof.npz",
        tmp_path / "test.npz",
        tmp_path / "scores.json",
    )
    oof, test = load_npz(tmp_path / "oof.npz"), load_npz(tmp_path / "test.npz")
    assert not np.isnan(oof["P__main"]).any() and (oof["y"] == y).all()
    assert scores["variants"]["main"]["overall"]["accuracy"] > 0.9 > scores["baseline"]["accuracy"]
    assert set(scores["variants"]["main"]["per_fold"]) == {0, 1, 2}
    folds_test = np.mean([load_npz(p)["test__main"] for p in pred_paths], axis=0)
    np.testing.assert_allclose(test["P__main"], folds_test, rtol=1e-6)
    assert metrics.METRICS["accuracy"](np.arange(12) % 3, test["P__main"], TASK) > 0.8


def test_train_passes_the_training_rows_groups_to_heads_that_take_them(tmp_path, monkeypatch):
    shards, tests, folds, y = write_shards(tmp_path)
    targets = load_npz(tmp_path / "targets.npz")
    groups = np.array([f"speaker{i // 3}" for i in range(len(y))])
    save_npz(tmp_path / "targets.npz", **targets, group=groups)
    seen = {}
    fit = LinearHead.fit

    def spy(self, X, y, groups=None):
        seen["groups"] = groups
        return fit(self, X, y, groups=groups)

    monkeypatch.setattr(LinearHead, "fit", spy)
    info = train(tmp_path, shards, tests, 1, {"type": "linear"})
    np.testing.assert_array_equal(seen["groups"], groups[folds != 1])
    assert info["head"]["chosen_C"] > 0  # C: auto searched, and the choice is in the preds' metadata


def test_missing_embedding_names_the_ids(tmp_path):
    shards, tests, _, _ = write_shards(tmp_path)
    with pytest.raises(DataError, match="no embedding for .* id"):
        train(tmp_path, shards[:2], tests, 0, {"type": "knn"})
    assert not (tmp_path / "p.npz").exists()


def test_collect_refuses_missing_folds(tmp_path):
    shards, tests, _, _ = write_shards(tmp_path)
    train(tmp_path, shards, tests, 0, {"type": "knn"}, preds="p0.npz")
    with pytest.raises(RuntimeError, match="no OOF prediction"):
        collect(
            [tmp_path / "p0.npz"],
            tmp_path / "targets.npz",
            TASK,
            tmp_path / "o.npz",
            tmp_path / "t.npz",
            tmp_path / "s.json",
        )


def _train_all(tmp_path, shards, tests, mode, head_params=None):
    head_params = head_params or {"type": "linear", "C": 1.0}
    paths = []
    for k in range(3):
        paths.append(tmp_path / f"preds/fold{k}.npz")
        train(
            tmp_path,
            shards,
            tests,
            k,
            head_params,
            f"preds/fold{k}.npz",
            f"models/fold{k}.joblib",
            test_predictions=mode,
        )
    info = train(tmp_path, shards, tests, None, head_params, "preds/refit.npz", "models/refit.joblib")
    return paths, info


def test_refit_trains_on_every_row_and_collect_takes_its_test_predictions(tmp_path):
    shards, tests, folds, y = write_shards(tmp_path)
    paths, info = _train_all(tmp_path, shards, tests, "refit")
    refit = load_npz(tmp_path / "preds/refit.npz")
    assert info["n_train"] == len(y) and info["n_val"] == 0 and len(refit["val_ids"]) == 0
    assert "nested__main" not in load_npz(paths[0])  # only auto pays for inner models
    scores = collect(
        paths,
        tmp_path / "targets.npz",
        TASK,
        tmp_path / "oof.npz",
        tmp_path / "test.npz",
        tmp_path / "scores.json",
        refit_path=tmp_path / "preds/refit.npz",
        test_predictions="refit",
    )
    np.testing.assert_array_equal(load_npz(tmp_path / "test.npz")["P__main"], refit["test__main"])
    assert scores["test_predictions"]["chosen"] == {"main": "refit"}
    folds_mean = np.mean([load_npz(p)["test__main"] for p in paths], axis=0)
    assert not np.allclose(refit["test__main"], folds_mean)


def test_auto_compares_refit_with_inner_fold_averages_one_level_down(tmp_path):
    shards, tests, folds, y = write_shards(tmp_path)
    paths, _ = _train_all(tmp_path, shards, tests, "auto")
    for k, path in enumerate(paths):
        part = load_npz(path)
        assert part["nested__main"].shape == part["val__main"].shape == (int((folds == k).sum()), 3)
        assert not np.allclose(part["nested__main"], part["val__main"])
    scores = collect(
        paths,
        tmp_path / "targets.npz",
        TASK,
        tmp_path / "oof.npz",
        tmp_path / "test.npz",
        tmp_path / "scores.json",
        refit_path=tmp_path / "preds/refit.npz",
        test_predictions="auto",
    )
    choice = scores["test_predictions"]
    assert choice["mode"] == "auto" and choice["primary"] == "accuracy"
    nested = choice["nested"]["main"]
    assert choice["chosen"]["main"] == ("refit" if nested["refit"] >= nested["folds"] else "folds")
    assert read_json(tmp_path / "scores.json")["test_predictions"] == choice


def test_choose_test_predictions_keeps_fold_averaging_where_it_scored_better():
    from audiofold.collect_oof import choose_test_predictions

    y = np.array([0, 1, 2, 0, 1, 2])
    right, wrong = np.eye(3)[y], np.eye(3)[(y + 1) % 3]
    oof = {"good_refit": right, "bad_refit": wrong}
    nested = {"good_refit": wrong, "bad_refit": right}
    choice = choose_test_predictions(y, oof, nested, TASK, "auto")
    assert choice["chosen"] == {"good_refit": "refit", "bad_refit": "folds"}
    assert choice["nested"]["bad_refit"] == {"refit": 0.0, "folds": 1.0}
    assert choose_test_predictions(y, oof, nested, TASK, "refit")["chosen"] == {
        "good_refit": "refit",
        "bad_refit": "refit",
    }


def test_load_embeddings_reads_only_the_pooled_rows_chunk_by_chunk(tmp_path):
    import tracemalloc

    from audiofold.embed import load_embeddings

    rng = np.random.default_rng(0)
    paths, pooled = [], []
    for c in range(4):
        X = rng.standard_normal((50, 16)).astype(np.float32)
        seq = np.zeros((50 * 400, 16), dtype=np.float32)  # frame sequences: 400x the pooled rows
        save_npz(tmp_path / f"train{c}.npz", ids=np.array([f"c{c}_{i}" for i in range(50)]), X=X, seq=seq)
        paths.append(tmp_path / f"train{c}.npz")
        pooled.append(X)

    tracemalloc.start()
    ids, X = load_embeddings(paths)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_array_equal(X, np.concatenate(pooled))
    assert ids[:2] == ["c0_0", "c0_1"] and len(ids) == 200
    # far below one chunk's frame sequences (1.28 MB): they are never read
    assert peak < 50 * 400 * 16 * 4 / 4, peak


def test_load_embeddings_puts_wanted_clips_in_order_with_one_matrix_in_memory(tmp_path):
    import tracemalloc

    from audiofold.embed import load_embeddings
    from audiofold.errors import DataError

    rng = np.random.default_rng(1)
    paths, blocks = [], {}
    for c in range(6):
        ids = [f"c{c}_{i}" for i in range(400)]
        X = rng.standard_normal((400, 512)).astype(np.float32)
        save_npz(tmp_path / f"train{c}.npz", ids=np.array(ids), X=X)
        paths.append(tmp_path / f"train{c}.npz")
        blocks.update(zip(ids, X))
    wanted = [f"c{c}_{i}" for i in range(399, -1, -4) for c in (2, 0)]  # interleaved, reversed; 4 chunks unused
    tracemalloc.start()
    ids, X = load_embeddings(paths, wanted=wanted, what="training clips")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert ids == wanted
    np.testing.assert_array_equal(X, np.stack([blocks[w] for w in wanted]))
    # the result (0.4 MB) plus one chunk at a time (0.8 MB, with its read buffer): well under gathering
    # all 6 chunks first (4.9 MB) and then taking the wanted rows, as train did
    all_chunks = 6 * 400 * 512 * 4
    assert peak < 0.75 * all_chunks, (peak, all_chunks)
    frames = load_embeddings(paths[:1], "pooled", wanted=["c0_3", "c0_1"])[1]
    np.testing.assert_array_equal(frames, np.stack([blocks["c0_3"], blocks["c0_1"]]))
    with pytest.raises(DataError, match=r"training clips: no embedding for 1 id\(s\), e.g. \['nope'\]"):
        load_embeddings(paths, wanted=["c0_0", "nope"], what="training clips")


def test_a_contiguous_run_of_rows_is_taken_as_a_view_and_other_rows_as_a_copy():
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    run = np.zeros(10, dtype=bool)
    run[:7] = True  # a fold's training rows, loaded first by train_fold
    assert np.shares_memory(take(X, run), X) and take(X, run).shape == (7, 2)
    scattered = run.copy()
    scattered[3] = False
    assert not np.shares_memory(take(X, scattered), X)
    np.testing.assert_array_equal(take(X, scattered), X[scattered])
