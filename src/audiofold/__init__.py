"""audiofold: folder of audio clips + labels CSV -> cross-validated, calibrated, blended predictions."""

__version__ = "0.1.0"
