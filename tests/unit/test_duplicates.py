"""Duplicate clips: identical files share a fold group; near duplicates across folds and between train
and test are found by embedding similarity (chunked, equal to the brute-force computation)."""

import logging
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.preprocessing import StandardScaler

from audiofold.cache import FileMemo, file_digest
from audiofold.duplicates import duplicate_report, find_duplicates, similar_pairs
from audiofold.errors import DataError
from audiofold.hashes import hash_clips, identical_sets, read_hashes
from audiofold.io import load_npz, read_json, save_npz
from audiofold.prepare import prepare
from audiofold.report import duplicates_html
from audiofold.validate import run_validation

SR = 8000
# (copy, original): six training copies, so that folds made without grouping split at least one pair
COPIES = {f"c{k}": f"t{k:02d}" for k in range(6)}


def make_data(tmp_path, n=30, n_test=6, groups=False, copies=COPIES, test_copies=()):
    """Distinct noise clips t00.. (labels a/b/c), copies of some of them, test clips s0..; copies in
    ``test_copies`` are test clips that duplicate training clips byte for byte."""
    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    train_ids = [f"t{i:02d}" for i in range(n)]
    test_ids = [f"s{i}" for i in range(n_test)]
    for clip in train_ids + test_ids:
        sf.write(audio / f"{clip}.wav", 0.1 * rng.standard_normal(SR // 4).astype(np.float32), SR)
    for copy, original in [*copies.items(), *test_copies]:
        shutil.copyfile(audio / f"{original}.wav", audio / f"{copy}.wav")
    all_train = train_ids + list(copies)
    train = pd.DataFrame({"clip_id": all_train, "label": [["a", "b", "c"][i % 3] for i in range(len(all_train))]})
    if groups:
        train["speaker"] = [f"p{i % 10}" for i in range(n)] + [f"q{k}" for k in range(len(copies))]
    train.to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"clip_id": test_ids + [c for c, _ in test_copies]}).to_csv(tmp_path / "test.csv", index=False)
    return {
        "seed": 1,
        "data": {
            "train_csv": str(tmp_path / "train.csv"),
            "test_csv": str(tmp_path / "test.csv"),
            "sample_submission": None,
            "train_audio_dir": str(audio),
            "test_audio_dir": None,
            "id_column": "clip_id",
            "label_columns": ["label"],
            "group_column": "speaker" if groups else None,
            "fold_column": None,
            "path_column": None,
            "audio_extensions": ["wav"],
        },
        "task": {"kind": "auto"},
        "cv": {"n_folds": 3, "n_bins": 4},
    }


def _identical(config, tmp_path):
    """The sets of identical training clips, as the workflow hands them to prepare: from the validate
    step's clip table (its ``hash`` column)."""
    out = tmp_path / "validation"
    if not (out / "clips.csv").exists():
        run_validation(config["data"], policy="error", max_seconds=1, shard_clips=8, out_dir=out, progress=False)
    return identical_sets(pd.read_csv(out / "clips.csv", dtype=str, keep_default_na=False))


def _folds(out):
    return pd.read_csv(out / "folds.csv", dtype={"id": str}).set_index("id")["fold"]


def _split_pairs(folds, copies=COPIES):
    return [c for c, o in copies.items() if folds[c] != folds[o]]


# ---- exact duplicates: content hashes and fold groups ---------------------------------------------


def test_each_clip_gets_the_cache_digest_of_its_file(tmp_path):
    config = make_data(tmp_path, test_copies=[("s9", "t05")])
    run_validation(
        config["data"],
        policy="error",
        max_seconds=1,
        shard_clips=8,
        out_dir=tmp_path / "validation",
        cache_dir=tmp_path / "cache",
        progress=False,
    )
    clips = pd.read_csv(tmp_path / "validation/clips.csv", dtype=str, keep_default_na=False)
    assert list(clips.columns) == ["id", "split", "path", "chunk", "hash", "action"]
    audio = tmp_path / "audio"
    hashes = read_hashes(tmp_path / "validation/clips.csv")
    memo = FileMemo(tmp_path / "cache")
    assert hashes["t03"] == file_digest(audio / "t03.wav") == file_digest(audio / "t03.wav", memo)
    assert memo.flush() is None, "file hashes are remembered in the embedding cache"
    assert len(list((tmp_path / "cache/files").iterdir())) == 1  # one table for the step, not a file per clip
    assert hashes["c3"] == hashes["t03"] != hashes["t04"] and len(set(hashes.values())) == 30  # 36 clips, 6 copies
    assert read_hashes(tmp_path / "validation/clips.csv", "test")["s9"] == hashes["t05"]
    assert identical_sets(clips) == sorted([sorted([c, o]) for c, o in COPIES.items()])  # test copies aside

    # the workflow hashes in its own step (prepare reads it without waiting for validate); validate copies it
    table = hash_clips(config["data"], tmp_path / "cache", tmp_path / "hashes.csv", progress=False)
    assert table["hash"].tolist() == clips["hash"].tolist()
    run_validation(
        config["data"],
        policy="error",
        max_seconds=1,
        shard_clips=8,
        out_dir=tmp_path / "copied",
        hashes_path=tmp_path / "hashes.csv",
        progress=False,
    )
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "copied/clips.csv"), pd.read_csv(tmp_path / "validation/clips.csv")
    )


