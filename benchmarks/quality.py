"""Quality on real audio: backbone x head -> metric (mean ± std over folds), by running the workflow.

Data sets (read in place from ../shared/datasets, see its README for the published references):
- ``esc10``: 400 clips, 10 classes, the 5 official folds (``data.fold_column``); accuracy.
- ``speechocean762``: 750 utterances, ``total_mean`` (0-10) as a rating regression, 5 folds grouped
  by speaker; Pearson r and RMSE.
- ``esc10mix``: an FSD-style multilabel set built here from ESC-10: each 5 s mixture sums 1-3 clips
  of different classes at random gains (seeded), labelled with the set of classes as one label
  string. A mixture's sources all come from one official ESC-10 fold and that fold is the
  mixture's fold, so no source recording is on both sides of a split; LWLRAP and mAP. The
  mixtures are written to the scratch folder, never into the repository.

For each data set a scratch folder gets a labels table (ids + paths into the shared folder, or into
the scratch folder's mixtures), a small test table (a handful of training files under new ids; the
workflow needs a test set, the benchmark ignores its predictions) and a config, then the real
Snakefile runs. The table is read from each candidate's ``results/oof/{backbone}/{head}/scores.json``
(every variant a head writes is a row, whatever its name) and ``results/metrics.json``: the
in-sample blend, the nested blend (``blend.nested``, re-chosen per outer fold: the honest
estimate), the blend method and the best single candidate. Each data set has a target on the
nested score (the issue's "Quality on real data"); the report says whether it is met.

    .venv/bin/python benchmarks/quality.py [--datasets esc10 speechocean762 esc10mix]
        [--backbones logmel mfcc] [--heads linear knn lgbm prompt] [--head-config heads.yaml]
        [--max-clips 100] [--cores 2] [--epochs 30] [--data-dir ../shared/datasets]

``--head-config FILE.yaml``: a mapping head name -> options that replaces the built-in heads block
(``--heads`` then picks from it); ``--backbone-config FILE.yaml`` does the same for the backbones
(e.g. ``panns: {type: panns, checkpoint: ~/Cnn14_mAP=0.431.pth}`` where the weights are at hand);
``--finetune-config FILE.yaml`` adds a ``finetune:`` block (fine-tuned candidates ``ft-<name>/finetune``).
A head whose type does not fit a data set's task kind is left out of that data set's run, and the
report lists it. ``--render`` only rewrites quality.md from
quality.json (after a change to the report), running nothing.
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

from audiofold.metrics import GREATER_IS_BETTER
from audiofold.pseudo import SUFFIX as PSEUDO_SUFFIX

ROOT = Path(__file__).resolve().parents[1]
DATASETS_DIR = ROOT.parent / "shared" / "datasets"
SEED = 0
DEFAULT_BACKBONES = {
    "logmel": {"type": "logmel", "sample_rate": 16000, "n_mels": 64, "keep_sequence": True},
    "mfcc": {"type": "mfcc", "sample_rate": 16000, "n_mfcc": 20},
    "aisfx": {"type": "aisfx"},
    "distillmos": {"type": "distillmos", "keep_sequence": True},
    "resemblyzer": {"type": "resemblyzer"},
    "whisper": {"type": "whisper"},
    "speech_embedding": {"type": "speech_embedding"},
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
        "mlp": {"type": "mlp", "inputs": "pooled", "epochs": epochs},
    }


DATASETS = {
    "esc10": {
        "csv": "esc10/esc10.csv",
        "audio": "esc10",
        "label": "category",
        "kind": "classification",
        "fold_column": "fold",
        "group_column": None,
        "strata": ["fold", "category"],
        "metrics": ["accuracy", "macro_f1"],
        "target": {"metric": "accuracy", "at_least": 0.95},
    },
    "speechocean762": {
        "csv": "speechocean762_train/labels.csv",
        "audio": "speechocean762_train",
        "label": "total_mean",
        "kind": "regression",
        "fold_column": None,
        "group_column": "speaker",
        "strata": ["total_mean"],  # binned into quintiles
        "metrics": ["pearson", "rmse"],
        "target": {"metric": "pearson", "at_least": 0.78},
    },
    "esc10mix": {
        "csv": "esc10/esc10.csv",  # the sources
        "audio": "esc10",
        "label": "labels",
        "kind": "multilabel",
        "fold_column": "fold",
        "group_column": None,
        "mixtures": 500,
        "seconds": 5.0,
        "metrics": ["lwlrap", "map"],
        "target": {"metric": "lwlrap", "at_least": 0.85},
    },
}
MIX_SAMPLE_RATE = 16000
MIX_MAX_SOURCES = 3
MIX_GAIN_DB = (-12.0, 0.0)
MIX_PEAK = 0.99  # a mixture louder than this is scaled down as a whole (no clipping, labels unchanged)
SOURCE_SEP = "|"  # between the source files of a mixture in mixtures.csv (ESC-10 names hold spaces, not bars)


def available_backbones(backbones: dict[str, dict]) -> dict[str, dict]:
    """The backbones this install can build (the packaged ones need their extra packages, a
    checkpoint-based one its weights)."""
    from audiofold.backbones import build_backbone

    usable = {}
    for name, params in backbones.items():
        try:
            build_backbone(name, params)
            usable[name] = params
        except Exception as exc:  # noqa: BLE001 - report and skip a backbone this machine lacks
            print(f"skipping backbone {name}: {exc}", file=sys.stderr)
    return usable


# ---- the data sets ------------------------------------------------------------------------------
def subsample(table: pd.DataFrame, n: int | None, strata: list[str], seed: int = SEED) -> pd.DataFrame:
    """``n`` rows of ``table``, stratified on the ``strata`` columns (a numeric one binned into quintiles);
    the whole table when ``n`` is None or not smaller."""
    from sklearn.model_selection import train_test_split

    if n is None or n >= len(table):
        return table
    keys = [
        pd.qcut(pd.to_numeric(table[c]), 5, labels=False, duplicates="drop").astype(str)
        if pd.to_numeric(table[c], errors="coerce").notna().all() and table[c].nunique() > 20  # a rating
        else table[c].astype(str)
        for c in strata
    ]
    stratum = keys[0].str.cat(keys[1:], sep="/") if len(keys) > 1 else keys[0]
    if n < stratum.nunique():
        raise SystemExit(
            f"--max-clips {n} is below the {stratum.nunique()} strata ({' x '.join(strata)}) it keeps; "
            f"use at least {stratum.nunique()}."
        )
    keep, _ = train_test_split(table.index, train_size=n, stratify=stratum, random_state=seed)
    return table.loc[sorted(keep)]


def plan_mixtures(
    sources: pd.DataFrame,
    n_mixtures: int,
    seed: int = SEED,
    *,
    label: str = "category",
    fold: str = "fold",
    path: str = "filename",
    max_sources: int = MIX_MAX_SOURCES,
) -> pd.DataFrame:
    """Which clips each mixture sums: 1..max_sources clips of different classes, all from one fold.

    The mixtures are spread evenly over the folds. Columns: id, fold (the sources' fold), labels
    (the sources' classes, sorted, joined by ','), sources (their files, joined by '|'), gains_db
    and offsets (per source, ';'-joined: the gain, and where in the clip or mixture it starts as a
    fraction of the slack, see ``write_mixtures``)."""
    rng = np.random.default_rng(seed)
    fold_ids = sorted(sources[fold].unique())
    counts = [len(part) for part in np.array_split(np.arange(n_mixtures), len(fold_ids))]
    rows = []
    for fold_id, count in zip(fold_ids, counts):
        by_class = {c: g[path].tolist() for c, g in sources[sources[fold] == fold_id].groupby(label)}
        classes = sorted(by_class)
        for _ in range(count):
            k = int(rng.integers(1, min(max_sources, len(classes)) + 1))
            chosen = sorted(rng.choice(classes, size=k, replace=False).tolist())
            rows.append(
                {
                    "id": f"m{len(rows):04d}",
                    "fold": fold_id,
                    "labels": ",".join(chosen),
                    "sources": SOURCE_SEP.join(by_class[c][rng.integers(len(by_class[c]))] for c in chosen),
                    "gains_db": ";".join(f"{g:.2f}" for g in rng.uniform(*MIX_GAIN_DB, size=k)),
                    "offsets": ";".join(f"{u:.4f}" for u in rng.uniform(0, 1, size=k)),
                }
            )
    return pd.DataFrame(rows)


def write_mixtures(
    plan: pd.DataFrame, audio_dir: Path, out_dir: Path, seconds: float, sr: int = MIX_SAMPLE_RATE
) -> list[str]:
    """Write each planned mixture as ``out_dir/{id}.flac`` (mono, ``sr``, 16 bit); return the file names.

    A source longer than the mixture is cut at ``offset`` x its excess, a shorter one starts at
    ``offset`` x the room left; each is scaled by its gain before the sum."""
    import soundfile as sf

    from audiofold.audio import load_mono

    length = int(round(seconds * sr))
    out_dir.mkdir(parents=True, exist_ok=True)
    loaded: dict[str, np.ndarray] = {}
    names = []
    for row in plan.itertuples():
        mix = np.zeros(length, dtype=np.float64)
        for source, gain_db, offset in zip(
            row.sources.split(SOURCE_SEP), row.gains_db.split(";"), row.offsets.split(";")
        ):
            if source not in loaded:
                loaded[source] = load_mono(audio_dir / source, sr)
            wave, gain = loaded[source], 10 ** (float(gain_db) / 20)
            if len(wave) >= length:
                start = int(float(offset) * (len(wave) - length))
                mix += gain * wave[start : start + length]
            else:
                start = int(float(offset) * (length - len(wave)))
                mix[start : start + len(wave)] += gain * wave
        peak = np.abs(mix).max()
        if peak > MIX_PEAK:
            mix *= MIX_PEAK / peak
        sf.write(out_dir / f"{row.id}.flac", mix.astype(np.float32), sr, subtype="PCM_16")
        names.append(f"{row.id}.flac")
    return names


def write_dataset(
    name: str, workdir: Path, max_clips: int | None = None, seed: int = SEED, data_dir: Path = DATASETS_DIR
) -> dict:
    spec = DATASETS[name]
    table = pd.read_csv(data_dir / spec["csv"], dtype=str)
    audio_dir = data_dir / spec["audio"]
    if "mixtures" in spec:
        plan = plan_mixtures(table, min(spec["mixtures"], max_clips or spec["mixtures"]), seed)
        plan.to_csv(workdir / "mixtures.csv", index=False)  # which sources and gains made each mixture
        plan["path"] = write_mixtures(plan, audio_dir, workdir / "mixtures", spec["seconds"])
        table = plan.rename(columns={"path": "filename"})
        audio_dir = workdir / "mixtures"
    else:
        table = subsample(table, max_clips, spec["strata"], seed)
    train = pd.DataFrame(
        {"id": [f"c{i:04d}" for i in range(len(table))], "path": table["filename"], spec["label"]: table[spec["label"]]}
    )
    for column in (spec["fold_column"], spec["group_column"]):
        if column:
            train[column] = table[column].values
    test = pd.DataFrame({"id": [f"t{i:02d}" for i in range(8)], "path": table["filename"].iloc[:8].values})
    train.to_csv(workdir / "train.csv", index=False)
    test.to_csv(workdir / "test.csv", index=False)
    return {
        "train_csv": str(workdir / "train.csv"),
        "test_csv": str(workdir / "test.csv"),
        "train_audio_dir": str(audio_dir),
        "test_audio_dir": str(audio_dir),
        "id_column": "id",
        "path_column": "path",
        "label_columns": [spec["label"]],
        "group_column": spec["group_column"],
        "fold_column": spec["fold_column"],
    }


# ---- the heads ----------------------------------------------------------------------------------
def heads_for(kind: str, heads: dict[str, dict], backbones: dict[str, dict]) -> tuple[dict[str, dict], dict[str, str]]:
    """(the heads block for a task of ``kind``, {left-out head: why}).

    A head is left out where its class refuses the kind (e.g. prompt on multilabel) or where it
    reads frame sequences and no chosen backbone keeps them; a sequence head without its own
    ``backbones`` list gets the backbones that keep sequences."""
    from audiofold.errors import ConfigError
    from audiofold.heads import HEADS, build_head
    from audiofold.registry import keyword_options
    from audiofold.tasks import TaskSpec

    probe = TaskSpec(
        kind,
        "id",
        ["y"],
        classes=None if kind in ("regression", "multitarget") else ["a", "b"],
        label_sep="," if kind == "multilabel" else None,
        scale={"min": 0.0, "max": 10.0, "step": None} if kind in ("regression", "multitarget") else None,
    )
    chosen, left_out = {}, {}
    sequence_backbones = [b for b, options in backbones.items() if options.get("keep_sequence")]
    for name, params in heads.items():
        options = {k: v for k, v in params.items() if k != "backbones"}
        try:
            build_head(options, probe, SEED, name)
        except ConfigError as exc:
            left_out[name] = str(exc)
            continue
        params = dict(params)
        inputs = params.get("inputs", keyword_options(HEADS[params["type"]]).get("inputs"))
        if inputs == "sequence" and "backbones" not in params:
            if not sequence_backbones:
                left_out[name] = "reads frame sequences; no chosen backbone keeps them"
                continue
            params["backbones"] = sequence_backbones
        chosen[name] = params
    return chosen, left_out


# ---- the run ------------------------------------------------------------------------------------
def run_dataset(
    name: str,
    backbones: dict[str, dict],
    heads: dict[str, dict],
    cores: int,
    scratch: Path,
    reuse: bool = False,
    max_clips: int | None = None,
    data_dir: Path = DATASETS_DIR,
    pseudo_labels: bool = False,
    finetune: dict | None = None,
) -> dict:
    spec = DATASETS[name]
    workdir = scratch / name
    if reuse and (workdir / "config.yaml").is_file():  # an earlier --keep run: Snakemake redoes what is missing
        # only what was deleted (and what depends on it) reruns, not everything whose code changed
        seconds, load_before = _run_workflow(name, workdir, cores, "--rerun-triggers", "mtime")
        config = yaml.safe_load((workdir / "config.yaml").read_text())
        _, left_out = heads_for(spec["kind"], heads, config["backbones"])
        return {
            **collect(name, workdir, seconds, load_before),
            "incremental": True,
            **_described(workdir, config, left_out, max_clips),
        }
    workdir.mkdir(parents=True)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["demo"] = {"enabled": False}
    config["data"] = write_dataset(name, workdir, max_clips, data_dir=data_dir)
    config["task"] = {"kind": spec["kind"], **({"label_sep": ","} if spec["kind"] == "multilabel" else {})}
    config["cv"] = {**config.get("cv", {}), "n_folds": 5}
    config["backbones"] = dict(backbones)
    config["heads"], left_out = heads_for(spec["kind"], heads, backbones)
    config["pseudo_labels"] = {"enabled": pseudo_labels}  # round two as extra {variant}+pl candidates
    config["finetune"] = dict(finetune or {})  # fine-tuned encoders: candidates ft-<name>/finetune
    for head, why in left_out.items():
        print(f"{name}: leaving out head {head}: {why}", file=sys.stderr)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    seconds, load_before = _run_workflow(name, workdir, cores)
    return {**collect(name, workdir, seconds, load_before), **_described(workdir, config, left_out, max_clips)}


def _described(workdir: Path, config: dict, left_out: dict, max_clips: int | None) -> dict:
    """What the run was: its clip count and setup (backbones, heads as configured, teacher-student)."""
    return {
        "n_clips": len(pd.read_csv(workdir / "train.csv")),
        "max_clips": max_clips,
        "left_out": left_out,
        "setup": {
            "backbones": list(config["backbones"]),
            "heads": config["heads"],
            "pseudo_labels": bool(config.get("pseudo_labels", {}).get("enabled")),
            "finetune": config.get("finetune") or {},
        },
    }


def _run_workflow(name: str, workdir: Path, cores: int, *extra: str) -> tuple[float, float]:
    """(wall seconds, load average at the start) of one Snakemake run."""
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
    return time.perf_counter() - started, load_before


def collect(name: str, workdir: Path, seconds: float, load_before: float | None = None) -> dict:
    """The run's table (one row per candidate variant, then the blends) and its summary scores."""
    spec = DATASETS[name]
    rows, blend_weights = [], {}
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
    blend = metrics["blend"]
    if blend["in_sample"].get("per_fold"):
        blend_weights = {k: w for k, w in blend["weights"].items() if w > 0}
        label = ", ".join(f"{w:.2g}·{k}" for k, w in blend_weights.items())
        rows.append(summarise(name, "BLEND", label, blend["in_sample"]["per_fold"], spec["metrics"]))
    nested = blend.get("nested") or {}
    if nested.get("per_fold"):
        rows.append(summarise(name, "BLEND nested", "re-chosen per outer fold", nested["per_fold"], spec["metrics"]))
    return {
        "dataset": name,
        "wall_seconds": round(seconds, 1),
        "rows": rows,
        "blend_weights": blend_weights,
        "summary": summary_scores(metrics, spec["metrics"]),
        "measured": f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU cores, load average "
        + (f"{load_before:.1f} at start and " if load_before is not None else "")
        + f"{os.getloadavg()[0]:.1f} at end",
    }


def summary_scores(metrics: dict, names: list[str]) -> dict:
    """Overall OOF scores of the best single candidate (on the task's primary metric), the in-sample
    blend and the nested blend, and the blend method (as chosen on all folds, and per outer fold)."""
    primary, greater = metrics["primary"], metrics["greater_is_better"]
    candidates = metrics["candidates"]
    pick = max if greater else min
    best = pick(candidates, key=lambda k: candidates[k]["overall"][primary]) if candidates else None
    blend = metrics["blend"]
    nested = blend.get("nested") or {}
    return {
        "primary": primary,
        "best_single": {"name": best, **{m: candidates[best]["overall"].get(m) for m in names}} if best else None,
        "in_sample": {m: blend["in_sample"]["overall"].get(m) for m in names},
        "nested": {m: nested["overall"].get(m) for m in names} if nested.get("overall") else None,
        # one candidate picked per outer fold on the other folds: the fair baseline for the nested blend
        "best_single_nested": (
            {
                "chosen": single["chosen"],
                **{m: single["overall"].get(m) for m in names},
                "blend_minus_single": single.get("blend_minus_single"),
            }
            if (single := nested.get("best_single"))
            else None
        ),
        "nested_skipped": nested.get("skipped"),
        "method": blend.get("method"),
        "method_requested": blend.get("method_requested"),
        "nested_methods": [f.get("method") for f in nested.get("folds", [])],
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


# ---- the report ---------------------------------------------------------------------------------
def target_line(result: dict) -> str:
    """'target: nested accuracy ≥ 0.95: 0.918, not met' (or why it cannot be judged)."""
    target = DATASETS[result["dataset"]]["target"]
    metric, bound = target["metric"], target["at_least"]
    what = f"target: nested {metric} ≥ {bound:g}"
    nested = (result.get("summary") or {}).get("nested")
    if not nested or nested.get(metric) is None:
        why = (result.get("summary") or {}).get("nested_skipped") or "no nested score in this result"
        return f"{what}: unknown ({why})"
    value = nested[metric]
    return f"{what}: {value:.3f}, {'met' if value >= bound else 'NOT met'}"


def blend_vs_single_line(summary: dict, metric: str) -> str:
    """Whether the nested blend beats picking one candidate, both scored nested (on ``metric``)."""
    nested, single = summary.get("nested") or {}, summary.get("best_single_nested") or {}
    if nested.get(metric) is None or single.get(metric) is None:
        return "Nested blend vs nested best single: not recorded in this result."
    gain = (nested[metric] - single[metric]) * (1 if GREATER_IS_BETTER[metric] else -1)
    verdict = "at least as good" if gain >= 0 else "WORSE"
    line = f"Nested blend vs nested best single ({metric}): {gain:+.3f}, {verdict}"
    comparison = single.get("blend_minus_single") or {}
    entry = comparison.get("metrics", {}).get(metric) or {}
    if "ci_low" not in entry:
        return line + " (no bootstrap interval in this result)."
    return (
        f"{line}; paired bootstrap over {comparison['n_resamples']} resamples of the {comparison['n_units']} "
        f"{comparison['unit']}: blend minus single {entry['ci_low']:+.3f} to {entry['ci_high']:+.3f} (95 %), "
        f"the blend at least as good in {100 * entry['a_at_least_as_good']:.0f} % of them."
    )


def teacher_student_line(result: dict, metric: str) -> str:
    """The teacher-student round's gain: each ``{variant}+pl`` candidate against its round-one
    variant on the fold-mean ``metric``, and how many ``+pl`` candidates the blend weighs."""
    rows = {(r["backbone"], r["head"]): r for r in result["rows"] if not r["backbone"].startswith("BLEND")}
    gains = {}
    for (backbone, head), row in rows.items():
        if not head.endswith(PSEUDO_SUFFIX):
            continue
        base = head.removesuffix(PSEUDO_SUFFIX).removesuffix("/main")  # the main variant's row is the bare head
        if (backbone, base) in rows:
            sign = 1 if GREATER_IS_BETTER[metric] else -1
            gains[f"{backbone}/{head}"] = sign * (row[metric]["mean"] - rows[backbone, base][metric]["mean"])
    if not gains:
        return "Teacher-student round: not run in this result (benchmarks/quality.py --pseudo-labels)."
    best = max(gains, key=gains.get)
    weighted = result.get("blend_weights", {})
    in_blend = sum(name.endswith(PSEUDO_SUFFIX) for name in weighted)
    return (
        f"Teacher-student round ({metric}, fold means, each {PSEUDO_SUFFIX} candidate against its round-one "
        f"variant): {sum(g > 0 for g in gains.values())} of {len(gains)} gain, mean {np.mean(list(gains.values())):+.3f}, "
        f"best {best} {gains[best]:+.3f}; {PSEUDO_SUFFIX} candidates in the submitted blend: {in_blend} of "
        f"{len(weighted)}."
    )


def setup_line(setup: dict) -> str:
    """How the run was configured, from what run_dataset recorded."""

    def head(name: str, options: dict) -> str:
        extra = ", ".join(f"{k} {v}" for k, v in options.items() if k not in ("type", "backbones"))
        kind = options["type"] if options["type"] != name else ""
        inside = "; ".join(part for part in (kind, extra) if part)
        return f"{name} ({inside})" if inside else name

    heads = ", ".join(head(name, options) for name, options in setup["heads"].items())
    pseudo = f"; --pseudo-labels (every head also as {{variant}}{PSEUDO_SUFFIX})" if setup["pseudo_labels"] else ""
    return f"Run: backbones {', '.join(setup['backbones'])}; heads {heads}{pseudo}."


def _scores_cells(scores: dict | None, names: list[str]) -> str:
    return " | ".join("" if not scores or scores.get(m) is None else f"{scores[m]:.3f}" for m in names)


def markdown(results: list[dict]) -> str:
    lines = [
        "# Quality on real audio (benchmarks/quality.py)",
        "",
        "Per data set: the overall OOF scores of the best single candidate (the best of many on the rows "
        "it is scored on: optimistic), the blend as submitted "
        "(in-sample: its choices were made on the rows it is scored on), the nested blend (every "
        "choice re-made per outer fold on the other folds: the honest estimate, which the target is "
        "judged on) and the nested best single (one candidate picked per outer fold by its primary "
        "metric on the other folds: the honest baseline the nested blend is compared with); then every candidate's metric mean ± std over the 5 folds (OOF per fold, "
        "uncalibrated candidates; the BLEND rows are calibrated). References: ../shared/datasets/README.md.",
        "",
    ]
    for result in results:
        names = DATASETS[result["dataset"]]["metrics"]
        rerun = ", an incremental rerun of a kept run folder" if result.get("incremental") else ""
        clips = f", {result['n_clips']} clips" if result.get("n_clips") else ""
        clips += f" (--max-clips {result['max_clips']})" if result.get("max_clips") else ""
        lines += [f"## {result['dataset']} ({result['wall_seconds']} s wall{clips}{rerun})", ""]
        summary = result.get("summary")
        if summary:
            best = summary["best_single"] or {}
            method = summary["method"] or "?"
            if summary.get("method_requested") and summary["method_requested"] != method:
                method += f" (blend.method {summary['method_requested']})"
            if summary.get("nested_methods"):
                method += f"; per outer fold: {', '.join(map(str, summary['nested_methods']))}"
            lines += [
                f"**{target_line(result)}**. Blend method: {method}.",
                "",
                "| overall OOF | " + " | ".join(names) + " |",
                "|---|" + "---|" * len(names),
                f"| best single ({best.get('name')}) | {_scores_cells(best, names)} |",
                f"| BLEND in-sample (as submitted) | {_scores_cells(summary['in_sample'], names)} |",
                f"| BLEND nested (honest) | {_scores_cells(summary['nested'], names)} |",
            ]
            single = summary.get("best_single_nested")
            if single:
                picks = ", ".join(sorted(set(single["chosen"])))
                lines.append(
                    f"| best single nested (honest; picked per outer fold: {picks}) | {_scores_cells(single, names)} |"
                )
            metric = DATASETS[result["dataset"]]["target"]["metric"]
            lines += ["", blend_vs_single_line(summary, metric), "", teacher_student_line(result, metric), ""]
        else:
            lines += [f"{target_line(result)} (recorded before the nested score was).", ""]
        if result.get("setup"):
            lines += [setup_line(result["setup"]), ""]
        if result.get("note"):  # what the recorded setup cannot say
            lines += [f"Note: {result['note']}.", ""]
        if result.get("left_out"):
            lines += ["Heads left out: " + "; ".join(f"{h} ({why})" for h, why in result["left_out"].items()), ""]
        lines += [
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


def load_block(path: Path | None, default: dict[str, dict], names: list[str] | None, key: str) -> dict[str, dict]:
    """A ``heads`` or ``backbones`` block (``key``): ``default``, or ``path``'s mapping (name ->
    options with a ``type``), narrowed to ``names`` when given."""
    block, example = default, {"heads": "linear", "backbones": "panns"}[key]
    if path is not None:
        block = yaml.safe_load(path.read_text())
        if not isinstance(block, dict) or not block:
            raise SystemExit(f"{path}: must map {key} names to options (like config.yaml's {key}: block).")
        bad = [name for name, options in block.items() if not isinstance(options, dict) or "type" not in options]
        if bad:
            raise SystemExit(f"{path}: {key} {bad} need a mapping of options with a 'type' (e.g. type: {example}).")
    if names:
        unknown = [n for n in names if n not in block]
        if unknown:
            raise SystemExit(f"--{key} {unknown}: not in the {key} block; it has {', '.join(block)}")
        block = {n: block[n] for n in names}
    return block


def load_heads(path: Path | None, epochs: int, names: list[str] | None) -> dict[str, dict]:
    """The heads block: the built-in one, or ``path``'s mapping, narrowed to ``names`` when given."""
    return load_block(path, head_configs(epochs), names, "heads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--backbones", nargs="+", default=None, help="Backbones of the backbones block to run.")
    parser.add_argument(
        "--backbone-config",
        type=Path,
        default=None,
        help="YAML mapping backbone name -> options (e.g. a panns or hf backbone with its checkpoint); "
        "replaces the built-in backbones.",
    )
    parser.add_argument("--heads", nargs="+", default=None, help="Heads of the heads block to run (default: all).")
    parser.add_argument(
        "--head-config", type=Path, default=None, help="YAML mapping head name -> options; replaces the built-in heads."
    )
    parser.add_argument(
        "--finetune-config",
        type=Path,
        default=None,
        help="YAML mapping model name -> finetune options (e.g. `aisfx: {encoder: {type: aisfx}}`): fine-tuned "
        "candidates beside the heads.",
    )
    parser.add_argument("--max-clips", type=int, default=None, help="Per data set: a stratified, seeded subsample.")
    parser.add_argument(
        "--data-dir", type=Path, default=DATASETS_DIR, help="The shared data sets folder (its README lists them)."
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument(
        "--pseudo-labels", action="store_true", help="Also train the teacher-student round ({variant}+pl candidates)."
    )
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    parser.add_argument("--keep", type=Path, default=None, help="Keep the run folders here instead of a temp dir.")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="With --keep: rerun an existing run folder incrementally (delete outputs to redo them).",
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="Only rewrite quality.md from the --out folder's quality.json (after a change to the report).",
    )
    args = parser.parse_args()
    if args.render:
        (args.out / "quality.md").write_text(markdown(json.loads((args.out / "quality.json").read_text())) + "\n")
        return
    heads = load_heads(args.head_config, args.epochs, args.heads)
    backbones = available_backbones(load_block(args.backbone_config, DEFAULT_BACKBONES, args.backbones, "backbones"))
    with tempfile.TemporaryDirectory() as tmp:
        scratch = args.keep or Path(tmp)
        results = [
            run_dataset(
                d,
                backbones,
                heads,
                args.cores,
                scratch,
                args.reuse,
                args.max_clips,
                args.data_dir,
                args.pseudo_labels,
                yaml.safe_load(args.finetune_config.read_text()) if args.finetune_config else None,
            )
            for d in args.datasets
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
    for result in results:
        print(f"{result['dataset']}: {target_line(result)}")


if __name__ == "__main__":
    main()
