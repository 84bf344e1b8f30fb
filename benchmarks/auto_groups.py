"""Pseudo-groups (cv.auto_groups) and the shift-weighted estimate on real data with known groups.

Per data set, the same clips run through the real workflow three times, differing only in the folds:
``none`` (no group column, cv.auto_groups false: plain stratified folds), ``auto`` (no group column,
cv.auto_groups auto: folds from the clustered clips) and ``true`` (the known groups as
data.group_column). The test set is held-out groups with known labels, so each run's submission gets
its real score on unseen speakers / sources beside the nested OOF estimate and the shift-weighted one.

- ``speechocean762``: 750 utterances of 125 speakers (6 each), ``total_mean`` rating; 100 speakers
  train (600 clips), 25 test (150 clips); Pearson r. Groups: speakers.
- ``esc10mix``: mixtures of 1-2 ESC-10 clips of different classes (quality.py's recipe, at most two
  sources so the groups stay small); mixtures from official folds 1-4 train, fold 5 test (no source
  on both sides); LWLRAP. Groups: mixtures that share a source recording (ESC-10's ``src_file``,
  linking takes of one recording), joined transitively.

Also the clustering against the true groups over a range of thresholds (purity, completeness,
adjusted Rand index) on the training clips' embeddings of the grouping backbone, and the threshold
the default was chosen by (best adjusted Rand index on half of speechocean762's speakers).

    .venv/bin/python benchmarks/auto_groups.py [--datasets speechocean762 esc10mix] [--cores 2]
        [--scratch DIR] [--reuse]

Results: benchmarks/results/auto_groups.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # quality.py's data set builders

from quality import DATASETS_DIR, SOURCE_SEP, _run_workflow, plan_mixtures, write_mixtures  # noqa: E402

from audiofold import metrics  # noqa: E402
from audiofold.auto_groups import DEFAULT_THRESHOLD, cluster_groups, purity  # noqa: E402
from audiofold.embed import load_embeddings  # noqa: E402
from audiofold.folds import merge_groups  # noqa: E402
from audiofold.io import load_npz  # noqa: E402
from audiofold.tasks import load_task  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SEED = 0
THRESHOLDS = [0.15, 0.2, 0.225, 0.25, 0.275, 0.3, 0.325, 0.35, 0.4, 0.5]
MODES = ("none", "auto", "true")
SETUPS = {
    # the backbones the heads train on; the speaker encoder is one of them on speech (it is also the
    # grouping backbone, whose embeddings the auto_groups step then reuses), the worst case for leakage
    "speechocean762": {
        "backbones": {
            "mfcc": {"type": "mfcc", "sample_rate": 16000, "n_mfcc": 20},
            "resemblyzer": {"type": "resemblyzer"},
        },
        "primary": "pearson",
        "kind": "regression",
    },
    # non-speech: the speaker encoder runs only for the grouping (the auto_groups step embeds itself)
    "esc10mix": {
        "backbones": {
            "logmel": {"type": "logmel", "sample_rate": 16000, "n_mels": 64},
            "mfcc": {"type": "mfcc", "sample_rate": 16000, "n_mfcc": 20},
        },
        "primary": "lwlrap",
        "kind": "multilabel",
    },
}
HEADS = {"linear": {"type": "linear"}}


def speechocean_tables(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """(train, test, audio folder): 100 speakers train, 25 test, seeded; columns id, path, total_mean, group."""
    table = pd.read_csv(data_dir / "speechocean762_train/labels.csv", dtype=str)
    speakers = sorted(table["speaker"].unique())
    test_speakers = set(np.random.default_rng(SEED).choice(speakers, 25, replace=False))
    table = pd.DataFrame(
        {"id": table["utt_id"], "path": table["filename"], "total_mean": table["total_mean"], "group": table["speaker"]}
    )
    is_test = table["group"].isin(test_speakers)
    return (
        table[~is_test].reset_index(drop=True),
        table[is_test].reset_index(drop=True),
        data_dir / "speechocean762_train",
    )


def esc10mix_tables(data_dir: Path, scratch: Path) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """(train, test, audio folder): 500 mixtures of 1-2 sources, folds 1-4 train and fold 5 test;
    group = the mixtures linked by a shared source recording."""
    sources = pd.read_csv(data_dir / "esc10/esc10.csv", dtype=str)
    recording = dict(zip(sources["filename"], sources["src_file"]))
    plan = plan_mixtures(sources, 500, SEED, max_sources=2)
    out = scratch / "mixtures"
    if not (out / f"{plan['id'].iloc[-1]}.flac").is_file():
        write_mixtures(plan, data_dir / "esc10", out, 5.0)
    parts = [s.split(SOURCE_SEP) for s in plan["sources"]]
    keys = [np.asarray([recording[p[k]] if k < len(p) else "" for p in parts], dtype=object) for k in range(2)]
    table = pd.DataFrame(
        {
            "id": plan["id"],
            "path": plan["id"] + ".flac",
            "labels": plan["labels"],
            "group": [f"r{g}" for g in merge_groups(keys)],
        }
    )
    is_test = plan["fold"].astype(str) == "5"
    return table[~is_test].reset_index(drop=True), table[is_test].reset_index(drop=True), out


def write_run(name: str, mode: str, train: pd.DataFrame, test: pd.DataFrame, audio: Path, workdir: Path, cache: Path):
    setup = SETUPS[name]
    label = "total_mean" if name == "speechocean762" else "labels"
    workdir.mkdir(parents=True, exist_ok=True)
    columns = ["id", "path", label] + (["group"] if mode == "true" else [])
    train[columns].to_csv(workdir / "train.csv", index=False)
    test[["id", "path"]].to_csv(workdir / "test.csv", index=False)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config.update(
        demo={"enabled": False},
        cache_dir=str(cache),  # one embedding cache for the three runs: each clip is embedded once
        data={
            "train_csv": str(workdir / "train.csv"),
            "test_csv": str(workdir / "test.csv"),
            "sample_submission": None,
            "train_audio_dir": str(audio),
            "test_audio_dir": str(audio),
            "id_column": "id",
            "path_column": "path",
            "label_columns": [label],
            "group_column": "group" if mode == "true" else None,
            "fold_column": None,
        },
        task={"kind": setup["kind"], **({"label_sep": ","} if setup["kind"] == "multilabel" else {})},
        cv={"n_folds": 5, "auto_groups": "auto" if mode == "auto" else False},
        # one embed job per backbone and split: on 2 busy cores a job's start-up costs more than its clips
        audio={**config.get("audio", {}), "shard_clips": 5000},
        backbones=setup["backbones"],
        heads=HEADS,
        seed=SEED,
    )
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def test_score(workdir: Path, test: pd.DataFrame, name: str) -> dict:
    """The submitted blend's real score on the held-out groups (its test predictions against their labels)."""
    task = load_task(workdir / "results/task.json")
    blend = load_npz(workdir / "results/blend/test.npz")
    truth = test.set_index("id").loc[blend["ids"].astype(str)]
    if name == "speechocean762":
        y = truth["total_mean"].astype(float).to_numpy()[:, None]
    else:
        y = np.stack([np.isin(task.classes, s.split(",")) for s in truth["labels"]]).astype(float)
    return metrics.score(y, blend["P"].astype(np.float64), task)


