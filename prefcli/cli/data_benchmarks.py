"""`prefcli data preferimg | pamela`: import the field's other benchmarks as prefcli datasets."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from prefcli.cli.data import data_app
from prefcli.cli.options import DatasetNameOpt, Format, FormatOpt, NoProgressOpt

_COLUMNS = ["split", "users", "pairs", "ratings", "images", "seen_users", "unseen_users", "tasks_1v1", "tasks_rating"]


def report_built(result, out: Path, fmt: Format) -> None:
    """A built (or already built) dataset's counts, and the problems met while building it."""
    from prefcli import output
    from prefcli.data.dataset import count_rows

    if result.already_built:
        print(f"prefcli: {out} is already built (delete it to rebuild); its counts:", file=sys.stderr)
    output.emit(
        count_rows(result.info), fmt.value, columns=_COLUMNS, title=f"dataset {result.info.get('name')} ({out})"
    )
    problems = [] if result.already_built else result.problems
    if problems:
        print(
            f"prefcli: {len(problems)} problem(s) met and skipped (all recorded in {out / 'dataset.json'}):",
            file=sys.stderr,
        )
        for p in problems[:20]:
            where = p.get("where") or (f"record {p['record']}" if p.get("record") is not None else "")
            print(f"  {where}: {p['reason']}", file=sys.stderr)
        if len(problems) > 20:
            print(f"  ... and {len(problems) - 20} more", file=sys.stderr)


@data_app.command("preferimg")
def preferimg_command(
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="A local copy of PreferImg-Bench (folder), one subset's JSON file, or the hub id ZhouSimple/PreferImg-Bench.",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Dataset folder to create (work happens in OUT.partial until the end).")
    ],
    subset: Annotated[
        str, typer.Option("--subset", help="TEST_SP_ID, TEST_SP_OD, TEST_MP_ID, TEST_MP_OD or TEST_PICKAPIC.")
    ] = "TEST_PICKAPIC",
    num_history: Annotated[
        int,
        typer.Option(
            "--num-history",
            help="Preferred and non-preferred history images kept per sample, each (eval_PreferThinker.py's --num_history).",
        ),
    ] = 5,
    image_root: Annotated[
        Path | None,
        typer.Option(
            "--image-root",
            help="Folder the records' image paths are relative to (default: images/ beside the JSON file).",
        ),
    ] = None,
    name: DatasetNameOpt = None,
    no_progress: NoProgressOpt = False,
    fmt: FormatOpt = Format.table,
) -> None:
    """Import one PreferImg-Bench subset (PreferThinker, ICLR 2026) as a dataset of 1-vs-1 test tasks.

    Each record becomes a task: Image A and Image B as candidates (in that
    order), the answer in conversations[0].value, and a history of the first
    --num-history preferred and non-preferred images, unpaired and possibly
    of unequal number, exactly as eval_PreferThinker.py reads them. Every
    scorer then runs on it through `prefcli eval` / `prefcli bench`, and bench
    prints the paper's quoted rows beside ours. Records that are malformed or
    whose candidate image is missing are reported and skipped; an interrupted
    import resumes. Format: docs/data.md.

    Examples:

        prefcli data preferimg --source ./PreferImg-Bench --subset TEST_PICKAPIC --out preferimg-pickapic

        prefcli data preferimg --source ./PICKAPIC.json --image-root ./images --out pp --num-history 3
    """
    from prefcli.data.preferimg import PreferImgParams, build

    params = PreferImgParams(
        subset=subset, num_history=num_history, image_root=None if image_root is None else str(image_root), name=name
    )
    result = build(source, out, params, progress=not no_progress)
    report_built(result, out, fmt)
