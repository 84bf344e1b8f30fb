"""The last lines of a run (the Snakefile's ``onsuccess`` and ``onerror``): what it made, or what failed.

On success, from ``metrics.json``: where the submission is, the nested blend score (the estimate of what
the submission scores) beside the in-sample one (chosen and scored on the same OOF rows) and the nested
best single candidate, on the task's primary metric; any train/test shift, duplicate-clip or "single
beats blend" warning; and the command that renders the HTML report. On error, from Snakemake's main
log: each failed rule, its log file and the error the rule wrote there.

Neither ever fails the run: a summary that cannot be made is one line saying why.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from .errors import capped
from .io import read_json

HEADER = "audiofold:"
# Snakemake 9's job error block ("Error in rule X:" or the bare "Error in rule X, jobid: N"), the
# "rule X:" lines of a failed group's job list, and the "log:" line under either.
ERROR_IN_RULE = re.compile(r"^\s*Error in rule ([\w-]+)(?::|,)")
GROUP_JOBS = re.compile(r"^\s+jobs:\s*$")
GROUP_JOB = re.compile(r"^\s+rule ([\w-]+):\s*$")
LOG_LINE = re.compile(r"^\s+log: (.*?)(?: \(check log file\(s\) for error details\))?\s*$")
# rulekit.setup_logging's format: "<date> <time> <LEVEL> <logger>: <message>", the message maybe on several lines
RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ", re.MULTILINE)
RULE_LOG_ERROR = re.compile(r"ERROR [\w.]+: (.*)", re.DOTALL)
MAX_ERROR_LINES, MAX_ERROR_CHARS = 4, 300  # of the error record shown under a failed rule


def on_success(
    results_dir: str,
    *,
    outputs: Iterable[str] | None = None,
    configfiles: Iterable[str] = (),
    overrides: dict | None = None,
    out: TextIO | None = None,
) -> None:
    """Print ``success_lines``; any failure to make them is one line, never an exception."""
    try:
        lines = success_lines(results_dir, outputs=outputs, configfiles=configfiles, overrides=overrides)
    except Exception as exc:  # the run succeeded: a broken summary must not turn it into a failure
        lines = [f"{HEADER} run complete (no summary: {capped(repr(exc))})"]
    _print(lines, out)


def on_error(log: str | Iterable[str] | None, *, out: TextIO | None = None) -> None:
    """Print ``failure_lines`` for Snakemake's main log(s) (``onerror``'s ``log``); never raises."""
    try:
        lines = failure_lines(log)
    except Exception as exc:  # Snakemake reports the failure itself; this is only a pointer
        lines = [f"{HEADER} the run failed (failed rules not found: {capped(repr(exc))})"]
    _print(lines, out)


def _print(lines: list[str], out: TextIO | None) -> None:
    stream = out or sys.stdout
    for line in lines:
        print(line, file=stream)
    stream.flush()  # Snakemake writes to stderr: flushed, the summary stays after its lines


def success_lines(
    results_dir: str,
    *,
    outputs: Iterable[str] | None = None,
    configfiles: Iterable[str] = (),
    overrides: dict | None = None,
) -> list[str]:
    """The summary of ``<results_dir>/metrics.json``.

    ``outputs``: every output file of this run's jobs (those already up to date too). Without
    metrics.json among them (a run of some other target), a metrics.json on disk may be an earlier
    run's, so the summary is one line. None: metrics.json is taken as this run's.
    """
    metrics_path = Path(results_dir, "metrics.json")
    if outputs is not None and os.path.normpath(metrics_path) not in {os.path.normpath(p) for p in outputs}:
        return [f"{HEADER} run complete ({metrics_path} is not among its outputs: no score summary)"]
    if not metrics_path.is_file():
        return [f"{HEADER} run complete ({metrics_path} not found: no score summary)"]
    summary = read_json(metrics_path)
    submission = Path(results_dir, "submission.csv")
    lines = [
        f"{HEADER} run complete",
        f"  submission: {submission}" + ("" if submission.is_file() else " (missing)"),
        *score_lines(summary),
        *warning_lines(summary, results_dir),
        f"  HTML report: {report_command(results_dir, configfiles, overrides)}",
    ]
    return lines


def score_lines(summary: dict) -> list[str]:
    """The nested blend, the in-sample blend and the nested best single on the primary metric."""
    primary = summary["primary"]
    better = "higher" if summary["greater_is_better"] else "lower"
    blend = summary["blend"]
    nested = blend.get("nested") or {}
    single = nested.get("best_single") or {}
    chosen = ", ".join(sorted(set(single.get("chosen") or [])))
    rows = [
        ("blend, nested (honest: the submission's estimate)", _score(nested, primary, nested.get("skipped"))),
        ("blend, in-sample (chosen on the same OOF rows)", _score(blend["in_sample"], primary)),
        (f"best single, nested ({chosen or 'honest'})", _score(single, primary)),
    ]
    width = max(len(label) for label, _ in rows)
    return [f"  {primary} ({better} is better), out of fold:"] + [
        f"    {label.ljust(width)}  {value}" for label, value in rows
    ]


def _score(entry: dict, primary: str, skipped: str | None = None) -> str:
    value = (entry.get("overall") or {}).get(primary)
    if value is None:
        return f"not computed ({skipped})" if skipped else "not computed"
    return f"{value:.4f}"


def warning_lines(summary: dict, results_dir: str) -> list[str]:
    """One WARNING line per thing that makes the OOF scores overstate or the blend doubtful."""
    lines = []
    shift = summary.get("shift") or {}
    if shift.get("shifted"):
        line = (
            f"  WARNING: train/test shift: a classifier tells test clips from training clips with ROC AUC "
            f"{shift['auc']:.3f} on {shift['backbone']} embeddings (warns above {shift['warn_above']}); "
            "OOF scores may overstate the submission's"
        )
        weighted = summary["blend"].get("shift_weighted") or {}
        value = (weighted.get("overall") or {}).get(summary["primary"])
        if value is not None:
            line += (
                f". Shift-weighted nested estimate: {value:.4f} (worth {weighted['effective_n']:.0f} of "
                f"{weighted['n']} rows)"
            )
        lines.append(line)
    dups = summary.get("duplicates") or {}
    if dups:
        across = dups["exact_pairs_across_folds"] + dups["near_pairs_across_folds"]
        train_test = dups["exact_pairs_train_test"] + dups["near_pairs_train_test"]
        pairs = Path(results_dir, "validation", "duplicates.csv")
        if across:
            lines.append(
                f"  WARNING: {across} duplicate pair(s) of training clips lie in different folds "
                f"({dups['exact_pairs_across_folds']} identical, {dups['near_pairs_across_folds']} near): "
                f"OOF scores may overstate; see {pairs}"
            )
        if train_test:
            lines.append(
                f"  WARNING: {train_test} training clip(s) duplicate test clips "
                f"({dups['exact_pairs_train_test']} identical, {dups['near_pairs_train_test']} near); see {pairs}"
            )
    single_warning = ((summary["blend"].get("nested") or {}).get("best_single") or {}).get("warning")
    if single_warning:
        lines.append(f"  WARNING: {single_warning}")
    return lines


def report_command(results_dir: str, configfiles: Iterable[str] = (), overrides: dict | None = None) -> str:
    """``snakemake --report <results_dir>/report.html`` with the run's ``--configfile`` and ``--config``
    options (the report needs the same workflow; `make report` is this command on the default config)."""
    words = ["snakemake"]
    for path in configfiles:
        words += ["--configfile", str(path)]
    if overrides:
        words.append("--config")
        words += [f"{key}={_config_value(value)}" for key, value in overrides.items()]
    words += ["--report", str(Path(results_dir, "report.html"))]
    return shlex.join(words)


def _config_value(value) -> str:
    """How ``--config`` spells a value Snakemake parsed from it (its parser reads nested ones as YAML)."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def failure_lines(log: str | Iterable[str] | None) -> list[str]:
    """Per failed job in Snakemake's main log(s), "rule X failed: see <its log>" and the error the rule
    wrote to that log; one line pointing at the main log where no failed job is found."""
    logs = [log] if isinstance(log, (str, os.PathLike)) else list(log or [])
    failed: dict[tuple[str, tuple[str, ...]], None] = {}  # ordered and without repeats
    for path in logs:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for rule, rule_logs in failed_jobs(text):
            failed[(rule, tuple(rule_logs))] = None
    where = ", ".join(map(str, logs)) or "Snakemake's output above"
    if not failed:
        return [f"{HEADER} the run failed; see {where}"]
    lines = [f"{HEADER} the run failed"]
    for rule, rule_logs in failed:
        if not rule_logs:
            lines.append(f"  rule {rule} failed (it has no log file): see {where}")
            continue
        lines.append(f"  rule {rule} failed: see {', '.join(rule_logs)}")
        lines += [f"    {line}" for rule_log in rule_logs for line in last_error(rule_log)]
    return lines


