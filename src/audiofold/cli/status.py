"""``audiofold status``: what is already computed under results/ and the current OOF scores.

Reads only files (the step contracts of docs/DESIGN.md): embedding shards, per-fold predictions,
per-candidate ``oof/*/*/scores.json`` and ``metrics.json``; runs nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..io import read_json

_FOLD = re.compile(r"^fold(\d+)\.npz$")


def collect_status(results: str | Path) -> dict:
    """{"embeddings": {backbone: [shard, ...]}, "preds": {"b/h": [fold, ...]}, "scores": {...}, "blend": ...}."""
    results = Path(results)
    out: dict = {"results": str(results), "embeddings": {}, "preds": {}, "scores": {}, "blend": None, "primary": None}
    for shard in sorted(results.glob("embeddings/*/*.npz")):
        out["embeddings"].setdefault(shard.parent.name, []).append(shard.stem)
    for pred in sorted(results.glob("preds/*/*/fold*.npz")):
        m = _FOLD.match(pred.name)
        if m:
            out["preds"].setdefault(f"{pred.parent.parent.name}/{pred.parent.name}", []).append(int(m.group(1)))
    for path in sorted(results.glob("oof/*/*/scores.json")):
        scores = read_json(path)
        out["primary"] = out["primary"] or scores.get("primary")
        for variant, entry in scores.get("variants", {}).items():
            out["scores"][f"{path.parent.parent.name}/{path.parent.name}/{variant}"] = entry["overall"]
    metrics_path = results / "metrics.json"
    if metrics_path.is_file():
        metrics = read_json(metrics_path)
        out["primary"] = metrics.get("primary", out["primary"])
        nested = metrics["blend"].get("nested") or {}
        out["blend"] = {
            "in_sample": metrics["blend"]["in_sample"]["overall"],
            "nested": nested.get("overall"),
            "weights": metrics["blend"].get("weights", {}),
            "method": metrics["blend"].get("method", "grid"),
        }
    for key in out["preds"]:
        out["preds"][key].sort()
    out["submission"] = (results / "submission.csv").is_file()
    return out


def format_status(status: dict) -> str:
    """Human-readable summary of ``collect_status``."""
    lines = [f"results: {status['results']}"]
    if not (status["embeddings"] or status["preds"] or status["scores"]):
        return "\n".join(lines + ["nothing computed yet; run `snakemake --cores 8` (or `make run`)"])
    lines.append("embeddings (backbone: shards):")
    lines += [f"  {b}: {', '.join(shards)}" for b, shards in sorted(status["embeddings"].items())] or ["  none"]
    lines.append("fold predictions (backbone/head: folds):")
    lines += [f"  {k}: {', '.join(map(str, folds))}" for k, folds in sorted(status["preds"].items())] or ["  none"]
    primary = status["primary"]
    if status["scores"]:
        lines.append(f"OOF {primary} per candidate:")
        lines += [f"  {k}: {v.get(primary, float('nan')):.4f}" for k, v in sorted(status["scores"].items())]
    if status["blend"]:
        weights = ", ".join(f"{k} {w:.2f}" for k, w in status["blend"]["weights"].items() if w)
        lines.append(
            f"blend OOF {primary}, in-sample (weights chosen on these rows): "
            f"{status['blend']['in_sample'][primary]:.4f} (method {status['blend']['method']}; weights: {weights})"
        )
        if status["blend"]["nested"]:
            lines.append(f"blend OOF {primary}, nested (honest): {status['blend']['nested'][primary]:.4f}")
    lines.append(f"submission.csv: {'written' if status['submission'] else 'not yet'}")
    return "\n".join(lines)
