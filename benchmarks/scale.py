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
import resource
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


def job_stats(results: Path, rule: str, with_cpu: bool = False) -> list[dict]:
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
                **({"cpu_s": float(bench["cpu_time"])} if with_cpu else {}),
            }
        )
    return rows


def _command(wd: Path, root: Path, *args: str) -> tuple[list[str], dict]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    if root != ROOT:  # another checkout's workflow (e.g. the commit before a change): its own library
        env["PYTHONPATH"] = str(root / "src")
    command = [str(Path(sys.executable).parent / "snakemake"), "-s", str(root / "Snakefile"), "--directory", str(wd)]
    return [*command, "--configfile", str(wd / "config.yaml"), *args], env


def snakemake(wd: Path, *args: str, root: Path = ROOT) -> subprocess.CompletedProcess:
    """Run the workflow in ``wd`` with its config.yaml; raises on failure, returns the finished process."""
    command, env = _command(wd, root, *args)
    return subprocess.run(command, check=True, env=env, capture_output=True, text=True)


def monitored_run(wd: Path, cores: int, root: Path = ROOT, *args: str) -> dict:
    """One workflow run on ``cores`` cores: wall s, the CPU s of Snakemake's main process alone (sampled
    from /proc while it runs), and of it and every process it started (its children's rusage)."""
    command, env = _command(wd, root, "--cores", str(cores), *args)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(wd / "snakemake.out", "a") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        tick, main_cpu = os.sysconf("SC_CLK_TCK"), 0.0
        while process.poll() is None:
            try:
                fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
                main_cpu = (int(fields[11]) + int(fields[12])) / tick  # utime + stime, without children
            except (OSError, IndexError, ValueError):
                pass
            time.sleep(0.2)
    if process.returncode:
        raise SystemExit(f"snakemake {' '.join(args)} failed in {wd}: see {wd / 'snakemake.out'}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": time.perf_counter() - started, "main_cpu_s": main_cpu, "total_cpu_s": total}


def step_breakdown(results: Path, rules: list[str], n_clips: int) -> dict:
    """Per rule: jobs, summed job wall and CPU s (Snakemake's benchmark files), start-up s (job wall
    minus the time its script reports), the embed cache's s (its log line), and ms of wall per clip."""
    out = {}
    for rule in rules:
        jobs = job_stats(results, rule, with_cpu=True)
        if not jobs:
            continue
        wall = sum(j["wall_s"] for j in jobs)
        timed = [j for j in jobs if j["script_s"] is not None]
        row = {
            "jobs": len(jobs),
            "wall_s": round(wall, 1),
            "cpu_s": round(sum(j["cpu_s"] for j in jobs), 1),
            "startup_s": round(sum(j["wall_s"] - j["script_s"] for j in timed), 1),
            "ms_per_clip": round(1000 * wall / n_clips, 3),
            "peak_rss_mb": round(max(j["max_rss_mb"] for j in jobs), 1),
        }
        if rule == "embed":
            cache = [
                float(x)
                for log in (results / "logs/embed").rglob("*.log")
                for x in re.findall(r"embedding cache: ([\d.]+)s reading and writing", log.read_text())
            ]
            row["cache_s"] = round(sum(cache), 1) if cache else None  # older versions log no cache time
        out[rule] = row
    return out


def cache_hits(results: Path) -> tuple[int, int]:
    """(hits, misses) summed over the embed logs' cache lines."""
    hits = misses = 0
    for log in (results / "logs/embed").rglob("*.log"):
        for h, m in re.findall(r"(\d+) hit\(s\), (\d+) miss", log.read_text()):
            hits, misses = hits + int(h), misses + int(m)
    return hits, misses


GROUPING = ("--groups", "train=heads", "refit=heads", "collect_oof=heads", "--group-components")


