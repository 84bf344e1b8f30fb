"""torchaudio SSL backbones: small random-weight models of the real architectures, saved as the
bundle's checkpoint file and loaded through the same path users take."""

import numpy as np
import pytest
import soundfile as sf
import torch

from audiofold import checkpoints
from audiofold.backbones import build_backbone
from audiofold.backbones.torchaudio_ssl import save_random_checkpoint, tiny_arch
from audiofold.cli import main as cli_main
from audiofold.embed import embed_clips, extract, unpack_sequences
from audiofold.errors import ConfigError
from audiofold.io import file_sha256, load_npz, meta_path, read_json

ARCH = tiny_arch(num_layers=3, dim=32)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch"


def hub_checkpoint(bundle, seed=0):
    return save_random_checkpoint(
        bundle, checkpoints.checkpoint_dir() / checkpoints.weights_spec(bundle).filename, ARCH, seed
    )


def noise(n, seconds=0.5, seed=0):
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("bundle", ["wavlm_base_plus", "wav2vec2_base", "hubert_large", "wav2vec2_asr_base_960h"])
def test_bundle_loads_from_torch_home_and_embeds(torch_home, bundle):
    path = hub_checkpoint(bundle)
    assert path.parent == torch_home / "hub" / "checkpoints"
    bb = build_backbone("ssl", {"type": "torchaudio", "bundle": bundle, "arch": ARCH})
    assert bb.describe()["checkpoint"] == {"path": str(path), "sha256": file_sha256(path)}
    X = bb.embed_batch(np.stack(noise(3)))
    assert X.shape == (3, 32) and X.dtype == np.float32 and np.isfinite(X).all()
    assert not np.allclose(X[0], X[1])  # different audio, different embeddings


def test_missing_checkpoint_fails_at_build_naming_file_place_and_command(torch_home):
    with pytest.raises(ConfigError) as err:
        build_backbone("wavlm", {"type": "torchaudio", "bundle": "wavlm_base_plus", "arch": ARCH})
    message = str(err.value)
    assert message.startswith("backbones.wavlm.checkpoint:")
    assert "wavlm_base_plus.pth" in message and str(torch_home / "hub" / "checkpoints") in message
    assert "audiofold weights fetch wavlm_base_plus" in message
    with pytest.raises(ConfigError, match=r"backbones\.w\.checkpoint: checkpoint file .*nope\.pth' does not exist"):
        build_backbone("w", {"type": "torchaudio", "checkpoint": str(torch_home / "nope.pth")})


def test_explicit_checkpoint_path_and_wrong_architecture(tmp_path, torch_home):
    path = save_random_checkpoint("hubert_base", tmp_path / "my.pt", ARCH)
    bb = build_backbone("h", {"type": "torchaudio", "bundle": "hubert_base", "checkpoint": str(path), "arch": ARCH})
    assert bb.checkpoint_path == path
    with pytest.raises(ConfigError, match=r"backbones\.h\.checkpoint: .*does not fit the hubert_base architecture"):
        build_backbone(
            "h",
            {
                "type": "torchaudio",
                "bundle": "hubert_base",
                "checkpoint": str(path),
                "arch": tiny_arch(num_layers=3, dim=48),
            },
        )


def test_layer_choices_agree_with_each_other(torch_home):
    hub_checkpoint("wavlm_base")
    crops = np.stack(noise(2, seed=1))

    def build(**options):
        return build_backbone("w", {"type": "torchaudio", "bundle": "wavlm_base", "arch": ARCH, **options})

    all_layers = build(layer="all").embed_outputs(crops)
    assert all_layers["layers"].shape == (2, 3, 32)
    np.testing.assert_allclose(all_layers["X"], all_layers["layers"].mean(axis=1), rtol=1e-5, atol=1e-6)
    for layer, index in (("last", 2), (0, 0), (-2, 1)):
        np.testing.assert_allclose(
            build(layer=layer).embed_batch(crops), all_layers["layers"][:, index], rtol=1e-4, atol=1e-5
        )
    # Mean over a layer range pools the mean of the layers' frames (equal length, so also the mean of pooled layers).
    np.testing.assert_allclose(
        build(layer=[0, 2]).embed_batch(crops), all_layers["layers"][:, :2].mean(axis=1), rtol=1e-4, atol=1e-5
    )
    mean_std = build(pooling="mean_std").embed_batch(crops)
    assert mean_std.shape == (2, 64)
    np.testing.assert_allclose(mean_std[:, :32], all_layers["layers"][:, 2], rtol=1e-4, atol=1e-5)
    assert (mean_std[:, 32:] > 0).all()


@pytest.mark.parametrize(
    "options,message",
    [
        ({"layer": 3}, r"backbones\.w\.layer: index 3 is out of range for a 3-layer model"),
        ({"layer": [2, 2]}, r"backbones\.w\.layer: range \[2, 2\]"),
        ({"layer": "first"}, r"backbones\.w\.layer: must be 'last', 'all'"),
        ({"pooling": "max"}, r"backbones\.w\.pooling: must be one of mean, mean_std"),
        ({"bundle": "beats"}, r"backbones\.w\.bundle: unknown bundle 'beats'"),
        ({"sample_rate": 8000}, r"backbones\.w\.sample_rate: wavlm_base was trained at 16000 Hz"),
        ({"precision": "fp16"}, r"backbones\.w\.precision: fp16 autocast is for GPU"),
    ],
)
def test_bad_options_name_the_key(torch_home, options, message):
    hub_checkpoint("wavlm_base")
    with pytest.raises(ConfigError, match=message):
        build_backbone("w", {"type": "torchaudio", "bundle": "wavlm_base", "arch": ARCH, **options})


