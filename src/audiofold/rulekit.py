"""What every rule script shares: logging to the rule's log file, thread limits, clean error exits,
and a ``*.meta.json`` sidecar beside every file the rule writes."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from .errors import AudiofoldError
from .io import describe_file, meta_path, read_json, stable_hash, write_json


def setup_logging(log_file: str | os.PathLike | None = None, level: int = logging.INFO) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w", encoding="utf-8"))
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers, force=True
    )


def limit_threads(n: int) -> None:
    """Keep BLAS/torch inside the rule's ``threads`` so parallel jobs do not oversubscribe the CPU."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        threadpool_limits(n)
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def run_rule(smk: Any, main: Callable[[Any], Any]) -> None:
    """Run a rule script's ``main(snakemake)`` with logging; a user error exits 1 with only its message."""
    log_file = smk.log[0] if len(smk.log) else None
    setup_logging(log_file)
    limit_threads(max(1, int(getattr(smk, "threads", 1) or 1)))
    log = logging.getLogger(f"audiofold.rule.{smk.rule}")
    started, started_wall = time.perf_counter(), time.time()
    wildcards = dict(smk.wildcards.items()) if hasattr(smk.wildcards, "items") else {}
    log.info("rule %s %s started", smk.rule, wildcards or "")
    try:
        main(smk)
    except AudiofoldError as exc:
        log.error("%s", exc)
        sys.exit(1)
    write_output_meta(smk, wildcards, since=started_wall)
    log.info("rule %s done in %.1fs; wrote %s", smk.rule, time.perf_counter() - started, describe_outputs(smk.output))


def optional_input(smk: Any, name: str) -> str | None:
    """The one file of a named input that the config may leave null (an empty input then): path or None."""
    value = smk.input.get(name)
    if isinstance(value, str):
        return value
    return str(value[0]) if value else None


def describe_outputs(paths) -> str:
    """'3 file(s): a.npz (1.2 MB), ...' for the rule log, so the log says what the step produced."""
    parts = []
    for p in map(Path, paths):
        if p.is_file():
            parts.append(f"{p} ({p.stat().st_size / 1e6:.2f} MB)")
        elif p.is_dir():
            parts.append(f"{p}/ ({sum(1 for q in p.rglob('*') if q.is_file())} files)")
        else:
            parts.append(f"{p} (missing)")
    return f"{len(parts)} output(s): {', '.join(parts)}" if parts else "no declared outputs"


def write_output_meta(smk: Any, wildcards: dict, since: float) -> None:
    """Beside each file output, a ``*.meta.json`` saying what made it: the step, its wildcards (backbone,
    head, fold), its params and their hash, its input files, and the file's shapes.

    Keys a step wrote into its own sidecar during this run (embed, train, decode, prepare) are kept.
    Directory outputs (the demo's audio folders) get none.
    """
    # Round-trip through JSON: params hold config values of any type (str() for the odd one).
    params = json.loads(json.dumps(dict(getattr(smk, "params", {}).items()), default=str))
    made_by = {
        "step": smk.rule,
        "wildcards": wildcards,
        "params_hash": stable_hash(params),
        "params": params,
        "inputs": [str(p) for p in getattr(smk, "input", [])],
    }
    by_sidecar: dict[Path, list[Path]] = {}
    for out in map(Path, smk.output):
        if out.is_file():
            by_sidecar.setdefault(meta_path(out), []).append(out)
    for sidecar, files in by_sidecar.items():
        # The margin covers coarse file clocks; an older sidecar is a previous run's and is replaced.
        own = read_json(sidecar) if sidecar.is_file() and sidecar.stat().st_mtime >= since - 1.0 else {}
        # x.png and x.csv share x.meta.json: it then describes both
        content = describe_file(files[0]) if len(files) == 1 else {"files": [describe_file(f) for f in files]}
        write_json(sidecar, {**made_by, **content, **own})
