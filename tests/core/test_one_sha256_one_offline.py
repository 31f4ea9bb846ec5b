"""One file sha256 (`prefcli.weights.sha256_file`) and one offline check (`prefcli.weights.is_offline`), issue 19 item 4.

The offline switch once meant different things: `HF_HUB_OFFLINE=y` kept the
weights code off the network but not the Pick-a-Pic, PreferImg, PAMELA and
prompt-list downloaders. The source scan fails when a module other than
weights.py
- reads HF_HUB_OFFLINE / PREFCLI_OFFLINE itself (`os.environ.get`/`os.getenv` of
  one, or a tuple/list/set naming one; setting them, as `--offline` does, is fine);
- defines a whole-file sha256 helper: a function that opens its first parameter
  with open(..., "rb"), builds hashlib.sha256() and reads in a loop (a hash of
  a file's head and tail, or of a folder's files, is a different digest).
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest

from prefcli import weights
from prefcli.errors import DataError

ROOT = Path(__file__).resolve().parents[2]
OWNER = ROOT / "prefcli" / "weights.py"
ENVS = set(weights.OFFLINE_ENVS)


def _sources():
    for folder in ("prefcli", "plugins"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path != OWNER:
                yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _names_env(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value in ENVS


def _is_file_digest(fn: ast.FunctionDef) -> bool:
    if not fn.args.args:
        return False
    param = fn.args.args[0].arg
    nodes = list(ast.walk(fn))
    opens_param = any(
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Name)
        and n.func.id == "open"
        and n.args
        and isinstance(n.args[0], ast.Name)
        and n.args[0].id == param
        for n in nodes
    )
    sha = any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "sha256" for n in nodes)
    streams = any(
        isinstance(n, ast.While) or (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "iter")
        for n in nodes
    )
    return opens_param and sha and streams


def find_violations(sources) -> list[str]:
    found = []
    for rel, tree in sources:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(_names_env(e) for e in node.elts):
                found.append(f"{rel}:{node.lineno}: reads the offline variables (use prefcli.weights.is_offline)")
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("get", "getenv")
                and node.args
                and _names_env(node.args[0])
            ):
                found.append(f"{rel}:{node.lineno}: reads an offline variable (use prefcli.weights.is_offline)")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_file_digest(node):
                found.append(f"{rel}:{node.lineno}: {node.name} hashes a file (use prefcli.weights.sha256_file)")
    return found


def test_no_other_offline_check_or_file_sha256():
    assert find_violations(_sources()) == []


def test_the_scan_finds_what_it_forbids():
    planted = ast.parse(
        "import hashlib, os\n"
        "def _offline():\n"
        "    return any(os.environ.get(k) for k in ('HF_HUB_OFFLINE', 'PREFCLI_OFFLINE'))\n"
        "OFF = os.getenv('PREFCLI_OFFLINE')\n"
        "def file_sha256(path):\n"
        "    h = hashlib.sha256()\n"
        "    with open(path, 'rb') as f:\n"
        "        for block in iter(lambda: f.read(1 << 20), b''):\n"
        "            h.update(block)\n"
        "    return h.hexdigest()\n"
        "def head(path):\n"
        "    with open(path, 'rb') as f:\n"
        "        return hashlib.sha256(f.read(10)).hexdigest()\n"
        "def set_offline():\n"
        "    os.environ['PREFCLI_OFFLINE'] = '1'\n"
    )
    assert sorted(int(f.split(":")[1]) for f in find_violations([("prefcli/planted.py", planted)])) == [3, 4, 5]


def test_sha256_file_streams_the_whole_file(tmp_path):
    f = tmp_path / "blob"
    data = bytes(range(256)) * 9000  # over one read chunk
    f.write_bytes(data)
    assert weights.sha256_file(f) == hashlib.sha256(data).hexdigest()


TRUE = sorted(weights._TRUTHY | {"Y", " yes "})


@pytest.mark.parametrize("value", TRUE)
def test_every_downloader_honours_the_same_offline_values(monkeypatch, value, tmp_path):
    from prefcli.data import pamela, pickapic, preferimg, prompts

    monkeypatch.delenv("PREFCLI_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert weights.is_offline() is True
    # Each refuses before any network call; "y" and "t" were not offline for the data importers.
    with pytest.raises(DataError, match="offline mode"):
        prompts.load_imagereward_prompts(None)
    with pytest.raises(DataError, match="offline mode"):
        prompts.load_hpsv2_prompts(None)
    with pytest.raises(DataError, match="offline mode"):
        pickapic.HubSource("org/pickapic").shards()
    with pytest.raises(DataError, match="offline mode"):
        preferimg._download("org/preferimg", None, "x", tmp_path)
    with pytest.raises(DataError, match="offline mode"):
        pamela.resolve("org/pamela", tmp_path)


@pytest.mark.parametrize("value", ["", "0", "false", "no", "off"])
def test_false_values_are_online(monkeypatch, value):
    monkeypatch.delenv("PREFCLI_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert weights.is_offline() is False
