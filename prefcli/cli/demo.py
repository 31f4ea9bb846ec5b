"""`prefcli demo`: the pipeline end to end, offline, in minutes on a laptop CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prefcli.cli import app
from prefcli.cli.options import Format, FormatOpt, SeedOpt


@app.command("demo")
def demo_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where the world, dataset, results and sheet go.")] = Path("demo-out"),
    users: Annotated[int, typer.Option("--users", help="Simulated users in the world.")] = 100,
    seed: SeedOpt = 0,
    fmt: FormatOpt = Format.table,
) -> None:
    """Run prefcli end to end on the built-in synthetic taste world, offline.

    It draws a world of simulated users whose tastes come from a few taste
    groups, builds a dataset from it with the same builder as the real
    Pick-a-Pic v2 (user-level split, held-out test users), scores the test
    users' liked-vs-disliked pairs with a history-free scorer and with a
    personalized one through the same harness as `prefcli bench`, prints the
    accuracies side by side, and ranks one new person's candidates into a
    contact sheet. Models are tiny with random weights, so the numbers show
    what the history alone can buy. Re-running reuses what is already built.

    Examples:

        prefcli demo

        prefcli demo --out /tmp/demo --users 120 --format json
    """
    import sys

    from prefcli.demo import DemoConfig, run_demo
    from prefcli.output import to_json

    quiet = fmt.value != "table"
    log = (lambda m: print(m, file=sys.stderr)) if quiet else print
    result = run_demo(DemoConfig(out=out, users=users, seed=seed, progress=sys.stderr.isatty()), log=log)
    if fmt.value == "json":
        print(to_json({k: v for k, v in result.items() if k != "tables"} | {"tables": [t.to_dict() for t in result["tables"]]}))
        return
    for t in result["tables"]:
        t.print(fmt.value)
    if quiet:
        return
    acc = result["accuracy"]
    print("\nHeld-out test users, liked vs disliked (1-vs-1 top-1):")
    for name, a in acc.items():
        print(f"  {name:<14} {100 * a:5.1f}%")
    nu = result["new_user"]
    print(
        f"\nA new user: the top pick {nu['top_pick']} is their true #{nu['true_rank_of_top_pick']} of {nu['n_candidates']}"
        f" (true favourite: {nu['true_best']}).\nContact sheet: {result['sheet']}\nTables, CSV, JSON and plot: {Path(result['files'].get('tables.md', out)).parent}"
        f"\nDone in {result['seconds']:.0f}s."
    )