def test_int8_quantization_keeps_embeddings_close(torch_home):
    hub_checkpoint("wavlm_base")
    crops = np.stack(noise(4, seconds=1.0, seed=2))
    options = {"type": "torchaudio", "bundle": "wavlm_base", "arch": ARCH}
    fp32 = build_backbone("w", options).embed_batch(crops)
    int8 = build_backbone("w", {**options, "precision": "int8"}).embed_batch(crops)
    cosine = (fp32 * int8).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(int8, axis=1)
    assert cosine.min() >= 0.99 and not np.array_equal(fp32, int8)


def test_shard_with_layers_and_sequences(tmp_path, torch_home):
    hub_checkpoint("wavlm_base")
    waves = noise(3, seconds=0.6, seed=3) + noise(1, seconds=0.3, seed=4)  # one clip shorter than the crop
    rows = []
    for clip_id, wave in zip("abcd", waves):
        sf.write(tmp_path / f"{clip_id}.wav", wave, 16000, subtype="FLOAT")
        rows.append((clip_id, str(tmp_path / f"{clip_id}.wav"), "decode"))
    bb = build_backbone(
        "w",
        {
            "type": "torchaudio",
            "bundle": "wavlm_base",
            "arch": ARCH,
            "layer": "all",
            "keep_sequence": True,
            "crop_seconds": 0.5,
        },
    )
    out_path = tmp_path / "emb.npz"
    meta = embed_clips(rows, bb, out_path, max_seconds=None, n_crops=3)
    data = load_npz(out_path)
    assert data["X"].shape == (4, 32) and data["X_layers"].shape == (4, 3, 32)
    assert data["seq"].dtype == np.float16 and data["seq_offsets"].dtype == np.int64
    seqs = unpack_sequences(data["seq"], data["seq_offsets"])
    frames = bb.model.feature_extractor(torch.zeros(1, 8000), None)[0].shape[1]  # frames per 0.5 s crop
    assert [len(s) for s in seqs] == [3 * frames] * 3 + [frames]  # the short clip's 3 identical crops count once
    assert seqs[0].shape[1:] == (3, 32)
    # The sequence frames pooled give the per-layer embedding (begin crop of the short clip = its only crop).
    np.testing.assert_allclose(seqs[3].mean(axis=0), data["X_layers"][3], atol=2e-2)
    assert read_json(meta_path(out_path))["backbone"]["checkpoint"]["sha256"] == bb.checkpoint_sha256
    assert meta["backbone"]["layers"] == [0, 1, 2]


def test_extract_matches_embed_waves_for_plain_backbones():
    bb = build_backbone("lm", {"type": "logmel", "crop_seconds": 0.25})
    out = extract(noise(3), bb, n_crops=3, keep_crops=True, progress=False)
    assert set(out) == {"X", "X_crops"} and out["X_crops"].shape == (3, 3, bb.dim)


def test_weights_cli_fetch_rejects_unknown_names(capsys):
    assert cli_main(["weights", "fetch", "wavlm_xxl"]) == 2
    assert "unknown weights 'wavlm_xxl'" in capsys.readouterr().err


def test_weights_cli_where_lists_expected_paths(torch_home, capsys):
    hub_checkpoint("hubert_base")
    assert cli_main(["weights", "list"]) == 0
    listing = capsys.readouterr().out
    assert "hubert_base" in listing and "present" in listing and "wavlm_large" in listing and "missing" in listing


def test_schema_accepts_layer_choices_and_adds_no_type_specific_defaults():
    import copy

    import yaml

    from audiofold.config import load_schema, validate_config

    from conftest import ROOT

    schema = load_schema(ROOT / "workflow/schemas/config.schema.yaml")
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    for layer in ("last", "all", 3, [0, 10]):
        config = copy.deepcopy(base)
        config["backbones"]["w"] = {"type": "torchaudio", "layer": layer, "pooling": "mean_std"}
        validated = validate_config(config, schema)
        assert "layer" not in validated["backbones"]["logmel"]  # logmel would reject it
    config = copy.deepcopy(base)
    config["backbones"]["w"] = {"type": "torchaudio", "layer": "first"}
    with pytest.raises(ConfigError, match="layer"):
        validate_config(config, schema)


@pytest.mark.parametrize("bundle", ["wavlm_base_plus", "wav2vec2_large_lv60k", "hubert_base"])
def test_padded_batches_equal_one_clip_at_a_time(torch_home, bundle):
    """Clips of different lengths share a zero-padded batch; masking (and, for group-norm CNNs, the CNN run
    per clip) keeps every output equal to the clip run alone."""
    hub_checkpoint(bundle)
    bb = build_backbone(
        "w",
        {
            "type": "torchaudio",
            "bundle": bundle,
            "arch": ARCH,
            "layer": "all",
            "pooling": "mean_std",
            "keep_sequence": True,
        },
    )
    waves = [w[:n] for w, n in zip(noise(4, seconds=1.0, seed=5), (16000, 14500, 13000, 12200))]
    alone = extract(waves, bb, batch_size=1, progress=False)
    padded = extract(waves, bb, batch_size=4, max_padding=0.25, progress=False)
    for key in ("X", "X_layers"):
        np.testing.assert_allclose(padded[key], alone[key], rtol=1e-4, atol=1e-4)
    for a, p in zip(alone["seq"], padded["seq"]):
        assert a.shape == p.shape
        np.testing.assert_allclose(p.astype(np.float32), a.astype(np.float32), atol=2e-2)
    assert bb.accepts_lengths == (not bundle.startswith("wavlm"))  # torchaudio's WavLM has no padding mask
