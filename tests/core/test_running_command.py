"""One reading of the running command (prefcli.running_command), right for `prefcli X`, `python -m prefcli X`
and `bench generate`, a separate Typer app that `bench` starts with its own root context."""

from __future__ import annotations

import pytest

from prefcli.errors import ConfigError
from prefcli.running_command import _after_program, current_command

BENCH_GENERATE = [
    "bench",
    "generate",
    "--prompts",
    "p",
    "--model",
    "tiny",
    "--reward",
    "clip=1",
    "--weights",
    "tiny",
    "--device",
    "cpu",
]


@pytest.fixture
def seen(monkeypatch):
    """What the command, the progress lines and the JSON envelope would be named, read inside `bench generate`."""
    from prefcli.generate import bench
    from prefcli.progress import PlainProgress

    got = {}

    def run(cfg, progress=None):
        got.update(command=current_command(), progress=PlainProgress().command)
        raise ConfigError("stop here: the names are read")

    monkeypatch.setattr(bench, "run", run)
    return got


def test_bench_generate_under_the_console_script(seen, capsys):
    from prefcli.cli import main

    with pytest.raises(SystemExit):
        main(BENCH_GENERATE)
    assert "stop here" in capsys.readouterr().err
    assert seen == {"command": "bench generate", "progress": "bench generate"}


@pytest.mark.parametrize("prog", ["python -m prefcli", "/usr/local/bin/prefcli", "prefcli"])
def test_bench_generate_under_any_program_name(seen, prog):
    from prefcli.cli import app

    with pytest.raises(ConfigError):
        app(args=BENCH_GENERATE, prog_name=prog, standalone_mode=False)
    assert seen == {"command": "bench generate", "progress": "bench generate"}


def test_a_plain_command_under_python_dash_m(monkeypatch):
    from prefcli import output
    from prefcli.cli import app

    got = []
    monkeypatch.setattr(output, "emit", lambda *a, **kw: got.append(current_command()))
    app(args=["scorers", "--format", "csv"], prog_name="python -m prefcli", standalone_mode=False)
    assert got == ["scorers"]


def test_outside_the_cli_there_is_no_command():
    assert current_command() is None


def test_the_program_words_are_dropped():
    assert _after_program("python -m prefcli bench generate".split()) == ["bench", "generate"]
    assert _after_program("python3 /x/prefcli/__main__.py bench generate".split()) == ["bench", "generate"]
    assert _after_program(["prefcli"]) == []
    assert _after_program("root bench generate".split()) == ["bench", "generate"]  # a test runner's name for the app