def test_identical_training_clips_share_a_fold_unless_group_duplicates_is_off(tmp_path, caplog):
    config = make_data(tmp_path)
    identical = _identical(config, tmp_path)
    summary = prepare(config, tmp_path / "on", identical=identical)
    folds = _folds(tmp_path / "on")
    assert _split_pairs(folds) == []
    assert summary["duplicates"] == {"exact_sets": 6, "exact_clips": 12, "merged_sets": 6, "split_sets": 0}
    assert "6 set(s) of identical clips kept in one fold" in summary["fold_scheme"]
    groups = pd.read_csv(tmp_path / "on/folds.csv", dtype=str).set_index("id")["group"]
    assert groups["c2"] == groups["t02"] == "t02" and groups["t10"] == "t10"
    targets = load_npz(tmp_path / "on/targets.npz")  # heads' inner CV keeps the copies together too
    assert targets["group"][list(targets["ids"]).index("c2")] == "t02"

    config["cv"]["group_duplicates"] = False
    with caplog.at_level(logging.WARNING, logger="audiofold.prepare"):
        summary = prepare(config, tmp_path / "off", identical=identical)
    split = _split_pairs(_folds(tmp_path / "off"))
    assert split, "with cv.group_duplicates false, copies may land in different folds (they do for this seed)"
    assert summary["duplicates"]["merged_sets"] == 0 and summary["duplicates"]["split_sets"] == len(split)
    assert "identical training clips" in caplog.text and "cv.group_duplicates is false" in caplog.text
    # the workflow passes no sets at all then (prepare does not wait for the clip table): the same folds
    prepare(config, tmp_path / "none")
    pd.testing.assert_series_equal(_folds(tmp_path / "off"), _folds(tmp_path / "none"))


def test_data_without_duplicates_gets_the_same_folds(tmp_path):
    config = make_data(tmp_path, copies={})
    summary = prepare(config, tmp_path / "with", identical=_identical(config, tmp_path))
    prepare(config, tmp_path / "without")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "with/folds.csv"), pd.read_csv(tmp_path / "without/folds.csv"))
    assert summary["duplicates"]["exact_sets"] == 0


def test_duplicates_join_the_user_groups(tmp_path):
    config = make_data(tmp_path, groups=True)  # c_k is a copy of t0k (speaker p_k) by speaker q_k
    summary = prepare(config, tmp_path / "results", identical=_identical(config, tmp_path))
    table = pd.read_csv(tmp_path / "results/folds.csv", dtype=str)
    train = pd.read_csv(tmp_path / "train.csv", dtype=str).set_index("clip_id")["speaker"]
    folds = table.set_index("id")["fold"]
    assert _split_pairs(folds) == []
    for speaker, rows in train.groupby(train):  # the user's groups still never span folds
        assert folds[rows.index].nunique() == 1, speaker
    assert table.groupby("group")["fold"].nunique().max() == 1
    assert summary["duplicates"]["merged_sets"] == 6
    groups = table.set_index("id")["group"]
    assert groups["c1"] == groups["t01"] == groups["t11"] == "p1"  # q1 joined p1, named after its first row


def test_too_few_groups_after_merging_names_group_duplicates(tmp_path):
    config = make_data(tmp_path, n=3, copies={"c0": "t00", "c1": "t01", "c2": "t02"})
    identical = _identical(config, tmp_path)
    config["cv"]["n_folds"] = 4
    with pytest.raises(DataError, match=r"cv.group_duplicates .*3 groups, fewer than cv.n_folds=4"):
        prepare(config, tmp_path / "results", identical=identical)


def test_predefined_folds_are_kept_and_split_copies_warned(tmp_path, caplog):
    config = make_data(tmp_path)
    train = pd.read_csv(tmp_path / "train.csv", dtype=str)
    train["fold"] = [i % 3 for i in range(30)] + [(k + 1) % 3 for k in range(6)]  # c_k one fold after t0k
    train.to_csv(tmp_path / "train.csv", index=False)
    config["data"]["fold_column"] = "fold"
    with caplog.at_level(logging.WARNING, logger="audiofold.prepare"):
        summary = prepare(config, tmp_path / "results", identical=_identical(config, tmp_path))
    folds = _folds(tmp_path / "results")
    assert (folds.to_numpy() == train["fold"].to_numpy()).all()  # left alone
    assert len(_split_pairs(folds)) == 6
    assert summary["duplicates"] == {"exact_sets": 6, "exact_clips": 12, "merged_sets": 0, "split_sets": 6}
    assert "data.fold_column is used as given" in caplog.text


