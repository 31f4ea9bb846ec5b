"""Whether a weights spec is usable on this machine now: built in, a local path, cached, or still to download.

Read from the file system only (the Hugging Face cache's layout, prefcli's
URL cache): nothing is downloaded and neither torch nor transformers is
imported, so `prefcli scorers` stays fast and honest on a machine without
network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: States, from the most to the least usable.
BUILT_IN, LOCAL, CACHED, DOWNLOAD, MISSING, NONE = "built-in", "local", "cached", "download", "missing", "none"


@dataclass(frozen=True)
class Availability:
    state: str  # one of the states above
    where: str  # the folder or file found, or what would be fetched

    @property
    def usable_now(self) -> bool:
        return self.state in (BUILT_IN, LOCAL, CACHED)


def _hub_snapshot(repo_id: str, revision: str | None) -> Path | None:
    """A non-empty snapshot of `repo_id` in the Hugging Face cache (the named revision when given)."""
    from prefcli.weights import hf_cache

    repo = hf_cache() / f"models--{repo_id.replace('/', '--')}"
    snaps = repo / "snapshots"
    if not snaps.is_dir():
        return None
    if revision:
        ref = repo / "refs" / revision
        commit = ref.read_text().strip() if ref.is_file() else revision
        cands = [snaps / commit]
    else:
        ref = repo / "refs" / "main"
        cands = ([snaps / ref.read_text().strip()] if ref.is_file() else []) + sorted(snaps.iterdir())
    for c in cands:
        if c.is_dir() and any(c.iterdir()):
            return c
    return None


def availability(spec: str | None) -> Availability:
    """Where the weights named by `spec` are, without fetching anything."""
    from prefcli import weights
    from prefcli.errors import WeightsError

    if not spec:
        return Availability(NONE, "no default weights: --weights is required")
    try:
        src = weights.parse(spec)
    except WeightsError as e:
        return Availability(MISSING, str(e))
    if src.kind == "tiny":
        return Availability(BUILT_IN, "random weights from a tiny config")
    if src.kind == "local":
        return (
            Availability(LOCAL, str(src.path))
            if src.path is not None and src.path.exists()
            else Availability(MISSING, str(src.path))
        )
    if src.kind == "url":
        target = weights.url_target(src, src.sha256)
        # A scorer may pin the sha256 itself (aesthetic), which keys the download folder: any folder holding the file.
        found = (
            [target]
            if target.is_file()
            else sorted(p for p in target.parent.parent.glob(f"*/{target.name}") if p.is_file())
        )
        return Availability(CACHED, str(found[0])) if found else Availability(DOWNLOAD, src.url or spec)
    snap = _hub_snapshot(src.repo_id or "", src.revision)
    if snap is not None:
        return Availability(CACHED, str(snap))
    return Availability(
        DOWNLOAD, f"hf download {src.repo_id}" + (f" --revision {src.revision}" if src.revision else "")
    )


# --------------------------------------------------------------------------- what `prefcli weights ls` shows


@dataclass(frozen=True)
class Facts:
    """One spec's facts for `prefcli weights ls`: `availability` plus size, revision and what prefcli may remove."""

    spec: str  # as `weights ls` names it (hub ids with hf-hub:, local paths resolved)
    kind: str  # tiny | hub | url | local | invalid
    state: str
    where: str
    size_bytes: int | None  # of what is here; None when nothing is
    revision: str | None  # the cached commit (hub), the sha256 (url), None otherwise
    #: The download folder `prefcli weights rm` would delete (hub repository or URL folder); None for a user's own files.
    removable: Path | None

    @property
    def present(self) -> bool:
        return self.state in (BUILT_IN, LOCAL, CACHED)


#: `weights ls` counts at most this many files under one folder: a record naming a huge tree (a home folder
#: given as --weights once) costs a blank size, not a walk of the whole disk.
MAX_COUNTED_FILES = 20_000


def _tree_size(path: Path) -> int | None:
    """Bytes of a file or of every file under a folder (links followed: a hub snapshot links into its blobs);
    None past MAX_COUNTED_FILES entries."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for n, p in enumerate(path.rglob("*")):
        if n >= MAX_COUNTED_FILES:
            return None
        try:
            if p.is_file():
                total += p.stat().st_size
        except OSError:
            continue
    return total


def hub_repo_folder(repo_id: str) -> Path:
    """The Hugging Face cache folder of a model repository (its id is validated by prefcli.weights.parse)."""
    from prefcli.weights import hf_cache

    return hf_cache() / f"models--{repo_id.replace('/', '--')}"


def facts(spec: str) -> Facts:
    """Where the weights named by `spec` are, how large, at which revision: read from the file system only."""
    from prefcli import weights
    from prefcli.errors import WeightsError

    have = availability(spec)
    try:
        src = weights.parse(spec)
    except WeightsError:
        return Facts(spec, "invalid", have.state, have.where, None, None, None)
    name = src.spec if src.kind == "url" else src.describe()
    if src.kind == "tiny" or not have.usable_now:
        return Facts(name, src.kind, have.state, have.where, None, None, None)
    where = Path(have.where)
    if src.kind == "hub":
        return Facts(
            name, "hub", have.state, have.where, _tree_size(where), where.name, hub_repo_folder(src.repo_id or "")
        )
    if src.kind == "url":
        return Facts(
            name,
            "url",
            have.state,
            have.where,
            _tree_size(where),
            src.sha256 or weights.file_fingerprint(where),
            where.parent,
        )
    return Facts(name, "local", have.state, have.where, _tree_size(where), None, None)


def scorer_weights(spec) -> list[tuple[str, str]]:
    """(weights spec, how the scorer takes it) for a ScorerSpec: its default weights, then the default of every option
    declared as weights (`option(..., weights=True)`: `-o base`, `-o processor` ...) that names hub or URL weights, so
    listing and pulling a scorer covers what it loads. An option whose default is None (chosen in the scorer's code)
    cannot be seen here."""
    from prefcli import weights
    from prefcli.errors import WeightsError

    out = [(spec.default_weights, "--weights")] if spec.default_weights else []
    for o in spec.options.info():
        if not o.weights or not isinstance(o.default, str) or not o.default.strip():
            continue
        try:
            if weights.parse(o.default).kind in ("hub", "url"):
                out.append((o.default, f"-o {o.name}"))
        except WeightsError:
            continue
    return out
