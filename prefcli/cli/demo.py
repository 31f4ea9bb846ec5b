"""`prefcli demo`: the pipeline end to end, offline, in minutes on a laptop CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prefcli.cli import app
from prefcli.cli.options import Format, FormatOpt, ProgressOpt
from prefcli.cli.table_choice import TableOpt


@app.command("demo")
def demo_command(
    out: Annotated[
        Path, typer.Option("--out", help="Where the world, dataset, results, training run and sheet go.")
    ] = Path("demo-out"),
    limit: Annotated[
        int | None, typer.Option("--limit", help="Score at most this many test tasks per model (default: all).")
    ] = None,
    train_steps: Annotated[
        int, typer.Option("--train-steps", help="Steps of the short training run's history stage.")
    ] = 200,
    fmt: FormatOpt = Format.table,
    show_progress: ProgressOpt = True,
    table: TableOpt = None,
) -> None:
    """Run prefcli end to end on the built-in synthetic taste world, offline.

    It rebuilds, from its seeds, the toy world the shipped tiny preference
    models were trained on (simulated users from two taste groups with opposed
    tastes, plus individual variation) and turns it into a dataset with the same
    builder as the real Pick-a-Pic v2. The benchmark harness then scores the
    test users' liked-vs-disliked tasks with the population model (trained
    without histories), the clip-probe baseline and the shipped preference-token
    models, and prints the paper's Table 1 and Table 3 at toy scale. A short
    training run shows the preference-token model's loss falling, and one
    brand-new person is ranked into a contact sheet. Every number is measured
    in the run; re-running reuses the world, dataset and score cache in --out.

    Examples:

        prefcli demo

        prefcli demo --out /tmp/demo --limit 400 --format json
    """
    import sys

    from prefcli.demo import DemoConfig, run_demo

    quiet = fmt.value != "table"
    log = (lambda m: print(m, file=sys.stderr)) if quiet else print
    result = run_demo(DemoConfig(out=out, limit=limit, train_steps=train_steps, progress=show_progress), log=log)
    if fmt.value == "json":
        from prefcli import envelope

        res = {k: v for k, v in result.items() if k != "tables"} | {"tables": [t.to_dict() for t in result["tables"]]}
        envelope.print_doc(
            envelope.envelope("demo", res, options={"out": str(out), "limit": limit, "train_steps": train_steps})
        )
        return
    from prefcli.cli.table_choice import print_tables

    print_tables([(t.name, t.print) for t in result["tables"]], fmt.value, table, files=f"{out}/bench/<table>.csv")
    if quiet:
        return
    tr, nu = result["training"], result["new_user"]
    print(
        f"\nShort training run ({tr['steps']} steps, {tr['seconds']:.0f}s): history-stage loss {tr['loss_first']:.3f} → {tr['loss_last']:.3f}"
    )
    print(
        f"A new user: {nu['model']} ranked {nu['top_pick']} first, their true #{nu['true_rank_of_top_pick']} of {nu['n_candidates']}."
    )
    if result["missing_models"]:
        print(f"Shipped models not found (not in the tables): {', '.join(result['missing_models'])}")
    print(
        f"Contact sheet: {result['sheet']}\nTables, CSV, JSON and plot: {out / 'bench'}\nDone in {result['seconds']:.0f}s."
    )
