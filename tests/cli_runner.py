"""Run the `prefcli` console entry point in-process, the way the CLI tests check its output."""

from __future__ import annotations

from prefcli.cli import main


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """`prefcli ARGS` in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err
