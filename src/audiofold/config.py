"""Load config.yaml, fill defaults and validate it against workflow/schemas/config.schema.yaml.

Errors name the offending key path (e.g. ``backbones.logmel.tta.n_crops``) and the rule it broke.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .backbones import backbone_class, split_backbone_config
from .errors import ConfigError, capped
from .heads import HEADS, TRAINING_OPTIONS
from .io import stable_hash
from .registry import config_options
from .resultsdir import ADOPT_KEY, mark_results_dir, placement_problem, results_dir_problem

SCHEMA_RELPATH = Path("workflow") / "schemas" / "config.schema.yaml"
# A real config holds hundreds of values; YAML aliases (& and *) nested in each other make billions
# from a few lines, which validation would walk and an error message echo. Refused before validating.
MAX_CONFIG_VALUES = 100_000
COMMAND_LINE = "--config"


def find_schema(start: str | Path | None = None) -> Path:
    """The schema of the project that holds ``start`` (default: cwd), else of this source tree."""
    candidates = []
    if start is not None:
        start = Path(start).resolve()
        candidates += [p / SCHEMA_RELPATH for p in [start, *start.parents]]
    candidates += [Path.cwd() / SCHEMA_RELPATH, Path(__file__).resolve().parents[2] / SCHEMA_RELPATH]
    for c in candidates:
        if c.is_file():
            return c
    raise ConfigError(f"cannot find {SCHEMA_RELPATH}; run from the project folder (where the Snakefile is).")


def load_schema(path: str | Path | None = None) -> dict:
    return yaml.safe_load(Path(path or find_schema()).read_text(encoding="utf-8"))


def _with_defaults(validator_class):
    """jsonschema validator that also fills ``default`` values of missing properties."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _expanded_size(node, limit: int) -> int:
    """Values in ``node`` with every YAML alias expanded, counted up to just past ``limit``."""
    count, stack = 0, [node]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return count


