import numpy as np
import pytest

from audiofold.backbones import Backbone, build_backbone
from audiofold.crops import make_crops
from audiofold.embed import AUTO_BATCH, embed_clips, embed_waves, resolve_batch_size
from audiofold.io import load_npz, read_json


class Recorder(Backbone):
    """Cheap stand-in backbone: features (mean, max, first sample); records every batch it sees."""

    type_name = "recorder"

    def __init__(self, *, sample_rate: int = 100, crop_seconds: float | None = 0.1) -> None:
        super().__init__(sample_rate=sample_rate, crop_seconds=crop_seconds)
        self.batches: list[int] = []

    @property
    def dim(self) -> int:
        return 3

    def embed_batch(self, crops):
        self.batches.append(len(crops))
        return np.stack([crops.mean(axis=1), crops.max(axis=1), crops[:, 0]], axis=1).astype(np.float32)


def waves_of(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n).astype(np.float32) for n in lengths]


def test_crops_are_aggregated_per_clip():
    backbone = Recorder()  # crop_len = 10 samples
    waves = waves_of([50, 25, 10, 80])
    X, X_crops = embed_waves(waves, backbone, n_crops=5, keep_crops=True, progress=False)
    assert X.shape == (4, 3) and X_crops.shape == (4, 5, 3) and X.dtype == np.float32
    for wave, x, per_crop in zip(waves, X, X_crops):
        expected = backbone.embed_batch(make_crops(wave, 10, 5))
        np.testing.assert_allclose(per_crop, expected, rtol=1e-6)
        np.testing.assert_allclose(x, expected.mean(axis=0), rtol=1e-6)
    X_max, none = embed_waves(waves, backbone, n_crops=5, aggregate="max", progress=False)
    assert none is None
    np.testing.assert_allclose(X_max, X_crops.max(axis=1))


def test_identical_crops_run_once_and_batches_stay_bounded():
    backbone = Recorder()
    waves = waves_of([5, 8, 10] * 4)  # all no longer than a crop: one distinct crop each
    X, X_crops = embed_waves(waves, backbone, n_crops=8, keep_crops=True, batch_size=5, progress=False)
    assert sum(backbone.batches) == len(waves) and max(backbone.batches) <= 5
    assert (X_crops == X_crops[:, :1]).all()

    backbone.batches.clear()
    embed_waves(waves_of([100] * 7), backbone, n_crops=5, batch_size=4, progress=False)
    assert sum(backbone.batches) == 35 and max(backbone.batches) <= 4


def test_results_do_not_depend_on_batch_size_or_neighbours():
    backbone = build_backbone("lm", {"type": "logmel", "crop_seconds": 0.5})
    waves = waves_of([16000, 4000, 12345, 30000], seed=3)
    a, _ = embed_waves(waves, backbone, n_crops=7, batch_size=1, progress=False)
    b, _ = embed_waves(waves, backbone, n_crops=7, batch_size=64, progress=False)
    c, _ = embed_waves(waves[2:3], backbone, n_crops=7, progress=False)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(a[2], c[0], rtol=1e-5, atol=1e-4)


def test_whole_clip_backbone_ignores_n_crops_and_groups_equal_lengths():
    backbone = Recorder(crop_seconds=None)
    waves = waves_of([30, 50, 30, 30, 70])
    X, X_crops = embed_waves(waves, backbone, n_crops=5, keep_crops=True, batch_size=2, progress=False)
    assert X_crops.shape == (5, 1, 3)
    assert sorted(backbone.batches) == [1, 1, 1, 2]  # the three 30-sample clips share batches of <= 2
    for wave, x in zip(waves, X):
        np.testing.assert_allclose(x, backbone.embed_batch(wave[None])[0])


def test_bad_arguments_and_no_clips():
    with pytest.raises(ValueError, match="aggregate"):
        embed_waves(waves_of([20]), Recorder(), aggregate="median", progress=False)
    with pytest.raises(ValueError, match="n_crops"):
        embed_waves(waves_of([20]), Recorder(), n_crops=0, progress=False)
    X, X_crops = embed_waves([], Recorder(), n_crops=3, keep_crops=True, progress=False)
    assert X.shape == (0, 3) and X_crops.shape == (0, 3, 3)


