"""Planning a million clips: the steps that list every clip (hashes, validate) and then Snakemake's dry
run of the whole workflow on a synthetic 1M-clip table, with wall time and peak RSS of each.

The clips are hard links to one real one-second WAV (the plan needs files, not distinct audio), so
making them costs inodes, not disk. The config is benchmarks/scale.py's (log-mel, linear head). Each
command runs under GNU time; its peak RSS is the largest process's (Snakemake's main process for the
dry run, the validate or hashes job's for the first call).

    .venv/bin/python benchmarks/plan_1m.py [--clips 1000000] [--scratch DIR]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import ROOT, write_config  # noqa: E402

LINKS_PER_FILE = 60_000


def make_linked_data(root: Path, n_train: int) -> None:
    """n_train training and n_train/10 test clips, each a hard link to one 1-s tone (one copy of the tone
    per LINKS_PER_FILE clips: ext4 allows 65,000 links to a file)."""
    root.mkdir(parents=True)
    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    rng = np.random.default_rng(0)
    made = 0
    for split, n, prefix in (("train", n_train, "tr"), ("test", max(10, n_train // 10), "te")):
        folder = root / split
        folder.mkdir()
        ids = [f"{prefix}{i:07d}" for i in range(n)]
        for clip in ids:
            source = root / f"tone{made // LINKS_PER_FILE}.wav"
            if made % LINKS_PER_FILE == 0:
                sf.write(source, tone, 16000, subtype="PCM_16")
            os.link(source, folder / f"{clip}.wav")
            made += 1
        table = pd.DataFrame({"clip_id": ids})
        if split == "train":
            table["rating"] = np.round(rng.uniform(0, 5, n), 1)
        table.to_csv(root / f"{split}.csv", index=False)


def timed(wd: Path, *args: str) -> dict:
    """Wall s and peak RSS (MB, GNU time) of one Snakemake call in ``wd``; its job count for a dry run."""
    snakemake = Path(sys.executable).parent / "snakemake"
    command = ["/usr/bin/time", "-v", str(snakemake), "-s", str(ROOT / "Snakefile"), "--directory", str(wd)]
    command += ["--configfile", str(wd / "config.yaml"), *args]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1)) / 1024
    row = {"wall_s": round(wall, 1), "peak_rss_mb": round(rss, 1)}
    total = re.search(r"^total\s+(\d+)", done.stdout, re.M)
    if total:
        row["jobs"] = int(total.group(1))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=1_000_000, help="training clips (test: a tenth)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        wd = Path(scratch) / "plan"
        started = time.perf_counter()
        make_linked_data(wd / "data", args.clips)
        write_config(wd, Path(scratch) / "cache")
        row = {"n_train": args.clips, "n_clips": args.clips + max(10, args.clips // 10)}
        row["make_data_s"] = round(time.perf_counter() - started, 1)
        # the checkpoint first (hash and list every clip, write the chunk manifests), then the plan
        row["validate"] = timed(wd, "--cores", str(args.cores), "validate")
        row["dry_run"] = timed(wd, "-n", "--quiet", "rules")
        row["dry_run_again"] = timed(wd, "-n", "--quiet", "rules")
        print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "plan_1m.json").write_text(json.dumps(row, indent=2) + "\n")
    v, d = row["validate"], row["dry_run"]
    (args.out / "plan_1m.md").write_text(
        "# Planning a million clips (benchmarks/plan_1m.py)\n\n"
        f"{row['n_clips']:,} clips ({row['n_train']:,} training), hard links to a 1-s WAV, log-mel + linear head; "
        f"measured {time.strftime('%Y-%m-%d')} on 2 cores shared with other work.\n\n"
        "| step | wall s | peak RSS MB |\n|---|---|---|\n"
        f"| hashes + validate (lists and hashes every clip, writes the chunk manifests) | {v['wall_s']} | {v['peak_rss_mb']} |\n"
        f"| `snakemake -n` (the whole plan{', ' + str(d['jobs']) + ' jobs' if 'jobs' in d else ''}) | {d['wall_s']} | {d['peak_rss_mb']} |\n"
        f"| `snakemake -n` again | {row['dry_run_again']['wall_s']} | {row['dry_run_again']['peak_rss_mb']} |\n"
    )


if __name__ == "__main__":
    main()
