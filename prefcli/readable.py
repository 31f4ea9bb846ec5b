"""Numbers as a summary line or table shows them to people: `241 pairs/s`, `25.0 GiB`, `12.3 s`.

JSON keeps the full value; these are for what a person reads, where `241.4054`
claims a precision that a throughput or a memory estimate does not have.
"""

from __future__ import annotations


def per_second(v: float | None) -> str:
    """A rate to three significant figures at most, no more than whole units above 100: 241, 24.1, 2.41."""
    if v is None:
        return ""
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def gib(v: float | None) -> str:
    """A memory size in GiB with one decimal: 25.0."""
    return "" if v is None else f"{v:,.1f}"


def seconds(v: float | None) -> str:
    """A duration in seconds: one decimal under 100 s, whole seconds above."""
    if v is None:
        return ""
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}"


def size(v: int | None) -> str:
    """A byte count with its unit, three significant figures at most: 1.71 GB, 340 MB, 12 KB."""
    if v is None:
        return ""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if v >= scale:
            x = v / scale
            return f"{x:.3g} {unit}" if x < 100 else f"{x:.0f} {unit}"
    return f"{v} B"
