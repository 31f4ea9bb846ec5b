"""The `prefcli` command line: one thin module per command.

Command modules import only typer/rich at module level; the work they call
imports torch and friends lazily, so `prefcli --help` stays fast.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

app = typer.Typer(
    name="prefcli",
    help="Personalized image-preference prediction: rank, evaluate, train and generate for one person's taste.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from prefcli import __version__

        print(f"prefcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Personalized image-preference prediction: rank, evaluate, train and generate for one person's taste."""


# Each module registers its command(s) on `app` when imported.
COMMAND_MODULES = (
    "prefcli.cli.scorers_cmd",
    "prefcli.cli.data",
    "prefcli.cli.rank",
    "prefcli.cli.demo",
    "prefcli.cli.eval_cmd",
    "prefcli.cli.bench_cmd",
    "prefcli.cli.train_cmd",
    "prefcli.cli.convert_cmd",
    "prefcli.cli.generate_cmd",
    "prefcli.cli.analyze_cmd",
    "prefcli.cli.label_cmd",
    "prefcli.cli.weights_cmd",
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name)


_COMMAND = None


def _command():
    """The click command typer builds from `app`, built once per process.

    typer rebuilds it from every function's signature on each call (40–90 ms): nothing for a console run,
    which calls once, but the library, the tests and `prefcli demo` call `main` many times in one process.
    Every command is registered at import (above), so the built tree cannot go stale.
    """
    global _COMMAND
    if _COMMAND is None:
        _COMMAND = typer.main.get_command(app)
    return _COMMAND


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user-facing errors become one line, not a traceback."""
    import logging

    from prefcli import messages
    from prefcli.errors import PrefcliError

    # Library modules log through `logging`; PREFCLI_LOG=info (or debug) shows it on stderr.
    level = getattr(logging, os.environ.get("PREFCLI_LOG", "WARNING").strip().upper(), logging.WARNING)
    logging.basicConfig(
        level=level if isinstance(level, int) else logging.WARNING,
        format="prefcli: %(levelname)s: %(name)s: %(message)s",
    )
    messages.install()  # one plain line per warning, once per run, not a source excerpt
    try:
        _command()(args=argv, prog_name="prefcli")
    except PrefcliError as e:
        print(f"prefcli: error: {e.cli_message()}", file=sys.stderr)  # the library names parameters, the CLI its flags
        if os.environ.get("PREFCLI_DEBUG"):
            raise
        sys.exit(2)
    except OSError as e:
        # The file system refused (an --out under a file, no permission, disk full):
        # the user can act on it, so one line naming the path, not a traceback.
        where = f"{e.filename}: " if e.filename is not None else ""
        reason = e.strerror or str(e)
        if isinstance(e, FileExistsError) and e.filename is not None and not os.path.isdir(e.filename):
            reason = "exists and is not a folder"
        print(f"prefcli: error: {where}{reason}", file=sys.stderr)
        if os.environ.get("PREFCLI_DEBUG"):
            raise
        sys.exit(2)
    finally:
        messages.finish()  # a count for each warning that recurred