def collect_run(workdir: Path, test: pd.DataFrame, name: str, seconds: float) -> dict:
    summary = json.loads((workdir / "results/metrics.json").read_text())
    task_json = json.loads((workdir / "results/task.json").read_text())
    primary = SETUPS[name]["primary"]
    nested = summary["blend"]["nested"]["overall"]
    weighted = summary["blend"].get("shift_weighted") or {}
    out = {
        "seconds": round(seconds, 1),
        "fold_scheme": task_json["fold_scheme"],
        "nested": nested[primary],
        "in_sample": summary["blend"]["in_sample"]["overall"][primary],
        "test": test_score(workdir, test, name)[primary],
        "shift_auc": summary["shift"]["auc"],
        "shift_weighted": (weighted.get("overall") or {}).get(primary),
        "effective_n": weighted.get("effective_n"),
        "n_train": task_json["n_train"],
    }
    if "auto_groups" in task_json:
        out["auto_groups"] = task_json["auto_groups"]
        step = workdir / "results/benchmarks/auto_groups.tsv"
        if step.is_file():
            out["auto_groups_seconds"] = round(float(pd.read_csv(step, sep="\t")["s"].iloc[0]), 1)
    return out


def clustering(workdir: Path, train: pd.DataFrame, name: str) -> dict:
    """The auto run's clusters against the true groups, and the same embeddings cut at other thresholds."""
    found = pd.read_csv(workdir / "results/validation/auto_groups.csv", dtype=str)
    true = train.set_index("id").loc[found["id"], "group"].to_numpy()
    out = {"at_default": purity(found["group"].to_numpy(), true)}
    shards = sorted((workdir / "results/embeddings/resemblyzer").glob("train*.npz"))
    if shards:  # the grouping backbone is one of the run's backbones: sweep the threshold
        ids, X = load_embeddings(shards)
        true = train.set_index("id").loc[ids, "group"].to_numpy()
        out["sweep"] = {str(t): purity(cluster_groups(X, t), true) for t in THRESHOLDS}
    return out


