"""What prefcli says besides its results: each warning once per run, and other libraries' noise kept down.

- A warning (Python `warnings` or a `logging` record) is printed the first
  time it is said in a run; when it recurs, one line at the end of the run
  says how many times (`finish()`).
- What the user asked for on purpose is not warned about: code that runs an
  N_ref sweep or a protocol with a fixed history length says so with
  `with on_purpose("history_length"):`, and the scorers ask `asked()`.
- Third-party noise: a deprecation inside a library that says nothing about
  the user's input is silenced; bitsandbytes' start-up warnings are silenced
  unless prefcli quantizes (`allow_bitsandbytes()`); CLIP's "part of your
  input was truncated" (once per prompt and text encoder) and the
  tokenizer's "sequence length is longer than the maximum" become one line
  saying that prompts longer than the encoder's tokens are cut, counted.

The CLI calls `install()` before a command and `finish()` after it; the
Python API leaves Python's own warning machinery alone.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TextIO, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

PREFIX = "prefcli: warning: "

# Library warnings about a library's own internals (silenced: the user can do nothing about them).
_SILENCED_WARNINGS = (
    # peft's get_peft_model reads transformers' deprecated `is_gradient_checkpointing` property.
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),
)
# Two notes of one event, a prompt longer than the text encoder reads: diffusers' (once per prompt and
# encoder) and the tokenizer's (once per tokenizer). Both become one line in prefcli's words.
_PROMPT_TOO_LONG = (
    re.compile(
        r"^The following part of your input was truncated because CLIP can only handle sequences up to (\d+) tokens"
    ),
    re.compile(
        r"^Token indices sequence length is longer than the specified maximum sequence length for this model \(\d+ > (\d+)\)"
    ),
)

_on_purpose: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("prefcli_on_purpose", default=frozenset())


@contextlib.contextmanager
def on_purpose(*kinds: str) -> Iterator[None]:
    """Within this block the user asked for `kinds` (e.g. "history_length": an N_ref sweep), so nothing warns about them."""
    token = _on_purpose.set(_on_purpose.get() | frozenset(kinds))
    try:
        yield
    finally:
        _on_purpose.reset(token)


def on_purpose_when(kind: str, test: Callable[..., bool] | None = None) -> Callable[[F], F]:
    """Decorate a function that asks for `kind` on purpose (always, or when `test(*args, **kwargs)` says so)."""

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if test is not None and not test(*args, **kwargs):
                return fn(*args, **kwargs)
            with on_purpose(kind):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return deco


def asked(kind: str) -> bool:
    """Whether the running command asked for `kind` on purpose (see `on_purpose`)."""
    return kind in _on_purpose.get()


class Said:
    """The warnings of one run: the first of each is printed, repeats are counted."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream
        self.counts: dict[str, int] = {}
        self.first: dict[str, str] = {}

    def say(self, key: str, text: str) -> bool:
        """Print `text` if `key` is new in this run; count it either way. True when printed."""
        n = self.counts.get(key, 0)
        self.counts[key] = n + 1
        if n:
            return False
        self.first[key] = text
        print(PREFIX + text, file=self.stream or sys.stderr)
        return True

    def summary(self) -> list[str]:
        """One line per warning that recurred: how many times, and which."""
        out = []
        for key, n in self.counts.items():
            if n > 1:
                text = self.first[key].splitlines()[0]
                short = text if len(text) <= 100 else text[:97] + "..."
                out.append(f"{PREFIX}said {n} times in this run (printed once above): {short}")
        return out


_said: Said | None = None


def _plain(message: object) -> tuple[str, str]:
    """(key, text) of a message: CLIP's per-prompt truncation note becomes one kind of message."""
    text = str(message).strip()
    for pattern in _PROMPT_TOO_LONG:
        m = pattern.match(text)
        if m:
            return "prompt-too-long", (
                f"a prompt is longer than the text encoder's {m.group(1)} tokens; "
                f"it reads the first {m.group(1)} and the rest is cut"
            )
    return text, text


def _show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001 - warnings' signature
    key, text = _plain(message)
    if _said is not None:
        _said.say(f"{getattr(category, '__name__', '')}:{key}", text)
    else:
        print(PREFIX + text, file=file or sys.stderr)


class _OncePerRun(logging.Filter):
    """A handler filter: library WARNING records pass once per run (counted); lower levels and errors pass as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _said is None or record.levelno != logging.WARNING:
            return True
        key, text = _plain(record.getMessage())
        if key == "prompt-too-long":
            _said.say(key, text)  # said in prefcli's words, once
            return False
        n = _said.counts.get(f"log:{key}", 0)
        _said.counts[f"log:{key}"] = n + 1
        if n == 0:
            _said.first[f"log:{key}"] = text
        return n == 0


_FILTER = _OncePerRun()
_BNB = "bitsandbytes"
_bnb_level: int | None = None


def watch(logger_name: str | None = None) -> None:
    """Pass log handlers through the once-per-run filter: one logger's, or (no name) every logger's that has its own.

    Libraries such as diffusers and transformers make their own handler when they are first imported, after
    `install()`; code that has just imported one calls this.
    """
    if logger_name is not None:
        loggers = [logging.getLogger(logger_name)]
    else:
        loggers = [logging.getLogger()] + [
            lg for lg in list(logging.Logger.manager.loggerDict.values()) if isinstance(lg, logging.Logger)
        ]
    for lg in loggers:
        for h in lg.handlers:
            if _FILTER not in h.filters:
                h.addFilter(_FILTER)


def install(stream: TextIO | None = None) -> None:
    """Start a run (the CLI, before a command): one plain line per warning, each once, library noise down."""
    global _said, _bnb_level
    _said = Said(stream)
    warnings.showwarning = _show
    for category, pattern in _SILENCED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern, category=category)
    watch()
    # bitsandbytes logs CUDA-library notes when it is imported, even when nothing is quantized.
    if _bnb_level is None:
        _bnb_level = logging.getLogger(_BNB).level
    logging.getLogger(_BNB).setLevel(logging.ERROR)


def allow_bitsandbytes() -> None:
    """prefcli is about to quantize: what bitsandbytes says now is about this run."""
    logging.getLogger(_BNB).setLevel(_bnb_level if _bnb_level is not None else logging.NOTSET)


def finish() -> None:
    """End a run: a count for each warning that recurred."""
    global _said
    if _said is None:
        return
    for line in _said.summary():
        print(line, file=_said.stream or sys.stderr)
    _said = None