# ---- near duplicates: chunked cosine similarity -------------------------------------------------


def test_chunked_similarity_matches_brute_force():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((700, 12))
    A[350:400] = A[:50] + 0.05 * rng.standard_normal((50, 12))  # near copies
    B = np.vstack([A[100:130] + 0.05 * rng.standard_normal((30, 12)), rng.standard_normal((40, 12))])
    threshold = 0.9
    # 700 x 700 float64 is 3.9 MB: working_memory=1 (MiB) makes several blocks
    i, j, s = similar_pairs(A, threshold=threshold, working_memory=1)
    S = cosine_similarity(A)
    bi, bj = np.nonzero(np.triu(S >= threshold, k=1))
    assert sorted(zip(i.tolist(), j.tolist())) == sorted(zip(bi.tolist(), bj.tolist()))
    assert len(bi) >= 50
    np.testing.assert_allclose(s, S[i, j], atol=1e-12)

    i, j, s = similar_pairs(A, B, threshold=threshold, working_memory=1)
    S = cosine_similarity(A, B)
    bi, bj = np.nonzero(S >= threshold)
    assert sorted(zip(i.tolist(), j.tolist())) == sorted(zip(bi.tolist(), bj.tolist())) and len(bi) >= 30
    np.testing.assert_allclose(s, S[i, j], atol=1e-12)


def test_tiled_similarity_over_several_row_and_column_tiles_matches_brute_force():
    rng = np.random.default_rng(4)
    A = rng.standard_normal((2300, 8)).astype(np.float32)
    A[2000:2200] = A[:200] + 0.02 * rng.standard_normal((200, 8))  # copies in another row tile
    A[5] = 0.0  # a zero row is similar to nothing
    # 1 MiB tiles: 1024 rows x 256 columns, so 3 row tiles and 9 column tiles
    i, j, s = similar_pairs(A, threshold=0.99, working_memory=1)
    S = cosine_similarity(A.astype(np.float64))
    bi, bj = np.nonzero(np.triu(S >= 0.99, k=1))
    assert list(zip(i.tolist(), j.tolist())) == list(zip(bi.tolist(), bj.tolist())) and len(bi) >= 190
    np.testing.assert_allclose(s, S[i, j], atol=1e-12)


def _logmel(waves):
    from audiofold.backbones import build_backbone
    from audiofold.embed import embed_waves

    backbone = build_backbone("logmel", {"type": "logmel", "sample_rate": 16000, "n_mels": 64})
    return embed_waves([w.astype(np.float32) for w in waves], backbone, progress=False)[0]


def _scenes(n, seed=0):
    """Modulated tones over noise, each its own frequency, level and noise floor (1 s at 16 kHz)."""
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    return [
        rng.uniform(0.1, 0.5) * np.sin(2 * np.pi * rng.uniform(150, 3000) * t) * (1 + 0.5 * np.sin(2 * np.pi * t))
        + rng.uniform(0.01, 0.1) * rng.standard_normal(len(t))
        for _ in range(n)
    ]


def test_a_noisy_copy_in_another_fold_and_in_test_is_found_and_unrelated_clips_are_not():
    rng = np.random.default_rng(1)
    waves = _scenes(40)
    noisy = [waves[3] + 0.001 * rng.standard_normal(len(waves[3])), waves[7] + 0.001 * rng.standard_normal(16000)]
    X = _logmel(waves + noisy)
    train_ids = [f"t{i:02d}" for i in range(40)] + ["copy3"]
    folds = {i: k % 4 for k, i in enumerate(train_ids)}  # copy3 (row 40) in fold 0, t03 in fold 3
    test_ids = [f"s{i}" for i in range(5)] + ["copy7"]
    X_test = np.vstack([_logmel(_scenes(5, seed=9)), X[41:]])
    pairs = find_duplicates(
        train_ids,
        X[:41],
        np.array([folds[i] for i in train_ids]),
        test_ids,
        X_test,
        train_hashes={i: f"h{i}" for i in train_ids},
        test_hashes={i: f"h{i}" for i in test_ids},
        folds=folds,
    )
    found = {(a, b): (kind, sim) for a, b, kind, sim in pairs[["id_a", "id_b", "kind", "similarity"]].values}
    assert set(found) == {("t03", "copy3"), ("t07", "copy7")}, pairs
    assert all(kind == "near" and sim >= 0.995 for kind, sim in found.values())
    row = pairs.set_index("id_b").loc["copy3"]
    assert (row["fold_a"], row["fold_b"], row["split_b"]) == (3, 0, "train")
    assert pd.isna(pairs.set_index("id_b").loc["copy7", "fold_b"])

    # the same copy in the same fold is no leak: not listed
    folds["copy3"] = 3
    same = find_duplicates(
        train_ids,
        X[:41],
        np.array([folds[i] for i in train_ids]),
        [],
        np.zeros((0, X.shape[1])),
        train_hashes={},
        test_hashes={},
        folds=folds,
    )
    assert same.empty


