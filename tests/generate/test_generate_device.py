"""`generate` and `bench generate` check an explicit --device by prefcli.devices' rule before any work, --dry-run included."""

from __future__ import annotations

import pytest

from cli_runner import run_cli


@pytest.fixture
def no_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize(
    "args",
    [
        ["generate", "a fox", "--preset", "reno", "--dry-run", "--device", "cuda"],
        [
            "generate",
            "a fox",
            "--model",
            "tiny",
            "--reward",
            "clip=1",
            "--weights",
            "tiny",
            "--dry-run",
            "--device",
            "cuda:1",
        ],
        ["bench", "generate", "--prompts", "nowhere", "--device", "cuda"],
    ],
)
def test_a_missing_cuda_device_is_one_line_and_exit_2(capsys, no_cuda, args):
    code, out, err = run_cli(capsys, *args)
    assert code == 2, err
    assert err.splitlines() == [
        f"prefcli: error: --device {args[-1]}: this machine has no CUDA device"
        f" (torch {__import__('torch').__version__}); use --device cpu or --device auto"
    ]
    assert out == ""


def test_not_a_device_is_named(capsys):
    code, _, err = run_cli(capsys, "generate", "a fox", "--preset", "reno", "--dry-run", "--device", "gpu")
    assert code == 2 and err.startswith("prefcli: error: --device gpu: not a device") and len(err.splitlines()) == 1
