"""Run-time estimate for ``audiofold doctor``: what a full ``snakemake`` run of a config costs on this machine.

    embedding  = clips x (measured per-clip cost of each backbone) + embed jobs x (start-up + model load)
    heads      = fits (folds, refit, nested fits) x (measured fit cost of each head on that backbone's dim)
    start-up   = the other jobs x (measured Python start-up of a rule script + Snakemake's bookkeeping)
    fine-tune  = per `finetune.<model>`: jobs (folds, + the refit unless cv.test_predictions is folds) x
                 (epochs x steps per epoch x measured training step + TTA crops x measured inference
                 per crop), plus the audio stores (decoding once per chunk and sample rate)

Measured here, at doctor time, on a few synthetic clips of the data's typical length and on synthetic
features: per-clip costs differ by orders of magnitude between backbones and between machines, and
benchmarks/results/extract_speed.json has a per-clip number for distillmos alone. Every Snakemake job
is a fresh interpreter, so on small data the start-ups dominate; they are measured too. The parts are
divided over the cores as the workflow's rules ask for them (embed and finetune: 2 threads a job,
train: 1). A fine-tune step is timed on the model the job builds (audiofold.finetune.time_training_step:
encoder, head, optimizer, SpecAugment and mixup) on a batch of ``crop_seconds`` of noise, in a fresh
interpreter as a job is; every epoch is counted, so early stopping can only make the run shorter.
"""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
import time
import types
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf

from ..audio import load_mono
from ..backbones import build_backbone, split_backbone_config
from ..clips import list_clips, resolve_shard_clips
from ..demo_data import CLIP_SECONDS, EVENT_TYPES
from ..embed import extract
from ..heads import build_head
from ..tables import read_data_tables
from ..tasks import TaskSpec, task_from_config
from ..train import fit_head
from .checks import Check

PROBE_CLIPS = 3  # synthetic clips timed per backbone (after one warm-up clip)
FIT_ROWS = 128  # rows of the synthetic fit per head; the time is scaled linearly to the fold's rows
DURATION_FILES = 12  # audio files whose length is read for the typical clip length
FALLBACK_CLIP_SECONDS = 5.0
EMBED_THREADS = 2  # workflow/rules/embed.smk `threads:`
FINETUNE_THREADS = 2  # workflow/rules/finetune.smk `threads:` (finetune, finetune_refit, audio_store)
FINETUNE_STEPS = 2  # training steps timed per fine-tuned model, after one warm-up step
# measure_finetune's fresh interpreter: reads the job from stdin, prints the timings and options as JSON
FINETUNE_PROBE = """
import json, sys
import numpy as np
import torch
from audiofold.finetune import FinetuneOptions, time_training_step
from audiofold.tasks import TaskSpec
job = json.load(sys.stdin)
torch.set_num_threads(job["threads"])
options = FinetuneOptions.from_config(job["params"], job["where"])
task = TaskSpec.from_dict(job["task"])
out = time_training_step(options, task, np.asarray(job["y"]), job["seed"], job["steps"])
print(json.dumps({**out, "options": {**options.to_dict(), "sample_rate": options.sample_rate}}))
"""
# Snakemake's own work per job in its main process (DAG update, output checks, the script's preamble
# written and read back), on top of the measured imports: a fast-config run of 48 jobs on 2 idle cores
# took 171 s where the jobs' imports measured ~2-4 s each and their benchmarks 4-9 s each.
SCHEDULER_SECONDS = 1.0
# Jobs that wait for everything before them, one at a time: Snakemake's start and DAG, validate,
# prepare, blend, submit, metrics; and the fixed jobs beside them (blend_nested, shift).
SERIAL_JOBS, SIDE_JOBS = 6, 2
# What the rule scripts import (scripts/*.py), timed in a fresh interpreter as each job starts one.
RULE_IMPORTS = (
    "snakemake.script",
    "audiofold.rulekit",
    "audiofold.train",
    "audiofold.collect_oof",
    "audiofold.ensemble.calibrate",
    "audiofold.ensemble.blend",
    "audiofold.embed",
    "audiofold.cache",
    "audiofold.clips",
)


@dataclass
class Workload:
    """What the run will process: clips, their typical length, embed chunks, folds."""

    n_train: int
    n_test: int
    clip_seconds: float
    source: str  # where the counts and length come from
    n_chunks: int
    paths: list[str] = field(default_factory=list)  # a few audio files, to time decoding on


