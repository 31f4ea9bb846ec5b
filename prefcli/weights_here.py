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
        return Availability(LOCAL, str(src.path)) if src.path is not None and src.path.exists() else Availability(MISSING, str(src.path))
    if src.kind == "url":
        target = weights.url_target(src, src.sha256)
        # A scorer may pin the sha256 itself (aesthetic), which keys the download folder: any folder holding the file.
        found = [target] if target.is_file() else sorted(p for p in target.parent.parent.glob(f"*/{target.name}") if p.is_file())
        return Availability(CACHED, str(found[0])) if found else Availability(DOWNLOAD, src.url or spec)
    snap = _hub_snapshot(src.repo_id or "", src.revision)
    if snap is not None:
        return Availability(CACHED, str(snap))
    return Availability(DOWNLOAD, f"hf download {src.repo_id}" + (f" --revision {src.revision}" if src.revision else ""))
