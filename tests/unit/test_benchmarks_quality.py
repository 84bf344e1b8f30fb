"""benchmarks/quality.py without the workflow: the ESC-10 mixture builder (no source across folds,
labels = what is in the audio), the stratified subsample, the heads block per task kind, and the
table with its blend scores and targets; on tiny generated folders, not the shared data sets."""

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from audiofold.tasks import infer_task

from conftest import ROOT

_spec = importlib.util.spec_from_file_location("quality_benchmark", ROOT / "benchmarks" / "quality.py")
quality = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quality)

SR = 16000
# one pure tone per class, on whole-hertz bins of a 5 s window: the spectrum tells which classes a mixture holds
TONES = {"Dog bark": 300, "Rain": 700, "Sea waves": 1100, "Person sneeze": 1900}
CLIP_SECONDS = (1.0, 0.6, 6.0)  # shorter than a mixture (placed at an offset) and longer (cut)


@pytest.fixture
def sources(tmp_path):
    """An ESC-10-like folder: esc10/esc10.csv and one tone clip per (fold, class, take), 3 folds."""
    rows = []
    for fold in (1, 2, 3):
        for category, hz in TONES.items():
            for take, seconds in enumerate(CLIP_SECONDS):
                src = f"{fold}{hz}{take}"
                name = f"{category}/{fold}-{src}-A.flac"
                (tmp_path / "esc10" / category).mkdir(parents=True, exist_ok=True)
                t = np.arange(int(seconds * SR)) / SR
                sf.write(tmp_path / "esc10" / name, 0.3 * np.sin(2 * np.pi * hz * t), SR, subtype="PCM_16")
                rows.append({"filename": name, "fold": fold, "category": category, "src_file": src, "take": "A"})
    pd.DataFrame(rows).to_csv(tmp_path / "esc10" / "esc10.csv", index=False)
    return tmp_path


def classes_heard(path) -> set[str]:
    wave, sr = sf.read(path)
    amplitude = 2 * np.abs(np.fft.rfft(wave)) / len(wave)  # a full-length tone of amplitude A reads A
    freqs = np.fft.rfftfreq(len(wave), 1 / sr)
    # quietest source: 0.3 x -12 dB x (0.6 s of 5 s) ~ 0.009; leakage of a cut tone into another tone's bin < 1e-3
    return {c for c, hz in TONES.items() if amplitude[np.argmin(np.abs(freqs - hz))] > 0.004}


def test_mixtures_keep_sources_in_their_fold_and_are_labelled_with_what_they_hold(sources, tmp_path):
    work = tmp_path / "run"
    work.mkdir()
    data = quality.write_dataset("esc10mix", work, max_clips=30, data_dir=sources)
    assert data["fold_column"] == "fold" and data["label_columns"] == ["labels"]
    assert data["train_audio_dir"] == str(work / "mixtures")  # generated audio stays in the scratch folder
    train, test = pd.read_csv(data["train_csv"]), pd.read_csv(data["test_csv"])
    plan = pd.read_csv(work / "mixtures.csv")
    source_table = pd.read_csv(sources / "esc10" / "esc10.csv").set_index("filename")
    assert len(train) == len(plan) == 30 and sorted(train["fold"].value_counts()) == [10, 10, 10]

    folds_of_source: dict[str, set] = {}
    n_sources = []
    for row, mix in zip(train.itertuples(), plan.itertuples()):
        files = mix.sources.split(quality.SOURCE_SEP)
        n_sources.append(len(files))
        for f in files:
            assert source_table.loc[f, "fold"] == row.fold, f"{row.id}: source {f} is from another fold"
            folds_of_source.setdefault(source_table.loc[f, "src_file"], set()).add(row.fold)
        labels = row.labels.split(",")
        assert labels == sorted(set(labels)) and labels == sorted(source_table.loc[files, "category"])
        assert set(labels) == classes_heard(work / "mixtures" / row.path), row.id
    assert all(len(f) == 1 for f in folds_of_source.values())  # no source recording on both sides of a split
    assert set(n_sources) == {1, 2, 3}

    assert len(test) == 8 and all((work / "mixtures" / p).is_file() for p in test["path"])
    spec, _ = infer_task(train, id_column="id", label_columns=["labels"], kind="multilabel", label_sep=",")
    assert spec.classes == sorted(TONES)  # class names with spaces survive the label string
    assert spec.encode_targets(train).sum(axis=1).tolist() == n_sources


