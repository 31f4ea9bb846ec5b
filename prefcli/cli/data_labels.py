"""`prefcli data labels`: the folders `prefcli label` wrote, as a dataset to evaluate scorers on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prefcli.cli.data import data_app
from prefcli.cli.data_benchmarks import report_built
from prefcli.cli.options import DatasetNameOpt, Format, FormatOpt


@data_app.command("labels")
def labels_command(
    people: Annotated[
        list[Path], typer.Argument(help="Label folders written by `prefcli label --out PERSON`.", show_default=False)
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Dataset folder to create (work happens in OUT.partial until the end).")
    ],
    n_ref: Annotated[
        int, typer.Option("--n-ref", help="History pairs per evaluation task (the variants 1, 2, 4, ... below it too).")
    ] = 4,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the history draws and candidate order.")] = 0,
    name: DatasetNameOpt = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Turn one or more people's label folders into a prefcli dataset.

    Each person's left/right answers become test pairs of an unseen user,
    and 1-vs-1 and 1-vs-3 tasks are held out per person (a target pair, the
    person's other pairs as history), so `prefcli eval` measures scorers on
    your own people. Ties and skips are left out, as in the folders.

    Examples:

        prefcli data labels ./alice ./bob --out our-people

        prefcli eval our-people --scorer clip-probe
    """
    from prefcli.label.dataset import build

    result = build(people, out, n_ref=n_ref, seed=seed, name=name)
    report_built(result, out, fmt)
