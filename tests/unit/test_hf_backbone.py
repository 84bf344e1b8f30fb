"""The hf backbone: small random-weight models of the real transformers architectures, written with
save_pretrained (as a folder and as a Hugging Face cache entry) and loaded through build_backbone,
the path users take. Nothing here touches the network."""

import json

import numpy as np
import pytest
import torch

from audiofold import checkpoints
from audiofold.backbones import build_backbone
from audiofold.backbones.hf import tiny_model
from audiofold.cli import main as cli_main
from audiofold.embed import extract
from audiofold.errors import ConfigError
from audiofold.io import file_sha256

FAMILIES = ["wavlm", "wav2vec2", "hubert", "data2vec-audio", "whisper"]
# wav2vec2 large-style: per-frame layer norm in the CNN, pre-norm transformer, attention mask
STABLE = {"feat_extract_norm": "layer", "do_stable_layer_norm": True}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """model_type (or "wav2vec2-large") -> folder with a tiny random model and its feature extractor."""
    root = tmp_path_factory.mktemp("hf")
    out = {family: tiny_model(root / family, family) for family in FAMILIES}
    out["wav2vec2-large"] = tiny_model(root / "wav2vec2-large", "wav2vec2", **STABLE)
    return out


def hf(path, **options):
    return build_backbone("h", {"type": "hf", "model": str(path), **options})


