"""``audiofold`` command line: small helpers around the Snakemake workflow."""

from __future__ import annotations

import argparse
import json
import sys

from .errors import AudiofoldError


def _check(args: argparse.Namespace) -> int:
    from .config import load_config

    config = load_config(args.config)
    print(f"{args.config}: valid. Backbones: {', '.join(config['backbones'])}; heads: {', '.join(config['heads'])}; "
          f"{config['cv']['n_folds']} folds.")
    if args.show:
        print(json.dumps(config, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="audiofold", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate config.yaml against the schema (defaults filled)")
    check.add_argument("config", nargs="?", default="config.yaml")
    check.add_argument("--show", action="store_true", help="print the config with defaults filled")
    check.set_defaults(func=_check)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except AudiofoldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
