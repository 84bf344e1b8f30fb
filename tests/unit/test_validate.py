"""The validate step: every bad-input case gets a clear outcome (see docs/BAD_INPUT.md)."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audiofold.backbones import build_backbone
from audiofold.clips import list_clips
from audiofold.embed import embed_clips
from audiofold.errors import DataError
from audiofold.hashes import hash_clips
from audiofold.io import load_npz, read_json
from audiofold.prepare import prepare
from audiofold.tasks import TaskSpec
from audiofold.validate import inspect_clip, run_validation, validate

from helpers import make_rating_data


def tone(sr, seconds, channels=1):
    t = np.arange(int(sr * seconds)) / sr
    wave = (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return np.stack([wave * (c + 1) / channels for c in range(channels)], axis=1)


def run(tmp_path, manifest, policy="error", n_folds=2):
    """validate() on a manifest of train/test rows; targets are the train rows, folds alternate."""
    train = manifest[manifest["split"] == "train"]
    targets = {
        "ids": train["id"].to_numpy(dtype=str),
        "y": np.arange(len(train), dtype=np.float32)[:, None],
        "fold": np.arange(len(train)) % n_folds,
    }
    out = tmp_path / "validation"
    report = validate(
        manifest,
        targets,
        policy=policy,
        max_seconds=5,
        audio_dirs=[tmp_path / "audio"],
        report_out=out / "report.json",
        manifest_out=out / "manifest.csv",
        targets_out=out / "targets.npz",
        progress=False,
    )
    return report, load_npz(out / "targets.npz")


def manifest_of(tmp_path, clips):
    """clips: {id: (split, writer or None)}; a writer gets the path and writes the file."""
    audio = tmp_path / "audio"
    audio.mkdir(exist_ok=True)
    rows = []
    for clip_id, (split, writer) in clips.items():
        path = audio / f"{clip_id}.wav"
        if writer is not None:
            writer(path)
        rows.append(
            {
                "id": clip_id,
                "split": split,
                "path": str(path) if writer else "",
                "shard": "fold0" if split == "train" else "test0",
            }
        )
    return pd.DataFrame(rows)


def good(path):
    sf.write(path, tone(16000, 0.5), 16000)


def zero_length(path):
    sf.write(path, np.zeros((0, 1), dtype=np.float32), 16000)


def corrupt(path):
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" + os.urandom(200))


def truncated_header(path):
    good(path)
    path.write_bytes(path.read_bytes()[:30])


def nan_samples(path):
    wave = tone(16000, 0.5)
    wave[100] = np.nan
    wave[200] = np.inf
    sf.write(path, wave, 16000, subtype="FLOAT")


def silent(path):
    sf.write(path, np.zeros((8000, 1), dtype=np.float32), 16000)


def text_file(path):
    path.write_text("this is not audio\n")


BAD = {
    "zero_length": (zero_length, "no audio samples"),
    "corrupt": (corrupt, "unreadable"),
    "truncated_header": (truncated_header, "unreadable"),
    "nan": (nan_samples, "NaN or infinite"),
    "not_audio": (text_file, "unreadable"),
    "missing": (None, "missing file"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_clip_stops_the_run_naming_id_and_problem_by_default(tmp_path, case):
    writer, problem = BAD[case]
    manifest = manifest_of(
        tmp_path, {"a": ("train", good), "b": ("train", good), "bad": ("train", writer), "t": ("test", good)}
    )
    with pytest.raises(
        DataError, match=rf"(?s)1 clip\(s\) cannot be used:\n  train id 'bad' .*{problem}.*audio.bad_audio"
    ):
        run(tmp_path, manifest)
    assert not (tmp_path / "validation/report.json").exists()


def test_skip_drops_bad_training_rows_and_zero_fills_bad_test_rows(tmp_path):
    manifest = manifest_of(
        tmp_path,
        {
            "a": ("train", good),
            "b": ("train", corrupt),
            "c": ("train", good),
            "d": ("train", good),
            "t1": ("test", None),
            "t2": ("test", good),
        },
    )
    report, targets = run(tmp_path, manifest, policy="skip")
    assert report["skipped"] == ["b"] and report["zero_filled"] == ["t1"]
    assert targets["ids"].tolist() == ["a", "c", "d"]
    assert targets["y"][:, 0].tolist() == [0, 2, 3] and targets["fold"].tolist() == [0, 0, 1]
    written = pd.read_csv(tmp_path / "validation/manifest.csv", keep_default_na=False, dtype=str)
    assert written.set_index("id")["action"].to_dict() == {
        "a": "decode",
        "b": "skip",
        "c": "decode",
        "d": "decode",
        "t1": "zeros",
        "t2": "decode",
    }


def test_zeros_policy_fills_every_bad_clip_and_decode_writes_silence(tmp_path):
    manifest = manifest_of(
        tmp_path, {"a": ("train", good), "b": ("train", nan_samples), "t1": ("test", zero_length), "t2": ("test", good)}
    )
    report, targets = run(tmp_path, manifest, policy="zeros")
    assert report["zero_filled"] == ["b", "t1"] and report["skipped"] == []
    assert targets["ids"].tolist() == ["a", "b"]
    manifest = pd.read_csv(tmp_path / "validation" / "manifest.csv")
    test = manifest[manifest["split"] == "test"]
    backbone = build_backbone("logmel", {"type": "logmel", "sample_rate": 8000, "n_mels": 16})
    embed_clips(test[["id", "path", "action"]].values.tolist(), backbone, tmp_path / "test0.npz", max_seconds=5)
    shard = load_npz(tmp_path / "test0.npz")
    assert shard["ids"].tolist() == ["t1", "t2"], "every test id still gets a row, so the submission has every test id"
    silence = embed_clips([("z", "", "zeros")], backbone, tmp_path / "z.npz", max_seconds=5)
    assert silence["zero_filled"] == ["z"]
    np.testing.assert_array_equal(shard["X"][0], load_npz(tmp_path / "z.npz")["X"][0])  # t1 embeds silence
    assert not np.array_equal(shard["X"][0], shard["X"][1])
    assert read_json(tmp_path / "test0.meta.json")["zero_filled"] == ["t1"]


def test_skip_that_empties_a_fold_is_an_error(tmp_path):
    manifest = manifest_of(tmp_path, {"a": ("train", good), "b": ("train", corrupt), "t": ("test", good)})
    with pytest.raises(DataError, match="every row of fold 1"):
        run(tmp_path, manifest, policy="skip")


def test_silent_clips_are_warned_and_unlisted_files_listed_not_errors(tmp_path, caplog):
    manifest = manifest_of(tmp_path, {"a": ("train", good), "s": ("train", silent), "t": ("test", good)})
    good(tmp_path / "audio/stray.wav")
    (tmp_path / "audio/sub").mkdir()
    good(tmp_path / "audio/sub/other.flac")
    with caplog.at_level("INFO", logger="audiofold.validate"):
        report, _ = run(tmp_path, manifest)
    assert report["problems"] == [] and report["all_silent"] == ["s"]
    assert [os.path.relpath(p, tmp_path / "audio") for p in report["unlisted_files"]] == ["stray.wav", "sub/other.flac"]
    assert "WARNING: 1 all-silent clip(s): ['s']" in caplog.text and "no table row names" in caplog.text


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT"])
def test_every_rate_channel_count_and_bit_depth_passes(tmp_path, sr, channels, subtype):
    path = tmp_path / "clip.wav"
    sf.write(path, tone(sr, 0.2, channels), sr, subtype=subtype)
    problem, warnings, info = inspect_clip(str(path), max_seconds=5)
    assert problem is None and warnings == []
    assert info["sample_rate"] == sr and info["channels"] == channels and info["subtype"] == subtype


def test_report_counts_rates_channels_and_formats(tmp_path):
    def at(sr, ch, subtype):
        return lambda p: sf.write(p, tone(sr, 0.2, ch), sr, subtype=subtype)

    manifest = manifest_of(
        tmp_path,
        {
            "a": ("train", at(8000, 1, "PCM_16")),
            "b": ("train", at(48000, 2, "PCM_24")),
            "t": ("test", at(44100, 1, "FLOAT")),
        },
    )
    report, _ = run(tmp_path, manifest)
    assert report["sample_rates"] == {"44100": 1, "48000": 1, "8000": 1}
    assert report["channels"] == {"1": 2, "2": 1}
    assert report["subtypes"] == {"FLOAT": 1, "PCM_16": 1, "PCM_24": 1}


PEAK_RSS = """
import resource, sys
from audiofold.validate import inspect_clip
if sys.argv[1] != "-":
    problem, _, info = inspect_clip(sys.argv[1], max_seconds=30)
    assert problem is None and info["seconds"] == 3600, (problem, info)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_one_hour_file_reads_only_max_seconds(tmp_path):
    path = tmp_path / "hour.wav"
    sr = 8000
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as f:
        block = tone(sr, 60) * 0.5
        for _ in range(60):
            f.write(block)
    assert path.stat().st_size > 57_000_000

    def peak_kib(arg):
        out = subprocess.run([sys.executable, "-c", PEAK_RSS, arg], capture_output=True, text=True, check=True)
        return int(out.stdout.strip())

    extra_mib = (peak_kib(str(path)) - peak_kib("-")) / 1024
    # The whole hour as float32 would be 110 MiB (plus int16 and resampling copies); 30 s is under 1 MiB.
    assert extra_mib < 40, f"validating a one-hour file took {extra_mib:.0f} MiB more peak RSS"