def embed_through_cache(rows: list, cache: Path) -> tuple[list[str], np.ndarray]:
    """(ids, pooled embeddings) of ``rows`` under the grouping backbone, read back from (or added to) the
    embedding cache the workflow runs filled (same key as the auto_groups embed jobs at max_seconds 60)."""
    from audiofold.auto_groups import DEFAULT_BACKBONE
    from audiofold.backbones import build_backbone, split_backbone_config
    from audiofold.cache import EmbeddingCache, config_key
    from audiofold.embed import embed_clips

    params, extraction = split_backbone_config(DEFAULT_BACKBONE)
    backbone = build_backbone("auto_groups", params)
    store = EmbeddingCache(str(cache), config_key(DEFAULT_BACKBONE, 60))
    with tempfile.TemporaryDirectory(prefix="auto_groups") as tmp:
        shard = Path(tmp) / "train.npz"
        embed_clips(rows, backbone, shard, max_seconds=60, cache=store, threads=1, **extraction)
        return load_embeddings([shard])


def clustering_from_cache(name: str, train: pd.DataFrame, audio: Path, cache: Path) -> dict:
    """Threshold sweep on the grouping backbone's embeddings read back from the cache (esc10mix: the
    auto_groups step embedded them itself)."""
    rows = [(i, str(audio / p), "decode") for i, p in zip(train["id"], train["path"])]
    ids, X = embed_through_cache(rows, cache)
    true = train.set_index("id").loc[ids, "group"].to_numpy()
    return {str(t): purity(cluster_groups(X, t), true) for t in THRESHOLDS}


def calibration(train: pd.DataFrame, test: pd.DataFrame, audio: Path, cache: Path) -> dict:
    """How the default threshold was chosen: adjusted Rand index per threshold on each half of
    speechocean762's 125 speakers (alternate speakers); the default is the best on half A."""
    table = pd.concat([train, test], ignore_index=True)
    rows = [(i, str(audio / p), "decode") for i, p in zip(table["id"], table["path"])]
    ids, X = embed_through_cache(rows, cache)
    group = table.set_index("id").loc[ids, "group"].to_numpy()
    speakers = sorted(set(group))
    half = np.asarray([speakers.index(g) % 2 for g in group])
    grid = [round(t, 3) for t in np.arange(0.2, 0.3751, 0.025)]
    out = {}
    for part, label in ((0, "A"), (1, "B")):
        rows_in = half == part
        out[label] = {str(t): purity(cluster_groups(X[rows_in], t), group[rows_in])["adjusted_rand"] for t in grid}
    out["chosen_on_A"] = float(max(out["A"], key=out["A"].get))
    return out


