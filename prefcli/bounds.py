"""Sane bounds for numbers that come from users and files, checked before anything is built.

A number from a command line, a config or a crafted file reaches torch, numpy
and the allocator unchecked otherwise: NaN and infinity pass every `<`
comparison, a seed past 64 bits overflows torch's generator, 1e12 becomes an
allocation. Each check raises the error class of its caller's concept (a
ConfigError by default) with a message naming `what` (an option or a file and
its field) and the bound; no torch import here, so the CLI can use it while
parsing.
"""

from __future__ import annotations

import math
from typing import Any

from prefcli.errors import ConfigError, PrefcliError

__all__ = ["SEED_MAX", "TINY_SIZE_MAX", "check_finite", "check_int", "check_seed", "seed_callback"]

#: Any size of a tiny (random, test-scale) model: tiny by definition, so 2**40 is an allocator bomb, not a model.
TINY_SIZE_MAX = 16_384

#: torch.Generator.manual_seed takes 64 bits, numpy's default_rng non-negative integers: a seed fits both.
SEED_MAX = 2**63 - 1


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_int(value: Any, what: str, *, low: int, high: int, error: type[PrefcliError] = ConfigError) -> int:
    """`value` as an int in [low, high]; a bool, a string, a fractional or non-finite float is refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"{what}: expected a whole number, got {type(value).__name__} {_show(value)}")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise error(f"{what}: expected a whole number, got {_show(value)}")
        value = int(value)
    if not low <= value <= high:
        raise error(f"{what}: {_show(value)} is out of range (expected {low} to {high})")
    return value


def check_finite(
    value: Any,
    what: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    error: type[PrefcliError] = ConfigError,
) -> float:
    """`value` as a finite float, within [low, high] (low excluded with `low_open`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"{what}: expected a number, got {type(value).__name__} {_show(value)}")
    try:
        x = float(value)
    except OverflowError:  # an int past float's range
        raise error(f"{what}: {_show(value)} is out of range") from None
    if not math.isfinite(x):
        raise error(f"{what}: {_show(value)} is not a finite number")
    too_low = low is not None and (x <= low if low_open else x < low)
    if too_low or (high is not None and x > high):
        lo = "" if low is None else (f"above {low:g}" if low_open else f"at least {low:g}")
        hi = "" if high is None else f"at most {high:g}"
        raise error(f"{what}: {_show(value)} is out of range (expected {' and '.join(p for p in (lo, hi) if p)})")
    return x


def check_seed(value: Any, what: str = "--seed", *, count: int = 1) -> int:
    """A seed such that `value`, ..., `value + count - 1` all fit torch's and numpy's generators."""
    return check_int(value, what, low=0, high=SEED_MAX - max(count - 1, 0))


def seed_callback(value: Any) -> Any:
    """A typer callback: `--seed` checked while the command line is parsed (None passes)."""
    return value if value is None else check_seed(value)