def validate_config(
    config: dict,
    schema: dict | None = None,
    source: str = "config.yaml",
    sources: list[str | Path] | None = None,
    check_options: bool = True,
    command_line: dict | None = None,
) -> dict:
    """Validate ``config`` in place (defaults filled) and return it; ConfigError on the first problem.

    ``sources``: the YAML files merged into ``config``, the one that wins first (Snakemake's
    ``--configfile`` files before the Snakefile's ``config.yaml``); an error then names the file
    that holds the offending key instead of ``source``; ``command_line``: Snakemake's ``--config``
    values, which win over every file. ``check_options``: also check every backbone
    and head option name against its class (imports them: seconds); a cluster job, which parses the
    Snakefile again, skips it, as the main process has done it.
    """
    schema = schema if schema is not None else load_schema()

    def where(keys: list[str]) -> str:
        return _file_with_key(keys, sources, command_line) or source

    for key, value in config.items():
        if _expanded_size(value, MAX_CONFIG_VALUES) > MAX_CONFIG_VALUES:
            raise ConfigError(
                f"{where([str(key)])}: key {capped(str(key))}: holds more than {MAX_CONFIG_VALUES:,} values once "
                "its YAML aliases (& and *) are expanded; refused before validating. Write the values out "
                "without aliases nested in aliases."
            )
    validator_class = _with_defaults(jsonschema.validators.validator_for(schema))
    # Two passes: defaults added by the first (e.g. a nested {}) get their own defaults in the second.
    for _ in range(2):
        errors = sorted(validator_class(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
        if errors:
            err = errors[0]
            more = f" ({len(errors) - 1} more problem(s) after this one)" if len(errors) > 1 else ""
            hint, keys = "", [str(p) for p in err.absolute_path]
            if err.validator == "additionalProperties":
                allowed = sorted(err.schema.get("properties", {}))
                hint = f" Allowed keys here: {', '.join(allowed)}." if allowed else ""
                keys += [str(k) for k in err.instance if k not in err.schema.get("properties", {})][:1]
            raise ConfigError(f"{where(keys)}: key {capped(_key_path(err))}: {capped(err.message)}.{hint}{more}")
    _check_consistency(config, source)
    if not check_options:
        return config
    try:
        check_config_options(config)
    except ConfigError as exc:
        key = str(exc).split(":", 1)[0]  # "heads.knn.kk: unknown option ..."
        raise ConfigError(f"{where(key.split('.'))}: key {capped(str(exc), 2000)}") from None
    return config


def _file_with_key(keys: list[str], sources: list[str | Path] | None, command_line: dict | None = None) -> str | None:
    """Where the value at key path ``keys`` was set: ``--config`` (``command_line``) or one of ``sources``
    (the winning one first), whichever holds the longest part of the path; the first on a tie (else None).

    A later file replaces a list whole, so a bad item inside it (``task.classes.0``) belongs to the
    file that holds the list.
    """
    found, found_depth = None, 0
    for name, node in _key_sources(sources, command_line):
        depth = 0
        for key in keys:
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                break
            depth += 1
        if depth > found_depth:
            found, found_depth = name, depth
    return found


def _key_sources(sources: list[str | Path] | None, command_line: dict | None):
    if command_line:
        yield COMMAND_LINE, dict(command_line)
    for path in sources or []:
        try:
            yield str(path), yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue


def check_output_folders(
    config: dict,
    project_dirs: list[str | Path],
    source: str = "config.yaml",
    sources: list[str | Path] | None = None,
    command_line: dict | None = None,
    mark: bool = False,
) -> None:
    """ConfigError, naming the key and where it was set, when ``results_dir`` or ``cache_dir`` may not
    be written to (audiofold.resultsdir); ``project_dirs``: the folders the run is started from and
    its Snakefile's. ``mark``: then make the results folder and its marker file (the run's start)."""

    def where(key: str) -> str:
        return _file_with_key([key], sources, command_line) or source

    results = config["results_dir"]
    try:
        problem = results_dir_problem(results, project_dirs, adopt=config.get(ADOPT_KEY, False))
    except OSError as exc:  # e.g. a name too long for the filesystem
        problem = f"cannot use {capped(repr(str(results)))} ({exc.strerror or exc}); set results_dir to another folder"
    if problem:
        raise ConfigError(f"{where('results_dir')}: key results_dir: {problem}.")
    cache = config.get("cache_dir")
    problem = cache and placement_problem(cache, project_dirs)
    if problem:
        raise ConfigError(
            f"{where('cache_dir')}: key cache_dir: {problem}; the cache writes files/ and emb/ into it: "
            "use a folder of its own (or null: results_dir/cache)."
        )
    if not mark:
        return
    try:
        mark_results_dir(results)
    except OSError as exc:
        raise ConfigError(
            f"{where('results_dir')}: key results_dir: cannot make {capped(repr(str(results)))} "
            f"({exc.strerror or exc}); set results_dir to a folder that can be made."
        ) from None


def _check_consistency(config: dict, source: str) -> None:
    """Rules a JSON schema cannot express."""
    data = config["data"]
    if config.get("demo", {}).get("enabled") and data.get("test_csv") is None and data.get("sample_submission") is None:
        raise ConfigError(f"{source}: demo.enabled needs data.test_csv and data.sample_submission paths to write to.")
    if data.get("test_csv") is None and data.get("sample_submission") is None:
        raise ConfigError(f"{source}: set data.test_csv or data.sample_submission so the test ids are known.")
    for head, params in config.get("heads", {}).items():
        unknown = [b for b in params.get("backbones", []) if b not in config.get("backbones", {})]
        if unknown:
            raise ConfigError(
                f"{source}: key heads.{head}.backbones: {capped(repr(unknown[0]))} is not a backbone in "
                f"this config; choose from {', '.join(config.get('backbones', {}))}."
            )
    dup_backbone = config.get("duplicates", {}).get("backbone")
    if dup_backbone is not None and dup_backbone not in config.get("backbones", {}):
        raise ConfigError(
            f"{source}: key duplicates.backbone: {capped(repr(dup_backbone))} is not a backbone in this config; "
            f"choose from {', '.join(config.get('backbones', {}))} (or null for the first)."
        )
    groups_backbone = config.get("cv", {}).get("auto_groups_backbone")
    if isinstance(groups_backbone, str) and groups_backbone not in config.get("backbones", {}):
        raise ConfigError(
            f"{source}: key cv.auto_groups_backbone: {groups_backbone!r} is not a backbone in this config; "
            f"choose from {', '.join(config.get('backbones', {}))}, or give backbone options (type: ...)."
        )
    for section in ("backbones", "heads", "finetune"):
        names = config.get(section) or {}
        unknown = [n for n in config.get("resources", {}).get(f"gpu_{section}", []) if n not in names]
        if unknown:
            raise ConfigError(
                f"{source}: key resources.gpu_{section}: {capped(repr(unknown[0]))} is not under `{section}` in "
                f"this config; list names from: {', '.join(names) or f'(none: `{section}` is empty)'}."
            )
    scale = config.get("task", {}).get("scale")
    if scale is not None and not scale["min"] < scale["max"]:
        raise ConfigError(
            f"{source}: key task.scale: min must be below max (got min {scale['min']}, max {scale['max']}). "
            "Set task.scale by hand to the real rating scale (e.g. {min: 1, max: 5, step: 1}); training "
            "labels that are all one value cannot show it."
        )


def load_config(path: str | Path = "config.yaml", schema_path: str | Path | None = None) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"config file {path} not found; copy config.yaml from the project root or run `audiofold init`."
        )
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(config).__name__}.")
    schema = load_schema(schema_path or find_schema(path.parent))
    return validate_config(config, schema, source=str(path))