def test_mixture_plan_is_seeded_and_spread_over_the_folds(sources):
    table = pd.read_csv(sources / "esc10" / "esc10.csv", dtype=str)
    first, again, other = (quality.plan_mixtures(table, 20, seed) for seed in (0, 0, 1))
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)
    assert first["fold"].value_counts().sort_index().tolist() == [7, 7, 6]


def test_subsample_is_stratified_and_seeded():
    table = pd.DataFrame(
        [{"fold": f, "category": c, "i": i} for f in range(1, 6) for c in "abcdefghij" for i in range(8)]
    )
    part = quality.subsample(table, 100, ["fold", "category"])
    assert len(part) == 100 and (part.groupby(["fold", "category"]).size() == 2).all()
    assert part.index.equals(quality.subsample(table, 100, ["fold", "category"]).index)
    assert quality.subsample(table, None, ["fold"]) is table
    ratings = pd.DataFrame({"total_mean": np.linspace(0, 10, 200).round(1).astype(str)})
    low_half = quality.subsample(ratings, 50, ["total_mean"])["total_mean"].astype(float) < 5
    assert low_half.sum() == 25  # quintile bins keep the spread of the ratings
    with pytest.raises(SystemExit, match="at least 50"):
        quality.subsample(table, 20, ["fold", "category"])


def test_heads_block_per_task_kind_and_from_a_file(tmp_path):
    both = {b: quality.DEFAULT_BACKBONES[b] for b in ("logmel", "mfcc")}
    heads, left_out = quality.heads_for("multilabel", quality.head_configs(2), both)
    assert set(heads) == {"linear", "knn", "lgbm", "mlp"} and set(left_out) == {"prompt", "prompt_seq", "va"}
    heads, left_out = quality.heads_for("classification", quality.head_configs(2), both)
    assert heads["prompt_seq"]["backbones"] == ["logmel"] and {"va", "mlp"} == set(left_out)
    # prompt reads sequences by default: without a backbone that keeps them it is left out
    heads, left_out = quality.heads_for("classification", {"p": {"type": "prompt"}}, {"mfcc": both["mfcc"]})
    assert heads == {} and "sequences" in left_out["p"]

    (tmp_path / "heads.yaml").write_text(
        yaml.safe_dump({"knn_pl": {"type": "knn", "k": 5}, "mlp_mixup": {"type": "mlp", "epochs": 3}})
    )
    assert quality.load_heads(tmp_path / "heads.yaml", 30, None) == {
        "knn_pl": {"type": "knn", "k": 5},
        "mlp_mixup": {"type": "mlp", "epochs": 3},
    }
    assert list(quality.load_heads(tmp_path / "heads.yaml", 30, ["knn_pl"])) == ["knn_pl"]
    with pytest.raises(SystemExit, match="not in the heads block"):
        quality.load_heads(tmp_path / "heads.yaml", 30, ["linear"])
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"x": {"k": 5}}))
    with pytest.raises(SystemExit, match=r"heads \['x'\] need .* 'type' \(e.g. type: linear\)"):
        quality.load_heads(tmp_path / "bad.yaml", 30, None)


def test_backbones_block_from_a_file_keeps_what_this_install_builds(tmp_path, capsys):
    """A user with a checkpoint measures their own backbone: the file replaces the built-in block; one
    that cannot be built here (a missing checkpoint) is skipped with the reason."""
    block = {
        "mel32": {"type": "logmel", "sample_rate": 16000, "n_mels": 32, "keep_sequence": True},
        "panns": {"type": "panns", "checkpoint": str(tmp_path / "missing.pth")},
    }
    (tmp_path / "backbones.yaml").write_text(yaml.safe_dump(block))
    loaded = quality.load_block(tmp_path / "backbones.yaml", quality.DEFAULT_BACKBONES, None, "backbones")
    assert loaded == block
    assert quality.available_backbones(loaded) == {"mel32": block["mel32"]}
    skipped = capsys.readouterr().err
    assert "skipping backbone panns" in skipped and "checkpoint" in skipped
    heads, _ = quality.heads_for("classification", {"p": {"type": "prompt"}}, {"mel32": block["mel32"]})
    assert heads["p"]["backbones"] == ["mel32"]  # the file's sequence backbone feeds the sequence head
    assert list(quality.load_block(None, quality.DEFAULT_BACKBONES, ["mfcc"], "backbones")) == ["mfcc"]
    with pytest.raises(SystemExit, match="--backbones \\['wavlm'\\]: not in the backbones block"):
        quality.load_block(tmp_path / "backbones.yaml", quality.DEFAULT_BACKBONES, ["wavlm"], "backbones")


