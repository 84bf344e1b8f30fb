"""Hugging Face ``transformers`` audio encoders (WavLM, wav2vec 2.0, HuBERT, data2vec-audio, Whisper's
encoder), loaded offline from the Hugging Face cache or a local folder.

Layer choice, pooling, precision and frame sequences follow the torchaudio backbone (its helpers are
reused); the input goes through the model's own feature extractor (waveform normalisation, attention
mask, Whisper's log-mel), so embeddings are those of the model's documented usage.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .. import checkpoints
from ..errors import ConfigError
from ..io import file_sha256
from .base import Backbone, BackboneOptionError
from .torchaudio_ssl import (
    POOLINGS,
    autocast_context,
    check_precision,
    layer_outputs,
    parse_layer,
    pick_device,
    quantize_linear_int8,
)

# config.model_type of the wav2vec2-style encoders (raw waveform in, CNN features, transformer layers)
WAVEFORM_TYPES = ("wav2vec2", "wavlm", "hubert", "data2vec-audio")
WHISPER_TYPES = ("whisper",)
PADDING_LEAKS = ("data2vec-audio",)  # masked, yet padding changes the outputs (see HFBackbone.__init__)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@contextlib.contextmanager
def _quiet_transformers():
    """transformers' load-time logging and progress bars off (they would fill every embed job's log)."""
    # deferred: transformers (and torch) take seconds to load; only HF model jobs need them
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


@contextlib.contextmanager
def _rowwise_cnn(model, lengths):
    """Run ``model.feature_extractor`` (the CNN) row by row on each row's real samples, padding its
    output with zero frames: group-norm CNNs normalise over the whole input, so a padded row would
    otherwise differ from the unpadded clip. The transformer still runs batched, with the padding mask."""
    # deferred: torch takes seconds to load, and only the jobs that run a model need it
    import torch
    import torch.nn.functional as F

    cnn = model.feature_extractor

    class RowwiseCNN(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cnn = cnn

        def forward(self, input_values):
            n_out = int(model._get_feat_extract_output_lengths(torch.tensor(input_values.shape[-1])))
            rows = [self.cnn(input_values[i : i + 1, : int(n)]) for i, n in enumerate(lengths)]
            return torch.cat([F.pad(r, (0, n_out - r.shape[-1])) for r in rows])

    model.feature_extractor = RowwiseCNN()
    try:
        yield
    finally:
        model.feature_extractor = cnn


class HFBackbone(Backbone):
    """A ``transformers`` audio encoder: ``model`` is a Hugging Face id (``microsoft/wavlm-base-plus``,
    ``openai/whisper-small``, ...) found in the local cache, or a folder written by ``save_pretrained``."""

    type_name = "hf"
    # Padded batches are masked (the embed step may then batch whole clips of different lengths);
    # an instance sets it False when its model takes no padding mask (see __init__).
    accepts_lengths: bool = True

    def __init__(
        self,
        *,
        model: str | None = None,
        revision: str | None = None,
        cache_dir: str | None = None,
        local_files_only: bool = True,
        layer: Any = "last",
        pooling: str = "mean",
        keep_sequence: bool = False,
        device: str = "cpu",
        precision: str = "fp32",
        sample_rate: int = 16000,
        crop_seconds: float | None = None,
    ) -> None:
        kind = self.type_name
        if not isinstance(model, str) or not model.strip():
            raise BackboneOptionError(
                kind,
                "model",
                "required: a Hugging Face model id (e.g. microsoft/wavlm-base-plus)"
                f" or a local folder with config.json and the weights, got {model!r}",
            )
        for key, value in (("revision", revision), ("cache_dir", cache_dir)):
            if value is not None and not isinstance(value, str):
                raise BackboneOptionError(kind, key, f"must be a string or null, got {value!r}")
        if not isinstance(local_files_only, bool):
            raise BackboneOptionError(kind, "local_files_only", f"must be true or false, got {local_files_only!r}")
        if pooling not in POOLINGS:
            raise BackboneOptionError(kind, "pooling", f"must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        super().__init__(
            sample_rate=sample_rate,
            crop_seconds=crop_seconds,
            model=model,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            layer=layer,
            pooling=pooling,
            keep_sequence=bool(keep_sequence),
            device=device,
            precision=precision,
        )
        self.model_name = model
        self.revision = revision
        self.cache_dir = None if cache_dir is None else os.path.expanduser(cache_dir)
        self.local_files_only = local_files_only
        self.source = self._source()  # a local folder, or the id (found in the cache unless downloads are allowed)
        self.device = pick_device(kind, device)
        self.precision = check_precision(kind, precision, self.device)
        self.pooling = pooling
        self.keeps_sequence = bool(keep_sequence)

        with _quiet_transformers():
            config = self._load("AutoConfig")
            self.model_type = str(config.model_type)
            if self.model_type not in WAVEFORM_TYPES + WHISPER_TYPES:
                raise BackboneOptionError(
                    kind,
                    "model",
                    f"{model!r} is a {self.model_type!r} model; the hf backbone "
                    f"supports {', '.join(WAVEFORM_TYPES + WHISPER_TYPES)}",
                )
            self.is_whisper = self.model_type in WHISPER_TYPES
            self.total_layers = int(config.encoder_layers if self.is_whisper else config.num_hidden_layers)
            self.layer_mode, self.layer_indices = parse_layer(kind, layer, self.total_layers)
            self.n_layers = len(self.layer_indices) if self.layer_mode == "all" else None
            self.hidden_size = int(config.d_model if self.is_whisper else config.hidden_size)
            self.extractor = self._load("AutoFeatureExtractor")
            self._check_extractor()
            self.model = self._load("AutoModel")

        if self.is_whisper:
            self.model = self.model.get_encoder()  # the decoder is not needed for features
            self.uses_attention_mask = False  # the encoder always sees 30 s (zero-padded log-mel)
            # the extractor pads every row to 30 s with zeros anyway, so padding changes nothing
            self.accepts_lengths = True
        else:
            # HF: pass attention_mask only to models whose extractor returns one (the group-norm base
            # models were trained on unmasked, zero-padded batches). Without one a padded row differs
            # from the clip alone, so those models batch equal lengths only.
            self.uses_attention_mask = bool(getattr(self.extractor, "return_attention_mask", False))
            # data2vec-audio's stacked positional convolutions carry the padding frames (non-zero after the
            # first conv) into the last real frames, so a masked padded row still differs from the clip alone
            self.accepts_lengths = self.uses_attention_mask and self.model_type not in PADDING_LEAKS
        self.group_norm_cnn = getattr(config, "feat_extract_norm", "layer") == "group"
        self.model.eval()
        self._stop_after_deepest_layer()
        if self.precision == "int8":
            self.model = self._quantize_int8(self.model)
        self.model = self.model.to(self.device)

        self.snapshot_dir = self._snapshot_dir()
        files = checkpoints.hf_weight_files(self.snapshot_dir)
        self.weight_files = {str(path): file_sha256(path) for path in files}
        if len(files) == 1:
            self.checkpoint = {"path": str(files[0]), "sha256": self.weight_files[str(files[0])]}
        else:  # sharded (or, unusually, not found next to config.json): one digest over the shards' digests
            joined = "".join(f"{Path(p).name} {sha}\n" for p, sha in self.weight_files.items())
            self.checkpoint = {"path": str(self.snapshot_dir), "sha256": hashlib.sha256(joined.encode()).hexdigest()}

    # -- loading ---------------------------------------------------------------------------------

    def _cache(self) -> Path:
        return checkpoints.hf_cache_dir(self.cache_dir)

    def _fetch_hint(self) -> str:
        if Path(self.model_name).expanduser().is_dir():
            return (
                "The folder needs config.json, preprocessor_config.json and model.safetensors or pytorch_model.bin "
                "(what save_pretrained writes for the model and its feature extractor)"
            )
        return (
            f"Run `{checkpoints.hf_fetch_command(self.model_name, self.revision, self.cache_dir)}` on a machine with "
            f"internet and copy its {self._cache() / ('models--' + self.model_name.replace('/', '--'))} folder to "
            f"the same place here (or set model: to a local folder written by save_pretrained)"
        )

    def _source(self) -> str:
        """The folder or hub id to load; BackboneOptionError (key ``model``) when it is not on this machine."""
        kind = self.type_name
        path = Path(self.model_name).expanduser()
        if path.is_dir():
            if not (path / "config.json").is_file():  # else transformers guesses a model type from the name
                raise BackboneOptionError(
                    kind, "model", f"folder {str(path)!r} has no config.json. {self._fetch_hint()}."
                )
            return str(path)
        if not HUB_ID.match(self.model_name) or ".." in self.model_name:
            raise BackboneOptionError(
                kind,
                "model",
                f"folder {self.model_name!r} does not exist (and it is not a "
                "Hugging Face model id like microsoft/wavlm-base-plus); fix the path",
            )
        if self.local_files_only:
            # deferred: only the Hub cache's users (weights commands, HF backbones) need it
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(
                self.model_name, "config.json", cache_dir=self.cache_dir, revision=self.revision
            )
            if not isinstance(found, str):
                revision = f" (revision {self.revision})" if self.revision else ""
                raise BackboneOptionError(
                    kind,
                    "model",
                    f"Hugging Face model {self.model_name!r}{revision} is not on this machine (no "
                    f"local folder of that name either); looked in the Hugging Face cache {self._cache()} (cache_dir; "
                    f"default $HF_HOME/hub). Runs never download (local_files_only: true). {self._fetch_hint()}.",
                )
        return self.model_name

    def _load(self, auto_class: str):
        # deferred: torch takes seconds to load, and only the jobs that run a model need it
        import torch
        import transformers

        options = {"revision": self.revision, "cache_dir": self.cache_dir, "local_files_only": self.local_files_only}
        if auto_class == "AutoModel":
            options["dtype"] = torch.float32  # fp16 checkpoints too: CPU runs fp32/int8, GPU autocasts
        try:
            return getattr(transformers, auto_class).from_pretrained(self.source, **options)
        except (OSError, ValueError) as exc:  # missing files, unreadable config or weights
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BackboneOptionError(
                self.type_name,
                "model",
                f"cannot load {auto_class} from {self.source!r}: {first}. {self._fetch_hint()}.",
            ) from None

    def _check_extractor(self) -> None:
        kind = self.type_name
        rate = int(getattr(self.extractor, "sampling_rate", 0) or 0)
        if rate != self.sample_rate:
            raise BackboneOptionError(
                kind,
                "sample_rate",
                f"{self.model_name} takes {rate} Hz audio (its feature "
                f"extractor's sampling_rate); set sample_rate: {rate} (or leave it out)",
            )
        if self.is_whisper:
            limit = self.extractor.n_samples / rate
            if self.crop_seconds is not None and self.crop_seconds > limit:
                raise BackboneOptionError(
                    kind,
                    "crop_seconds",
                    f"Whisper's encoder takes at most {limit:g} s; set crop_seconds: {limit:g} or less",
                )

    def _stop_after_deepest_layer(self) -> None:
        """Drop the transformer layers above the deepest selected one: nothing kept depends on them, and
        seed 003's first-10-of-12 or a middle layer of a large model then costs less."""
        # deferred: torch takes seconds to load, and only the jobs that run a model need it
        import torch

        keep = max(self.layer_indices) + 1
        encoder = self.model if self.is_whisper else self.model.encoder
        if keep == len(encoder.layers):
            return
        encoder.layers = encoder.layers[:keep]
        # pre-norm encoders (Whisper, the "stable layer norm" large models) end with a norm that transformers
        # may fold into the last hidden state (Whisper does); an inner layer's state is taken before it
        if self.is_whisper or getattr(self.model.config, "do_stable_layer_norm", False):
            encoder.layer_norm = torch.nn.Identity()

    def _quantize_int8(self, model):
        if self.model_type != "wavlm":
            return quantize_linear_int8(model)
        # WavLM's attention passes its q/k/v/out weights to F.multi_head_attention_forward, which needs float
        # tensors: only the feed-forward blocks (two thirds of the Linear work) are quantized there
        for layer in model.encoder.layers:
            layer.feed_forward = quantize_linear_int8(layer.feed_forward)
        return model

    def _snapshot_dir(self) -> Path:
        """The folder the files were loaded from (for a hub id, its snapshot in the cache)."""
        path = Path(self.source)
        if path.is_dir():
            return path.resolve()
        # deferred: only the Hub cache's users (weights commands, HF backbones) need it
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(self.model_name, "config.json", cache_dir=self.cache_dir, revision=self.revision)
        return Path(found).parent if isinstance(found, str) else path

    # -- metadata --------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self.hidden_size * (2 if self.pooling == "mean_std" else 1)

    def describe(self) -> dict[str, Any]:
        # deferred: transformers (and torch) take seconds to load; only HF model jobs need them
        import transformers

        return {
            **super().describe(),
            "checkpoint": dict(self.checkpoint),
            "hf": {
                "model": self.model_name,
                "revision": self.revision,
                "snapshot": str(self.snapshot_dir),
                "model_type": self.model_type,
                "weights": dict(self.weight_files),
                "transformers": transformers.__version__,
            },
            "layers": list(self.layer_indices),
            "layer_mode": self.layer_mode,
        }

    def weights_status(self) -> dict[str, Any]:
        """For ``audiofold doctor``: the weights in use and their sha256 (build fails when they are missing)."""
        return {**self.checkpoint, "present": True}

    # -- embedding -------------------------------------------------------------------------------

    def _inputs(self, rows: list[np.ndarray]):
        if self.is_whisper:
            return {
                "input_features": self.extractor(rows, sampling_rate=self.sample_rate, return_tensors="pt")[
                    "input_features"
                ]
            }
        # the mask is always computed so that do_normalize normalises each row over its real samples
        inputs = self.extractor(
            rows, sampling_rate=self.sample_rate, padding="longest", return_attention_mask=True, return_tensors="pt"
        )
        out = {"input_values": inputs["input_values"]}
        if self.uses_attention_mask:
            out["attention_mask"] = inputs["attention_mask"]
        return out

    def _hidden(self, crops: np.ndarray, lengths: np.ndarray | None):
        """Selected layer outputs, float32 on CPU, (B, L_sel, T, D), and the valid frames per row ((B,)
        tensor; None when every row is whole)."""
        # deferred: torch takes seconds to load, and only the jobs that run a model need it
        import torch

        rows = list(crops) if lengths is None else [c[: int(n)] for c, n in zip(crops, lengths)]
        longest = max(len(r) for r in rows)
        if self.is_whisper and longest > self.extractor.n_samples:
            limit = self.extractor.n_samples / self.sample_rate
            raise ConfigError(
                f"backbones.{self.name}: Whisper's encoder takes at most {limit:g} s of audio, got a "
                f"{longest / self.sample_rate:g} s clip; set crop_seconds: {limit:g} (or less)."
            )
        inputs = {k: v.to(self.device) for k, v in self._inputs(rows).items()}
        # only the selected layers are kept where transformers supports selecting (others return all)
        selected = [i + 1 for i in self.layer_indices]  # hidden_states[0] is the input of the first layer
        padded_cnn = lengths is not None and not self.is_whisper and self.group_norm_cnn
        with (
            torch.inference_mode(),
            autocast_context(self.device, self.precision),
            _rowwise_cnn(self.model, lengths) if padded_cnn else contextlib.nullcontext(),
        ):
            states = self.model(**inputs, output_hidden_states=selected).hidden_states
            hidden = torch.stack([states[i] for i in selected], dim=1).float().cpu()
        n_samples = torch.as_tensor(np.array([len(r) for r in rows]), dtype=torch.long)
        if self.is_whisper:  # frames at 50 Hz of the 30 s window: keep those covering the clip
            n_frames = torch.ceil(n_samples / (self.extractor.hop_length * 2)).long()
            hidden = hidden[:, :, : int(n_frames.max())]
        else:
            n_frames = self.model._get_feat_extract_output_lengths(n_samples).long()
        return hidden, None if lengths is None else n_frames

    def _embed(self, crops: np.ndarray, lengths: np.ndarray | None) -> dict[str, Any]:
        hidden, n_frames = self._hidden(crops, lengths)  # (B, L_sel, T, D)
        return layer_outputs(hidden, n_frames, self.layer_mode, self.pooling, self.keeps_sequence)

    def embed_outputs(self, crops: np.ndarray, lengths: np.ndarray | None = None) -> dict[str, Any]:
        crops = np.ascontiguousarray(crops, dtype=np.float32)
        if lengths is None or self.accepts_lengths:
            return self._embed(crops, None if lengths is None else np.asarray(lengths, dtype=np.int64))
        # no padding mask: clip by clip, so each output is that of the clip alone
        outs = [self._embed(crops[i : i + 1, : int(n)], None) for i, n in enumerate(lengths)]
        merged = {key: np.concatenate([o[key] for o in outs]) for key in ("X", "layers") if key in outs[0]}
        if self.keeps_sequence:
            merged["seq"] = [s for o in outs for s in o["seq"]]
        return merged

    def embed_batch(self, crops: np.ndarray) -> np.ndarray:
        return self.embed_outputs(crops)["X"]


