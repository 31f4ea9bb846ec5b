"""One table per CSV: which of a command's tables is printed, and the `--table NAME` option that picks it.

A CSV reader takes one header and one kind of row, so `--format csv` on a
command with several tables prints its main (first) table and says on stderr
which others exist; `--table NAME` picks another (in any format). Commands
with `--out` also write every table as its own `<name>.csv`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Annotated

import typer

TableOpt = Annotated[
    str | None,
    typer.Option(
        "--table",
        help="Print only this table (by name). --format csv prints the first table unless one is named; JSON always holds every table.",
    ),
]


def print_tables(
    items: Sequence[tuple[str, Callable[[str], None]]], fmt: str, table: str | None = None, *, files: str | None = None
) -> None:
    """Print `(name, print(fmt))` tables in `fmt`: all of them, the one named by `table`, or the first as CSV.

    `files` says where every table is also written (e.g. "OUT/<name>.csv"), for the note.
    """
    from prefcli.errors import ConfigError

    names = [n for n, _ in items]
    if table is not None:
        if table not in names:
            raise ConfigError(f"--table {table}: no such table here; choose from {', '.join(names)}")
        chosen = [it for it in items if it[0] == table]
    elif fmt == "csv" and len(items) > 1:
        chosen = list(items[:1])
        note = f"note: printed table {names[0]} (one table per CSV); the others are {', '.join(names[1:])}: pick one with --table NAME"
        print(note + (f"; every table is also written as {files}" if files else ""), file=sys.stderr)
    else:
        chosen = list(items)
    for i, (_, show) in enumerate(chosen):
        if i and fmt != "table":
            sys.stdout.write("\n")
        show(fmt)