@dataclass
class Estimate:
    workload: Workload
    cores: int
    parts: dict[str, float]  # label -> seconds of wall time
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    def line(self) -> str:
        parts = ", ".join(f"{name} {format_duration(s)}" for name, s in self.parts.items())
        w = self.workload
        return (
            f"estimated run time on this machine: ~{format_duration(self.total)} ({parts}) for "
            f"{w.n_train} + {w.n_test} clips of ~{w.clip_seconds:.1f} s ({w.source}) with --cores {self.cores}"
            + "".join(f"; {n}" for n in self.notes)
        )


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def clip_seconds(paths: list[str], max_seconds: float | None) -> float | None:
    """Mean length of up to DURATION_FILES of ``paths`` (evenly spaced), read from their headers."""
    step = max(1, len(paths) // DURATION_FILES)
    lengths = []
    for path in paths[::step][:DURATION_FILES]:
        try:
            lengths.append(sf.info(path).duration)
        except Exception:  # noqa: BLE001  an mp3/m4a soundfile cannot read: the other files decide
            continue
    if not lengths:
        return None
    mean = float(np.mean(lengths))
    return min(mean, max_seconds) if max_seconds else mean


def workload(config: dict) -> Workload:
    """Clip counts from the demo settings or the config's data tables, and the typical clip length."""
    shard = config["audio"].get("shard_clips", "auto")
    max_seconds = config["audio"].get("max_seconds")
    demo = config.get("demo", {})
    if demo.get("enabled"):
        n_train, n_test = int(demo["n_train"]), int(demo["n_test"])
        per_chunk = resolve_shard_clips(shard, n_train + n_test)
        chunks = math.ceil(n_train / per_chunk) + math.ceil(n_test / per_chunk)
        return Workload(n_train, n_test, float(np.mean(CLIP_SECONDS)), "demo.n_train + demo.n_test", chunks)
    clips = list_clips(config["data"], shard, missing_ok=True)
    paths = [p for p in clips["path"] if p]
    seconds = clip_seconds(paths, max_seconds)
    source = "the data tables"
    if seconds is None:
        seconds, source = (
            FALLBACK_CLIP_SECONDS,
            f"the data tables; clip length unread, {FALLBACK_CLIP_SECONDS:g} s assumed",
        )
    step = max(1, len(paths) // PROBE_CLIPS)
    return Workload(
        int((clips["split"] == "train").sum()),
        int((clips["split"] == "test").sum()),
        seconds,
        source,
        int(clips["chunk"].nunique()),
        paths[::step][:PROBE_CLIPS],
    )


@functools.cache  # one machine, one answer: doctor and its tests ask more than once
def job_startup_seconds() -> tuple[float, float]:
    """(a rule script's Python start-up, torch's import on top): timed in a fresh interpreter, as a job starts."""
    code = (
        f"import time; t0 = time.perf_counter(); import {', '.join(RULE_IMPORTS)}; "
        "t1 = time.perf_counter(); import torch; print(t1 - t0, time.perf_counter() - t1)"
    )
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    base, torch_import = (float(x) for x in out.stdout.split())
    interpreter = time.perf_counter() - started - base - torch_import  # the interpreter's own start
    return interpreter + base, torch_import


def _torch_threads(threads: int | None) -> int | None:
    """Set torch's thread count (when torch is loaded); returns the previous one."""
    torch = sys.modules.get("torch")
    if torch is None or threads is None:
        return None
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    return before


def measure_backbone(name: str, params: dict, seconds: float, paths: list[str] = (), max_seconds=None) -> dict:
    """Seconds to build the backbone, and per clip: embed (``seconds`` of synthetic noise, PROBE_CLIPS
    clips after a warm-up) and decode (a few of the data's files at the backbone's rate, when given)."""
    own, extraction = split_backbone_config(params)
    started = time.perf_counter()
    backbone = build_backbone(name, own)
    build = time.perf_counter() - started
    previous = _torch_threads(min(EMBED_THREADS, os.cpu_count() or 1))
    try:
        rng = np.random.default_rng(0)
        n = max(1, round(seconds * backbone.sample_rate))
        waves = [rng.normal(0, 0.1, n).astype(np.float32) for _ in range(PROBE_CLIPS + 1)]
        extract(waves[:1], backbone, **extraction, progress=False)  # warm-up: lazy inits, allocator
        started = time.perf_counter()
        extract(waves[1:], backbone, **extraction, progress=False)
        per_clip = (time.perf_counter() - started) / PROBE_CLIPS
    finally:
        _torch_threads(previous)
    return {
        "build": build,
        "per_clip": per_clip,
        "decode": decode_seconds(paths, backbone.sample_rate, max_seconds),
        "dim": backbone.dim,
        # a neural backbone (one with weights) imports torch in its job; the hand-crafted ones never do
        "torch": hasattr(backbone, "weights_status"),
    }


def decode_seconds(paths: list[str], sample_rate: int, max_seconds=None) -> float:
    """Seconds to decode one of ``paths`` (a few of the data's files) at ``sample_rate``; 0 without any."""
    if not paths:
        return 0.0
    started = time.perf_counter()
    for path in paths:
        load_mono(path, sample_rate, max_seconds)
    return (time.perf_counter() - started) / len(paths)


def synthetic_targets(task, rows: int, rng: np.random.Generator) -> np.ndarray:
    """Targets shaped as the prepare step writes them for ``task`` (every class present)."""
    if task.is_regression:
        scale = task.scale or {}
        low, high = scale.get("min", -1.0), scale.get("max", 1.0)
        return rng.uniform(low, high, (rows, len(task.label_columns))).astype(np.float32)
    n_classes = len(task.classes)
    if task.kind == "classification":
        return rng.permutation(np.arange(rows) % n_classes).astype(np.int64)
    y = (rng.random((rows, n_classes)) < 0.3).astype(np.float32)
    y[np.arange(rows), np.arange(rows) % n_classes] = 1.0
    return y


def measure_head(params: dict, task, dim: int, rows: int, seed: int = 0) -> float | None:
    """Seconds one fit of the head takes on ``rows`` rows of ``dim`` features (timed on at most FIT_ROWS
    synthetic rows, scaled linearly); None for heads that read frame sequences (not simulated)."""
    params = {k: v for k, v in params.items() if k != "backbones"}
    head = build_head(params, task, seed)
    if getattr(head, "inputs", "pooled") != "pooled":
        return None
    m = max(2, min(rows, FIT_ROWS))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, dim)).astype(np.float32)
    y = synthetic_targets(task, m, rng)
    started = time.perf_counter()
    fit_head(head, X, y, None)
    head.predict(X[: min(m, 16)])
    return (time.perf_counter() - started) * rows / m