def _fake_run(workdir, nested_lwlrap):
    """A finished esc10mix run's files as the table reads them: two candidates (one with an unknown
    variant name) and metrics.json with both blend scores."""
    per_fold = {str(k): {"lwlrap": 0.6 + 0.01 * k, "map": 0.5} for k in range(5)}
    for backbone, head, variants in (("logmel", "linear", ["main", "pl"]), ("mfcc", "knn", ["main"])):
        path = workdir / "results" / "oof" / backbone / head / "scores.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"variants": {v: {"per_fold": per_fold} for v in variants}}))
    nested = {"overall": {"lwlrap": nested_lwlrap, "map": 0.7}, "per_fold": per_fold, "folds": []}
    chosen = ["logmel/linear/pl"] * 4 + ["logmel/linear/main"]
    comparison = {"unit": "groups", "n_units": 40, "n_resamples": 1000, "seed": 0, "metrics": {}}
    comparison["metrics"]["lwlrap"] = {
        "difference": nested_lwlrap - 0.85,
        "ci_low": -0.031,
        "ci_high": 0.052,
        "a_at_least_as_good": 0.64,
    }
    nested["best_single"] = {
        "overall": {"lwlrap": 0.85, "map": 0.6},
        "per_fold": per_fold,
        "chosen": chosen,
        "blend_minus_single": comparison,
    }
    nested["folds"] = [{"fold": k, "method": m} for k, m in enumerate(["stack", "grid", "stack", "stack", "greedy"])]
    metrics = {
        "primary": "lwlrap",
        "greater_is_better": True,
        "candidates": {
            "logmel/linear/main": {"overall": {"lwlrap": 0.70, "map": 0.6}},
            "logmel/linear/pl": {"overall": {"lwlrap": 0.80, "map": 0.65}},
            "mfcc/knn/main": {"overall": {"lwlrap": 0.60, "map": 0.5}},
        },
        "blend": {
            "in_sample": {"overall": {"lwlrap": 0.90, "map": 0.75}, "per_fold": per_fold},
            "nested": nested,
            "method": "stack",
            "method_requested": "auto",
            "weights": {"logmel/linear/pl": 0.7, "mfcc/knn/main": 0.3},
        },
    }
    (workdir / "results" / "metrics.json").write_text(json.dumps(metrics))


