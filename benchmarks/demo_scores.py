"""OOF scores the default config reaches on the embedded demo, for each task kind.

Runs the real workflow (default config.yaml, only demo.kind changed) in a scratch folder per kind
and writes a table to benchmarks/results/demo_scores.{json,md}.

    .venv/bin/python benchmarks/demo_scores.py [--kinds regression classification] [--cores 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
KINDS = ["regression", "multitarget", "classification", "multilabel"]


def run_kind(kind: str, cores: int, scratch: Path) -> dict:
    workdir = scratch / kind
    workdir.mkdir(parents=True)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["demo"]["kind"] = kind
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    started = time.perf_counter()
    subprocess.run(
        [
            str(Path(sys.executable).parent / "snakemake"),
            "-s",
            str(ROOT / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(workdir / "config.yaml"),
            "--cores",
            str(cores),
            "--quiet",
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    seconds = time.perf_counter() - started
    metrics = json.loads((workdir / "results/metrics.json").read_text())
    primary = metrics["primary"]
    best_single = max(
        metrics["candidates"].items(),
        key=lambda kv: kv[1]["calibrated_overall"][primary] * (1 if metrics["greater_is_better"] else -1),
    )
    return {
        "kind": kind,
        "primary": primary,
        "baseline": metrics["baseline"][primary],
        "best_single": best_single[0],
        "best_single_score": best_single[1]["calibrated_overall"][primary],
        "blend": metrics["blend"]["in_sample"]["overall"],
        "blend_weights": metrics["blend"]["weights"],
        "blend_nested": (metrics["blend"].get("nested") or {}).get("overall"),
        "rounding": metrics["blend"].get("rounding"),
        "wall_seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", default=KINDS, choices=KINDS)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        rows = [run_kind(kind, args.cores, Path(scratch)) for kind in args.kinds]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "demo_scores.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        (
            "| kind | metric | trivial | best single (calibrated) | blend in-sample (as submitted) | blend nested "
            "(honest) | wall s |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        nested = f"{r['blend_nested'][r['primary']]:.3f}" if r["blend_nested"] else "n/a"
        lines.append(
            f"| {r['kind']} | {r['primary']} | {r['baseline']:.3f} | {r['best_single_score']:.3f} "
            f"({r['best_single']}) | {r['blend'][r['primary']]:.3f} | {nested} | {r['wall_seconds']} |"
        )
    (args.out / "demo_scores.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
