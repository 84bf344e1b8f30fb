"""The embedding cache, per-clip layout (cache format 1, as on ``--old-ref``) vs packs (this tree).

N tiny synthetic clips (0.5 s, 16 kHz, PCM-16), the log-mel backbone, chunks of ``--chunk`` clips.
For each layout, in a fresh cache: the ``hashes`` step (``content_hashes``) and one ``embed_clips`` call
per chunk (all misses: the first project); then a second project on the same chunks and a third with
other chunks (a shuffled order), every clip a hit. Times are of ``embed_clips`` in one process (no
Snakemake, no process start-up), so they are the cache's own cost per clip. Also the file count of the
cache. Each layout runs in a subprocess on its own source tree (the old one from ``git archive``).

    nice -n 10 .venv/bin/python benchmarks/cache_packs.py [--clips 10000] [--chunk 1024] [--old-ref main]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {"type": "logmel", "sample_rate": 16000, "n_mels": 64}


def make_clips(folder: Path, n: int, seconds: float = 0.5) -> list[str]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(16000 * seconds)) / 16000
    paths = []
    for i, f in enumerate(rng.uniform(100, 4000, n)):
        path = folder / f"c{i:06d}.wav"
        wave = 0.3 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal(len(t))
        sf.write(path, wave.astype(np.float32), 16000, subtype="PCM_16")
        paths.append(str(path))
    return paths


def measure(paths: list[str], cache_dir: Path, out_dir: Path, chunk: int) -> dict:
    """Run in the subprocess: the three projects' embed times and the cache's file count."""
    # imported here: which audiofold (old or new source tree) is the subprocess's PYTHONPATH's
    from audiofold.backbones import build_backbone
    from audiofold.cache import EmbeddingCache, config_key
    from audiofold.embed import embed_clips
    from audiofold.hashes import content_hashes

    backbone = build_backbone("logmel", dict(CONFIG))
    key = config_key(CONFIG, 5.0)
    rows = [(Path(p).stem, p, "decode") for p in paths]
    order = np.random.default_rng(1).permutation(len(rows))
    projects = {
        "first (all misses)": [rows[s : s + chunk] for s in range(0, len(rows), chunk)],
        "second, same chunks (all hits)": [rows[s : s + chunk] for s in range(0, len(rows), chunk)],
        "third, other chunks (all hits)": [
            [rows[i] for i in order[s : s + chunk - 24]] for s in range(0, len(rows), chunk - 24)
        ],
    }
    result: dict = {}
    start = time.perf_counter()
    content_hashes(paths, cache_dir, progress=False)
    result["hashes step s"] = round(time.perf_counter() - start, 2)
    for name, chunks in projects.items():
        start = time.perf_counter()
        hits = 0
        for k, part in enumerate(chunks):
            info = embed_clips(
                part, backbone, out_dir / f"{k}.npz", max_seconds=5.0, cache=EmbeddingCache(cache_dir, key)
            )
            hits += info["cache"]["hits"]
        seconds = time.perf_counter() - start
        result[name] = {
            "s": round(seconds, 2),
            "ms per clip": round(1000 * seconds / len(rows), 3),
            "hits": hits,
            "jobs": len(chunks),
        }
    files = [p for p in cache_dir.rglob("*") if p.is_file()]
    result["cache files"] = len(files)
    result["cache files under emb/"] = sum(1 for p in files if "emb" in p.relative_to(cache_dir).parts[:1])
    result["cache MB"] = round(sum(p.stat().st_size for p in files) / 1e6, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=10000)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--old-ref", default="main", help="git ref with the per-clip cache (format 1)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # paths file, cache dir, out dir, chunk
        paths = json.loads(Path(args.child[0]).read_text())
        print(json.dumps(measure(paths, Path(args.child[1]), Path(args.child[2]), int(args.child[3]))))
        return
    with tempfile.TemporaryDirectory(prefix="cache_packs") as tmp:
        tmp = Path(tmp)
        paths = make_clips(tmp / "audio", args.clips)
        (tmp / "paths.json").write_text(json.dumps(paths))
        old_src = tmp / "old"
        old_src.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.old_ref, "src"], check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", str(old_src)], input=archive.stdout, check=True)
        results = {}
        for layout, src in (("per-clip (old)", old_src / "src"), ("packs (new)", ROOT / "src")):
            out = tmp / layout.split()[0] / "out"
            out.mkdir(parents=True)
            child = subprocess.run(
                [sys.executable, __file__, "--child", str(tmp / "paths.json"), str(out.parent / "cache"), str(out)]
                + [str(args.chunk)],
                env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
                check=True,
                capture_output=True,
                text=True,
            )
            results[layout] = json.loads(child.stdout.strip().splitlines()[-1])
            print(layout, json.dumps(results[layout], indent=1), flush=True)
    print(json.dumps({"clips": args.clips, "chunk": args.chunk, "results": results}, indent=1))


if __name__ == "__main__":
    main()
