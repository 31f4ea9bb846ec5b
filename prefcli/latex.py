"""LaTeX for every `.tex` prefcli writes: text escaped by character class, captions without a doubled "Table N".

What comes out is plain ASCII that compiles with pdflatex, xelatex or
lualatex in a bare `article` with `booktabs` (no inputenc, fontenc or
textcomp needed): LaTeX's special characters are escaped, mathematical
symbols, Greek letters and arrows become math-mode commands, accented Latin
letters become accent commands, the SentencePiece word mark `▁` becomes a
visible space, control characters (a raw newline in a vocabulary piece)
become their visible `\\n`-style escape, and anything else is written as its
code point `[U+XXXX]`, so that no input can break a document.
"""

from __future__ import annotations

import re
import unicodedata

# LaTeX's own specials, and the few ASCII characters that OT1 fonts draw wrongly
# (`|`, `<`, `>`) or that `\\` would take for its optional argument (`[`, `*`).
_ASCII = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "|": r"\textbar{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "[": "{[}",
    "]": "{]}",
    "*": "{*}",
}

_MATH = {
    "↑": r"\uparrow",
    "↓": r"\downarrow",
    "→": r"\rightarrow",
    "←": r"\leftarrow",
    "↔": r"\leftrightarrow",
    "⇒": r"\Rightarrow",
    "⇐": r"\Leftarrow",
    "⇔": r"\Leftrightarrow",
    "↦": r"\mapsto",
    "±": r"\pm",
    "∓": r"\mp",
    "×": r"\times",
    "÷": r"\div",
    "·": r"\cdot",
    "⋅": r"\cdot",
    "∙": r"\cdot",
    "•": r"\bullet",
    "−": "-",
    "≤": r"\leq",
    "≥": r"\geq",
    "≠": r"\neq",
    "≈": r"\approx",
    "∼": r"\sim",
    "≡": r"\equiv",
    "∝": r"\propto",
    "∞": r"\infty",
    "∑": r"\sum",
    "∏": r"\prod",
    "∫": r"\int",
    "√": r"\surd",
    "∈": r"\in",
    "∉": r"\notin",
    "⊂": r"\subset",
    "⊆": r"\subseteq",
    "∪": r"\cup",
    "∩": r"\cap",
    "∂": r"\partial",
    "∇": r"\nabla",
    "∀": r"\forall",
    "∃": r"\exists",
    "¬": r"\neg",
    "∧": r"\wedge",
    "∨": r"\vee",
    "°": r"^\circ",
    "′": r"\prime",
    "″": r"\prime\prime",
    "µ": r"\mu",
    "∅": r"\emptyset",
    "‖": r"\|",
    "⟨": r"\langle",
    "⟩": r"\rangle",
    "≪": r"\ll",
    "≫": r"\gg",
}

_TEXT = {
    "–": "--",
    "—": "---",
    "‘": "`",
    "’": "'",
    "“": "``",
    "”": "''",
    "…": r"\ldots{}",
    "§": r"\S{}",
    "¶": r"\P{}",
    "©": r"\copyright{}",
    "†": r"\dag{}",
    "‡": r"\ddag{}",
    "ß": r"\ss{}",
    "æ": r"\ae{}",
    "Æ": r"\AE{}",
    "œ": r"\oe{}",
    "Œ": r"\OE{}",
    "ø": r"\o{}",
    "Ø": r"\O{}",
    "ł": r"\l{}",
    "Ł": r"\L{}",
    "ı": r"\i{}",
    "¡": "!`",
    "¿": "?`",
    "\u00a0": "~",
    "\u2581": r"\textvisiblespace{}",
}  # SentencePiece's word-start mark, shown as the space it stands for

# Combining marks of NFD-decomposed Latin letters → LaTeX accent commands.
_ACCENTS = {
    "\u0300": "`",
    "\u0301": "'",
    "\u0302": "^",
    "\u0303": "~",
    "\u0304": "=",
    "\u0306": "u",
    "\u0307": ".",
    "\u0308": '"',
    "\u030a": "r",
    "\u030b": "H",
    "\u030c": "v",
    "\u0327": "c",
    "\u0328": "k",
    "\u0323": "d",
}

_GREEK_CAPITAL_MACROS = {"GAMMA", "DELTA", "THETA", "LAMBDA", "XI", "PI", "SIGMA", "UPSILON", "PHI", "PSI", "OMEGA"}
_GREEK_CAPITAL_LATIN = {
    "ALPHA": "A",
    "BETA": "B",
    "EPSILON": "E",
    "ZETA": "Z",
    "ETA": "H",
    "IOTA": "I",
    "KAPPA": "K",
    "MU": "M",
    "NU": "N",
    "OMICRON": "O",
    "RHO": "P",
    "TAU": "T",
    "CHI": "X",
}
_ARROW_WORDS = (
    ("LEFT RIGHT", r"\leftrightarrow"),
    ("UP DOWN", r"\updownarrow"),
    ("LEFTWARDS", r"\leftarrow"),
    ("RIGHTWARDS", r"\rightarrow"),
    ("UPWARDS", r"\uparrow"),
    ("DOWNWARDS", r"\downarrow"),
)
_CONTROL = {"\n": "n", "\r": "r", "\t": "t", "\f": "f", "\v": "v", "\b": "b", "\a": "a", "\0": "0"}


def _code_point(ch: str) -> str:
    return f"{{[}}U+{ord(ch):04X}{{]}}"


def _greek(name: str) -> str | None:
    m = re.fullmatch(r"GREEK (SMALL|CAPITAL) LETTER (FINAL )?([A-Z]+)", name)
    if not m:
        return None
    small, final, letter = m.group(1) == "SMALL", bool(m.group(2)), m.group(3)
    if small:
        if letter == "OMICRON":
            return "o"
        if letter == "SIGMA" and final:
            return r"\varsigma"
        if letter == "LAMDA":
            return r"\lambda"
        return "\\" + letter.lower()
    letter = "LAMBDA" if letter == "LAMDA" else letter
    if letter in _GREEK_CAPITAL_MACROS:
        return "\\" + letter.capitalize()
    return _GREEK_CAPITAL_LATIN.get(letter)


def _math(ch: str) -> str | None:
    """The math-mode command of a symbol, Greek letter or arrow, or None."""
    if ch in _MATH:
        return _MATH[ch]
    name = unicodedata.name(ch, "")
    greek = _greek(name)
    if greek is not None:
        return greek
    if "ARROW" in name:
        for word, cmd in _ARROW_WORDS:
            if word in name:
                return cmd
    return None


def _accented(ch: str) -> str | None:
    base, *marks = unicodedata.normalize("NFD", ch)
    if not marks or not (base.isascii() and base.isalpha()) or any(m not in _ACCENTS for m in marks):
        return None
    out = {"i": r"\i{}", "j": r"\j{}"}.get(base, base) if any(_ACCENTS[m] in "`'^\"~=u.vH" for m in marks) else base
    for m in marks:
        out = f"\\{_ACCENTS[m]}{{{out}}}"
    return out


def _control(ch: str) -> str:
    esc = _CONTROL.get(ch)
    if esc is None:
        esc = f"x{ord(ch):02x}" if ord(ch) < 0x100 else f"u{ord(ch):04x}"
    return r"\textbackslash{}" + esc


def _char(ch: str) -> str:
    if ch.isascii():
        if ch in _ASCII:
            return _ASCII[ch]
        if ch.isprintable():
            return ch
        return _control(ch)
    if ch in _TEXT:
        return _TEXT[ch]
    cat = unicodedata.category(ch)
    if cat in ("Cc", "Cf", "Zl", "Zp"):
        return _control(ch)
    if cat == "Zs":
        return " "
    accented = _accented(ch)
    if accented is not None:
        return accented
    return _code_point(ch)


def escape(text: object) -> str:
    """`text` as LaTeX that typesets what it says; consecutive math symbols share one `$...$`."""
    out: list[str] = []
    math_run: list[str] = []

    def flush() -> None:
        if math_run:
            out.append("$" + " ".join(math_run) + "$")
            math_run.clear()

    for ch in str(text):
        math = None if ch.isascii() or ch in _TEXT else _math(ch)
        if math is not None:
            math_run.append(math)
            continue
        flush()
        out.append(_char(ch))
    flush()
    return "".join(out)


_TABLE_PREFIX = re.compile(r"^\s*Table\s+[0-9]+[A-Za-z]?\s*[·:.\-–—]\s*")


def caption(title: str) -> str:
    """A table's title as a `\\caption` argument: LaTeX numbers tables itself, so a leading "Table 1 ·" is dropped."""
    return escape(_TABLE_PREFIX.sub("", str(title)))


def table(
    name: str, title: str, header: list[str], rows: list[list[str]], *, note: str = "", rule_before: int | None = None
) -> str:
    """A booktabs `table` float (needs `\\usepackage{booktabs}`); `header` is escaped text, `rows` already LaTeX.

    `rule_before`: the index of the first reference row (Random), set off by a `\\midrule`.
    """
    align = "l" + "r" * (len(header) - 1)
    out = [
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{caption(title)}}}",
        f"\\label{{tab:{re.sub(r'[^A-Za-z0-9:_.-]', '-', name)}}}",
        f"\\begin{{tabular}}{{{align}}}",
        "\\toprule",
        " & ".join(escape(h) for h in header) + " \\\\",
        "\\midrule",
    ]
    for i, cells in enumerate(rows):
        if rule_before is not None and i == rule_before and i > 0:
            out.append("\\midrule")
        out.append(" & ".join(cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}"]
    if note:
        out.append(f"\\par\\smallskip{{\\footnotesize {escape(note)}}}")
    out.append("\\end{table}")
    return "\n".join(out) + "\n"


DOCUMENT_PREAMBLE = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
DOCUMENT_END = "\\end{document}\n"
