"""Bad input seen through Snakemake on a small Kaggle-style folder (see docs/BAD_INPUT.md).

Only prepare and validate run (a few seconds), then dry runs say what an edit would rerun.
"""

import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from conftest import ROOT, snakemake

REPORT = "results/validation/report.json"
TARGETS = "results/targets.npz"  # prepare's output: the validate checkpoint runs first


def tone(freq, seconds=0.5, sr=8000):
    t = np.arange(int(sr * seconds)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def kaggle_folder(tmp_path, n_train=8, n_test=3):
    """train.csv (id,label), test.csv, sample_submission.csv, train/ and test/ holding <id>.wav; config.yaml."""
    for split in ("train", "test"):
        (tmp_path / split).mkdir()
    train_ids = [f"tr{i}" for i in range(n_train)]
    test_ids = [f"te{i}" for i in range(n_test)]
    for i, clip in enumerate(train_ids):
        sf.write(tmp_path / "train" / f"{clip}.wav", tone(200 + 50 * i), 8000)
    for i, clip in enumerate(test_ids):
        sf.write(tmp_path / "test" / f"{clip}.wav", tone(300 + 50 * i), 8000)
    pd.DataFrame({"id": train_ids, "label": ["dog", "cat"] * (n_train // 2)}).to_csv(
        tmp_path / "train.csv", index=False
    )
    pd.DataFrame({"id": test_ids}).to_csv(tmp_path / "test.csv", index=False)
    pd.DataFrame({"id": test_ids, "label": "dog"}).to_csv(tmp_path / "sample_submission.csv", index=False)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["demo"]["enabled"] = False
    config["cv"]["n_folds"] = 2
    config["cv"]["auto_groups"] = (
        False  # no pseudo-groups: only validate and prepare run (test_auto_groups.py has them)
    )
    config["data"].update(
        train_csv="train.csv",
        test_csv="test.csv",
        sample_submission="sample_submission.csv",
        train_audio_dir="train",
        test_audio_dir="test",
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return tmp_path


def planned(wd) -> str:
    """What a dry run of validate and prepare would run ('' when nothing); validate is a checkpoint."""
    out = snakemake(wd, "-n", REPORT, TARGETS).stdout.replace("checkpoint validate", "rule validate")
    return "" if "Nothing to be done" in out else out


@pytest.fixture(scope="module")
def validated_once(tmp_path_factory):
    wd = kaggle_folder(tmp_path_factory.mktemp("kaggle"))
    snakemake(wd, "--cores", "1", REPORT, TARGETS)
    assert planned(wd) == "", "a second run right after the first has nothing to do"
    return wd


@pytest.fixture
def validated(validated_once, tmp_path):
    """A copy of the validated folder (mtimes and Snakemake's records kept) for one edit."""
    wd = tmp_path / "copy"
    shutil.copytree(validated_once, wd, symlinks=True)
    return wd


def test_an_overwritten_clip_reruns_validate_whose_log_names_it(validated):
    clip = validated / "test/te1.wav"
    sf.write(clip, tone(1234, seconds=0.7), 8000)  # other audio, written after the run
    plan = planned(validated)
    # seen by the clips' fingerprint (a param of hashes and validate), not by one Snakemake input per clip
    assert "rule validate" in plan and "params have changed since last execution:\n        hashes" in plan
    snakemake(validated, "--cores", "1", "results/validation/clips.csv")
    log = (validated / "results/logs/validate.log").read_text()
    assert re.search(r"chunk test\d+: 1 changed \(te1\); its embed jobs rerun", log), log[-2000:]


def test_a_clip_replaced_by_an_older_file_reruns_validate(validated):
    """cp -p / rsync -t keep the source's old mtime, so 'newer than the output' misses it."""
    clip = validated / "train/tr3.wav"
    sf.write(clip, tone(999, seconds=0.6), 8000)
    os.utime(clip, ns=(10**18, 10**18))  # 2001: older than every output
    assert "rule validate" in planned(validated)


@pytest.mark.parametrize("change", ["added", "removed"])
@pytest.mark.parametrize("group_duplicates", [True, False])
def test_an_added_or_removed_clip_reruns_validate(validated, change, group_duplicates):
    """The clip list changes. prepare (folds, targets) reads the tables and, under cv.group_duplicates
    (the default), the content hashes (identical training clips share a fold), which are hashed again."""
    if not group_duplicates:
        config = yaml.safe_load((validated / "config.yaml").read_text())
        config["cv"]["group_duplicates"] = False
        (validated / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        snakemake(validated, "--cores", "1", REPORT, TARGETS)
    if change == "added":
        sf.write(validated / "train/extra {take}.wav", tone(440), 8000)  # braces: not a Snakemake wildcard
    else:
        (validated / "test/te2.wav").unlink()
    plan = planned(validated)
    assert "rule validate" in plan and "rule hashes" in plan
    assert ("rule prepare" in plan) == group_duplicates


def test_an_unknown_backbone_type_is_a_plain_message_at_start_up(tmp_path):
    wd = kaggle_folder(tmp_path)
    config = yaml.safe_load((wd / "config.yaml").read_text())
    config["backbones"]["logmel"]["type"] = "wav2vec"
    config["heads"]["knn"]["kk"] = 3
    (wd / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    proc = snakemake(wd, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "backbones.logmel.type: unknown backbone type 'wav2vec'" in out
    assert "InputFunctionException" not in out


def test_a_typo_in_the_configfile_is_blamed_on_that_file(tmp_path):
    wd = kaggle_folder(tmp_path)
    (wd / "my.yaml").write_text("cv:\n  n_fold: 3\n")
    proc = snakemake(wd, "-n", "--configfile", str(wd / "my.yaml"), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "my.yaml: key cv" in out and "n_fold" in out


def test_a_failed_step_ends_the_run_naming_the_rule_its_log_and_its_error(validated):
    """The run's last lines (the Snakefile's onerror, audiofold.run_summary) say which rule failed,
    where its log is and the error it wrote there."""
    (validated / "train/tr3.wav").write_bytes(b"not audio " * 20)
    proc = snakemake(validated, "--cores", "1", REPORT, TARGETS, check=False)
    lines = proc.stdout.splitlines()
    assert proc.returncode != 0
    assert lines[:2] == ["audiofold: the run failed", "  rule validate failed: see results/logs/validate.log"]
    assert "cannot be used" in lines[2] and "train id 'tr3'" in lines[3], lines


@pytest.mark.parametrize("results_dir", ["a file", ".."])
def test_a_results_folder_that_is_a_file_or_above_the_project_stops_at_start_up(tmp_path, results_dir):
    """Round 3: before Snakemake's own NotADirectoryError traceback, and before anything is written."""
    (tmp_path / "project").mkdir()
    wd = kaggle_folder(tmp_path / "project")
    if results_dir == "a file":
        (wd / "results").write_text("not a folder")
    (wd / "my.yaml").write_text(yaml.safe_dump({"results_dir": "results" if results_dir == "a file" else ".."}))
    before = sorted(
        (p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file() and ".snakemake" not in p.parts
    )
    proc = snakemake(wd, "--cores", "1", "--configfile", str(wd / "my.yaml"), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"{wd / 'my.yaml'}: key results_dir:" in out
    assert ("is not a folder" if results_dir == "a file" else "a folder above the project folder") in out
    assert "NotADirectoryError" not in out
    assert (
        sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file() and ".snakemake" not in p.parts)
        == before
    )


def test_an_id_with_braces_is_embedded(validated):
    """Round 3: a file x{y}.wav passed validate, then the run stopped after the checkpoint with a
    WildcardError in rule embed (Snakemake reads "{y}" in an input path as a wildcard)."""
    sf.write(validated / "train/x{y}.wav", tone(640), 8000)
    train = pd.read_csv(validated / "train.csv")
    pd.concat([train, pd.DataFrame({"id": ["x{y}"], "label": ["dog"]})]).to_csv(validated / "train.csv", index=False)
    snakemake(validated, "--cores", "1", REPORT, TARGETS)
    clips = pd.read_csv(validated / "results/validation/clips.csv", keep_default_na=False).set_index("id")
    shard = f"results/embeddings/logmel/{clips.loc['x{y}', 'chunk']}.npz"  # one job: the clip's chunk
    snakemake(validated, "--cores", "1", shard)
    assert "x{y}" in np.load(validated / shard)["ids"].tolist()
    sf.write(validated / "train/x{y}.wav", tone(900), 8000)  # edited after the run: its chunk reruns
    assert "rule embed" in snakemake(validated, "-n", shard).stdout


def _embed_inputs(wd) -> dict[str, str]:
    """Shard -> the input line of each embed job a forced dry run of embed_all would run."""
    out = snakemake(wd, "-n", "--forcerun", "embed", "--", "embed_all").stdout
    blocks = [b for b in out.split("\n\n") if "rule embed:" in b]
    inputs = {}
    for block in blocks:
        fields = dict(line.strip().split(": ", 1) for line in block.splitlines() if ": " in line)
        inputs[f"{fields['wildcards']}"] = fields["input"]
    return inputs


def test_an_edited_clip_reruns_exactly_its_chunks_embed_jobs(validated):
    """Each embed job's one data input is its chunk's manifest (written by validate only when changed),
    not the chunk's audio files, which Snakemake's scheduler would stat every round."""
    config = yaml.safe_load((validated / "config.yaml").read_text())
    config["audio"]["shard_clips"] = 4  # 2 training chunks, 1 test chunk
    (validated / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    snakemake(validated, "--cores", "1", "validate")
    inputs = _embed_inputs(validated)
    assert len(inputs) == 3 * len(config["backbones"]), inputs
    for wildcards, listed in inputs.items():
        shard = wildcards.split("shard=")[1]
        assert listed == f"results/validation/chunks/{shard}.tsv", (wildcards, listed)

    snakemake(validated, "--cores", "2", "embed_all")
    shards = sorted((validated / "results/embeddings").glob("*/*.npz"))
    before = {p: p.stat().st_mtime_ns for p in shards}
    chunk = pd.read_csv(validated / "results/validation/clips.csv").set_index("id").loc["tr3", "chunk"]
    sf.write(validated / "train/tr3.wav", tone(1234, seconds=0.7), 8000)
    snakemake(validated, "--cores", "2", "embed_all")
    rerun = sorted(f"{p.parent.name}/{p.stem}" for p in shards if p.stat().st_mtime_ns != before[p])
    assert rerun == sorted(f"{backbone}/{chunk}" for backbone in config["backbones"])
    assert "tr3" in np.load(validated / f"results/embeddings/{next(iter(config['backbones']))}/{chunk}.npz")["ids"]


def test_a_results_folder_without_chunk_manifests_reruns_validate(validated):
    """One made before the manifests existed: validate's first output, chunks.json, what a job waiting
    on the checkpoint asks for, is missing, so validate reruns (instead of an embed job failing on a
    missing manifest, or nothing being embedded)."""
    shutil.rmtree(validated / "results/validation/chunks")
    (validated / "results/validation/chunks.json").unlink()
    plan = snakemake(validated, "-n", "embed_all").stdout
    assert "checkpoint validate:" in plan and "reason: Missing output files" in plan, plan
