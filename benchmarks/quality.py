"""Quality on real audio: backbone x head -> metric (mean ± std over folds), by running the workflow.

Data sets (read in place from ../shared/datasets, see its README for the published references):
- ``esc10``: 400 clips, 10 classes, the 5 official folds (``data.fold_column``); accuracy.
- ``speechocean762``: 750 utterances, ``total_mean`` (0-10) as a rating regression, 5 folds grouped
  by speaker; Pearson r and RMSE.

For each data set a scratch folder gets a labels table (ids + paths into the shared folder), a
small test table (a handful of training files under new ids; the workflow needs a test set, the
benchmark ignores its predictions) and a config, then the real Snakefile runs. The table is read
from each candidate's ``results/oof/{backbone}/{head}/scores.json`` and the blend.

    .venv/bin/python benchmarks/quality.py [--datasets esc10 speechocean762] [--backbones logmel mfcc]
        [--heads linear knn lgbm prompt] [--cores 2] [--epochs 30]
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

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATASETS_DIR = ROOT.parent / "shared" / "datasets"
DEFAULT_BACKBONES = {
    "logmel": {"type": "logmel", "sample_rate": 16000, "n_mels": 64, "keep_sequence": True},
    "mfcc": {"type": "mfcc", "sample_rate": 16000, "n_mfcc": 20},
    "aisfx": {"type": "aisfx"},
    "distillmos": {"type": "distillmos", "keep_sequence": True},
}


def head_configs(epochs: int) -> dict[str, dict]:
    return {
        "linear": {"type": "linear"},
        "knn": {"type": "knn", "k": 11, "temperature": 0.15},
        "lgbm": {"type": "lgbm"},
        # pooled input works for every backbone; sequence needs keep_sequence on the backbone
        "prompt": {"type": "prompt", "inputs": "pooled", "epochs": epochs},
        # seed 000's setting: prompts attend over frame sequences (backbones with keep_sequence)
        "prompt_seq": {"type": "prompt", "inputs": "sequence", "epochs": epochs},
        "va": {"type": "va", "epochs": epochs},
    }


DATASETS = {
    "esc10": {
        "csv": "esc10/esc10.csv",
        "audio": "esc10",
        "label": "category",
        "kind": "classification",
        "fold_column": "fold",
        "group_column": None,
        "metrics": ["accuracy", "macro_f1"],
        "heads": ["linear", "knn", "lgbm", "prompt", "prompt_seq"],
    },
    "speechocean762": {
        "csv": "speechocean762_train/labels.csv",
        "audio": "speechocean762_train",
        "label": "total_mean",
        "kind": "regression",
        "fold_column": None,
        "group_column": "speaker",
        "metrics": ["pearson", "rmse"],
        "heads": ["linear", "knn", "lgbm", "prompt", "prompt_seq", "va"],
    },
}


def available_backbones(names: list[str]) -> list[str]:
    """The requested backbones this install can build (the packaged ones need their extra packages)."""
    from audiofold.backbones import build_backbone

    usable = []
    for name in names:
        try:
            build_backbone(name, DEFAULT_BACKBONES[name])
            usable.append(name)
        except Exception as exc:  # noqa: BLE001 - report and skip a backbone this machine lacks
            print(f"skipping backbone {name}: {exc}", file=sys.stderr)
    return usable


def write_dataset(name: str, workdir: Path) -> dict:
    spec = DATASETS[name]
    table = pd.read_csv(DATASETS_DIR / spec["csv"], dtype=str)
    train = pd.DataFrame(
        {"id": [f"c{i:04d}" for i in range(len(table))], "path": table["filename"], spec["label"]: table[spec["label"]]}
    )
    for column in (spec["fold_column"], spec["group_column"]):
        if column:
            train[column] = table[column]
    test = pd.DataFrame({"id": [f"t{i:02d}" for i in range(8)], "path": table["filename"].iloc[:8].values})
    train.to_csv(workdir / "train.csv", index=False)
    test.to_csv(workdir / "test.csv", index=False)
    return {
        "train_csv": str(workdir / "train.csv"),
        "test_csv": str(workdir / "test.csv"),
        "train_audio_dir": str(DATASETS_DIR / spec["audio"]),
        "test_audio_dir": str(DATASETS_DIR / spec["audio"]),
        "id_column": "id",
        "path_column": "path",
        "label_columns": [spec["label"]],
        "group_column": spec["group_column"],
        "fold_column": spec["fold_column"],
    }


def run_dataset(
    name: str, backbones: list[str], heads: list[str], epochs: int, cores: int, scratch: Path, reuse: bool = False
) -> dict:
    spec = DATASETS[name]
    workdir = scratch / name
    if reuse and (workdir / "config.yaml").is_file():  # an earlier --keep run: Snakemake redoes what is missing
        # only what was deleted (and what depends on it) reruns, not everything whose code changed
        return {**_run_workflow(name, workdir, cores, "--rerun-triggers", "mtime"), "incremental": True}
    workdir.mkdir(parents=True)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["demo"] = {"enabled": False}
    config["data"] = write_dataset(name, workdir)
    config["task"] = {"kind": spec["kind"]}
    config["cv"] = {**config.get("cv", {}), "n_folds": 5}
    config["backbones"] = {b: DEFAULT_BACKBONES[b] for b in backbones}
    all_heads = head_configs(epochs)
    config["heads"] = {h: all_heads[h] for h in heads if h in spec["heads"]}
    with_sequences = [b for b in backbones if DEFAULT_BACKBONES[b].get("keep_sequence")]
    if "prompt_seq" in config["heads"]:
        if with_sequences:
            config["heads"]["prompt_seq"]["backbones"] = with_sequences
        else:
            del config["heads"]["prompt_seq"]
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return _run_workflow(name, workdir, cores)


def _run_workflow(name: str, workdir: Path, cores: int, *extra: str) -> dict:
    spec = DATASETS[name]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.run(
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
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise SystemExit(f"{name}: workflow failed\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    seconds = time.perf_counter() - started
    rows = []
    for scores_path in sorted((workdir / "results" / "oof").glob("*/*/scores.json")):
        backbone, head = scores_path.parent.parent.name, scores_path.parent.name
        for variant, entry in json.loads(scores_path.read_text())["variants"].items():
            rows.append(
                summarise(
                    name,
                    backbone,
                    f"{head}/{variant}" if variant != "main" else head,
                    entry["per_fold"],
                    spec["metrics"],
                )
            )
    metrics = json.loads((workdir / "results" / "metrics.json").read_text())
    blend_folds = metrics["blend"]["in_sample"].get("per_fold")
    if blend_folds:
        weights = metrics["blend"]["weights"]
        label = (
            ", ".join(f"{w:.2g}·{k}" for k, w in weights.items() if w > 0)
            if isinstance(weights, dict)
            else str(weights)
        )
        rows.append(summarise(name, "BLEND", label, blend_folds, spec["metrics"]))
    return {
        "dataset": name,
        "wall_seconds": round(seconds, 1),
        "rows": rows,
        "measured": f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores, load average "
        f"{load_before:.1f} at start and {os.getloadavg()[0]:.1f} at end",
    }


def summarise(dataset: str, backbone: str, head: str, per_fold: dict, names: list[str]) -> dict:
    values = {m: [float(f[m]) for f in per_fold.values()] for m in names}
    return {
        "dataset": dataset,
        "backbone": backbone,
        "head": head,
        "n_folds": len(per_fold),
        **{m: {"mean": float(np.mean(v)), "std": float(np.std(v))} for m, v in values.items()},
    }


def markdown(results: list[dict]) -> str:
    lines = [
        "# Quality on real audio (benchmarks/quality.py)",
        "",
        "Metric mean ± std over the 5 folds (OOF per fold, uncalibrated candidates; BLEND is the "
        "calibrated blend). References: ../shared/datasets/README.md.",
        "",
    ]
    for result in results:
        names = DATASETS[result["dataset"]]["metrics"]
        rerun = ", an incremental rerun of a kept run folder" if result.get("incremental") else ""
        lines += [
            f"## {result['dataset']} ({result['wall_seconds']} s wall{rerun})",
            "",
            f"Measured {result.get('measured', 'before load was recorded')}; every backbone x head "
            f"in the run is listed, helpful or not.",
            "",
            "| backbone | head | " + " | ".join(names) + " |",
            "|---|---|" + "---|" * len(names),
        ]
        for r in result["rows"]:
            lines.append(
                f"| {r['backbone']} | {r['head']} | "
                + " | ".join(f"{r[m]['mean']:.3f} ± {r[m]['std']:.3f}" for m in names)
                + " |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--backbones", nargs="+", default=list(DEFAULT_BACKBONES), choices=list(DEFAULT_BACKBONES))
    parser.add_argument("--heads", nargs="+", default=["linear", "knn", "lgbm", "prompt", "prompt_seq", "va"])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    parser.add_argument("--keep", type=Path, default=None, help="Keep the run folders here instead of a temp dir.")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="With --keep: rerun an existing run folder incrementally (delete outputs to redo them).",
    )
    args = parser.parse_args()
    backbones = available_backbones(args.backbones)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = args.keep or Path(tmp)
        results = [
            run_dataset(d, backbones, args.heads, args.epochs, args.cores, scratch, args.reuse) for d in args.datasets
        ]
    args.out.mkdir(parents=True, exist_ok=True)
    previous = args.out / "quality.json"
    if previous.is_file():  # keep the data sets this run did not redo
        done = {r["dataset"] for r in results}
        results = [r for r in json.loads(previous.read_text()) if r["dataset"] not in done] + results
        results.sort(key=lambda r: list(DATASETS).index(r["dataset"]))
    (args.out / "quality.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "quality.md").write_text(markdown(results) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
