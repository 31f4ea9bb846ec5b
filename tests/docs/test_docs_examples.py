"""Every example in docs/ and the README runs as written: this test extracts them and runs the offline ones.

Each shell block of every page is split into commands. A command is run
(in-process, through the CLI, in a folder per page holding what the examples
name: ./candidates, ./liked, ./disliked, ./queries, data/synthetic,
../shared/data; a page's blocks run in order and build on each other) unless a rule below says why it cannot run here: it needs
the network, a GPU, the real Pick-a-Pic data or downloaded weights, or it
takes minutes (those run with PREFCLI_DOCS_SLOW=1). Anything else must exit
0. A command that is neither runnable nor covered by a rule fails the test,
so a new example is never silently left out.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

import prefcli

pytestmark = pytest.mark.slow  # end to end: `make test-fast` leaves it out, `make test` (CI) runs it

REPO = Path(prefcli.__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.rglob("*.md")) + [REPO / "README.md"]
SHARED_DATA = Path(os.environ.get("PREFCLI_SHARED_DATA", REPO.parent / "shared" / "data"))
SLOW = os.environ.get("PREFCLI_DOCS_SLOW") == "1"

SHELL_LANGS = {"bash", "sh", "shell", "console"}
COMMANDS = ("prefcli", "hf", "huggingface-cli", "accelerate", "python", ".venv/bin/python", "make", "pip", ".")

# (pattern, why it cannot run in an offline test), checked in order.
RULES = [
    (r"\bhf download\b|huggingface-cli|prefcli weights pull", "downloads from the Hugging Face Hub"),
    (r"--device cuda|accelerate launch|--num-processes \d+(?! --format)", "needs GPUs"),
    (r"data/pickapic|pickapic_v2|yuvalkirstain/|hf-hub:", "needs the Pick-a-Pic data or the hub"),
    (
        r"~/models|/mirror/|wenyii/|\./downloads/|ours-paper|runs/|\./my-clip|sac\+logos|HPS_v2|hps_v2|prefcli_hpsv2\.convert",
        "needs downloaded or trained weights",
    ),
    (r"^(make|\.|pip) ", "sets up the environment"),
    (
        r"gpu_check\.sh",
        "needs a GPU, or with --tiny builds five models in a fresh process (tests/e2e/test_gpu_check.py runs it)",
    ),
    (
        r"prefcli label |\balice\b|\bbob\b",
        "serves a page until a person stops it, or reads what they labelled there "
        "(tests/label/test_label_browser.py drives it in headless Chromium)",
    ),
]
SLOW_RULES = [(r"bench/bench_|prefcli demo|prefcli train --config tiny", "takes minutes of CPU")]
SHIPPED = ("tiny", "tiny-opposed-")


def shell_blocks(text: str) -> list[str]:
    out = []
    for m in re.finditer(r"^```([\w-]*)[^\n]*\n(.*?)^```", text, re.S | re.M):
        lang, body = m.group(1).lower(), m.group(2)
        lines = [ln.strip() for ln in body.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        if lang in SHELL_LANGS or (
            not lang and lines and all(ln.split()[0] in COMMANDS or "=" in ln.split()[0] for ln in lines)
        ):
            out.append(body)
    return out


def commands(block: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", block)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        out.extend(part.strip() for part in line.split(" && "))
    return out


def _examples() -> list[tuple[str, int, list[str]]]:
    found = []
    for page in PAGES:
        for i, block in enumerate(shell_blocks(page.read_text())):
            cmds = commands(block)
            if cmds:
                found.append((page.relative_to(REPO).as_posix(), i, cmds))
    return found


EXAMPLES = _examples()


def _needs_official_weights(tokens: list[str]) -> bool:
    """rank/eval/bench without tiny or shipped weights load the scorer's official weights from the hub."""
    if len(tokens) < 2 or tokens[1] not in ("rank", "eval", "bench", "generate"):
        return False
    specs = [tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t in ("--weights", "-w")]
    if not specs:
        return True
    return not all(s.partition("=")[2 if "=" in s else 0].startswith(SHIPPED) for s in specs)


def why_not(cmd: str) -> str | None:
    for pat, why in RULES:
        if re.search(pat, cmd):
            return why
    for pat, why in SLOW_RULES:
        if re.search(pat, cmd) and not SLOW:
            return f"{why} (set PREFCLI_DOCS_SLOW=1 to run it)"
    tokens = shlex.split(cmd, comments=True)
    while tokens and re.fullmatch(r"[A-Z_]+=\S*", tokens[0]):
        tokens = tokens[1:]
    if _needs_official_weights(tokens):
        return "loads the scorer's official weights from the hub"
    if "../shared/data" in cmd and not SHARED_DATA.is_dir():
        return f"the shared data is not at {SHARED_DATA}"
    return None


def missing_source(cmd: str, here: Path) -> str | None:
    """`--source DIR` that is neither here (made by an earlier example) nor a hub id: a download it needs."""
    tokens = shlex.split(cmd, comments=True)
    for i, t in enumerate(tokens[:-1]):
        if t == "--source":
            src = tokens[i + 1]
            if not (here / src).exists():
                return f"needs the dataset downloaded to {src}"
    return None


