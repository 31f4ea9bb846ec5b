"""Which writing system a vocabulary token is in, so a table can say "CJK" instead of showing tofu.

A preference token's nearest vocabulary tokens are often not English words
(the paper's table 7 lists several); a reader must be told so, not left to
guess what a glyph is. ``script_of`` names the script of a token's letters
from Unicode character names: "latin", "cjk", "cyrillic", ..., "mixed" when
several appear, "byte" for SentencePiece byte-fallback pieces such as
``<0xE4>``, "control" for pieces holding control characters (a newline, a
tab), "symbol" when it has no letters at all, "special" for control tokens.

``visible`` escapes control characters (``▁\n`` shows as the four characters
``▁\n``), so a piece holding a newline cannot break a Markdown row or a
terminal cell.
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


def _is_control(ch: str) -> bool:
    # Cc: C0/C1 controls (newline, tab, DEL); Zl/Zp: the Unicode line and paragraph separators.
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def visible(text: str) -> str:
    """`text` with each control character written as its escape (\n, \t, \x07, \u2028); backslashes kept as they are."""
    return "".join(repr(ch)[1:-1] if _is_control(ch) else ch for ch in text)


def script_of(piece: str, special: bool = False) -> str:
    if special:
        return "special"
    if _BYTE.match(piece):
        return "byte"
    if any(_is_control(ch) for ch in piece):
        return "control"
    scripts = {s for s in map(_script_of_char, piece.replace("\u2581", "")) if s}
    if not scripts:
        return "symbol"
    if len(scripts) > 1:
        return "mixed"
    return scripts.pop()


def is_latin(script: str) -> bool:
    return script in ("latin", "symbol")


def display(text: str, script: str, piece: str | None = None) -> str:
    """The token as a table shows it: a Latin token as its text; any other as its vocabulary
    piece (`piece`, when given: `▁привет`, `<0xE4>`) followed by its script in brackets.
    Control characters are escaped either way."""
    if is_latin(script):
        return visible(text) if text.strip() else repr(text)
    return f"{visible(piece if piece else text)} [{script}]"
