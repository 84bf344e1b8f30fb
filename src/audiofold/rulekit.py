"""What every rule script shares: logging to the rule's log file, thread limits, clean error exits."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .errors import AudiofoldError


def setup_logging(log_file: str | os.PathLike | None = None, level: int = logging.INFO) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w", encoding="utf-8"))
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers, force=True)


def limit_threads(n: int) -> None:
    """Keep BLAS/torch inside the rule's ``threads`` so parallel jobs do not oversubscribe the CPU."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        from threadpoolctl import threadpool_limits

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
    started = time.perf_counter()
    wildcards = dict(smk.wildcards.items()) if hasattr(smk.wildcards, "items") else {}
    log.info("rule %s %s started", smk.rule, wildcards or "")
    try:
        main(smk)
    except AudiofoldError as exc:
        log.error("%s", exc)
        sys.exit(1)
    log.info("rule %s done in %.1fs; wrote %s", smk.rule, time.perf_counter() - started, describe_outputs(smk.output))


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