def test_manifest_rows_without_a_file_are_missing_under_a_lenient_policy(tmp_path):
    config = make_rating_data(tmp_path)
    next((tmp_path / "audio").glob("0005.*")).unlink()
    report = run_validation(
        config["data"], policy="skip", max_seconds=5, shard_clips=4, out_dir=tmp_path / "results/validation"
    )
    assert report["skipped"] == ["0005"] and report["problems"][0]["problem"].startswith("missing file")
    clips = pd.read_csv(tmp_path / "results/validation/clips.csv", dtype=str, keep_default_na=False)
    assert clips.set_index("id").loc["0005", "action"] == "skip" and clips["chunk"].str.match(r"(train|test)\d+$").all()
    prepare(config, tmp_path / "results", skipped=set(clips.loc[clips["action"] == "skip", "id"]))
    assert "0005" not in load_npz(tmp_path / "results/targets.npz")["ids"].tolist()


# ---- tables ------------------------------------------------------------------------------------


def _rewrite(tmp_path, name, edit):
    df = pd.read_csv(tmp_path / name, dtype=str)
    df = edit(df)
    df.to_csv(tmp_path / name, index=False)


def test_misnamed_id_or_label_column_is_named(tmp_path):
    config = make_rating_data(tmp_path)
    config["data"]["id_column"] = "id"
    with pytest.raises(DataError, match=r"data.id_column 'id' is not a column .*clip_id"):
        prepare(config, tmp_path / "results")
    config["data"].update(id_column="clip_id", label_columns=["score"])
    with pytest.raises(DataError, match=r"\['score'\] are not in the training table.*data.label_columns"):
        prepare(config, tmp_path / "results")