def section_hash(config: dict, *keys: str) -> str:
    """Hash of the named config sections, recorded in artifact metadata."""
    return stable_hash({k: config.get(k) for k in keys})


# ---- the config reference (docs/CONFIG.md) ----------------------------------------------------
def _type_text(sub: dict) -> str:
    if "enum" in sub:
        return " \\| ".join(f"`{v}`" for v in sub["enum"])
    for key in ("oneOf", "anyOf"):
        if key in sub:
            return " or ".join(_type_text(alt) for alt in sub[key])
    kind = sub.get("type", "")
    kinds = kind if isinstance(kind, list) else [kind]
    text = " or ".join(k for k in kinds if k)
    bounds = [
        f"{word} {sub[key]}"
        for key, word in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"))
        if key in sub
    ]
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def _reference_rows(schema: dict, prefix: str = "") -> list[tuple[str, str, str, str]]:
    rows = []
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        default = (
            f"`{yaml.safe_dump(sub['default'], default_flow_style=True).strip().removesuffix('...').strip()}`"
            if "default" in sub
            else ("required" if key in schema.get("required", []) else "")
        )
        rows.append((path, _type_text(sub), default, " ".join(str(sub.get("description", "")).split())))
        rows += _reference_rows(sub, f"{path}.")
        extra = sub.get("additionalProperties")
        if isinstance(extra, dict) and extra.get("properties"):
            rows += _reference_rows(extra, f"{path}.<name>.")
    return rows


def schema_reference(schema: dict | None = None) -> str:
    """Markdown reference of every config key (path, type, default, description) from the JSON schema."""
    schema = schema if schema is not None else load_schema()
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated from workflow/schemas/config.schema.yaml by audiofold.config.schema_reference();",
        "     regenerate with `audiofold check --reference > docs/CONFIG.md` (tests/unit/test_docs.py checks it). -->",
        "",
        " ".join(str(schema.get("description", "")).split()),
        "",
        "| key | type | default | description |",
        "|---|---|---|---|",
    ]
    for path, kind, default, description in _reference_rows(schema):
        description = description.replace("|", "\\|")
        lines.append(f"| `{path}` | {kind} | {default} | {description} |")
    return "\n".join(lines) + "\n"


def check_config_options(config: dict[str, Any]) -> None:
    """Every backbone and head type and option name is known: checked at start-up, before any job runs.

    Option values are checked when a job builds the model (that may load weights).
    """
    for name, params in config.get("backbones", {}).items():
        own, _ = split_backbone_config(params)  # tta, batch_size, ...: the embed step's, not the class's
        config_options(backbone_class(name, own), "backbones", name, own)
    groups = config.get("cv", {}).get("auto_groups_backbone")
    if isinstance(groups, dict):  # the auto_groups step's own backbone (embed jobs name it auto_groups)
        own, _ = split_backbone_config(groups)
        try:
            config_options(backbone_class("auto_groups", own), "backbones", "auto_groups", own)
        except ConfigError as exc:
            raise ConfigError(
                f"cv.auto_groups_backbone: {exc} Pseudo-groups (cv.auto_groups) need it: fix it, name a backbone "
                "under `backbones`, set data.group_column, or set cv.auto_groups: false."
            ) from None
    for name, params in config.get("heads", {}).items():
        head_type = params.get("type")
        if head_type not in HEADS:
            raise ConfigError(
                f"heads.{name}.type: unknown head type {head_type!r}; choose one of {', '.join(sorted(HEADS))}."
            )
        own = {k: v for k, v in params.items() if k != "backbones"}
        config_options(HEADS[head_type], "heads", name, own, extra=TRAINING_OPTIONS)
