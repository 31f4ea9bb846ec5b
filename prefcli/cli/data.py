"""`prefcli data ...`: build and inspect datasets. Each subcommand lives in its own module."""

from __future__ import annotations

import importlib

import typer

from prefcli.cli import app

data_app = typer.Typer(
    help="Build and inspect preference datasets (synthetic world, Pick-a-Pic v2, PreferImg-Bench, PAMELA, benchmark prompts).",
    no_args_is_help=True,
)
app.add_typer(data_app, name="data")

# Each module registers its subcommand(s) on `data_app` when imported.
DATA_COMMAND_MODULES: tuple[str, ...] = (
    "prefcli.cli.data_synthetic",
    "prefcli.cli.data_build",
    "prefcli.cli.data_benchmarks",
    "prefcli.cli.data_ratings",
    "prefcli.cli.data_labels",
)

for _name in DATA_COMMAND_MODULES:
    importlib.import_module(_name)