def test_examples_were_found_and_use_todays_hf_cli():
    assert len(EXAMPLES) > 20
    for page in PAGES:
        text = page.read_text()
        assert "huggingface-cli" not in text, f"{page}: use `hf download`, not huggingface-cli"
        for line in text.splitlines():
            if "hf download" in line and "--include" in line:
                toks = shlex.split(line, comments=True)
                for i, t in enumerate(toks):
                    if t == "--include":
                        nxt = toks[i + 2] if i + 2 < len(toks) else "--"
                        assert nxt.startswith("--"), f"{page}: one --include per pattern: {line.strip()}"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder holding what the examples name, and ../shared/data beside it."""
    import sys

    sys.path.insert(0, str(REPO / "tests"))
    from picture_factory import structured_images
    from prefcli.train.loop import synthetic_dataset

    root = tmp_path_factory.mktemp("docs")
    ws = root / "base"
    for name, n, seed in (("candidates", 4, 1), ("liked", 3, 2), ("disliked", 3, 3), ("queries", 3, 4)):
        (ws / name).mkdir(parents=True)
        for j, im in enumerate(structured_images([(40 + 4 * k, 36) for k in range(n)], seed)):
            im.save(ws / name / f"{name[0]}{j}.png")
    world = {
        "preset": "opposed",
        "n_users": 10,
        "pairs_per_user": 14,
        "image_size": 32,
        "world_seed": 0,
        "user_seed": 5,
    }
    build = {"n_ref": 4, "val_users": 1, "test_users": 6, "seen_frac": 0.5, "hold_out": "user", "seed": 0}
    ds = synthetic_dataset(world, build, root=root / "worlds")
    (ws / "data").mkdir()
    os.symlink(ds, ws / "data" / "synthetic")
    (root / "blocks").mkdir()
    if SHARED_DATA.is_dir():
        (root / "blocks" / "shared").mkdir()
        os.symlink(SHARED_DATA, root / "blocks" / "shared" / "data")
    return ws


def page_dir(base: Path, page: str) -> Path:
    """A folder of its own for one page (its blocks build on each other, pages never collide), fixtures linked in."""
    d = base.parent / "blocks" / re.sub(r"[^\w.-]", "_", page)
    if d.is_dir():
        return d
    d.mkdir()
    for p in base.iterdir():
        os.symlink(p, d / p.name)
    return d


def run_prefcli(cmd: str, ws: Path, monkeypatch) -> tuple[int, str]:
    from typer.testing import CliRunner

    from prefcli.cli import app

    tokens = shlex.split(cmd, comments=True)
    env = {}
    while tokens and re.fullmatch(r"[A-Z_]+=\S*", tokens[0]):
        k, _, v = tokens.pop(0).partition("=")
        env[k] = v
    redirect = None
    if ">" in tokens:
        i = tokens.index(">")
        redirect, tokens = tokens[i + 1], tokens[:i]
    assert tokens[0] == "prefcli", f"cannot run {cmd!r} here: add a rule saying why, or make it a prefcli command"
    monkeypatch.chdir(ws)
    res = CliRunner().invoke(app, tokens[1:], env=env, catch_exceptions=True)
    if redirect:
        (ws / redirect).write_text(res.stdout)
    out = res.output
    code = res.exit_code
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        import traceback

        from prefcli.errors import PrefcliError

        # `prefcli` (prefcli.cli.main) turns these into one line and exit 2; either way the example failed.
        code = 2 if isinstance(res.exception, (PrefcliError, OSError)) else 1
        out += "".join(traceback.format_exception(res.exception))
    return code, out


@pytest.mark.parametrize("page,index,cmds", EXAMPLES, ids=[f"{p}#{i}" for p, i, _ in EXAMPLES])
def test_doc_example_runs_as_written(page, index, cmds, workspace, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PREFCLI_CACHE", str(workspace.parent / "cache"))
    monkeypatch.setenv("PREFCLI_CACHE_DIR", str(workspace.parent / "cache" / "harness"))
    ran, skipped = [], []
    here = page_dir(workspace, page)
    for cmd in cmds:
        why = why_not(cmd) or missing_source(cmd, here)
        if why:
            skipped.append(f"{cmd} ({why})")
            continue
        code, out = run_prefcli(cmd, here, monkeypatch)
        assert code == 0, f"{page}: `{cmd}` exited {code}:\n{out[-3000:]}"
        assert "Traceback" not in out, f"{page}: `{cmd}` printed a traceback:\n{out[-3000:]}"
        ran.append(cmd)
    if not ran:
        pytest.skip("; ".join(skipped))


def test_the_pickapic_download_fetches_what_the_streaming_build_reads(monkeypatch):
    """The documented `hf download` patterns select exactly the shards HubSource streams by default."""
    import fnmatch

    import huggingface_hub

    from prefcli.data import pickapic

    files = [
        f"data/{split}-{i:05d}-of-00003-abc.parquet"
        for split in ("train", "validation", "test", "validation_unique", "test_unique")
        for i in range(3)
    ] + ["README.md", ".gitattributes"]

    class FakeApi:
        def dataset_info(self, repo_id):
            return type("Info", (), {"sha": "0" * 40})()

        def list_repo_files(self, repo_id, repo_type=None, revision=None):
            return list(files)

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("PREFCLI_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    streamed = set(pickapic.HubSource(pickapic.HUB_REPO).shards())
    text = (DOCS / "data.md").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("hf download yuvalkirstain/pickapic_v2"))
    toks = shlex.split(line)
    patterns = [toks[i + 1] for i, t in enumerate(toks) if t == "--include"]
    assert tuple(patterns) == pickapic.HUB_DOWNLOAD_INCLUDES
    downloaded = {f for f in files if any(fnmatch.fnmatch(f, p) for p in patterns)}
    assert downloaded == streamed and len(streamed) == 9