def test_missing_label_column_in_the_table_is_named(tmp_path):
    config = make_rating_data(tmp_path)
    _rewrite(tmp_path, "train.csv", lambda df: df.drop(columns=["rating"]))
    with pytest.raises(DataError, match="label columns"):
        prepare(config, tmp_path / "results")


def test_empty_regression_label_names_the_row(tmp_path):
    config = make_rating_data(tmp_path)

    def blank(df):
        df.loc[4, "rating"] = ""
        return df

    _rewrite(tmp_path, "train.csv", blank)
    with pytest.raises(DataError, match=r"row 6 \(id '0004'\): label 'rating' is empty, not a number"):
        prepare(config, tmp_path / "results")


@pytest.mark.parametrize(
    "value,what",
    [
        (5.5, "above the declared maximum 5"),
        (-0.5, "below the declared minimum 0"),
        (2.25, "off the declared step 0.5"),
    ],
)
def test_labels_outside_the_declared_scale_or_step_name_the_row(value, what):
    spec = TaskSpec(
        kind="regression", id_column="id", label_columns=["rating"], scale={"min": 0.0, "max": 5.0, "step": 0.5}
    )
    df = pd.DataFrame({"id": ["a", "b", "c"], "rating": [1.0, value, 4.5]})
    with pytest.raises(DataError, match=rf"row 3 \(id 'b'\): label 'rating' = {value:g} is {what}"):
        spec.encode_targets(df, source="train.csv")
    assert spec.encode_targets(df.iloc[[0, 2]], source="train.csv")[:, 0].tolist() == [1.0, 4.5]


def test_empty_multilabel_cells_are_refused_and_mixed_separators_accepted():
    spec = TaskSpec(
        kind="multilabel", id_column="id", label_columns=["labels"], classes=["bark", "rain", "car"], label_sep=","
    )
    mixed = pd.DataFrame({"id": ["a", "b"], "labels": ["bark;rain", "car, bark"]})
    assert spec.encode_targets(mixed).tolist() == [[1, 1, 0], [1, 0, 1]]
    empty = pd.DataFrame({"id": ["a", "b", "c"], "labels": ["bark", np.nan, " "]})
    with pytest.raises(DataError, match=r"row 3 \(id 'b'\): column 'labels' is empty \(2 such rows.*\[3, 4\]"):
        spec.encode_targets(empty, source="train.csv")


