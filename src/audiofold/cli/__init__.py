"""``audiofold`` command line: small helpers around the Snakemake workflow."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import checkpoints
from ..config import load_config, schema_reference
from ..errors import AudiofoldError
from ..tasks import KINDS
from . import cache as cache_cmd
from .doctor import check_imports, check_results_writable, run_checks
from .scaffold import scaffold, write_config
from .status import collect_status, format_status


def _check(args: argparse.Namespace) -> int:
    if args.reference:
        sys.stdout.write(schema_reference())
        return 0
    config = load_config(args.config)

    results = check_results_writable(config, (Path(args.config).resolve().parent,), source=args.config)
    if not results.ok:
        print(results.detail, file=sys.stderr)
        return 1
    print(
        f"{args.config}: valid. Backbones: {', '.join(config['backbones'])}; heads: {', '.join(config['heads'])}; "
        f"{config['cv']['n_folds']} folds."
    )
    if args.show:
        print(json.dumps(config, indent=2))
    return 0


def _init(args: argparse.Namespace) -> int:
    labels = [c.strip() for c in args.label_columns.split(",")] if args.label_columns else None
    # Snakemake resolves relative paths against the folder it runs in, not the config's folder:
    # write them relative to here, the project folder, wherever --output puts the file.
    result = scaffold(
        args.data_dir,
        base_dir=Path.cwd(),
        id_column=args.id_column,
        label_columns=labels,
        kind=args.kind,
        label_sep=args.label_sep,
        group_column=args.group_column,
        auto_group=not args.no_group,
        train_audio_dir=args.train_audio_dir,
        test_audio_dir=args.test_audio_dir,
        fast=args.fast,
    )
    print("Inferred (override any of these with the flags of `audiofold init -h`):")
    for note in result.notes:
        print(f"  - {note}")
    print(f"Data paths are relative to {Path.cwd()}: run snakemake from this folder.")
    path = write_config(result, args.output, force=args.force)
    print(
        f"wrote {path}; next: `audiofold doctor {path}` (checks it and estimates the run time), then `snakemake --cores 8 --configfile {path}`"
    )
    return 0


def _doctor(args: argparse.Namespace) -> int:
    checks = check_imports() if args.imports_only else run_checks(args.config)
    for check in checks:
        print(check.line())
    failed = [c for c in checks if c.ok is False]
    if failed:
        print(f"{len(failed)} problem(s): {', '.join(c.name for c in failed)}")
    else:
        print("imports ok" if args.imports_only else "ready")
    return 1 if failed else 0


def _status(args: argparse.Namespace) -> int:
    status = collect_status(args.results)
    print(json.dumps(status, indent=2) if args.json else format_status(status))
    return 0


def _weights(args: argparse.Namespace) -> int:
    if args.action == "fetch":
        path = checkpoints.fetch(args.name, args.dest, revision=args.revision)
        for file in checkpoints.hf_weight_files(path) if path.is_dir() else [path]:  # hf: a snapshot folder
            print(f"{file}  sha256 {checkpoints.file_sha256(file)}")
        return 0
    for name in checkpoints.known_weights():
        path = checkpoints.checkpoint_dir() / checkpoints.weights_spec(name).filename
        print(f"{name:32s} {'present' if path.is_file() else 'missing':8s} {path}")
    for size in checkpoints.WHISPER_SIZES:
        folder = checkpoints.cached_snapshot(checkpoints.faster_whisper_repo(size))
        where = folder or f"(Hugging Face cache) {checkpoints.faster_whisper_repo(size)}"
        print(f"{checkpoints.WHISPER_PREFIX + size:32s} {'present' if folder else 'missing':8s} {where}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="audiofold", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate config.yaml against the schema (defaults filled)")
    check.add_argument("config", nargs="?", default="config.yaml")
    check.add_argument("--show", action="store_true", help="print the config with defaults filled")
    check.add_argument(
        "--reference",
        action="store_true",
        help="print the Markdown reference of every config key (docs/CONFIG.md) instead",
    )
    check.set_defaults(func=_check)

    init = sub.add_parser("init", help="inspect a data folder and write a config.yaml for it")
    init.add_argument("data_dir", help="folder with train.csv, test.csv and/or sample_submission.csv and the audio")
    init.add_argument("--output", "-o", default="config.yaml", help="config file to write (default: config.yaml)")
    init.add_argument("--force", action="store_true", help="overwrite an existing config file")
    init.add_argument("--id-column", help="clip id column (default: inferred)")
    init.add_argument("--label-columns", help="comma-separated label column(s) (default: inferred)")
    init.add_argument("--kind", default="auto", choices=["auto", *KINDS], help="task kind (default: inferred)")
    init.add_argument("--label-sep", help="separator of a multilabel string column (default: inferred)")
    grouping = init.add_mutually_exclusive_group()
    grouping.add_argument(
        "--group-column",
        help="column whose groups (e.g. speaker) stay inside one fold "
        "(default: a column named like speaker/group/subject/session, if any)",
    )
    grouping.add_argument("--no-group", action="store_true", help="do not group folds by a speaker-like column")
    init.add_argument("--train-audio-dir", help="training clips folder (default: the folder matching the ids)")
    init.add_argument("--test-audio-dir", help="test clips folder (default: the folder matching the ids)")
    init.add_argument(
        "--fast",
        action="store_true",
        help="hand-crafted backbones only (log-mel, MFCC) with linear and kNN heads: minutes instead of "
        "the default's pretrained backbones (aisfx, whisper; distillmos, resemblyzer for ratings; speech_embedding for classes) and per-task heads",
    )
    init.set_defaults(func=_init)

    doctor = sub.add_parser("doctor", help="check imports, versions, GPU, ffmpeg, backbone weights and free disk")
    doctor.add_argument("config", nargs="?", default="config.yaml")
    doctor.add_argument(
        "--imports-only",
        action="store_true",
        help="only import torch, torchaudio (and its compiled extension), transformers and the "
        "packaged backbones' packages; needs no config (`make install` ends with this)",
    )
    doctor.set_defaults(func=_doctor)

    status = sub.add_parser("status", help="what is computed under results/ and the current OOF scores")
    status.add_argument("--results", default="results", help="results folder (default: results)")
    status.add_argument("--json", action="store_true", help="print machine-readable JSON")
    status.set_defaults(func=_status)

    weights_cmd = sub.add_parser("weights", help="list or fetch pretrained checkpoints (runs never download)")
    weights_sub = weights_cmd.add_subparsers(dest="action", required=True)
    weights_sub.add_parser("list", help="known checkpoints and whether they are in $TORCH_HOME/hub/checkpoints")
    fetch = weights_sub.add_parser("fetch", help="download a checkpoint to where the pipeline looks for it")
    fetch.add_argument(
        "name",
        help="e.g. wavlm_base_plus, hubert_large (see `audiofold weights list`), or "
        "hf:<model id> (e.g. hf:microsoft/wavlm-base-plus) for the hf backbone, or whisper:<size> "
        "(e.g. whisper:small.en) for the whisper backbone",
    )
    fetch.add_argument(
        "--dest",
        help="folder to write to (default: $TORCH_HOME/hub/checkpoints; for hf: the Hugging Face cache, $HF_HOME/hub)",
    )
    fetch.add_argument("--revision", help="hf: only: branch, tag or commit (default: main)")
    weights_cmd.set_defaults(func=_weights)

    cache_cmd.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except AudiofoldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