def test_table_reports_best_single_both_blends_and_the_target_on_the_nested_score(tmp_path):
    met, missed = tmp_path / "met", tmp_path / "missed"
    _fake_run(met, nested_lwlrap=0.86)
    _fake_run(missed, nested_lwlrap=0.84)
    result = quality.collect("esc10mix", met, 12.3)
    assert [(r["backbone"], r["head"]) for r in result["rows"]] == [
        ("logmel", "linear"),
        ("logmel", "linear/pl"),
        ("mfcc", "knn"),
        ("BLEND", "0.7·logmel/linear/pl, 0.3·mfcc/knn/main"),
        ("BLEND nested", "re-chosen per outer fold"),
    ]
    summary = result["summary"]
    assert summary["best_single"] == {"name": "logmel/linear/pl", "lwlrap": 0.80, "map": 0.65}
    assert summary["in_sample"]["lwlrap"] == 0.90 and summary["nested"]["lwlrap"] == 0.86
    assert quality.target_line(result) == "target: nested lwlrap ≥ 0.85: 0.860, met"
    assert quality.target_line(quality.collect("esc10mix", missed, 1.0)).endswith("0.840, NOT met")

    text = quality.markdown([result])
    assert "| best single (logmel/linear/pl) | 0.800 | 0.650 |" in text
    assert "| BLEND in-sample (as submitted) | 0.900 | 0.750 |" in text
    assert "| BLEND nested (honest) | 0.860 | 0.700 |" in text
    assert "Blend method: stack (blend.method auto); per outer fold: stack, grid, stack, stack, greedy" in text
    assert "## esc10mix (12.3 s wall)" in text
    picked = "picked per outer fold: logmel/linear/main, logmel/linear/pl"
    assert f"| best single nested (honest; {picked}) | 0.850 | 0.600 |" in text
    assert (
        "Nested blend vs nested best single (lwlrap): +0.010, at least as good; paired bootstrap over 1000 "
        "resamples of the 40 groups: blend minus single -0.031 to +0.052 (95 %), the blend at least as good "
        "in 64 % of them." in text
    )
    assert result["blend_weights"] == {"logmel/linear/pl": 0.7, "mfcc/knn/main": 0.3}
    result["setup"] = {
        "backbones": ["logmel", "mfcc"],
        "heads": {"linear": {"type": "linear"}, "soft": {"type": "knn", "k": 11, "backbones": ["mfcc"]}},
        "pseudo_labels": True,
    }
    assert (
        "Run: backbones logmel, mfcc; heads linear, soft (knn; k 11); --pseudo-labels (every head also as "
        "{variant}+pl)." in quality.markdown([result])
    )
    assert "(lwlrap): -0.010, WORSE;" in quality.markdown([quality.collect("esc10mix", missed, 1.0)])
    # results recorded before the bootstrap say so
    del result["summary"]["best_single_nested"]["blend_minus_single"]
    assert "(lwlrap): +0.010, at least as good (no bootstrap interval in this result)." in quality.markdown([result])


def test_target_without_a_nested_score_says_why(tmp_path):
    _fake_run(tmp_path, nested_lwlrap=0.9)
    metrics = json.loads((tmp_path / "results" / "metrics.json").read_text())
    metrics["blend"]["nested"] = {"overall": None, "per_fold": {}, "folds": [], "skipped": "not computed: 2 folds"}
    (tmp_path / "results" / "metrics.json").write_text(json.dumps(metrics))
    result = quality.collect("esc10mix", tmp_path, 1.0)
    assert quality.target_line(result) == "target: nested lwlrap ≥ 0.85: unknown (not computed: 2 folds)"
    assert "BLEND nested" not in [r["backbone"] for r in result["rows"]]
    # a result recorded before this report had a summary still renders
    old = {k: v for k, v in result.items() if k != "summary"}
    assert "unknown (no nested score in this result)" in quality.markdown([old])


def _row(backbone, head, accuracy):
    return {"backbone": backbone, "head": head, "accuracy": {"mean": accuracy, "std": 0.0}}


def test_teacher_student_line_pairs_each_pl_candidate_with_its_round_one_variant():
    result = {
        "rows": [
            _row("aisfx", "knn", 0.80),
            _row("aisfx", "knn/main+pl", 0.85),  # main variant: its round one is the bare head's row
            _row("aisfx", "prompt/knn", 0.90),
            _row("aisfx", "prompt/knn+pl", 0.88),
            _row("aisfx", "linear", 0.70),  # no +pl partner: not counted
            _row("BLEND", "0.6·aisfx/knn/main+pl, 0.4·aisfx/prompt/knn", 0.9),
        ],
        "blend_weights": {"aisfx/knn/main+pl": 0.6, "aisfx/prompt/knn": 0.4},
    }
    line = quality.teacher_student_line(result, "accuracy")
    assert "1 of 2 gain, mean +0.015, best aisfx/knn/main+pl +0.050" in line
    assert "+pl candidates in the submitted blend: 1 of 2." in line
    lower_is_better = {**result, "rows": [{**r, "rmse": r.pop("accuracy")} for r in result["rows"]]}
    assert "1 of 2 gain, mean -0.015, best aisfx/prompt/knn+pl +0.020" in quality.teacher_student_line(
        lower_is_better, "rmse"
    )
    assert "not run in this result" in quality.teacher_student_line({"rows": result["rows"][:1]}, "accuracy")
