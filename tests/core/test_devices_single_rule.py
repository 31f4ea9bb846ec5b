"""prefcli.devices is the one device rule and the one dtype table (issue 19, item 2).

The source scan fails when another module
- maps dtype names to dtypes: a dict literal with a dtype-name key ("bf16",
  "float16", ...) whose value is a torch dtype (`torch.bfloat16`) or a
  canonical dtype name ("bfloat16");
- looks for Apple's MPS backend (`*.backends.mps`): only an auto-device rule does;
- asks `torch.cuda.is_available()` outside the functions listed in
  CUDA_QUERIES_ALLOWED, each of which asks it for something other than picking
  a device (RNG state to save, a CUDA-only env setting, a CUDA memory counter).
Tables keyed by torch dtypes (hpsv2's `_precision`, open_clip's precision
names) or mapping names to sizes (generate's dry run) are not dtype tables.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from prefcli import devices
from prefcli.errors import DeviceError
from prefcli.plugins import get_scorer_spec, scorers
from prefcli.scorer import ScorerSpec

ROOT = Path(__file__).resolve().parents[2]
OWNER = ROOT / "prefcli" / "devices.py"
NAMES = set(devices.DTYPES)
CANONICAL = set(devices.DTYPES.values())
#: (file, function) pairs that may call torch.cuda.is_available(), and why.
CUDA_QUERIES_ALLOWED = {
    ("prefcli/train/checkpoint.py", "rng_state"): "saves the CUDA RNG state when there is one",
    ("prefcli/train/checkpoint.py", "set_rng_state"): "restores it",
    ("prefcli/train/loop.py", "train"): "sets CUBLAS_WORKSPACE_CONFIG for deterministic CUDA kernels",
    ("prefcli/generate/run.py", "generate_seed"): "reads the CUDA peak-memory counter",
}


def _sources():
    for folder in ("prefcli", "plugins"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path != OWNER:
                yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_dtype_value(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "torch":
        return isinstance(getattr(torch, node.attr, None), torch.dtype)
    return isinstance(node, ast.Constant) and node.value in CANONICAL


def _functions(tree: ast.AST):
    """(node, name of the innermost enclosing function or '<module>') for every node."""
    stack = [(tree, "<module>")]
    while stack:
        node, fn = stack.pop()
        yield node, fn
        inner = node.name if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else fn
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))


def find_violations(sources) -> list[str]:
    found = []
    for rel, tree in sources:
        for node, fn in _functions(tree):
            if isinstance(node, ast.Dict):
                if any(
                    isinstance(k, ast.Constant) and k.value in NAMES and _is_dtype_value(v)
                    for k, v in zip(node.keys, node.values)
                ):
                    found.append(f"{rel}:{node.lineno}: a dtype-name table (use prefcli.devices.torch_dtype)")
            elif (
                isinstance(node, ast.Attribute)
                and node.attr == "mps"
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "backends"
            ):
                found.append(f"{rel}:{node.lineno}: looks for MPS (use prefcli.devices.resolve_device / torch_device)")
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "is_available"
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "cuda"
                and (rel, fn) not in CUDA_QUERIES_ALLOWED
            ):
                found.append(f"{rel}:{node.lineno}: torch.cuda.is_available() in {fn} (use prefcli.devices)")
    return found


def test_no_other_module_maps_dtype_names_or_picks_a_device():
    assert find_violations(_sources()) == []


def test_the_scan_finds_what_it_forbids():
    # The shapes of the tables and rules this module replaced; an honest scan flags each one.
    planted = ast.parse(
        "import torch\n"
        "_DTYPES = {'bf16': torch.bfloat16, 'fp32': torch.float32}\n"
        "NAMES = {'half': 'float16'}\n"
        "def pick():\n"
        "    if torch.cuda.is_available():\n"
        "        return 'cuda'\n"
        "    return 'mps' if torch.backends.mps.is_available() else 'cpu'\n"
        "SIZES = {'float16': 2.0}\n"
        "PRECISION = {torch.float16: 'fp16'}\n"
    )
    found = find_violations([("prefcli/planted.py", planted)])
    assert sorted(int(f.split(":")[1]) for f in found) == [2, 3, 5, 7], found


def test_the_allowed_cuda_queries_still_exist():
    # A stale allow-list entry would let a new device rule hide under its name.
    where = {
        (rel, fn)
        for rel, tree in _sources()
        for node, fn in _functions(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "is_available"
    }
    assert set(CUDA_QUERIES_ALLOWED) <= where


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("fp32", torch.float32),
        ("float", torch.float32),
        ("bf16", torch.bfloat16),
        ("BFloat16", torch.bfloat16),
        ("half", torch.float16),
        ("torch.float16", torch.float16),
    ],
)
def test_torch_dtype_names(name, want):
    assert devices.torch_dtype(name, torch.device("cuda")) is want
    assert devices.torch_dtype(name, "cpu") is want


def test_auto_dtype_is_float32_off_cuda_and_the_declared_one_on_cuda():
    for auto in (None, "", "auto"):
        assert devices.torch_dtype(auto, torch.device("cpu")) is torch.float32
        assert devices.torch_dtype(auto, "mps") is torch.float32
        assert devices.torch_dtype(auto) is torch.float32
        assert devices.torch_dtype(auto, torch.device("cuda", 1)) is torch.float16
        assert devices.torch_dtype(auto, "cuda:0", "bf16") is torch.bfloat16
    # An explicit dtype wins over a scorer's CUDA preference.
    assert devices.torch_dtype("fp32", "cuda", "bfloat16") is torch.float32


def test_unknown_dtype_is_one_clear_error():
    with pytest.raises(DeviceError, match=r"float8: unknown dtype; use auto, fp32, bf16 or fp16"):
        devices.torch_dtype("float8", "cpu")


def test_torch_device_follows_the_one_auto_rule(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert devices.torch_device("auto") == torch.device("cpu")
    assert devices.torch_device(None) == torch.device("cpu")
    with pytest.raises(DeviceError, match="no CUDA device"):
        devices.torch_device("cuda")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert devices.torch_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.torch_device("auto") == torch.device("cuda")
    assert devices.torch_device(torch.device("cpu")) == torch.device("cpu")


def test_each_scorer_keeps_its_cuda_dtype():
    # Before one table: clip_common's said fp16 on CUDA, vlm-judge's own said bf16.
    assert get_scorer_spec("vlm-judge").cuda_dtype == "bfloat16"
    for name in ("clip", "aesthetic", "pickscore", "hpsv2", "imagereward"):
        assert get_scorer_spec(name).cuda_dtype == "float16", name
    assert all(spec.cuda_dtype in NAMES for spec in scorers().values())


def test_a_spec_with_an_unknown_cuda_dtype_is_refused():
    with pytest.raises(ValueError, match="cuda_dtype must be one of"):
        ScorerSpec(name="x", factory="m:C", cuda_dtype="int8")


@pytest.mark.parametrize(
    ("scorer", "module", "loader", "want"),
    [
        ("vlm-judge", "prefcli_vlmjudge.scorer", "load_judge", torch.bfloat16),
        ("clip", "prefcli.clip_common", "load_clip", torch.float16),
    ],
)
def test_a_scorer_loads_its_declared_cuda_dtype_for_auto(monkeypatch, scorer, module, loader, want):
    # No CUDA needed: the device is stood in for and the loader records what it was asked for.
    import importlib

    asked = {}

    def fake_loader(weights, device=None, dtype=None, **_):
        asked.update(device=device, dtype=dtype)
        return (None, None, "fake") if loader == "load_judge" else None

    monkeypatch.setattr(devices, "torch_device", lambda name="auto": torch.device("cuda"))
    monkeypatch.setattr(importlib.import_module(module), loader, fake_loader)
    get_scorer_spec(scorer).load("tiny", device="cpu")
    assert asked == {"device": torch.device("cuda"), "dtype": want}
    get_scorer_spec(scorer).load("tiny", device="cpu", dtype="fp32")
    assert asked["dtype"] is torch.float32
