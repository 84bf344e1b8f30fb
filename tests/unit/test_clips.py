"""Chunks of clips: stable under growth and independent of folds; the embedding cache."""

import numpy as np
import soundfile as sf

from audiofold.backbones import build_backbone
from audiofold.cache import EmbeddingCache, FileMemo, config_key, file_digest
from audiofold.clips import assign_chunks, jump_hash, resolve_shard_clips
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
    assert resolve_shard_clips("auto", 100) == 32 and resolve_shard_clips("auto", 10**6) == 1024
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