def measure_finetune(name: str, params: dict, task, seed: int = 0) -> dict:
    """audiofold.finetune.time_training_step on the model of ``finetune.<name>``, in a fresh interpreter
    with the job's threads (as the job runs; importing torch here would slow every ``audiofold``
    command): seconds to build, per training step on a batch of ``batch_size`` crops, per TTA crop;
    the device it ran on; and the options (``sample_rate`` among them)."""
    rng = np.random.default_rng(seed)
    job = {
        "params": params,
        "where": f"finetune.{name}",
        "task": task.to_dict(),
        "y": synthetic_targets(task, int(params.get("batch_size", 16)), rng).tolist(),
        "seed": seed,
        "steps": FINETUNE_STEPS,
        "threads": min(FINETUNE_THREADS, os.cpu_count() or 1),
    }
    out = subprocess.run(
        [sys.executable, "-c", FINETUNE_PROBE], input=json.dumps(job), capture_output=True, text=True, timeout=900
    )
    if out.returncode:
        lines = out.stderr.strip().splitlines()
        raise RuntimeError(f"timing finetune.{name} failed: {lines[-1] if lines else out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def finetune_seconds(m: dict, n_train: int, n_test: int, config: dict) -> tuple[float, int]:
    """(Seconds of every job of one fine-tuned model, their number), from ``measure_finetune``'s ``m``:
    each fold trains on its other folds' rows (less the inner early-stopping rows), scores its early-
    stopping rows with TTA after every epoch and predicts its fold and the test clips; the refit trains
    on every row and predicts the test clips. All ``epochs`` run (the upper bound)."""
    o = types.SimpleNamespace(**m["options"])
    k = int(config["cv"]["n_folds"])
    refit = config["cv"].get("test_predictions", "refit") != "folds"
    train_rows = n_train * (k - 1) / k
    n_fit, n_stop = train_rows, n_train / k
    if o.validation == "inner":
        n_fit, n_stop = train_rows * (1 - o.inner_val_fraction), train_rows * o.inner_val_fraction

    def job(fit_rows: float, stop_rows: float, predict_rows: float) -> float:
        steps = math.ceil(max(1.0, fit_rows) / o.batch_size)
        epoch = steps * m["step"] + stop_rows * o.tta_crops * m["crop"]
        return m["build"] + o.epochs * epoch + predict_rows * o.tta_crops * m["crop"]

    seconds = k * job(n_fit, n_stop, n_train / k + n_test)
    if refit:
        seconds += job(n_train, 0.0, n_test)
    return seconds, k + refit


def estimate_task(config: dict):
    """The TaskSpec the run will infer (from the tables), or a stand-in with the demo's labels."""
    demo = config.get("demo", {})
    if demo.get("enabled"):
        kind = demo.get("kind", "regression")
        labels = {"regression": ["rating"], "multitarget": ["valence", "arousal"]}.get(kind, ["label"])
        classes = None if kind in ("regression", "multitarget") else list(EVENT_TYPES)
        return TaskSpec(kind, "id", labels, classes=classes)

    spec, _ = task_from_config(*read_data_tables(config["data"]), config)
    return spec


def fits_per_candidate(config: dict) -> tuple[int, int]:
    """(head fits, train/refit jobs) per backbone x head, as the train and refit rules run them
    (pseudo_labels.enabled: every fit is followed by a second-round fit)."""
    k = int(config["cv"]["n_folds"])
    mode = config["cv"].get("test_predictions", "refit")
    jobs = k + (mode != "folds")
    rounds = 2 if config.get("pseudo_labels", {}).get("enabled") else 1
    return rounds * (jobs + (k * (k - 1) if mode == "auto" and k >= 3 else 0)), jobs


def estimate_run_time(config: dict, cores: int | None = None, startup: tuple[float, float] | None = None) -> Estimate:
    """The estimate for ``config`` (validated, defaults filled) on this machine with ``cores`` cores
    (default: all); ``startup`` = (job start-up, torch import) seconds, measured when not given."""
    cores = cores or os.cpu_count() or 1
    work = workload(config)
    startup_s, torch_s = startup if startup is not None else job_startup_seconds()
    n_clips = work.n_train + work.n_test
    embed_slots = max(1, cores // EMBED_THREADS)
    parts: dict[str, float] = {}
    dims: dict[str, int] = {}
    max_seconds = config["audio"].get("max_seconds")
    for name, params in config["backbones"].items():
        m = measure_backbone(name, params, work.clip_seconds, work.paths, max_seconds)
        dims[name] = m["dim"]
        job = startup_s + SCHEDULER_SECONDS + (torch_s if m["torch"] else 0.0) + m["build"]
        parts[name] = (n_clips * (m["per_clip"] + m["decode"]) + work.n_chunks * job) / embed_slots

    task = estimate_task(config)
    n_folds = int(config["cv"]["n_folds"])
    rows = max(2, round(work.n_train * (n_folds - 1) / n_folds))
    fits, train_jobs = fits_per_candidate(config)
    notes, n_candidates = [], 0
    for head, params in config["heads"].items():
        seconds = 0.0
        for backbone in params.get("backbones", list(config["backbones"])):
            n_candidates += 1
            fit = measure_head(params, task, dims[backbone], rows, seed=int(config.get("seed", 0)))
            if fit is None:
                notes.append(f"head {head} reads frame sequences: its training is not in the estimate")
                break
            seconds += fits * fit
        parts[f"head {head}"] = seconds / cores
    # per candidate: train/refit jobs, collect_oof and calibrate, side by side; then the serial steps
    ft_slots = max(1, cores // FINETUNE_THREADS)
    rates: dict[int, float] = {}  # sample rate -> per-clip decode seconds of its audio store
    for model, params in (config.get("finetune") or {}).items():
        m = measure_finetune(model, params, task, seed=int(config.get("seed", 0)))
        seconds, jobs = finetune_seconds(m, work.n_train, work.n_test, config)
        job = startup_s + SCHEDULER_SECONDS + torch_s
        parts[f"finetune {model}"] = (seconds + jobs * job) / ft_slots
        rate = m["options"]["sample_rate"]
        if rate not in rates:
            rates[rate] = decode_seconds(work.paths, rate, max_seconds)
        where = "" if m["device"] == "cuda" or m["options"]["device"] != "cuda" else ", timed on CPU (no GPU here)"
        notes.append(
            f"finetune {model}: all {m['options']['epochs']} epochs counted (the upper bound: early stopping may "
            f"stop sooner){where}"
        )
    if rates:
        job = startup_s + SCHEDULER_SECONDS
        parts["audio stores"] = sum(n_clips * d + work.n_chunks * job for d in rates.values()) / ft_slots
    job = startup_s + SCHEDULER_SECONDS
    # a fine-tuned candidate's collect_oof and calibrate (its own jobs are in its part), and finetune_curves
    n_finetune = len(config.get("finetune") or {})
    parallel_jobs = n_candidates * (train_jobs + 2) + SIDE_JOBS + 2 * n_finetune + bool(n_finetune)
    parts["job start-ups"] = parallel_jobs * job / cores + SERIAL_JOBS * job
    return Estimate(work, cores, parts, notes)


def check_run_time(config: dict):
    """``audiofold doctor``'s line; a failure to estimate is a fact, not a problem."""
    try:
        return Check("run time", None, estimate_run_time(config).line())
    except Exception as exc:  # noqa: BLE001  the other checks name the broken piece
        lines = str(exc).strip().splitlines()
        return Check("run time", None, f"not estimated: {type(exc).__name__}: {lines[0] if lines else ''}")
