"""``audiofold cache prune``: keep the embedding cache's packs that the given configs use, within a size cap."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cache import config_key, prune
from ..config import load_config


def used_keys(config: dict) -> set[str]:
    """Cache config keys of a config's backbones, the auto_groups backbone included (as the embed step computes them)."""
    max_seconds = config["audio"]["max_seconds"]
    options = list(config["backbones"].values())
    groups = config.get("cv", {}).get("auto_groups_backbone")
    if isinstance(groups, dict):  # options of its own, not a name under backbones
        options.append(groups)
    return {config_key(o, max_seconds) for o in options}


def cache_dir_of(config: dict) -> Path:
    """Where the embed step puts the cache (relative paths: against the folder snakemake runs in, here)."""
    return Path(config.get("cache_dir") or f"{config['results_dir']}/cache")


def prune_command(args: argparse.Namespace) -> int:
    configs = [load_config(path) for path in args.config or ["config.yaml"]]
    keep = set().union(*(used_keys(c) for c in configs))
    folder = Path(args.cache_dir) if args.cache_dir else cache_dir_of(configs[0])
    if not folder.is_dir():
        print(f"{folder}: no cache folder; nothing to prune")
        return 0
    max_bytes = None if args.max_gb is None else int(args.max_gb * 1e9)
    done = prune(folder, keep, max_bytes)
    print(
        f"{folder}: kept {len(keep)} config key(s) in use; deleted {done['old_layout_folders']} folder(s) of the "
        f"old per-clip layout, {done['stale_temp_files']} stale temp file(s), {done['packs_deleted']} pack(s) of "
        f"other keys; freed {done['bytes_freed'] / 1e9:.3f} GB, {done['bytes'] / 1e9:.3f} GB left"
        + ("" if max_bytes is not None else " (no --max-gb: other keys' packs kept)")
    )
    return 0


def add_parser(sub) -> None:
    cache = sub.add_parser("cache", help="manage the embedding cache (cache_dir)")
    actions = cache.add_subparsers(dest="action", required=True)
    prune_cmd = actions.add_parser(
        "prune",
        help="delete the old per-clip layout, stale temp files and, over --max-gb, packs of config keys "
        "that the given configs do not use (oldest first)",
    )
    prune_cmd.add_argument(
        "--config",
        action="append",
        help="config whose backbones' packs are kept; repeat for several projects sharing the cache "
        "(default: config.yaml)",
    )
    prune_cmd.add_argument("--max-gb", type=float, help="size cap in GB (default: none, keep every key's packs)")
    prune_cmd.add_argument("--cache-dir", help="the cache folder (default: the first config's cache_dir)")
    cache.set_defaults(func=prune_command)