def write_clips(folder, lengths, sr):
    """Float WAV files of the given lengths; returns (rows for embed_clips, the waves)."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    waves = waves_of(lengths)
    rows = []
    for i, wave in enumerate(waves):
        sf.write(folder / f"c{i}.wav", wave, sr, subtype="FLOAT")
        rows.append((f"c{i}", str(folder / f"c{i}.wav"), "decode"))
    return rows, waves


def test_embed_clips_writes_embeddings_and_metadata(tmp_path):
    rows, waves = write_clips(tmp_path / "audio", [40, 9, 120], 100)
    out = tmp_path / "embeddings" / "rec" / "train1.npz"
    meta = embed_clips(rows, Recorder(), out, max_seconds=None, n_crops=6, keep_crops=True, meta={"shard": "train1"})
    data = load_npz(out)
    assert (
        data["ids"].tolist() == ["c0", "c1", "c2"] and data["X"].shape == (3, 3) and data["X_crops"].shape == (3, 6, 3)
    )
    np.testing.assert_allclose(data["X"], embed_waves(waves, Recorder(), n_crops=6, progress=False)[0], atol=1e-6)
    sidecar = read_json(tmp_path / "embeddings" / "rec" / "train1.meta.json")
    assert sidecar == meta
    assert meta["shape"] == [3, 3] and meta["n_crops"] == 6 and meta["shard"] == "train1"
    assert meta["backbone"]["type"] == "recorder" and meta["backbone"]["dim"] == 3

    assert meta["batching"] == {"batch_size": 4, "requested": "auto", "max_padding": 0.25}  # auto on a CPU backbone

    embed_clips(rows, Recorder(), out, max_seconds=None)
    assert set(load_npz(out)) == {"ids", "X"}


def test_auto_batch_size_follows_the_backbone_device():
    cpu = Recorder()
    embed_waves(waves_of([100] * 9), cpu, n_crops=2, progress=False)
    assert max(cpu.batches) == AUTO_BATCH["cpu"] == 4
    gpu = Recorder()
    gpu.device = "cuda"  # as torchaudio/hf backbones built with device: cuda (or auto on a GPU machine)
    assert resolve_batch_size("auto", gpu) == AUTO_BATCH["cuda"] == 32
    assert resolve_batch_size(7, gpu) == 7


def test_embed_clips_resamples_to_the_backbone_rate(tmp_path):
    import soundfile as sf

    tone = np.sin(2 * np.pi * 440 * np.arange(8000) / 8000).astype(np.float32)
    sf.write(tmp_path / "a.wav", tone, 8000)
    backbone = build_backbone("lm", {"type": "logmel"})
    meta = embed_clips(
        [("a", str(tmp_path / "a.wav"), "decode")], backbone, tmp_path / "emb.npz", max_seconds=None, n_crops=5
    )
    assert meta["n_crops"] == 1 and meta["shape"] == [1, 192] and meta["backbone"]["name"] == "lm"


def test_length_batches_sort_bound_padding_and_size():
    from audiofold.embed import length_batches

    lengths = [100, 80, 79, 100, 60, 50, 99, 10]
    batches = length_batches(lengths, batch_size=2, max_padding=0.25)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= 2
        longest = max(lengths[i] for i in batch)
        assert all(lengths[i] >= 0.75 * longest for i in batch)
    assert batches[0] == [0, 3]  # longest first, stable among equals
    assert all(len(set(lengths[i] for i in b)) == 1 for b in length_batches(lengths, 8, 0.0))


class MaskingRecorder(Recorder):
    """Takes ``lengths``: features of the unpadded rows, so padded batches must give identical results."""

    accepts_lengths = True

    def embed_outputs(self, crops, lengths=None):
        self.batches.append(len(crops))
        rows = [
            c if lengths is None else c[:n]
            for c, n in zip(crops, lengths if lengths is not None else [None] * len(crops))
        ]
        return {"X": np.stack([[r.mean(), r.max(), r[0]] for r in rows]).astype(np.float32)}


def test_padded_batches_for_backbones_that_mask_padding():
    waves = waves_of([30, 50, 29, 45, 70, 24])
    plain = Recorder(crop_seconds=None)
    masked = MaskingRecorder(crop_seconds=None)
    X_plain, _ = embed_waves(waves, plain, batch_size=4, progress=False)
    X_masked, _ = embed_waves(waves, masked, batch_size=4, progress=False)
    np.testing.assert_allclose(X_masked, X_plain, rtol=1e-6)
    assert len(plain.batches) == 6  # no two lengths are equal
    assert sorted(masked.batches) == [1, 2, 3]  # [70] alone (50 < 0.75 * 70), [50, 45], [30, 29, 24]
    masked.batches.clear()
    embed_waves(waves, masked, batch_size=4, max_padding=0.0, progress=False)
    assert len(masked.batches) == 6


def test_split_backbone_config_separates_embed_step_options():
    from audiofold.backbones import split_backbone_config

    backbone, extraction = split_backbone_config(
        {"type": "logmel", "n_mels": 64, "batch_size": 8, "max_padding": 0.1, "tta": {"n_crops": 5, "pad": "loop"}}
    )
    assert backbone == {"type": "logmel", "n_mels": 64}
    assert extraction == {"n_crops": 5, "pad": "loop", "batch_size": 8, "max_padding": 0.1}