def test_duplicate_report_lists_exact_and_near_pairs_counts_them_and_warns(tmp_path, caplog):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((12, 8)).astype(np.float32)
    X[5] = X[0] + 0.001 * rng.standard_normal(8)  # near copy of a0, another fold
    X_test = rng.standard_normal((4, 8)).astype(np.float32)
    X_test[1] = X[2] + 0.001 * rng.standard_normal(8)  # near copy of a2 in test
    train_ids = [f"a{i}" for i in range(12)] + ["bad"]  # "bad" was zero-filled: never a near duplicate
    test_ids = [f"s{i}" for i in range(4)]
    X_bad = X[0]  # silence embeds alike; pretend it equals a0
    save_npz(tmp_path / "train0.npz", ids=np.array(train_ids), X=np.vstack([X, X_bad]))
    save_npz(tmp_path / "test0.npz", ids=np.array(test_ids), X=X_test)
    hashes = {i: f"h{i}" for i in train_ids + test_ids}
    hashes["a9"] = hashes["a1"]  # identical files in two folds
    hashes["s3"] = hashes["a4"]  # a training file copied into test
    clips = pd.DataFrame(
        {
            "id": train_ids + test_ids,
            "split": ["train"] * 13 + ["test"] * 4,
            "hash": [hashes[i] for i in train_ids + test_ids],
            "action": ["decode"] * 12 + ["zeros"] + ["decode"] * 4,
        }
    )
    clips.to_csv(tmp_path / "clips.csv", index=False)
    pd.DataFrame({"id": train_ids, "fold": [i % 3 for i in range(13)]}).to_csv(tmp_path / "folds.csv", index=False)
    (tmp_path / "task.json").write_text('{"duplicates": {"merged_sets": 0}}')
    with caplog.at_level(logging.INFO, logger="audiofold.duplicates"):
        summary = duplicate_report(
            [tmp_path / "train0.npz"],
            [tmp_path / "test0.npz"],
            clips_path=tmp_path / "clips.csv",
            folds_path=tmp_path / "folds.csv",
            task_path=tmp_path / "task.json",
            backbone="logmel",
            threshold=0.995,
            pairs_out=tmp_path / "duplicates.csv",
            summary_out=tmp_path / "duplicates.json",
        )
    pairs = pd.read_csv(tmp_path / "duplicates.csv", dtype={"id_a": str, "id_b": str})
    assert list(pairs.columns) == ["id_a", "id_b", "split_a", "split_b", "fold_a", "fold_b", "similarity", "kind"]
    found = {(a, b, k) for a, b, k in pairs[["id_a", "id_b", "kind"]].values}
    assert found == {("a1", "a9", "exact"), ("a4", "s3", "exact"), ("a0", "a5", "near"), ("a2", "s1", "near")}
    assert {k: summary[k] for k in summary if k.startswith(("exact", "near"))} == {
        "exact_sets": 1,
        "exact_sets_merged": 0,
        "exact_sets_split": 1,
        "exact_pairs_across_folds": 1,
        "exact_pairs_train_test": 1,
        "near_pairs_across_folds": 1,
        "near_pairs_train_test": 1,
    }
    assert read_json(tmp_path / "duplicates.json") == summary and len(summary["top_pairs"]) == 4
    assert "lie in different folds" in caplog.text and "duplicate test clips" in caplog.text
    html = duplicates_html(summary)
    assert "Copies straddle folds" in html and "<table" in html and "a9" in html
    assert duplicates_html(None) == ""
    quiet = {**summary, **{k: 0 for k in summary if k.startswith(("exact_pairs", "near_pairs"))}}
    assert "<table" not in duplicates_html(quiet) and "straddle" not in duplicates_html(quiet)


def test_standardising_separates_what_raw_cosine_does_not():
    """Why embeddings are standardised first: raw log-mel statistics of unrelated clips are all alike."""
    X = _logmel(_scenes(30))
    raw = cosine_similarity(X)
    std = cosine_similarity(StandardScaler().fit_transform(X))
    off = ~np.eye(30, dtype=bool)
    assert raw[off].max() > 0.995 > std[off].max()
