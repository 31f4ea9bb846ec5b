"""One way every command prints rows: a rich table, JSON, CSV or Markdown."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any, Iterable, Sequence

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
    rows: Sequence[dict], fmt: str = "table", columns: Sequence[str] | None = None, title: str | None = None,
    digits: int = 4, console=None, headers: dict[str, str] | None = None,
) -> None:
    """Print rows in the requested format to stdout; `headers` relabels terminal-table columns."""
    import sys

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "json":
        sys.stdout.write(to_json(list(rows)) + "\n")
    elif fmt == "csv":
        sys.stdout.write(to_csv(rows, columns))
    elif fmt == "markdown":
        if title:
            sys.stdout.write(f"### {title}\n\n")
        sys.stdout.write(to_markdown(rows, columns, digits))
    else:
        from rich.console import Console
        from rich.table import Table

        columns = list(columns or (rows[0].keys() if rows else []))
        table = Table(title=title)
        for c in columns:
            table.add_column((headers or {}).get(c, str(c)), overflow="fold")  # wrap, never hide what a cell says
        for r in rows:
            table.add_row(*(_cell(r.get(c), digits) for c in columns))
        (console or Console()).print(table)


def iter_chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
