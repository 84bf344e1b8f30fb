"""Chunks of clips: stable under growth and independent of folds; the embedding cache."""

import os

import numpy as np
import pandas as pd
import soundfile as sf

from audiofold.backbones import build_backbone
from audiofold.cache import EmbeddingCache, FileMemo, config_key, file_digest
from audiofold.clips import (
    MANIFEST_COLUMNS,
    assign_chunks,
    file_state,
    jump_hash,
    manifest_digests,
    read_chunk_manifest,
    resolve_shard_clips,
    write_chunk_manifests,
)
from audiofold.embed import embed_clips
from audiofold.io import load_npz, read_json

from helpers import noise_clips

IDS = [f"clip{i:05d}" for i in range(2000)]


def test_chunks_do_not_move_between_old_chunks_as_clips_are_added():
    before = assign_chunks("train", IDS[:1000], 100)  # 10 chunks
    after = assign_chunks("train", IDS, 100)  # 20 chunks: a clip stays or goes to a new chunk
    moved = before != after[:1000]
    assert (after[:1000][moved] >= 10).all()
    assert 0.35 < moved.mean() < 0.65  # half the clips go to the 10 new chunks, none between old ones
    same_count = assign_chunks("train", IDS[:1000] + ["new"], 100)  # 1001 clips: 11 chunks
    assert ((same_count[:1000] == before) | (same_count[:1000] == 10)).all()
    # order of the table and the other ids play no part: a clip's chunk is a function of its id
    np.testing.assert_array_equal(assign_chunks("train", IDS[:1000][::-1], 100), before[::-1])


def test_jump_hash_is_balanced_and_auto_chunk_size_is_bounded():
    counts = np.bincount([jump_hash(k * 7919 + 13, 8) for k in range(8000)], minlength=8)
    assert counts.min() > 800 and counts.max() < 1200
    assert resolve_shard_clips("auto", 100) == 32 and resolve_shard_clips("auto", 10**6) == 4096
    assert resolve_shard_clips(50, 10**6) == 50


def test_embed_clips_reuses_the_cache_and_a_changed_file_gets_a_new_key(tmp_path, caplog):
    rows = noise_clips(tmp_path)
    config = {"type": "logmel", "sample_rate": 16000, "n_mels": 16}
    backbone = build_backbone("logmel", {k: v for k, v in config.items()})
    cache = EmbeddingCache(tmp_path / "cache", config_key(config, 5.0))
    first = embed_clips(rows, backbone, tmp_path / "a.npz", max_seconds=5.0, cache=cache)
    assert first["cache"]["hits"] == 0 and first["cache"]["misses"] == 6

    other = EmbeddingCache(tmp_path / "cache", config_key(config, 5.0))  # another project, same cache
    rows_b = [rows[3], rows[0], ("z", "", "zeros"), ("s", "", "skip")] + rows[4:]
    second = embed_clips(rows_b, backbone, tmp_path / "b.npz", max_seconds=5.0, cache=other)
    assert second["cache"]["hits"] == 4 and second["cache"]["misses"] == 1  # the zero-filled clip is not cached
    a, b = load_npz(tmp_path / "a.npz"), load_npz(tmp_path / "b.npz")
    assert b["ids"].tolist() == ["c3", "c0", "z", "c4", "c5"]
    np.testing.assert_array_equal(b["X"][[0, 1, 3, 4]], a["X"][[3, 0, 4, 5]])
    assert read_json(tmp_path / "b.meta.json")["zero_filled"] == ["z"]

    sf.write(rows[0][1], np.zeros(16000, np.float32), 16000)  # edited file: new content hash, a miss
    third = embed_clips(
        rows[:1],
        backbone,
        tmp_path / "c.npz",
        max_seconds=5.0,
        cache=EmbeddingCache(tmp_path / "cache", config_key(config, 5.0)),
    )
    assert third["cache"]["misses"] == 1
    assert not np.array_equal(load_npz(tmp_path / "c.npz")["X"][0], a["X"][0])
    # another backbone config or decode length: another key; batching options: same key
    assert config_key({**config, "n_mels": 32}, 5.0) != config_key(config, 5.0) != config_key(config, 6.0)
    assert config_key({**config, "batch_size": 8}, 5.0) == config_key(config, 5.0)


