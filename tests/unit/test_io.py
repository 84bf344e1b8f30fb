import os

import numpy as np
import pytest

from audiofold.io import (
    atomic_path,
    load_npz,
    meta_path,
    read_json,
    save_npz,
    stable_hash,
    write_json,
    write_meta,
    write_text_if_changed,
)


def test_atomic_path_keeps_the_old_file_when_the_write_fails(tmp_path):
    target = tmp_path / "a" / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"v": ')  # half-written
            raise RuntimeError("killed mid-write")
    assert read_json(target) == {"v": 1}
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]  # no temp file left


def test_npz_round_trip_and_sidecar(tmp_path):
    path = tmp_path / "x" / "fold0.npz"
    save_npz(path, ids=np.array(["a", "b"]), X=np.eye(2, dtype=np.float32))
    data = load_npz(path)
    assert data["ids"].tolist() == ["a", "b"] and data["X"].dtype == np.float32
    write_meta(path, backbone="logmel", shape=[2, 2])
    assert meta_path(path).name == "fold0.meta.json" and read_json(meta_path(path))["shape"] == [2, 2]


def test_stable_hash_ignores_key_order_but_not_values():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_write_text_if_changed_keeps_an_unchanged_file_and_its_mtime(tmp_path):
    path = tmp_path / "sub/a.tsv"
    assert write_text_if_changed(path, "x\n") is True
    os.utime(path, ns=(10**18, 10**18))
    assert write_text_if_changed(path, "x\n") is False and path.stat().st_mtime_ns == 10**18
    assert write_text_if_changed(path, "y\n") is True and path.read_text() == "y\n"
    assert path.stat().st_mtime_ns != 10**18 and [p.name for p in path.parent.iterdir()] == ["a.tsv"]
