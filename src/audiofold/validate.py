"""The validate step: check every clip the manifest names before any heavy work, apply the bad-audio policy.

Runs after ``prepare`` and before ``decode``. Each clip is opened and its first ``max_seconds``
decoded (the same code path as the decode step, so a clip that passes here decodes there), which
keeps memory bounded however long the file is. Problems are either fatal (policy ``error``) or
handled and listed in ``validation/report.json``: ``skip`` drops bad training rows from the
targets (test rows cannot be dropped, they get zeros), ``zeros`` replaces every bad clip by
silence so every row still gets a prediction.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm.auto import tqdm

from .audio import decode_file
from .clips import MANIFEST_COLUMNS, file_state, list_clips, read_clips, write_chunk_manifests
from .errors import DataError
from .hashes import content_hashes
from .io import save_npz, write_csv, write_json
from .prepare import drop_skipped

log = logging.getLogger(__name__)

POLICIES = ("error", "skip", "zeros")
MAX_LISTED = 20
BROKEN_LINK = "a symlink that leads to no file (dangling, or a loop)"


def inspect_clip(path: str, max_seconds: float | None) -> tuple[str | None, list[str], dict]:
    """(problem or None, warnings, header info) of one clip; reads at most ``max_seconds`` of audio."""
    if not path or not isinstance(path, str):
        return "missing file: no audio file for this id", [], {}
    if os.path.islink(path) and not os.path.exists(path):
        return f"broken symlink: {BROKEN_LINK}", [], {}
    info: dict = {}
    try:
        header = sf.info(path)
        info = {
            "sample_rate": int(header.samplerate),
            "channels": int(header.channels),
            "subtype": header.subtype,
            "seconds": round(float(header.duration), 3),
        }
    except (sf.SoundFileError, RuntimeError):
        pass  # formats libsndfile does not know (m4a) are still decoded below through ffmpeg
    try:
        wave, sr = decode_file(path, max_seconds)
    except DataError as exc:
        return f"unreadable: {exc}", [], info
    info.setdefault("sample_rate", int(sr))
    info.setdefault("channels", int(wave.shape[0]))
    if not np.isfinite(wave).all():
        return "NaN or infinite samples", [], info
    warnings = []
    if not np.any(wave):
        warnings.append("all-silent (every sample is zero)")
    return None, warnings, info


def unlisted_files(audio_dirs: list[str | Path], listed: set[Path]) -> tuple[list[str], list[str]]:
    """(files under the audio folders that no table row names, broken symlinks there): reported, not errors.

    A symlink that leads nowhere (dangling, or a loop) cannot be compared with the table's files;
    when a table row names it, the row itself gets the bad-audio policy (``inspect_clip``).
    """
    out: set[str] = set()
    broken: set[str] = set()
    listed_names = {os.path.abspath(p) for p in listed}
    for d in {Path(d).resolve() for d in audio_dirs}:
        if not d.is_dir():
            continue
        for root, _, files in os.walk(d):
            for name in files:
                p = Path(root) / name
                if name.startswith("."):
                    continue
                try:
                    resolved = p.resolve(strict=True)
                except (OSError, RuntimeError):  # RuntimeError: symlink loop (Python < 3.13)
                    if os.path.abspath(p) not in listed_names:
                        broken.add(str(p))
                    continue
                if resolved not in listed:
                    out.add(str(p))
    return sorted(out), sorted(broken)


def validate(
    manifest: pd.DataFrame,
    targets: dict[str, np.ndarray] | None,
    *,
    policy: str,
    max_seconds: float | None,
    audio_dirs: list[str | Path],
    report_out: str | Path,
    manifest_out: str | Path,
    targets_out: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Check every manifest clip; write the report, the manifest with an ``action`` per row and, given
    ``targets``, the targets without the skipped rows (the workflow drops them in ``prepare`` instead).

    ``action`` is ``decode``, ``zeros`` (decode writes silence instead) or ``skip`` (training row dropped).
    """
    if policy not in POLICIES:
        raise DataError(f"audio.bad_audio is {policy!r}; use one of {list(POLICIES)}.")
    manifest = manifest.copy()
    paths = manifest["path"].fillna("").astype(str).tolist()
    problems, actions, clips = [], [], []
    for clip_id, split, path in tqdm(
        zip(manifest["id"], manifest["split"], paths),
        total=len(paths),
        desc="validate",
        unit="clip",
        disable=not progress,
    ):
        problem, warnings, info = inspect_clip(path, max_seconds)
        action = "decode"
        if problem is not None:
            action = "skip" if (policy == "skip" and split == "train") else "zeros"
            problems.append({"id": clip_id, "split": split, "path": path, "problem": problem, "action": action})
        clips.append({"id": clip_id, "split": split, **info, **({"warnings": warnings} if warnings else {})})
        actions.append(action)

    if problems and policy == "error":
        listed = "\n".join(
            f"  {p['split']} id {p['id']!r} ({p['path'] or 'no file'}): {p['problem']}" for p in problems[:MAX_LISTED]
        )
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise DataError(
            f"{len(problems)} clip(s) cannot be used:\n{listed}{more}\n"
            "Fix or remove these files/rows, or set audio.bad_audio to 'skip' (drop bad training rows) "
            "or 'zeros' (predict from silence) in config.yaml."
        )

    manifest["action"] = actions
    skipped = set(manifest.loc[manifest["action"] == "skip", "id"])
    kept_targets = None if targets is None else drop_skipped(targets, skipped)

    silent = [c["id"] for c in clips if c.get("warnings")]
    listed_paths = {_resolved(p) for p in paths if p}
    extra, broken = unlisted_files(audio_dirs, listed_paths)
    report = {
        "policy": policy,
        "n_clips": len(clips),
        "n_ok": len(clips) - len(problems),
        "problems": problems,
        "skipped": sorted(skipped),
        "zero_filled": [p["id"] for p in problems if p["action"] == "zeros"],
        "all_silent": silent,
        "unlisted_files": extra,
        "broken_links": broken,
        "sample_rates": _counts(c.get("sample_rate") for c in clips),
        "channels": _counts(c.get("channels") for c in clips),
        "subtypes": _counts(c.get("subtype") for c in clips),
    }
    write_json(report_out, report)
    write_csv(manifest_out, manifest)
    if kept_targets is not None:
        save_npz(targets_out, **kept_targets)
    for line in summary_lines(report):
        log.info("%s", line)
    return report


