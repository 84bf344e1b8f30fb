"""Exceptions that carry a message meant for the user: what is wrong, where, and what to do."""


class AudiofoldError(Exception):
    """Base class: the message names the file, row, column or key and the fix."""


class ConfigError(AudiofoldError):
    """A config key is missing, unknown or has a bad value."""


class DataError(AudiofoldError):
    """A table or audio file is malformed."""


class TrainingError(AudiofoldError):
    """A head could not give a usable model: no epoch with a finite loss, or non-finite predictions."""
