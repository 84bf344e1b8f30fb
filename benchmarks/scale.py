"""How the embedding stage scales with the number of clips: wall time per clip, peak RSS per job,
and the share of job wall time spent starting Python.

For each size N: N short synthetic clips (1 s, 16 kHz, PCM-16) plus N/10 test clips, the log-mel
backbone, and the workflow run up to the embed step (``--until embed``: validate, then one embed job
per chunk of ``audio.shard_clips`` clips). Peak RSS and wall time per job come from Snakemake's
benchmark files (results/benchmarks/**.tsv); a job's start-up is its benchmark wall time minus the
time its rule script reports in its log ("done in"). Writes benchmarks/results/scale.{json,md}.

    .venv/bin/python benchmarks/scale.py [--sizes 1000 10000 100000] [--cores 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import yaml

ROOT = Path(__file__).resolve().parents[1]


def make_data(root: Path, n_train: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    n_test = max(10, n_train // 10)
    for split, n, prefix in (("train", n_train, "tr"), ("test", n_test, "te")):
        folder = root / split
        folder.mkdir(parents=True)
        ids = [f"{prefix}{i:06d}" for i in range(n)]
        freq = rng.uniform(100, 4000, n)
        t = np.arange(16000) / 16000
        for clip, f in zip(ids, freq):
            wave = 0.3 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal(len(t))
            sf.write(folder / f"{clip}.wav", wave.astype(np.float32), 16000, subtype="PCM_16")
        table = pd.DataFrame({"clip_id": ids})
        if split == "train":
            table["rating"] = np.round(freq / 1000, 1)
        table.to_csv(root / f"{split}.csv", index=False)


def job_stats(results: Path, rule: str) -> list[dict]:
    """Per job of ``rule``: wall s and max RSS (MB) from its benchmark file, script seconds from its log."""
    rows = []
    for tsv in sorted((results / "benchmarks").glob(f"{rule}/**/*.tsv")) or sorted(
        (results / "benchmarks").glob(f"{rule}.tsv")
    ):
        bench = pd.read_csv(tsv, sep="\t").iloc[0]
        log = results / "logs" / tsv.relative_to(results / "benchmarks").with_suffix(".log")
        done = re.search(r"done in ([\d.]+)s", log.read_text()) if log.is_file() else None
        rows.append(
            {
                "job": str(tsv.relative_to(results / "benchmarks").with_suffix("")),
                "wall_s": float(bench["s"]),
                "max_rss_mb": float(bench["max_rss"]),
                "script_s": float(done.group(1)) if done else None,
            }
        )
    return rows


def run_size(n: int, cores: int, scratch: Path) -> dict:
    wd = scratch / f"n{n}"
    make_data(wd / "data", n)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["demo"]["enabled"] = False
    config["data"] = {
        "train_csv": "data/train.csv",
        "test_csv": "data/test.csv",
        "sample_submission": None,
        "train_audio_dir": "data/train",
        "test_audio_dir": "data/test",
    }
    config["backbones"] = {"logmel": {"type": "logmel", "sample_rate": 16000, "n_mels": 64}}
    config["heads"] = {"linear": {"type": "linear"}}
    (wd / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    started = time.perf_counter()
    # two calls: --until does not follow the validate checkpoint into the chunks it reveals
    for target in (["validate"], ["--until", "embed"]):
        subprocess.run(
            [
                str(Path(sys.executable).parent / "snakemake"),
                "-s",
                str(ROOT / "Snakefile"),
                "--directory",
                str(wd),
                "--configfile",
                str(wd / "config.yaml"),
                "--cores",
                str(cores),
                *target,
            ],
            check=True,
            env=env,
            capture_output=True,
        )
    wall = time.perf_counter() - started
    results = wd / "results"
    embed, validate = job_stats(results, "embed"), job_stats(results, "validate")
    n_clips = n + max(10, n // 10)
    startup = sum(j["wall_s"] - j["script_s"] for j in embed + validate if j["script_s"] is not None)
    job_wall = sum(j["wall_s"] for j in embed + validate)
    rss = [j["max_rss_mb"] for j in embed]
    return {
        "n_train": n,
        "n_clips": n_clips,
        "embed_jobs": len(embed),
        "wall_s": round(wall, 1),
        "ms_per_clip": round(1000 * wall / n_clips, 2),
        "embed_rss_mb": {"max": round(max(rss), 1), "median": round(float(np.median(rss)), 1)},
        "validate_rss_mb": validate[0]["max_rss_mb"] if validate else None,
        "validate_s": validate[0]["wall_s"] if validate else None,
        "startup_share": round(startup / job_wall, 3) if job_wall else None,
        "startup_s_per_job": round(startup / max(1, len(embed) + len(validate)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 10000, 100000])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for n in args.sizes:
            rows.append(run_size(n, args.cores, Path(scratch)))
            print(json.dumps(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "| train clips | all clips | embed jobs | wall s | ms / clip | embed peak RSS MB (max / median) | validate s | validate RSS MB | start-up share |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n_train']} | {r['n_clips']} | {r['embed_jobs']} | {r['wall_s']} | {r['ms_per_clip']} | "
            f"{r['embed_rss_mb']['max']} / {r['embed_rss_mb']['median']} | {r['validate_s']} | "
            f"{r['validate_rss_mb']} | {r['startup_share']:.0%} |"
        )
    (args.out / "scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
