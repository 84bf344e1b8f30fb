"""How the workflow scales with the number of clips: wall time per clip, peak RSS per job, the share
of job wall time spent starting Python, and cluster submissions with and without grouping.

For each size N: N short synthetic clips (1 s, 16 kHz, PCM-16) plus N/10 test clips, the log-mel
backbone, a linear head, and the whole workflow (validate lists the clips and their chunks; one embed
job per chunk of ``audio.shard_clips`` clips; 5 folds + refit). Then a second project on the same
clips with another head and the same ``cache_dir`` runs up to embed: its cache hit rate and time.
Peak RSS and wall time per job come from Snakemake's benchmark files (results/benchmarks/**.tsv); a
job's start-up is its benchmark wall time minus the time its rule script reports in its log ("done
in"). Cluster submissions to retrain the heads are counted from Snakemake's dry-run plan with the
SLURM executor, without and with ``--groups ... --group-components heads=N`` (docs/SCALING.md, "Fewer,
bigger jobs"). Writes benchmarks/results/scale.{json,md}.

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


def snakemake(wd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the workflow in ``wd`` with its config.yaml; raises on failure, returns the finished process."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    command = [str(Path(sys.executable).parent / "snakemake"), "-s", str(ROOT / "Snakefile"), "--directory", str(wd)]
    command += ["--configfile", str(wd / "config.yaml"), *args]
    return subprocess.run(command, check=True, env=env, capture_output=True, text=True)


def timed_run(wd: Path, cores: int, *args: str) -> float:
    """Wall seconds of one workflow run on ``cores`` cores."""
    started = time.perf_counter()
    snakemake(wd, "--cores", str(cores), *args)
    return time.perf_counter() - started


def cache_hits(results: Path) -> tuple[int, int]:
    """(hits, misses) summed over the embed logs' cache lines."""
    hits = misses = 0
    for log in (results / "logs/embed").rglob("*.log"):
        for h, m in re.findall(r"(\d+) hit\(s\), (\d+) miss", log.read_text()):
            hits, misses = hits + int(h), misses + int(m)
    return hits, misses


GROUPING = ("--groups", "train=heads", "refit=heads", "collect_oof=heads", "--group-components")


def cluster_submissions(wd: Path, group_components: int) -> dict:
    """Cluster submissions to retrain every head, counted from Snakemake's own dry-run plan with the
    SLURM executor (``-R train refit collect_oof``: those jobs and what follows; embed jobs are not
    grouped and are counted apart), without and with ``--group-components heads=N``."""
    counts = {}
    for label, extra in (("plain", ()), ("grouped", (*GROUPING, f"heads={group_components}"))):
        plan = snakemake(
            wd, "-n", "--executor", "slurm", "--jobs", "1000", "-R", "train", "refit", "collect_oof", *extra
        ).stdout
        # a job submitted on its own is an unindented "rule X:"; a group job's members are indented
        counts[label] = len(re.findall(r"^rule \w+:", plan, re.M)) + len(re.findall(r"Group job ", plan))
        counts[f"{label}_jobs"] = len(re.findall(r"^\s*rule \w+:", plan, re.M))
    return counts


# refit jobs write their benchmark files under train/, so "train" counts them too
RULES = ("validate", "embed", "prepare", "train", "collect_oof", "calibrate", "shift")


def run_size(n: int, cores: int, scratch: Path, group_components: int) -> dict:
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
    config["cache_dir"] = str(scratch / "shared-cache")
    (wd / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    # two calls: the first lists the clips (the validate checkpoint), the second runs everything
    wall = timed_run(wd, cores, "validate") + timed_run(wd, cores)
    results = wd / "results"
    stats = {rule: job_stats(results, rule) for rule in RULES}
    timed = [j for rule in RULES for j in stats[rule] if j["script_s"] is not None]
    startup = sum(j["wall_s"] - j["script_s"] for j in timed)
    n_clips = n + max(10, n // 10)

    # a second project on the same clips (another head), sharing the cache: no clip is embedded again
    second = scratch / f"n{n}-second"
    second.mkdir()
    config["heads"] = {"knn": {"type": "knn", "k": 5}}
    for key in ("train_csv", "test_csv", "train_audio_dir", "test_audio_dir"):
        config["data"][key] = str(wd / config["data"][key])
    (second / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    second_embed_wall = timed_run(second, cores, "embed_all")
    hits, misses = cache_hits(second / "results")

    def peak(rule: str) -> float | None:
        return round(max(j["max_rss_mb"] for j in stats[rule]), 1) if stats[rule] else None

    return {
        "n_train": n,
        "n_clips": n_clips,
        "jobs": {rule: len(stats[rule]) for rule in RULES},
        "wall_s": round(wall, 1),
        "ms_per_clip": round(1000 * wall / n_clips, 2),
        "embed_s": round(sum(j["wall_s"] for j in stats["embed"]), 1),
        "peak_rss_mb": {rule: peak(rule) for rule in RULES},
        "embed_rss_mb_median": round(float(np.median([j["max_rss_mb"] for j in stats["embed"]])), 1),
        "startup_share": round(startup / sum(j["wall_s"] for j in timed), 3),
        "startup_s_per_job": round(startup / max(1, len(timed)), 2),
        # cluster submissions to retrain the heads (Snakemake's dry-run plan with the SLURM executor)
        "cluster_submissions": cluster_submissions(wd, group_components),
        "second_project": {
            "embed_wall_s": round(second_embed_wall, 1),
            "cache_hits": hits,
            "cache_misses": misses,
            "hit_rate": round(hits / max(1, hits + misses), 3),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 10000, 100000])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--group-components", type=int, default=10, help="jobs bundled per cluster submission")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    parser.add_argument("--scratch", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        for n in args.sizes:
            rows.append(run_size(n, args.cores, Path(scratch), args.group_components))
            print(json.dumps(rows[-1]), flush=True)
            write_tables(rows, args.out, args.group_components)


def write_tables(rows: list[dict], out: Path, group_components: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "| train clips | all clips | embed jobs | wall s | ms / clip | peak RSS MB: validate / embed (max, median) / "
        "train / collect_oof | start-up share | submissions to retrain heads (grouped) | 2nd project: embed s, cache hit rate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rss, second, sub = r["peak_rss_mb"], r["second_project"], r["cluster_submissions"]
        lines.append(
            f"| {r['n_train']} | {r['n_clips']} | {r['jobs']['embed']} | {r['wall_s']} | {r['ms_per_clip']} | "
            f"{rss['validate']} / {rss['embed']}, {r['embed_rss_mb_median']} / {rss['train']} / {rss['collect_oof']} | "
            f"{r['startup_share']:.0%} ({r['startup_s_per_job']} s/job) | {sub['plain']} "
            f"({sub['grouped']} with --group-components heads={group_components}) | "
            f"{second['embed_wall_s']} s, {second['hit_rate']:.0%} ({second['cache_hits']} hits) |"
        )
    (out / "scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
