"""Errors a user can act on. The CLI prints them as one line, never a traceback."""

#: How the command line spells the parameters of the Python API that errors name.
FLAGS = {
    "weights": "--weights",
    "options": "-o",
    "device": "--device",
    "dtype": "--dtype",
    "top": "--top",
    "batch_size": "--batch-size",
    "prompt": "--prompt",
    "prompts": "--prompts",
    "likes": "--likes",
    "dislikes": "--dislikes",
    "workers": "--workers",
}


class PrefcliError(Exception):
    """Base for errors whose message is meant for the user as-is.

    The message names what a Python caller passed (a parameter); `cli_message()` is the same
    message as the command line says it, with the flag names (the CLI prints that one): give it
    as `cli=` when the two differ (`bad_value` builds both).
    """

    def __init__(self, *args: object, cli: str | None = None):
        super().__init__(*args)
        self._cli = cli

    def cli_message(self) -> str:
        return self._cli if self._cli is not None else str(self)


def one_line(e: BaseException | str, limit: int = 300) -> str:
    """A library's exception as the tail of one error line: whitespace folded, cut at `limit` characters."""
    return " ".join(str(e).split())[:limit] or type(e).__name__


def bad_value(param: str, value: object, reason: str, error: type[PrefcliError] = PrefcliError) -> PrefcliError:
    """`top=0: must be at least 1` for a Python caller, `--top 0: must be at least 1` on the command line."""
    return error(f"{param}={value!r}: {reason}", cli=f"{FLAGS.get(param, param)} {value}: {reason}")


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
    """A device that does not exist here (no CUDA, no MPS) or is not a device at all.

    `DeviceError(value, reason, use)`: the Python API reads "device='cuda': <reason>; use device='cpu' or
    device='auto'", the CLI "--device cuda: <reason>; use --device cpu or --device auto".
    """

    def __init__(self, value: object, reason: str = "", use: tuple[str, ...] = ()):
        self.value, self.reason, self.use = value, reason, tuple(use)
        super().__init__(self._render(cli=False) if reason else str(value))

    def _render(self, cli: bool) -> str:
        def spell(v: object) -> str:
            return f"--device {v}" if cli else f"device={str(v)!r}"

        alternatives = f"; use {' or '.join(spell(u) for u in self.use)}" if self.use else ""
        return f"{spell(self.value)}: {self.reason}{alternatives}"

    def cli_message(self) -> str:
        return self._render(cli=True) if self.reason else str(self)
