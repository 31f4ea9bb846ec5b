"""Module boundaries, read from the source with `ast`: no module reaches into another's
private names, and no two prefcli modules import each other (directly or round a loop).

A `_name` is private to its module; one borrowed from elsewhere is a helper that lives
in the wrong house (or should be public). A cycle means a helper sits in the wrong
module too, and it makes import order matter.

Which imports count for cycles: every import that runs, at module level and inside
functions alike, because a function-level import is where this project defers a heavy
or circular dependency, and deferring does not remove the loop, it only hides it.
Imports under `if TYPE_CHECKING:` never run and are not counted, nor is an import of a
module's own parent package (`from prefcli import __version__`): Python runs a package's
__init__ before any of its submodules, so the parent is already in sys.modules when a
child asks for it (prefcli/__init__.py imports `api` lazily, in `__getattr__`).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOTS = (REPO / "prefcli", REPO / "plugins")

# None: every cycle pointed at a helper in the wrong module and was moved (docs/architecture.md, "Rules").
ALLOWED_CYCLES: list[set[str]] = []


def _module_name(path: Path) -> str:
    root = REPO / "plugins" if path.is_relative_to(REPO / "plugins") else REPO
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for root in ROOTS:
        for path in sorted(root.rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _ours(name: str) -> bool:
    return name.split(".")[0] in {m.split(".")[0] for m in MODULES}


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if _is_package(module) else module.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of import nodes under `if TYPE_CHECKING:`."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                skip.update(id(n) for n in ast.walk(sub))
    return skip


class _Scan:
    """One module's imports (targets among our modules) and its private names borrowed from others."""

    def __init__(self, module: str, source: str | None = None):
        self.module = module
        self.tree = ast.parse(MODULES[module].read_text() if source is None else source, filename=module)
        self.imports: set[str] = set()
        self.borrowed: list[str] = []
        skip = _type_checking_only(self.tree)
        aliases: dict[str, str] = {}  # local name -> one of our modules
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if _ours(a.name):
                        if a.asname:
                            aliases[a.asname] = a.name
                        if id(node) not in skip and a.name in MODULES:
                            self.imports.add(a.name)
            elif isinstance(node, ast.ImportFrom):
                source = _absolute(module, node)
                if not _ours(source):
                    continue
                for a in node.names:
                    sub = f"{source}.{a.name}"
                    target = sub if sub in MODULES else source
                    if sub in MODULES:
                        aliases[a.asname or a.name] = sub
                    elif _private(a.name) and source != module:
                        self.borrowed.append(f"line {node.lineno}: from {source} import {a.name}")
                    if id(node) not in skip and target in MODULES:
                        self.imports.add(target)
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Attribute) and _private(node.attr):
                owner = ast.unparse(node.value)
                owner = aliases.get(owner, owner)
                if owner in MODULES and owner != module:
                    self.borrowed.append(f"line {node.lineno}: {ast.unparse(node)}")
        self.imports.discard(module)


@functools.cache
def scans() -> dict[str, _Scan]:
    """Every module parsed, once, when a test first asks (~1.3 CPU-s): not at collection, in every xdist worker."""
    return {m: _Scan(m) for m in MODULES}


def _prefcli_graph(scans: dict[str, _Scan]) -> dict[str, set[str]]:
    core = lambda m: m == "prefcli" or m.startswith("prefcli.")  # noqa: E731
    return {m: {t for t in s.imports if core(t) and not m.startswith(t + ".")} for m, s in scans.items() if core(m)}


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_scan_sees_the_project():
    # A scan that found nothing would pass every rule below.
    assert {"prefcli.cli.rank", "prefcli.data.importing", "prefcli_clip.scorer"} <= set(MODULES)
    assert "prefcli.data.dataset" in scans()["prefcli.data.importing"].imports


def test_no_module_uses_another_modules_private_names():
    borrowed = [f"{MODULES[m].relative_to(REPO)} {b}" for m, s in scans().items() for b in s.borrowed]
    assert not borrowed, "private names used across modules (make them public or move them):\n" + "\n".join(borrowed)


def test_no_import_cycles_among_prefcli_modules():
    cycles = [sorted(c) for c in _cycles(_prefcli_graph(scans())) if c not in ALLOWED_CYCLES]
    assert not cycles, "import cycles (move the helper that closes each loop):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_the_rules_catch_what_they_forbid():
    # The checks themselves, on made-up module bodies that break each rule once.
    borrowing = _Scan(
        "prefcli.data.importing",
        (
            "from prefcli.data.pickapic import _Journal, build\n"
            "import prefcli.images as im\n"
            "from prefcli.data import dataset\n"
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from prefcli import types\n"
            "def f():\n    from prefcli import progress\n    return im._x, dataset._y, progress.__name__\n"
        ),
    )
    assert [b.split(": ", 1)[1] for b in borrowing.borrowed] == [
        "from prefcli.data.pickapic import _Journal",
        "im._x",
        "dataset._y",
    ]
    assert borrowing.imports == {"prefcli.data.pickapic", "prefcli.images", "prefcli.data.dataset", "prefcli.progress"}
    assert _Scan("prefcli.images", "_own = 1\nprint(_own)\n").borrowed == []
    a, b = (
        _Scan("prefcli.images", "import prefcli.types\n"),
        _Scan("prefcli.types", "def f():\n    from prefcli import images\n"),
    )
    assert _cycles(_prefcli_graph({"prefcli.images": a, "prefcli.types": b})) == [{"prefcli.images", "prefcli.types"}]
    b = _Scan("prefcli.types", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from prefcli import images\n")
    assert _cycles(_prefcli_graph({"prefcli.images": a, "prefcli.types": b})) == []
    package, child = (
        _Scan("prefcli", "def f():\n    from prefcli import api\n"),
        _Scan("prefcli.api", "from prefcli import __version__\n"),
    )
    assert child.imports == {"prefcli"} and _cycles(_prefcli_graph({"prefcli": package, "prefcli.api": child})) == []