def noise(n, seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([(0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32) for _ in range(n)])


def direct_layers(path, crops):
    """The model's own forward, as transformers documents it: hidden_states[1:] of each layer, (B, L, T, D)."""
    from transformers import AutoFeatureExtractor, AutoModel

    extractor = AutoFeatureExtractor.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    inputs = extractor(list(crops), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        if "input_features" in inputs:
            states = model.get_encoder()(inputs["input_features"], output_hidden_states=True).hidden_states
        else:
            states = model(**inputs, output_hidden_states=True).hidden_states
    return torch.stack(states[1:], dim=1).numpy()


@pytest.mark.parametrize("family", [*FAMILIES, "wav2vec2-large"])
def test_layer_choices_shapes_and_agreement(models, family):
    crops = noise(2, seed=1)
    all_layers = hf(models[family], layer="all").embed_outputs(crops)
    assert all_layers["X"].shape == (2, 32) and all_layers["layers"].shape == (2, 2, 32)
    assert all_layers["X"].dtype == np.float32 and np.isfinite(all_layers["layers"]).all()
    np.testing.assert_allclose(all_layers["X"], all_layers["layers"].mean(axis=1), rtol=1e-5, atol=1e-6)
    for layer, index in (("last", 1), (0, 0), (-2, 0)):
        bb = hf(models[family], layer=layer)
        assert bb.n_layers is None and bb.dim == 32
        encoder = bb.model if family == "whisper" else bb.model.encoder
        assert len(encoder.layers) == index + 1  # layers above the selected one are not run
        np.testing.assert_allclose(bb.embed_batch(crops), all_layers["layers"][:, index], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        hf(models[family], layer=[0, 2]).embed_batch(crops), all_layers["layers"].mean(axis=1), rtol=1e-4, atol=1e-5
    )
    mean_std = hf(models[family], pooling="mean_std")
    assert mean_std.dim == 64
    out = mean_std.embed_batch(crops)
    assert out.shape == (2, 64) and (out[:, 32:] > 0).all()
    np.testing.assert_allclose(out[:, :32], all_layers["layers"][:, 1], rtol=1e-4, atol=1e-5)
    assert not np.allclose(all_layers["X"][0], all_layers["X"][1])  # different audio, different embeddings


@pytest.mark.parametrize("family", [*FAMILIES, "wav2vec2-large"])
def test_embedding_is_the_models_own_forward_and_deterministic(models, family):
    crops = noise(3, seed=2)
    bb = hf(models[family], layer="all", keep_sequence=True)
    out = bb.embed_outputs(crops)
    reference = direct_layers(models[family], crops)  # (B, L, T, D); Whisper: T = 1500 frames of 30 s
    n_frames = 50 if family == "whisper" else reference.shape[2]  # 1 s: 50 (Whisper) or 49 (CNN) frames
    assert n_frames in (49, 50)
    np.testing.assert_allclose(out["layers"], reference[:, :, :n_frames].mean(axis=2), rtol=1e-4, atol=1e-5)
    assert [s.shape for s in out["seq"]] == [(n_frames, 2, 32)] * 3 and out["seq"][0].dtype == np.float16
    np.testing.assert_allclose(
        out["seq"][1].astype(np.float32), reference[1, :, :n_frames].transpose(1, 0, 2), rtol=1e-2, atol=1e-2
    )
    again = bb.embed_outputs(crops)
    assert np.array_equal(again["X"], out["X"]) and np.array_equal(again["layers"], out["layers"])


def test_whisper_keeps_the_frames_of_the_clip_not_30_seconds(models):
    bb = hf(models["whisper"], keep_sequence=True)
    for seconds, frames in ((1.0, 50), (0.5, 25), (0.33, 17)):
        (seq,) = bb.embed_outputs(noise(1, seconds))["seq"]
        assert seq.shape == (frames, 32)
    crops = noise(2)
    np.testing.assert_allclose(
        bb.embed_batch(crops), direct_layers(models["whisper"], crops)[:, 1, :50].mean(axis=1), rtol=1e-4, atol=1e-5
    )
    with pytest.raises(ConfigError, match=r"backbones\.h\.crop_seconds: Whisper's encoder takes at most 30 s"):
        hf(models["whisper"], crop_seconds=31)
    with pytest.raises(ConfigError, match=r"backbones\.h: Whisper's encoder takes at most 30 s .*set crop_seconds: 30"):
        bb.embed_batch(np.zeros((1, 16000 * 31), np.float32))


@pytest.mark.parametrize("family", ["wavlm", "wav2vec2-large", "whisper", "wav2vec2", "data2vec-audio"])
def test_padded_batch_equals_each_clip_alone(models, family):
    """wavlm: group-norm CNN run row by row, masked transformer; wav2vec2-large: masked throughout;
    whisper: padded to 30 s anyway; wav2vec2 base (no mask) and data2vec-audio: clip by clip."""
    bb = hf(models[family], layer="all", keep_sequence=True)
    assert bb.accepts_lengths == (family in ("wavlm", "wav2vec2-large", "whisper"))
    lengths = np.array([16000, 12000, 7000])
    crops = noise(3, seed=3)
    for row, n in enumerate(lengths):
        crops[row, n:] = 0
    padded = bb.embed_outputs(crops, lengths=lengths)
    alone = [bb.embed_outputs(crops[row : row + 1, :n]) for row, n in enumerate(lengths)]
    np.testing.assert_allclose(padded["X"], np.concatenate([a["X"] for a in alone]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(padded["layers"], np.concatenate([a["layers"] for a in alone]), rtol=1e-4, atol=1e-5)
    for got, want in zip(padded["seq"], [a["seq"][0] for a in alone]):
        assert got.shape == want.shape
        np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), atol=2e-2)
    # the embed step's whole-clip batches (zero-padded where the backbone masks) give the per-clip result
    waves = [crops[row, :n] for row, n in enumerate(lengths)]
    batched = extract(waves, bb, batch_size=8, max_padding=0.6, progress=False)
    single = extract(waves, bb, batch_size=1, progress=False)
    np.testing.assert_allclose(batched["X_layers"], single["X_layers"], rtol=1e-4, atol=1e-5)


def test_int8_quantization_keeps_embeddings_close(models):
    crops = noise(4, seed=4)
    for family in ("wavlm", "wav2vec2-large", "whisper"):  # WavLM: feed-forward layers only (see _quantize_int8)
        fp32 = hf(models[family]).embed_batch(crops)
        int8 = hf(models[family], precision="int8").embed_batch(crops)
        cosine = (fp32 * int8).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(int8, axis=1)
        assert cosine.min() >= 0.99 and not np.array_equal(fp32, int8), family


def test_describe_records_model_weights_and_versions(models):
    import transformers

    path = models["hubert"]
    bb = hf(path, layer=[0, 2])
    described = bb.describe()
    weights_file = path / "model.safetensors"
    assert described["checkpoint"] == {"path": str(weights_file), "sha256": file_sha256(weights_file)}
    assert described["hf"]["model"] == str(path) and described["hf"]["snapshot"] == str(path.resolve())
    assert described["hf"]["transformers"] == transformers.__version__ and described["hf"]["model_type"] == "hubert"
    assert described["hf"]["weights"] == {str(weights_file): file_sha256(weights_file)}
    assert described["layers"] == [0, 1] and described["layer_mode"] == "mean" and described["dim"] == 32
    assert bb.weights_status() == {**described["checkpoint"], "present": True}
    json.dumps(described)  # goes into metadata


def hub_cache_entry(cache, repo_id, source, commit="0123456789abcdef0123456789abcdef01234567"):
    """``source``'s files laid out as huggingface_hub caches a download of ``repo_id`` at ``commit``."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in source.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def test_model_id_loads_from_the_hugging_face_cache(tmp_path, models):
    snapshot = hub_cache_entry(tmp_path / "hub", "acme/tiny-wavlm", models["wavlm"])
    bb = build_backbone("w", {"type": "hf", "model": "acme/tiny-wavlm", "cache_dir": str(tmp_path / "hub")})
    assert bb.describe()["hf"]["snapshot"] == str(snapshot)
    assert bb.describe()["checkpoint"]["path"] == str(snapshot / "model.safetensors")
    np.testing.assert_array_equal(bb.embed_batch(noise(2)), hf(models["wavlm"]).embed_batch(noise(2)))


def test_missing_model_fails_naming_model_cache_and_fetch_command(tmp_path, models, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "default-hub"))
    with pytest.raises(ConfigError) as err:
        build_backbone("w", {"type": "hf", "model": "acme/no-such-model"})
    message = str(err.value)
    assert message.startswith("backbones.w.model: Hugging Face model 'acme/no-such-model' is not on this machine")
    assert str(tmp_path / "default-hub") in message and "local_files_only: true" in message
    assert "`audiofold weights fetch hf:acme/no-such-model`" in message
    assert str(tmp_path / "default-hub" / "models--acme--no-such-model") in message

    with pytest.raises(ConfigError) as err:
        build_backbone(
            "w", {"type": "hf", "model": "acme/no-such-model", "revision": "v2", "cache_dir": str(tmp_path / "mine")}
        )
    message = str(err.value)
    assert "(revision v2)" in message and str(tmp_path / "mine") in message
    assert f"`audiofold weights fetch hf:acme/no-such-model --revision v2 --dest {tmp_path / 'mine'}`" in message

    with pytest.raises(ConfigError, match=r"backbones\.w\.model: folder '.*/nope/model' does not exist"):
        build_backbone("w", {"type": "hf", "model": str(tmp_path / "nope" / "model")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        ConfigError,
        match=r"backbones\.w\.model: folder '.*empty' has no config\.json\. The folder "
        r"needs config\.json, preprocessor_config\.json and model\.safetensors or pytorch_model\.bin",
    ):
        build_backbone("w", {"type": "hf", "model": str(tmp_path / "empty")})
    (tmp_path / "empty" / "config.json").write_text((models["hubert"] / "config.json").read_text())
    with pytest.raises(ConfigError, match=r"backbones\.w\.model: cannot load AutoFeatureExtractor from '.*empty'"):
        build_backbone("w", {"type": "hf", "model": str(tmp_path / "empty")})


@pytest.mark.parametrize(
    "options,message",
    [
        ({"sample_rate": 8000}, r"backbones\.h\.sample_rate: .* takes 16000 Hz audio .*set sample_rate: 16000"),
        ({"layer": 2}, r"backbones\.h\.layer: index 2 is out of range for a 2-layer model"),
        ({"layer": "first"}, r"backbones\.h\.layer: must be 'last', 'all'"),
        ({"pooling": "max"}, r"backbones\.h\.pooling: must be one of mean, mean_std"),
        ({"precision": "fp16"}, r"backbones\.h\.precision: fp16 autocast is for GPU"),
        ({"local_files_only": "yes"}, r"backbones\.h\.local_files_only: must be true or false"),
        ({"model": None}, r"backbones\.h\.model: required"),
        ({"bundle": "wavlm_base"}, r"backbones\.h\.bundle: unknown option for backbone type 'hf'"),
    ],
)
def test_bad_options_name_the_key(models, options, message):
    with pytest.raises(ConfigError, match=message):
        hf(models["wavlm"], **options) if "model" not in options else build_backbone("h", {"type": "hf", **options})


def test_weights_fetch_hf_downloads_into_the_hugging_face_cache(tmp_path, models, monkeypatch, capsys):
    """The command's wiring (the download itself is huggingface_hub's): allow patterns, revision, cache."""
    import huggingface_hub

    calls = {}

    def snapshot_download(repo_id, revision=None, cache_dir=None, allow_patterns=None):
        calls.update(repo_id=repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=allow_patterns)
        return str(hub_cache_entry(tmp_path / "hub", repo_id, models["wav2vec2"]))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(
        huggingface_hub.HfApi,
        "list_repo_files",
        lambda self, repo_id, revision=None: ["config.json", "model.safetensors", "pytorch_model.bin"],
    )
    assert cli_main(["weights", "fetch", "hf:acme/w2v", "--dest", str(tmp_path / "hub"), "--revision", "v1"]) == 0
    assert calls == {
        "repo_id": "acme/w2v",
        "revision": "v1",
        "cache_dir": str(tmp_path / "hub"),
        "allow_patterns": ["*.json", "*.txt", "*.safetensors"],
    }
    line = capsys.readouterr().out.strip()
    weights_file = next((tmp_path / "hub").rglob("model.safetensors"))
    assert line == f"{weights_file}  sha256 {file_sha256(weights_file)}"
    assert checkpoints.hf_weight_files(weights_file.parent) == [weights_file]
    assert cli_main(["weights", "fetch", "wavlm_base", "--revision", "v1"]) == 2
    assert "--revision is for hf:<model id> only" in capsys.readouterr().err


def test_doctor_reports_the_weights(models):
    from audiofold.cli.doctor import backbone_weights

    (check,) = backbone_weights("h", {"type": "hf", "model": str(models["wav2vec2"]), "tta": {}, "batch_size": 4})
    assert check.ok is True and "model.safetensors" in check.line()


def test_schema_accepts_the_hf_options():
    import yaml

    from audiofold.config import load_schema, validate_config

    from conftest import ROOT

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["backbones"]["w"] = {
        "type": "hf",
        "model": "microsoft/wavlm-base-plus",
        "revision": None,
        "cache_dir": "/x",
        "local_files_only": True,
        "layer": [0, 6],
        "precision": "int8",
    }
    validated = validate_config(config, load_schema(ROOT / "workflow/schemas/config.schema.yaml"))
    assert validated["backbones"]["w"]["model"] == "microsoft/wavlm-base-plus"
    config["backbones"]["w"]["local_files_only"] = "no"
    with pytest.raises(ConfigError, match="local_files_only"):
        validate_config(config, load_schema(ROOT / "workflow/schemas/config.schema.yaml"))
