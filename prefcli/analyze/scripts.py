"""Which writing system a vocabulary token is in, so a table can say "CJK" instead of showing tofu.

A preference token's nearest vocabulary tokens are often not English words
(the paper's table 7 lists several); a reader must be told so, not left to
guess what a glyph is. ``script_of`` names the script of a token's letters
from Unicode character names: "latin", "cjk", "cyrillic", ..., "mixed" when
several appear, "byte" for SentencePiece byte-fallback pieces such as
``<0xE4>``, "symbol" when it has no letters at all, "special" for control
tokens.
"""

from __future__ import annotations

import re
import unicodedata

_BYTE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
_ALIASES = {"HIRAGANA": "japanese", "KATAKANA": "japanese", "CJK": "cjk", "HANGUL": "hangul"}


def _script_of_char(ch: str) -> str | None:
    if not ch.isalpha():
        return None
    try:
        first = unicodedata.name(ch).split()[0]
    except ValueError:
        return "unknown"
    return _ALIASES.get(first, first.lower())


def script_of(piece: str, special: bool = False) -> str:
    if special:
        return "special"
    if _BYTE.match(piece):
        return "byte"
    scripts = {s for s in map(_script_of_char, piece.replace("\u2581", "")) if s}
    if not scripts:
        return "symbol"
    if len(scripts) > 1:
        return "mixed"
    return scripts.pop()


def is_latin(script: str) -> bool:
    return script in ("latin", "symbol")


def display(text: str, script: str) -> str:
    """The token as a table shows it: its text, with its script named when it is not Latin."""
    shown = text if text.strip() else repr(text)
    return shown if is_latin(script) else f"{shown} [{script}]"