def _counts(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        if v is not None:
            out[str(v)] = out.get(str(v), 0) + 1
    return dict(sorted(out.items()))


def summary_lines(report: dict) -> list[str]:
    """The readable summary written to the rule's log."""
    lines = [
        f"{report['n_ok']}/{report['n_clips']} clips OK (bad-audio policy: {report['policy']})",
        f"sample rates: {report['sample_rates']}; channels: {report['channels']}; sample formats: {report['subtypes']}",
    ]
    for p in report["problems"]:
        lines.append(f"{p['action'].upper()}: {p['split']} id {p['id']!r} ({p['path'] or 'no file'}): {p['problem']}")
    if report["all_silent"]:
        lines.append(f"WARNING: {len(report['all_silent'])} all-silent clip(s): {report['all_silent'][:MAX_LISTED]}")
    if report["unlisted_files"]:
        lines.append(
            f"NOTE: {len(report['unlisted_files'])} file(s) in the audio folders that no table row names "
            f"(not used): {report['unlisted_files'][:MAX_LISTED]}"
        )
    if report.get("broken_links"):
        lines.append(
            f"NOTE: {len(report['broken_links'])} symlink(s) in the audio folders lead to no file "
            f"(dangling or a loop; no table row names them, not used): {report['broken_links'][:MAX_LISTED]}"
        )
    return lines


def _resolved(path: str) -> Path:
    """The path with symlinks resolved, or as an absolute path when they cannot be (a loop)."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def run_validation(
    data: dict, *, policy, max_seconds, shard_clips, out_dir, hashes_path=None, cache_dir=None, progress=True
) -> dict:
    """File-level entry point for the rule script: list the clips (with their chunks), then check them.

    Writes ``report.json``, ``clips.csv`` (``id, split, path, chunk, hash, action``), under
    ``chunks/`` one manifest per chunk (``audiofold.clips.write_chunk_manifests``: written only when
    changed, stale ones removed) and ``chunks.json`` (clips per chunk, the manifests rewritten) under
    ``out_dir``. ``hash`` is the file's content hash (empty without
    a readable file): copied from ``hashes_path`` (the ``hashes`` step's table) when given, else
    computed here (``audiofold.hashes.content_hashes``, remembered under ``cache_dir``).
    """
    out_dir = Path(out_dir)
    clips = list_clips(data, shard_clips, missing_ok=policy != "error")
    if hashes_path is not None:
        hashes = pd.read_csv(hashes_path, dtype=str, keep_default_na=False)
        for column in ("size", "mtime_ns"):  # a table of an older hashes step: no file states
            if column not in hashes.columns:
                hashes[column] = ""
        hashes = hashes[["id", "split", "hash", "size", "mtime_ns"]]
        clips = clips.merge(hashes, on=["id", "split"], how="left", validate="one_to_one").fillna(
            {"hash": "", "size": "", "mtime_ns": ""}
        )
    else:
        states = [file_state(p) if p else ("", "") for p in clips["path"]]  # taken before hashing
        clips["size"] = [s for s, _ in states]
        clips["mtime_ns"] = [m for _, m in states]
        clips["hash"] = content_hashes(clips["path"].tolist(), cache_dir, progress=progress)
    states = clips[["id", "split", "size", "mtime_ns"]]
    audio_dirs = [d for d in (data["train_audio_dir"], data.get("test_audio_dir")) if d]
    report = validate(
        clips.drop(columns=["size", "mtime_ns"]),
        None,
        policy=policy,
        max_seconds=max_seconds,
        audio_dirs=audio_dirs,
        report_out=out_dir / "report.json",
        manifest_out=out_dir / "clips.csv",
        progress=progress,
    )
    table = read_clips(out_dir / "clips.csv").merge(states, on=["id", "split"], how="left", validate="one_to_one")
    written = write_chunk_manifests(table[["chunk", *MANIFEST_COLUMNS]], out_dir / "chunks")
    sizes = table.groupby("chunk", sort=False).size()
    # the step's declared output for the manifests (they are not, see write_chunk_manifests): a results
    # folder without it, made before the manifests existed, reruns this step
    write_json(out_dir / "chunks.json", {"folder": "chunks", "clips": sizes.to_dict(), "rewritten": written})
    log.info("chunk manifests: %d of %d written (the others unchanged)", len(written), len(sizes))
    return report
