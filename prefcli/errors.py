"""Errors a user can act on. The CLI prints them as one line, never a traceback."""


class PrefcliError(Exception):
    """Base for errors whose message is meant for the user as-is."""


class ImageError(PrefcliError):
    """An image could not be read; the message names the file and the reason."""


class WeightsError(PrefcliError):
    """Weights could not be found, fetched, verified or safely loaded."""


class UnknownScorerError(PrefcliError):
    """A scorer name that no plugin registered."""


class HistoryError(PrefcliError):
    """A user history that a scorer cannot use (missing, unbalanced, too short)."""


class DataError(PrefcliError):
    """A dataset, shard or data file that is missing or malformed."""


class CacheError(PrefcliError):
    """A score/embedding cache file that cannot be read or written (a full disk, a corrupt file)."""


class ConfigError(PrefcliError):
    """A config file with unknown keys, wrong types or bad values."""


class OptionError(PrefcliError, ValueError):
    """A scorer option that does not exist or has a value the scorer cannot use."""


class DeviceError(PrefcliError):
    """A --device that does not exist here (no CUDA, no MPS) or is not a device at all."""