def cluster_submissions(wd: Path, group_components: int, root: Path = ROOT) -> dict:
    """Cluster submissions to retrain every head, counted from Snakemake's own dry-run plan with the
    SLURM executor (``-R train refit collect_oof``: those jobs and what follows; embed jobs are not
    grouped and are counted apart), without and with ``--group-components heads=N``."""
    counts = {}
    for label, extra in (("plain", ()), ("grouped", (*GROUPING, f"heads={group_components}"))):
        plan = snakemake(
            wd, "-n", "--executor", "slurm", "--jobs", "1000", "-R", "train", "refit", "collect_oof", *extra, root=root
        ).stdout
        # a job submitted on its own is an unindented "rule X:"; a group job's members are indented
        counts[label] = len(re.findall(r"^rule \w+:", plan, re.M)) + len(re.findall(r"Group job ", plan))
        counts[f"{label}_jobs"] = len(re.findall(r"^\s*rule \w+:", plan, re.M))
    return counts


# refit jobs write their benchmark files under train/, so "train" counts them too
RULES = ("validate", "embed", "prepare", "train", "collect_oof", "calibrate", "shift")


def n_clips_of(n_train: int) -> int:
    return n_train + max(10, n_train // 10)


def write_config(wd: Path, cache_dir: Path, root: Path = ROOT) -> dict:
    """The benchmark's config in ``wd``: log-mel, a linear head, the data under ``wd/data``, a shared cache.

    cv.auto_groups is off: these synthetic clips have no speakers, and the speaker-embedding step it
    adds (a resemblyzer pass over every training clip) is measured on its own (``auto_groups_cost``)."""
    config = yaml.safe_load((root / "config.yaml").read_text())
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
    config["cv"]["auto_groups"] = False
    config["cache_dir"] = str(cache_dir)
    (wd / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return config


def run_size(n: int, cores: int, scratch: Path, group_components: int, root: Path = ROOT) -> dict:
    wd = scratch / f"n{n}"
    make_data(wd / "data", n)
    config = write_config(wd, scratch / "shared-cache", root)
    run = monitored_run(wd, cores, root)  # one call, as a user runs it (the validate checkpoint included)
    wall = run["wall_s"]
    results = wd / "results"
    stats = {rule: job_stats(results, rule) for rule in RULES}
    all_rules = sorted(
        {
            p.relative_to(results / "benchmarks").parts[0].removesuffix(".tsv")
            for p in (results / "benchmarks").rglob("*.tsv")
        }
    )
    main_cpu, total_cpu = run["main_cpu_s"], run["total_cpu_s"]
    breakdown = step_breakdown(results, all_rules, n + max(10, n // 10))
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
    second_embed_wall = monitored_run(second, cores, root, "embed_all")["wall_s"]
    hits, misses = cache_hits(second / "results")
    second_steps = step_breakdown(second / "results", ["hashes", "validate", "embed"], n_clips_of(n))

    def peak(rule: str) -> float | None:
        return round(max(j["max_rss_mb"] for j in stats[rule]), 1) if stats[rule] else None

    return {
        "n_train": n,
        "n_clips": n_clips,
        "jobs": {rule: len(stats[rule]) for rule in RULES},
        "wall_s": round(wall, 1),
        "ms_per_clip": round(1000 * wall / n_clips, 2),
        "cpu_s": round(total_cpu, 1),
        "snakemake_main_cpu_s": round(main_cpu, 1),
        "snakemake_main_cpu_share": round(main_cpu / max(total_cpu, 1e-9), 3),
        "steps": breakdown,
        "embed_s": round(sum(j["wall_s"] for j in stats["embed"]), 1),
        "peak_rss_mb": {rule: peak(rule) for rule in RULES},
        "embed_rss_mb_median": round(float(np.median([j["max_rss_mb"] for j in stats["embed"]])), 1),
        "startup_share": round(startup / sum(j["wall_s"] for j in timed), 3),
        "startup_s_per_job": round(startup / max(1, len(timed)), 2),
        # cluster submissions to retrain the heads (Snakemake's dry-run plan with the SLURM executor)
        "cluster_submissions": cluster_submissions(wd, group_components, root),
        "second_project": {
            "embed_wall_s": round(second_embed_wall, 1),
            "cache_hits": hits,
            "cache_misses": misses,
            "hit_rate": round(hits / max(1, hits + misses), 3),
            "steps": second_steps,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 10000, 100000])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--group-components", type=int, default=10, help="jobs bundled per cluster submission")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    parser.add_argument("--scratch", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout whose workflow runs (e.g. an older commit)")
    parser.add_argument("--label", default="current", help="this run's name in the tables (rows are kept per label)")
    args = parser.parse_args()
    results = args.out / "scale.json"
    rows = json.loads(results.read_text()) if results.is_file() else []
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        for n in args.sizes:
            row = {"label": args.label, **run_size(n, args.cores, Path(scratch), args.group_components, args.root)}
            row["measured"] = time.strftime("%Y-%m-%d")
            rows = [r for r in rows if (r.get("label"), r["n_train"]) != (args.label, n)] + [row]
            print(json.dumps(row), flush=True)
            write_tables(rows, args.out, args.group_components)


def write_tables(rows: list[dict], out: Path, group_components: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "# How the workflow scales (benchmarks/scale.py)",
        "",
        "Synthetic 1-s clips, log-mel + linear head, 5 folds + refit, 2 cores; N/10 test clips.",
        "",
        "| run | train clips | all clips | embed jobs | wall s | ms / clip | peak RSS MB: validate / embed (max, median) / "
        "train / collect_oof | start-up share | submissions to retrain heads (grouped) | 2nd project: embed s, cache hit rate |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rss, second, sub = r["peak_rss_mb"], r["second_project"], r["cluster_submissions"]
        lines.append(
            f"| {r.get('label', 'before')} | {r['n_train']} | {r['n_clips']} | {r['jobs']['embed']} | {r['wall_s']} | "
            f"{r['ms_per_clip']} | "
            f"{rss['validate']} / {rss['embed']}, {r['embed_rss_mb_median']} / {rss['train']} / {rss['collect_oof']} | "
            f"{r['startup_share']:.0%} ({r['startup_s_per_job']} s/job) | {sub['plain']} "
            f"({sub['grouped']} with --group-components heads={group_components}) | "
            f"{second['embed_wall_s']} s, {second['hit_rate']:.0%} ({second['cache_hits']} hits) |"
        )
    for r in rows:
        if "steps" not in r:
            continue
        lines += [
            "",
            f"## Where the time goes: {r.get('label')}, {r['n_clips']} clips ({r.get('measured', '')})",
            "",
            f"Run: {r['wall_s']} s wall, {r['ms_per_clip']} ms per clip; {r['cpu_s']} s of CPU in all, of which "
            f"Snakemake's main process {r['snakemake_main_cpu_s']} s ({r['snakemake_main_cpu_share']:.1%}). "
            "Job columns are sums over a step's jobs (they overlap on 2 cores); start-up = job wall minus the "
            "time its script reports.",
            "",
            "| step | jobs | job wall s | CPU s | start-up s | cache s | wall ms / clip | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        second = r["second_project"]
        if "steps" in second:
            parts = ", ".join(
                f"{rule} {st['wall_s']} s job wall ({st['jobs']} job(s), {st['ms_per_clip']} ms / clip)"
                for rule, st in second["steps"].items()
            )
            lines[-3:-3] = [
                f"Second project on the same clips, every clip cached (`snakemake embed_all`): "
                f"{second['embed_wall_s']} s wall, {1000 * second['embed_wall_s'] / r['n_clips']:.2f} ms per clip; "
                f"{parts}.",
                "",
            ]
        for rule, st in sorted(r["steps"].items(), key=lambda kv: -kv[1]["wall_s"]):
            lines.append(
                f"| {rule} | {st['jobs']} | {st['wall_s']} | {st['cpu_s']} | {st['startup_s']} | "
                f"{'' if st.get('cache_s') is None else st['cache_s']} | {st['ms_per_clip']} | {st['peak_rss_mb']} |"
            )
    (out / "scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