def test_mixed_separators_in_a_table_file_are_a_parse_error_or_sniffed(tmp_path):
    from audiofold.tables import read_table

    path = tmp_path / "t.csv"
    path.write_text("id;rating\na;1.5\nb;2,5\n")  # decimal commas inside a ;-separated table
    df = read_table(path)
    assert list(df.columns) == ["id", "rating"] and df["id"].tolist() == ["a", "b"]


def test_non_utf8_table_is_read_as_latin1(tmp_path):
    from audiofold.tables import read_table

    path = tmp_path / "t.csv"
    path.write_bytes("id,label\ncaf\xe9,bruit\n".encode("latin-1"))
    assert read_table(path)["id"].tolist() == ["café"]


def test_test_ids_and_sample_submission_ids_must_agree(tmp_path):
    config = make_rating_data(tmp_path)
    test = pd.read_csv(tmp_path / "test.csv", dtype=str)
    sample = pd.DataFrame({"clip_id": test["clip_id"].tolist()[1:] + ["9999"], "rating": 0.0})
    sample.to_csv(tmp_path / "sample.csv", index=False)
    config["data"]["sample_submission"] = str(tmp_path / "sample.csv")
    with pytest.raises(
        DataError,
        match=r"1 test id\(s\) missing from the sample submission \['0024'\], "
        r"1 sample-submission id\(s\) missing from the test table \['9999'\]",
    ):
        list_clips(config["data"], missing_ok=True)


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_ids_escaping_the_audio_folder_are_refused_in_every_form(tmp_path, kind):
    config = make_rating_data(tmp_path)
    outside = tmp_path / "secret.wav"
    sf.write(outside, np.zeros(10, dtype=np.float32), 8000)
    if kind == "symlink":
        (tmp_path / "audio/0000.wav").unlink()
        (tmp_path / "audio/0000.wav").symlink_to(outside)
    else:
        _rewrite(
            tmp_path,
            "train.csv",
            lambda df: df.assign(
                clip_id=[
                    ("../secret" if kind == "dotdot" else str(outside)) if i == 0 else v
                    for i, v in enumerate(df["clip_id"])
                ]
            ),
        )
    config["audio"]["bad_audio"] = "zeros"  # refused whatever the bad-audio policy
    with pytest.raises(DataError, match="outside the audio folder.*refused"):
        list_clips(config["data"], missing_ok=True)


def test_validation_writes_each_chunks_manifest_only_when_it_changed(tmp_path):
    config = make_rating_data(tmp_path)
    out = tmp_path / "results/validation"
    hashes = tmp_path / "hashes.csv"
    hash_clips(config["data"], None, hashes, progress=False)
    run_validation(config["data"], policy="error", max_seconds=5, shard_clips=4, out_dir=out, hashes_path=hashes)
    clips = pd.read_csv(out / "clips.csv", dtype=str, keep_default_na=False).set_index("id")
    manifests = {p.stem: p for p in (out / "chunks").glob("*.tsv")}
    assert sorted(manifests) == sorted(set(clips["chunk"])) == sorted(read_json(out / "chunks.json")["clips"])
    first = pd.read_csv(manifests[clips.loc["0003", "chunk"]], sep="\t", dtype=str).set_index("id")
    assert first.loc["0003", "hash"] == clips.loc["0003", "hash"] != ""
    mtimes = {name: p.stat().st_mtime_ns for name, p in manifests.items()}

    edited = next((tmp_path / "audio").glob("0003.*"))
    sf.write(edited, np.ones(800, dtype=np.float32) * 0.1, 8000)
    os.utime(edited, ns=(10**18, 10**18))  # older than everything (cp -p): the hash still changes
    hash_clips(config["data"], None, hashes, progress=False)
    run_validation(config["data"], policy="error", max_seconds=5, shard_clips=4, out_dir=out, hashes_path=hashes)
    changed = {name for name, p in manifests.items() if p.stat().st_mtime_ns != mtimes[name]}
    assert changed == {clips.loc["0003", "chunk"]}

    train = pd.read_csv(tmp_path / "train.csv", dtype=str)
    train.iloc[:4].to_csv(tmp_path / "train.csv", index=False)  # fewer chunks
    hash_clips(config["data"], None, hashes, progress=False)
    run_validation(config["data"], policy="error", max_seconds=5, shard_clips=4, out_dir=out, hashes_path=hashes)
    now = set(pd.read_csv(out / "clips.csv", dtype=str)["chunk"])
    assert {p.stem for p in (out / "chunks").glob("*.tsv")} == now and len(now) < len(manifests)