def tiny_model(path: str | Path, model_type: str = "wavlm", seed: int = 0, **config: Any) -> Path:
    """A small randomly initialised model of ``model_type`` with its feature extractor, written with
    ``save_pretrained`` into ``path`` (tests and quick experiments without downloads). ``config``
    overrides the architecture (e.g. ``num_hidden_layers``, ``feat_extract_norm``); for the waveform
    models ``return_attention_mask`` goes to the feature extractor."""
    # deferred: torch takes seconds to load, and only the jobs that run a model need it
    import torch
    import transformers

    path = Path(path)
    torch.manual_seed(seed)
    with _quiet_transformers():
        if model_type in WHISPER_TYPES:
            arch = {
                "d_model": 32,
                "encoder_layers": 2,
                "decoder_layers": 1,
                "encoder_attention_heads": 2,
                "decoder_attention_heads": 2,
                "encoder_ffn_dim": 64,
                "decoder_ffn_dim": 64,
                "num_mel_bins": 80,
                "max_source_positions": 1500,
                "max_target_positions": 64,
                "vocab_size": 64,
                "pad_token_id": 1,
                "bos_token_id": 2,
                "eos_token_id": 2,
                "decoder_start_token_id": 3,
                "suppress_tokens": None,
                "begin_suppress_tokens": None,
                **config,
            }
            model = transformers.WhisperModel(transformers.WhisperConfig(**arch))
            extractor = transformers.WhisperFeatureExtractor(feature_size=arch["num_mel_bins"])
        else:
            classes = {"wavlm": "WavLM", "wav2vec2": "Wav2Vec2", "hubert": "Hubert", "data2vec-audio": "Data2VecAudio"}
            if model_type not in classes:
                known = ", ".join([*classes, *WHISPER_TYPES])
                raise ValueError(f"model_type must be one of {known}, got {model_type!r}")
            mask = config.pop("return_attention_mask", None)
            arch = {
                "hidden_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "intermediate_size": 64,
                "conv_dim": (16,) * 7,
                "num_conv_pos_embeddings": 16,
                "num_conv_pos_embedding_groups": 2,
            }
            if model_type == "data2vec-audio":  # a stack of small positional convolutions instead of one
                arch.update(num_conv_pos_embeddings=2, conv_pos_kernel_size=5)
                del arch["num_conv_pos_embedding_groups"]
            arch.update(config)
            cfg = getattr(transformers, f"{classes[model_type]}Config")(**arch)
            model = getattr(transformers, f"{classes[model_type]}Model")(cfg)
            if mask is None:  # as the published extractors: a mask where the CNN normalises per frame (and WavLM)
                mask = getattr(cfg, "feat_extract_norm", "layer") == "layer" or model_type == "wavlm"
            extractor = transformers.Wav2Vec2FeatureExtractor(
                feature_size=1,
                sampling_rate=16000,
                padding_value=0.0,
                do_normalize=True,
                return_attention_mask=bool(mask),
            )
        model.save_pretrained(path)
        extractor.save_pretrained(path)
    return path