def test_file_digest_follows_content_and_is_remembered_per_file_state(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    memo = FileMemo(tmp_path / "cache")
    d1 = file_digest(path, memo)
    table = memo.flush()
    assert list((tmp_path / "cache/files").rglob("*")) == [table]  # one table per job
    assert file_digest(path, FileMemo(tmp_path / "cache")) == d1 == file_digest(path)
    path.write_bytes(b"abd")
    assert file_digest(path, FileMemo(tmp_path / "cache")) != d1


def test_embed_clips_takes_known_hashes_and_hashes_only_the_others(tmp_path):
    rows = noise_clips(tmp_path, n=3)
    config = {"type": "logmel", "sample_rate": 16000, "n_mels": 16}
    backbone = build_backbone("logmel", dict(config))
    first = embed_clips(
        rows,
        backbone,
        tmp_path / "a.npz",
        max_seconds=5.0,
        cache=EmbeddingCache(tmp_path / "cache", config_key(config, 5.0)),
        known_digests=[file_digest(p) for _, p, _ in rows],
    )
    assert first["cache"]["misses"] == 3
    assert not (tmp_path / "cache/files").exists()  # nothing hashed by the job: no file-hash table
    # the same clips, one of them without a known hash (edited since the hashes step): hashed, all hits
    second = embed_clips(
        rows,
        backbone,
        tmp_path / "b.npz",
        max_seconds=5.0,
        cache=EmbeddingCache(tmp_path / "cache", config_key(config, 5.0)),
        known_digests=[None, file_digest(rows[1][1]), file_digest(rows[2][1])],
    )
    assert second["cache"]["hits"] == 3 and len(list((tmp_path / "cache/files").iterdir())) == 1
    np.testing.assert_array_equal(load_npz(tmp_path / "a.npz")["X"], load_npz(tmp_path / "b.npz")["X"])


def _table(tmp_path, chunks):
    rows = []
    for chunk, names in chunks.items():
        for name in names:
            path = tmp_path / "audio" / f"{name}.bin"
            path.parent.mkdir(exist_ok=True)
            if not path.exists():
                path.write_bytes(name.encode())
            size, mtime = file_state(str(path))
            rows.append((chunk, name, str(path), "decode", file_digest(path), size, mtime))
    return pd.DataFrame(rows, columns=["chunk", *MANIFEST_COLUMNS])


def test_chunk_manifests_are_written_only_when_changed_and_stale_ones_removed(tmp_path):
    folder = tmp_path / "chunks"
    table = _table(tmp_path, {"train0": ["a", "b"], "train1": ["c"], "test0": ["d"]})
    assert write_chunk_manifests(table, folder) == ["train0", "train1", "test0"]
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert read_chunk_manifest(folder / "train0.tsv") == [
        ("a", table.path[0], "decode"),
        ("b", table.path[1], "decode"),
    ]

    assert write_chunk_manifests(table, folder) == []  # nothing changed: nothing written
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before

    (tmp_path / "audio/c.bin").write_bytes(b"other")  # an edited clip changes its chunk's manifest alone
    os.utime(tmp_path / "audio/c.bin", ns=(10**18, 10**18))  # even when older (cp -p)
    edited = _table(tmp_path, {"train0": ["a", "b"], "train1": ["c"]})  # test0 is gone
    assert write_chunk_manifests(edited, folder) == ["train1"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "train0.meta.json",
        "train0.tsv",
        "train1.meta.json",
        "train1.tsv",
    ]
    assert (folder / "train0.tsv").stat().st_mtime_ns == before["train0.tsv"]


def test_manifest_hashes_are_trusted_only_while_the_file_is_unchanged(tmp_path, caplog):
    folder = tmp_path / "chunks"
    table = _table(tmp_path, {"train0": ["a", "b", "c"]})
    table.loc[2, "action"] = "zeros"
    write_chunk_manifests(table, folder)
    assert manifest_digests(folder / "train0.tsv") == [table.hash[0], table.hash[1], None]
    (tmp_path / "audio/b.bin").write_bytes(b"edited after the hashes step")
    assert manifest_digests(folder / "train0.tsv") == [table.hash[0], None, None]
    assert "1 clip(s) without a hash or changed since hashed" in caplog.text
