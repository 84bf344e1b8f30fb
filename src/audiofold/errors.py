"""Exceptions that carry a message meant for the user: what is wrong, where, and what to do."""

# A message echoes at most this much of a value the user gave (a pasted file, an expanded YAML alias).
MAX_ECHO_CHARS = 200


def capped(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters in all)"


class AudiofoldError(Exception):
    """Base class: the message names the file, row, column or key and the fix."""


class ConfigError(AudiofoldError):
    """A config key is missing, unknown or has a bad value."""


class DataError(AudiofoldError):
    """A table or audio file is malformed."""


class TrainingError(AudiofoldError):
    """A head could not give a usable model: no epoch with a finite loss, or non-finite predictions."""