def render(results: dict) -> str:
    lines = [
        "# Pseudo-groups and the shift-weighted estimate (benchmarks/auto_groups.py)",
        "",
        "Each data set runs through the real workflow three times, only the folds differing: `none` (no "
        "group column, cv.auto_groups false), `auto` (no group column, cv.auto_groups auto: pseudo-groups "
        "from resemblyzer embeddings at the default threshold) and `true` (the known groups as "
        "data.group_column). The test set is held-out groups with known labels: `test` is the "
        "submission's real score there. `nested` is the honest OOF estimate, `shift-weighted` the nested "
        "OOF rows weighted by the adversarial odds (only where the shift check fires; ESS = effective "
        "sample size). Heads: linear only (the lightest setup that answers the question).",
        "",
        f"Measured {results['date']}, 2 shared CPU cores (nice 5).",
    ]
    for name, entry in results["datasets"].items():
        primary = SETUPS[name]["primary"]
        lines += [
            "",
            f"## {name} ({entry['description']})",
            "",
            f"| folds | groups | nested {primary} | test {primary} (unseen groups) | nested − test | shift AUC | "
            f"shift-weighted {primary} (ESS) | wall s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for mode in MODES:
            run = entry["runs"].get(mode)
            if not run:
                continue
            groups = (
                f"{run['auto_groups']['n_groups']} pseudo ({'used' if run['auto_groups']['used'] else 'not used'})"
                if "auto_groups" in run
                else ("true" if mode == "true" else "-")
            )
            weighted = (
                f"{run['shift_weighted']:.3f} ({run['effective_n']:.0f} of {run['n_train']})"
                if run["shift_weighted"] is not None
                else "not computed (no shift)"
            )
            lines.append(
                f"| {mode} | {groups} | {run['nested']:.3f} | {run['test']:.3f} | {run['nested'] - run['test']:+.3f} | "
                f"{run['shift_auc']:.3f} | {weighted} | {run['seconds']:.0f} |"
            )
        runs = entry["runs"]
        if "auto" in runs and "true" in runs:
            gap = runs["auto"]["nested"] - runs["true"]["nested"]
            lines += [
                "",
                f"**auto − true nested {primary}: {gap:+.3f}** (target: within 0.02: "
                f"{'met' if abs(gap) <= 0.02 else 'NOT met'}). auto_groups step: "
                f"{runs['auto'].get('auto_groups_seconds', 'n/a')} s. Clustering at the default threshold "
                f"{DEFAULT_THRESHOLD}: {fmt_purity(entry['clustering']['at_default'])}.",
            ]
        if entry["clustering"].get("sweep"):
            lines += [
                "",
                "| threshold | clusters | purity | completeness | split true groups | adjusted Rand |",
                "|---|---|---|---|---|---|",
            ]
            for t, q in entry["clustering"]["sweep"].items():
                lines.append(
                    f"| {t} | {q['n_clusters']} (true {q['n_true_groups']}) | {q['purity']:.3f} | "
                    f"{q['completeness']:.3f} | {q['split_groups']} | {q['adjusted_rand']:.3f} |"
                )
    if "calibration" in results:
        cal = results["calibration"]
        lines += [
            "",
            "## How the default threshold was chosen",
            "",
            "Adjusted Rand index of the clusters against speechocean762's speakers (all 750 clips, resemblyzer "
            "embeddings), the speakers split into two halves (alternate speakers): the default "
            f"{cal['chosen_on_A']} is the best on half A; half B is the check.",
            "",
            "| threshold | " + " | ".join(cal["A"]) + " |",
            "|---|" + "---|" * len(cal["A"]),
            "| half A | " + " | ".join(f"{v:.3f}" for v in cal["A"].values()) + " |",
            "| half B | " + " | ".join(f"{v:.3f}" for v in cal["B"].values()) + " |",
        ]
    if results.get("notes"):
        lines += ["", "## Reading", ""] + [f"- {note}" for note in results["notes"]]
    return "\n".join(lines) + "\n"


def fmt_purity(q: dict) -> str:
    return (
        f"{q['n_clusters']} clusters for {q['n_true_groups']} true groups, purity {q['purity']:.3f}, completeness "
        f"{q['completeness']:.3f} ({q['split_groups']} true groups split), adjusted Rand {q['adjusted_rand']:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=DATASETS_DIR)
    parser.add_argument("--scratch", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/auto_groups")
    args = parser.parse_args()
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="auto_groups"))
    cache = scratch / "cache"
    previous = json.loads(args.out.with_suffix(".json").read_text()) if args.out.with_suffix(".json").is_file() else {}
    results = {"date": time.strftime("%Y-%m-%d"), "datasets": previous.get("datasets", {})}
    for key in ("calibration", "notes"):  # written by hand after a run (notes) or by the speechocean762 run
        if key in previous:
            results[key] = previous[key]
    for name in args.datasets:
        if name == "speechocean762":
            train, test, audio = speechocean_tables(args.data_dir)
            description = f"{len(train)} training clips of {train['group'].nunique()} speakers, {len(test)} test clips of {test['group'].nunique()} others"
        else:
            (scratch / name).mkdir(parents=True, exist_ok=True)
            train, test, audio = esc10mix_tables(args.data_dir, scratch / name)
            description = (
                f"{len(train)} training mixtures in {train['group'].nunique()} source groups (largest "
                f"{train['group'].value_counts().iloc[0]}), {len(test)} test mixtures from other recordings"
            )
        entry = results["datasets"].get(name, {"runs": {}})
        entry["description"] = description
        for mode in args.modes:
            workdir = scratch / name / mode
            write_run(name, mode, train, test, audio, workdir, cache)
            # one torch thread per job: on shared busy cores two spinning threads cost 10x the CPU time
            seconds, _ = _run_workflow(
                f"{name}/{mode}", workdir, args.cores, "--set-threads", "embed=1", "auto_groups=1"
            )
            entry["runs"][mode] = collect_run(workdir, test, name, seconds)
            print(name, mode, entry["runs"][mode], flush=True)
            if mode == "auto":
                entry["clustering"] = clustering(workdir, train, name)
                if "sweep" not in entry["clustering"]:
                    entry["clustering"]["sweep"] = clustering_from_cache(name, train, audio, cache)
        results["datasets"][name] = entry
        if name == "speechocean762":
            results["calibration"] = calibration(train, test, audio, cache)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
        args.out.with_suffix(".md").write_text(render(results))
    print(render(results))


if __name__ == "__main__":
    main()
