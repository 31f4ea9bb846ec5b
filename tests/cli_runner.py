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


def one_error_line(code: int, err: str, *needles: str) -> str:
    """Exit 2, exactly one `prefcli: error:` line holding every needle, no traceback."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("prefcli: error:")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def tiny_eval(dataset, scorer: str, *extra) -> tuple:
    """`prefcli eval DATASET --scorer SCORER` with the tiny weights on the CPU, protocol 1v3, no bars; then `extra`."""
    return ("eval", dataset, "--scorer", scorer, "--weights", "tiny", "--device", "cpu", "--protocol", "1v3",
            "--no-progress", *extra)  # fmt: skip
