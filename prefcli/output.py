"""One way every command prints rows: a rich table, JSON, CSV or Markdown."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

FORMATS = ("table", "json", "csv", "markdown")


def _cell(v: Any, digits: int = 4) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.{digits}f}"
    return str(v)


def to_markdown(rows: Sequence[dict], columns: Sequence[str] | None = None, digits: int = 4) -> str:
    columns = list(columns or (rows[0].keys() if rows else []))
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(c), digits).replace("|", "\\|") for c in columns) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    columns = list(columns or (rows[0].keys() if rows else []))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c) for c in columns})
    return buf.getvalue()


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str, allow_nan=True)


def emit(
    rows: Sequence[dict],
    fmt: str = "table",
    columns: Sequence[str] | None = None,
    title: str | None = None,
    digits: int = 4,
    console=None,
    headers: dict[str, str] | None = None,
    command: str | None = None,
    about: dict[str, Any] | None = None,
) -> None:
    """Print rows in the requested format to stdout; `headers` relabels terminal-table columns.

    JSON is the one envelope (prefcli/envelope.py) with the rows as ``results.rows``; `command`
    defaults to the running CLI command, `about` gives the envelope's other keys (scorer, options ...).
    """
    import sys

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "json":
        from prefcli import envelope
        from prefcli.running_command import current_command

        envelope.print_doc(
            envelope.envelope(command or current_command() or "prefcli", envelope.rows_results(rows), **(about or {}))
        )
    elif fmt == "csv":
        sys.stdout.write(to_csv(rows, columns))
    elif fmt == "markdown":
        if title:
            sys.stdout.write(f"### {title}\n\n")
        sys.stdout.write(to_markdown(rows, columns, digits))
    else:
        from rich.markup import escape
        from rich.table import Table
        from rich.text import Text

        columns = list(columns or (rows[0].keys() if rows else []))
        table = Table(title=escape(title) if title else None)
        for c in columns:
            table.add_column(
                escape((headers or {}).get(c, str(c))), overflow="fold"
            )  # wrap, never hide what a cell says
        for r in rows:
            table.add_row(*(Text(_cell(r.get(c), digits)) for c in columns))
        print_rich_table(table, console)


def print_rich_table(table, console=None) -> None:
    """Print a rich table so that no word is ever cut in two.

    On a terminal, cells wrap at spaces to fit its width; when even the
    longest word of every column cannot fit, the table is printed at its
    minimum width and the terminal wraps the lines instead. Into a pipe or a
    file (a log, `| less`), the table keeps its natural width: nothing wraps.
    """
    import sys

    from rich.console import Console
    from rich.measure import Measurement

    # Rich may fold a word when it squeezes a column; a column as wide as its longest word never has to.
    for col in table.columns:
        texts = [str(getattr(c, "plain", c)) for c in list(col._cells) + [col.header]]
        longest = max((len(w) for t in texts for w in t.split()), default=1)
        col.min_width = max(col.min_width or 0, longest)
    if console is None:
        probe = Console(width=100_000)
        need = Measurement.get(probe, probe.options, table)
        # The narrowest the table can be with every word whole: words, cell padding, borders.
        floor = sum(c.min_width + 2 for c in table.columns) + len(table.columns) + 1
        if sys.stdout.isatty():
            width = max(Console().width, floor)
        else:
            width = max(need.maximum, floor)
        console = Console(width=max(20, width))
    console.print(table, crop=False)


def iter_chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def separating_digits(values: Sequence[float], least: int = 4, most: int = 17) -> int:
    """The fewest decimals (at least `least`) at which neighbouring distinct values print differently.

    Seven scores of 0.49321.. that differ in the sixth decimal must not all
    print as 0.4932 in an order the reader cannot see; equal values stay equal
    (they are ties, marked as such by the caller).
    """
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v)) and not math.isinf(float(v))]
    pairs = [(a, b) for a, b in zip(vals, vals[1:]) if a != b]
    for d in range(least, most + 1):
        if all(f"{a:.{d}f}" != f"{b:.{d}f}" for a, b in pairs):
            return d
    return most


def throughput_line(stats: Mapping[str, Any], label: str = "") -> str:
    """One line from a run's stats (prefcli.harness.runner.RunStats): images decoded and where the
    seconds went, naming the stage that took the most, so a user sees which side bounds the run."""
    parts = {
        "decoding": float(stats.get("decode_seconds") or 0.0),
        "preprocessing": float(stats.get("preprocess_seconds") or 0.0),
        "the model": float(stats.get("model_seconds") or 0.0),
        "the rest": float(stats.get("other_seconds") or 0.0),
    }
    shown = ", ".join(f"{name} {secs:.2f} s" for name, secs in parts.items())
    most = max(parts, key=parts.get) if any(parts.values()) else None
    line = (
        f"{label + ': ' if label else ''}{int(stats.get('images_decoded') or 0)} image(s) decoded; {shown}; "
        f"wall {float(stats.get('seconds') or 0.0):.2f} s with {int(stats.get('workers') or 0)} decode thread(s)"
    )
    hits = int(stats.get("image_cache_hits") or 0)
    if hits:
        line += f", {hits} decode(s) saved by the image cache"
    if most is not None:
        line += f"; most time in {most}"
    return line