def failed_jobs(text: str) -> list[tuple[str, list[str]]]:
    """(rule, its log files) of each failed job in the text of a Snakemake 9 log, in order."""
    jobs: list[tuple[str, list[str]]] = []
    current, in_group = None, False
    for line in text.splitlines():
        if match := ERROR_IN_RULE.match(line):
            current, in_group = (match.group(1), []), False
            jobs.append(current)
        elif GROUP_JOBS.match(line):  # a failed group's block lists its jobs (the group's own logs come before)
            current, in_group = None, True
        elif in_group and (match := GROUP_JOB.match(line)):
            current = (match.group(1), [])
            jobs.append(current)
        elif current and (match := LOG_LINE.match(line)):
            current[1].extend(p for p in match.group(1).split(", ") if p)
        elif line and not line[0].isspace():
            current, in_group = None, False  # the block ended
    # the bare "Error in rule X, jobid: N" line may come with the block, which names the logs
    named = {rule for rule, logs in jobs if logs}
    return [(rule, logs) for rule, logs in jobs if logs or rule not in named]


def last_error(rule_log: str) -> list[str]:
    """The last ERROR record a rule script wrote to its log (rulekit's format): its first lines, capped;
    [] without one (an unexpected exception's traceback goes to Snakemake's output, not the log)."""
    try:
        text = Path(rule_log).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    records = RECORD_START.split(text)
    for record in reversed(records):
        if match := RULE_LOG_ERROR.match(record):
            lines = match.group(1).rstrip().splitlines()
            shown = [capped(line, MAX_ERROR_CHARS) for line in lines[:MAX_ERROR_LINES]]
            return shown + (["..."] if len(lines) > MAX_ERROR_LINES else [])
    return []
