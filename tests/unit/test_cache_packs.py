"""The embedding cache in packs: O(chunks) files, shared by concurrent jobs and projects, robust to bad files."""

import logging
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from audiofold import embed as embed_module
from audiofold.backbones import build_backbone
from audiofold.cache import EmbeddingCache, FileMemo, config_key, prune
from audiofold.cli import main as cli
from audiofold.config import load_config
from audiofold.embed import embed_clips
from audiofold.hashes import content_hashes
from audiofold.io import load_npz

from conftest import ROOT

CONFIG = {"type": "logmel", "sample_rate": 16000, "n_mels": 16}
KEY = config_key(CONFIG, 5.0)


def write_clips(folder: Path, n: int, samples: int = 1600, seed: int = 0) -> list[tuple[str, str, str]]:
    """``n`` short noise clips of distinct content -> (id, path, "decode") rows."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        path = folder / f"c{i:05d}.wav"
        sf.write(path, rng.normal(0, 0.1, samples + 16 * (i % 7)).astype(np.float32), 16000)
        rows.append((f"c{i:05d}", str(path), "decode"))
    return rows


def embed(rows, cache_dir: Path, out: Path) -> dict:
    backbone = build_backbone("logmel", dict(CONFIG))
    return embed_clips(rows, backbone, out, max_seconds=5.0, cache=EmbeddingCache(cache_dir, KEY))


def cache_files(cache_dir: Path) -> list[Path]:
    return [p for p in cache_dir.rglob("*") if p.is_file()]


def test_an_edited_clip_is_a_miss_and_the_others_hit(tmp_path):
    rows = write_clips(tmp_path / "audio", 8)
    first = embed(rows, tmp_path / "cache", tmp_path / "a.npz")
    assert (first["cache"]["hits"], first["cache"]["misses"]) == (0, 8)
    sf.write(rows[2][1], np.zeros(1600, np.float32), 16000)  # edited: new content, new digest
    second = embed(rows, tmp_path / "cache", tmp_path / "b.npz")
    assert (second["cache"]["hits"], second["cache"]["misses"]) == (7, 1)
    a, b = load_npz(tmp_path / "a.npz")["X"], load_npz(tmp_path / "b.npz")["X"]
    np.testing.assert_array_equal(np.delete(b, 2, axis=0), np.delete(a, 2, axis=0))
    assert not np.array_equal(a[2], b[2])
    # the miss went into a pack of its own (only the new clip), beside the chunk's first pack
    packs = sorted((tmp_path / "cache/emb" / KEY / "packs").glob("*.npz"))
    assert sorted(len(load_npz(p)["digests"]) for p in packs) == [1, 8]
    third = embed(rows, tmp_path / "cache", tmp_path / "c.npz")  # the edited clip now hits too
    assert third["cache"]["misses"] == 0
    np.testing.assert_array_equal(load_npz(tmp_path / "c.npz")["X"], b)


def _embed_job(args):
    rows, cache_dir, out, repeats = args
    for r in range(repeats):
        embed(rows, Path(cache_dir), Path(f"{out}.{r}.npz"))
    return out


def test_concurrent_writers_of_same_and_overlapping_chunks_lose_nothing(tmp_path):
    rows = write_clips(tmp_path / "audio", 60)
    cache_dir = tmp_path / "cache"
    content_hashes([r[1] for r in rows], cache_dir, progress=False)  # the hashes step, as in a run
    jobs = [
        (rows[:30], cache_dir, tmp_path / "same1", 3),  # the same chunk, twice at once
        (rows[:30], cache_dir, tmp_path / "same2", 3),
        (rows[20:50], cache_dir, tmp_path / "overlap", 3),  # another project's chunking
        (rows[40:], cache_dir, tmp_path / "tail", 3),
    ]
    with multiprocessing.get_context("fork").Pool(4) as pool:
        pool.map(_embed_job, jobs)
    reference = embed(rows, tmp_path / "fresh-cache", tmp_path / "reference.npz")
    assert reference["cache"]["misses"] == 60
    again = embed(rows, cache_dir, tmp_path / "again.npz")
    assert (again["cache"]["hits"], again["cache"]["misses"]) == (60, 0)  # nothing lost
    np.testing.assert_allclose(
        load_npz(tmp_path / "again.npz")["X"], load_npz(tmp_path / "reference.npz")["X"], rtol=1e-5, atol=1e-6
    )
    files = cache_files(cache_dir)
    assert not [p for p in files if p.name.startswith(".tmp-")]  # no temp file left behind
    packs = [p for p in files if p.name.endswith(".npz") and p.parent.name == "packs"]
    for pack in packs:  # every pack whole, with its index
        assert load_npz(pack)["X"].shape[0] == len(np.load(pack.with_name(pack.stem + ".idx.npy")))


def _put_repeatedly(args):
    """Read, then write the same pack, ``repeats`` times; how many reads after this job's first write
    found less than every entry (a partial pack in place would be such a read)."""
    cache_dir, entries, repeats = args
    short_reads = 0
    for r in range(repeats):
        cache = EmbeddingCache(cache_dir, KEY)
        got = cache.get_many(entries)
        assert all(np.array_equal(got[d]["X"], entries[d]["X"]) for d in got)  # never a wrong entry
        short_reads += r > 0 and len(got) < len(entries)
        cache.put_many(entries)
    return short_reads


def test_racing_writes_of_one_pack_leave_it_whole(tmp_path):
    rng = np.random.default_rng(1)
    entries = {f"{i:040x}": {"X": rng.normal(size=64).astype(np.float32)} for i in range(200)}
    with multiprocessing.get_context("fork").Pool(4) as pool:
        assert pool.map(_put_repeatedly, [(tmp_path / "cache", entries, 40)] * 4) == [0] * 4
    files = cache_files(tmp_path / "cache")
    assert sorted(p.suffix for p in files) == [".npy", ".npz"]  # one pack, one index, no temp file
    got = EmbeddingCache(tmp_path / "cache", KEY).get_many(entries)
    assert len(got) == 200 and all(np.array_equal(got[d]["X"], entries[d]["X"]) for d in entries)


def test_a_truncated_pack_or_index_is_recomputed_with_a_warning_naming_it(tmp_path, caplog):
    rows = write_clips(tmp_path / "audio", 12)
    embed(rows[:6], tmp_path / "cache", tmp_path / "a.npz")
    embed(rows[6:], tmp_path / "cache", tmp_path / "b.npz")
    packs = EmbeddingCache(tmp_path / "cache", KEY).packs
    first_clip = FileMemo(tmp_path / "cache").digest(rows[0][1]).encode()
    holds_first = {p: first_clip in np.load(p).tolist() for p in packs.glob("*.idx.npy")}
    pack_a = next(p.with_name(p.name[: -len(".idx.npy")] + ".npz") for p, yes in holds_first.items() if yes)
    index_b = next(p for p, yes in holds_first.items() if not yes)
    pack_a.write_bytes(pack_a.read_bytes()[: pack_a.stat().st_size // 2])  # cut short
    index_b.write_bytes(index_b.read_bytes()[:20])

    with caplog.at_level(logging.WARNING, logger="audiofold.cache"):
        meta = embed(rows, tmp_path / "cache", tmp_path / "all.npz")  # another chunking: all 12 clips
    assert f"pack {pack_a} is unreadable" in caplog.text and f"pack index {index_b} is unreadable" in caplog.text
    assert caplog.text.count(str(pack_a)) == 1  # logged once
    assert (meta["cache"]["hits"], meta["cache"]["misses"]) == (0, 12)
    X = load_npz(tmp_path / "all.npz")["X"]
    np.testing.assert_allclose(X[:6], load_npz(tmp_path / "a.npz")["X"], rtol=1e-5, atol=1e-6)
    assert not pack_a.exists()  # the bad pack is replaced by the new one holding its clips
    again = embed(rows[:6], tmp_path / "cache", tmp_path / "a2.npz")
    assert again["cache"]["misses"] == 0


def test_the_cache_grows_by_chunks_not_clips(tmp_path):
    rows = write_clips(tmp_path / "audio", 2000, samples=800)
    cache_dir = tmp_path / "cache"
    content_hashes([r[1] for r in rows], cache_dir, progress=False)  # the hashes step: one table
    for k in range(4):  # 4 embed jobs of 500 clips
        embed(rows[k::4], cache_dir, tmp_path / f"chunk{k}.npz")
    emb = [p for p in (cache_dir / "emb" / KEY).rglob("*") if p.is_file()]
    tables = list((cache_dir / "files").iterdir())
    assert len(emb) <= 2 * 4 and len(tables) <= 1 + 4
    assert len(cache_files(cache_dir)) == len(emb) + len(tables) == 8 + 1  # embed jobs found every file state
    # another project chunks the same clips in 5: every clip hits, and nothing is written
    for k in range(5):
        meta = embed(rows[k * 400 : (k + 1) * 400], cache_dir, tmp_path / f"other{k}.npz")
        assert meta["cache"]["misses"] == 0
    assert len(cache_files(cache_dir)) == 9


def test_prune_keeps_the_used_keys_and_removes_others_and_the_old_layout(tmp_path, caplog, capsys):
    config = load_config(ROOT / "config.yaml")
    used = config_key(config["backbones"]["logmel"], config["audio"]["max_seconds"])
    cache_dir = tmp_path / "cache"
    rng = np.random.default_rng(2)
    for key, n_packs in ((used, 2), ("otherkey00000001", 3), ("otherkey00000002", 1)):
        for p in range(n_packs):
            entries = {f"{key}{p:04d}{i:020x}": {"X": rng.normal(size=5000).astype(np.float32)} for i in range(10)}
            EmbeddingCache(cache_dir, key).put_many(entries)
            time.sleep(0.01)  # distinct mtimes: oldest first
    old_entry = cache_dir / "emb" / "oldformat1key000" / "ab" / ("ab" + "0" * 38 + ".npz")
    old_memo = cache_dir / "files" / "cd" / ("cd" + "0" * 30)
    for path in (old_entry, old_memo):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x" * 100)
    stale = cache_dir / "emb" / used / "packs" / ".tmp-x.npz-123"
    stale.write_bytes(b"partial")
    os.utime(stale, (time.time() - 3 * 86400,) * 2)
    fresh = cache_dir / "emb" / used / "packs" / ".tmp-y.npz-456"  # another writer's, now: kept
    fresh.write_bytes(b"partial")

    with caplog.at_level(logging.INFO, logger="audiofold.cache"):
        EmbeddingCache(cache_dir, used).get_many(["00"])
    assert "per-clip layout of an older audiofold: ignored" in caplog.text

    pack_bytes = (cache_dir / "emb" / used / "packs").glob("*.npz").__next__().stat().st_size
    assert prune(cache_dir, {used}, None)["packs_deleted"] == 0  # no cap: every key's packs kept
    assert not old_entry.parent.exists() and not old_memo.parent.exists() and not stale.exists() and fresh.exists()
    # a cap of 4 packs' worth: the 2 oldest of other keys go; the used key's 2 stay even though written first
    code = cli(
        [
            "cache",
            "prune",
            "--config",
            str(ROOT / "config.yaml"),
            "--cache-dir",
            str(cache_dir),
            "--max-gb",
            str(4.5 * pack_bytes / 1e9),
        ]
    )
    assert code == 0 and "2 pack(s) of other keys" in capsys.readouterr().out
    left = {key: len(list((cache_dir / "emb" / key / "packs").glob("*.npz"))) for key in os.listdir(cache_dir / "emb")}
    assert left == {used: 2, "otherkey00000001": 1, "otherkey00000002": 1}
    # a cap below what the config uses: every other key goes, the used key's packs stay
    prune(cache_dir, {used}, 0)
    assert (
        os.listdir(cache_dir / "emb") == [used] and len(list((cache_dir / "emb" / used / "packs").glob("*.npz"))) == 2
    )
    assert len(EmbeddingCache(cache_dir, used).get_many([f"{used}{0:04d}{i:020x}" for i in range(10)])) == 10


class _DiesAfter:
    """The real log-mel backbone, killed (an exception) once it has embedded ``clips`` clips: a job killed mid-chunk."""

    def __init__(self, clips: int) -> None:
        self.inner, self.clips = build_backbone("logmel", dict(CONFIG)), clips

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed_outputs(self, crops):
        if self.clips <= 0:
            raise KeyboardInterrupt("killed")
        self.clips -= len(crops)
        return self.inner.embed_outputs(crops)


def test_a_long_chunk_checkpoints_its_work_and_ends_as_one_pack(tmp_path, monkeypatch):
    monkeypatch.setattr(embed_module, "CHECKPOINT_CLIPS", 64)
    rows = write_clips(tmp_path / "audio", 200, samples=800)
    whole = embed(rows, tmp_path / "cache", tmp_path / "whole.npz")  # 200 clips: 3 checkpoints, then one pack
    assert whole["cache"]["misses"] == 200
    packs = sorted((tmp_path / "cache/emb" / KEY / "packs").glob("*.npz"))
    assert [len(load_npz(p)["digests"]) for p in packs] == [200]
    assert len(cache_files(tmp_path / "cache/emb")) == 2  # the pack and its index

    # killed after 96 clips (3 decode blocks): the checkpoint of the first 64 survives, the run resumes from it
    cache_dir = tmp_path / "killed"
    try:
        embed_clips(rows, _DiesAfter(96), tmp_path / "k.npz", max_seconds=5.0, cache=EmbeddingCache(cache_dir, KEY))
    except KeyboardInterrupt:
        pass
    assert not (tmp_path / "k.npz").exists()
    resumed = embed(rows, cache_dir, tmp_path / "k.npz")
    assert (resumed["cache"]["hits"], resumed["cache"]["misses"]) == (64, 136)
    np.testing.assert_array_equal(load_npz(tmp_path / "k.npz")["X"], load_npz(tmp_path / "whole.npz")["X"])
