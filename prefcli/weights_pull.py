"""Fetching and removing downloaded weights: the work of `prefcli weights pull` and `prefcli weights rm`.

A target is a scorer name (its default weights) or a weights spec. Pulling
uses the same downloads as loading (huggingface_hub into the Hugging Face
cache, https URLs into prefcli's cache with their sha256 checked), so what
is pulled is exactly what a scorer later finds offline. Removing touches only
those two caches: a hub repository through huggingface_hub's own cache
deletion, a URL download's file in prefcli's `urls/` folder; a local path is
the user's and is never removed.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from prefcli.errors import WeightsError, one_line

#: What `pull` fetches from a hub repository when not told (--include): configs, tokenizers and weights.
#: Pickled weights (*.bin, *.pt, ...) only when the repository has no safetensors, which prefcli loads first.
TEXT_PATTERNS = ("*.json", "*.txt", "*.model", "*.tiktoken")
SAFE_PATTERNS = ("*.safetensors",)
PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt")


@dataclass(frozen=True)
class Target:
    given: str  # as typed
    spec: str  # the weights spec it names
    scorer: str | None  # the scorer whose default it is, when a scorer was named
    #: Hub files it needs when not told (--include); empty: the default patterns.
    include: tuple[str, ...] = ()


def targets(given: str) -> list[Target]:
    """A scorer name or alias → its weights (`weights_here.scorer_weights`); anything else is one weights spec."""
    from prefcli import plugins, weights
    from prefcli.weights_here import scorer_weights

    known = plugins.scorers()
    aliases = {a: s.name for s in known.values() for a in s.aliases}
    name = aliases.get(given, given)
    if name in known:
        specs = scorer_weights(known[name])
        if not specs:
            raise WeightsError(
                f"{given}: scorer {name} has no default weights (its --weights is required, or it uses "
                "other scorers' weights); give the weights spec itself"
            )
        # A processor or tokenizer option needs the configs and vocabulary, not the model weights beside them.
        return [
            Target(given, s, name, TEXT_PATTERNS if how in ("-o processor", "-o tokenizer") else ()) for s, how in specs
        ]
    weights.parse(given)  # one line naming it when it is neither a scorer nor a spec
    return [Target(given, given, None)]


def choose_files(files: Sequence[str], include: Sequence[str] = ()) -> list[str]:
    """The repository files to fetch: those matching `include`, else the default patterns (see above)."""

    def matches(f: str, patterns: Sequence[str]) -> bool:
        return any(fnmatch.fnmatch(f, p) or fnmatch.fnmatch(os.path.basename(f), p) for p in patterns)

    if include:
        return [f for f in files if matches(f, include)]
    has_safe = any(matches(f, SAFE_PATTERNS) for f in files)
    wanted = (*TEXT_PATTERNS, *SAFE_PATTERNS, *(() if has_safe else PICKLE_PATTERNS))
    return [f for f in files if matches(f, wanted)]


def plan_line(t: Target, include: Sequence[str] = ()) -> str:
    """What pulling `t` would fetch, in words (for the offline refusal)."""
    from prefcli import weights

    src = weights.parse(t.spec)
    if src.kind == "url":
        return f"{src.url}" + (f" (sha256 {src.sha256[:12]}...)" if src.sha256 else "")
    include = list(include) or list(t.include)
    files = f" files {', '.join(include)}" if include else ""
    return f"{src.describe()}{files}"


def pull_one(t: Target, include: Sequence[str] = ()) -> dict:
    """Fetch one target (online); a row for the command's output."""
    from prefcli import weights
    from prefcli.weights_here import facts

    src = weights.parse(t.spec)
    row = {"target": t.given, "scorer": t.scorer, "spec": facts(t.spec).spec, "files": 0, "size_bytes": None}
    if src.kind == "tiny":
        return {**row, "action": "built in", "where": "random weights from a tiny config"}
    if src.kind == "local":
        here = facts(t.spec)
        if not here.present:
            raise WeightsError(f"{t.spec}: weights path does not exist (a local path is never downloaded)")
        return {**row, "action": "local", "files": None, "size_bytes": here.size_bytes, "where": here.where}
    if src.kind == "url":
        # Where resolve_file looks (by the URL's sha256, else by the URL): another URL's file of the same name is not it.
        before = any(weights.url_target(src, sha).is_file() for sha in {src.sha256, None})
        path = weights.resolve_file(t.spec, offline=False, flag="TARGET")
        now = facts(t.spec)
        return {
            **row,
            "action": "already here" if before else "fetched",
            "files": 1,
            "size_bytes": path.stat().st_size,
            "revision": now.revision,
            "where": str(path),
        }
    return _pull_hub(t, src, list(include) or list(t.include), row)


def _pull_hub(t: Target, src, include: Sequence[str], row: dict) -> dict:
    from huggingface_hub import HfApi, hf_hub_download

    from prefcli import weights

    def info_fn(repo_id, revision=None, cache_dir=None, local_files_only=False):
        return HfApi().model_info(repo_id, revision=revision, files_metadata=True)

    info = weights.hub_call(src, None, False, info_fn, flag="TARGET")
    siblings = {s.rfilename: (s.size or 0) for s in (info.siblings or [])}
    files = choose_files(sorted(siblings), include)
    outside = [f for f in files if PurePosixPath(f).is_absolute() or ".." in PurePosixPath(f).parts or "\\" in f]
    if outside:
        # The names come from the server: one that climbs out of the repository's folder is refused before any download.
        raise WeightsError(
            f"{src.describe()}: the hub lists a file name outside the repository ({outside[0]!r}); nothing fetched"
        )
    if not files:
        shown = ", ".join(include) if include else "the default patterns"
        raise WeightsError(
            f"{src.describe()}: no file of the repository matches {shown} "
            f"({len(siblings)} files there; choose with --include PATTERN)"
        )
    total = sum(siblings[f] for f in files)
    cached = _hub_cached_files(src, info.sha)
    folder: Path | None = None
    with _quiet_hub_bars(), weights.download_progress() as bar:
        task = bar.add_task(f"pulling {src.describe()}", total=total)
        for f in files:
            path = weights.hub_call(src, f, False, hf_hub_download, flag="TARGET", filename=f)
            folder = Path(path).parent if folder is None else folder
            bar.advance(task, siblings[f])
    fetched = [f for f in files if f not in cached]
    snap = _snapshot(src.repo_id or "", info.sha)
    return {
        **row,
        "action": "fetched" if fetched else "already here",
        "files": len(files),
        "size_bytes": total,
        "revision": info.sha,
        "where": str(snap if snap.is_dir() else folder),
    }


def _hub_cached_files(src, commit: str | None) -> set[str]:
    snap = _snapshot(src.repo_id or "", commit)
    if not commit or not snap.is_dir():
        return set()
    return {p.relative_to(snap).as_posix() for p in snap.rglob("*") if p.is_file()}


def _snapshot(repo_id: str, commit: str | None) -> Path:
    from prefcli.weights_here import hub_repo_folder

    return hub_repo_folder(repo_id) / "snapshots" / (commit or "none")


class _quiet_hub_bars:
    """huggingface_hub's own tqdm bars off while prefcli's bar shows the pull (restored after)."""

    def __enter__(self):
        from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars

        self.was = are_progress_bars_disabled()
        disable_progress_bars()

    def __exit__(self, *exc):
        from huggingface_hub.utils import enable_progress_bars

        if not self.was:
            enable_progress_bars()
        return False


# --------------------------------------------------------------------------- rm


@dataclass(frozen=True)
class Removal:
    target: Target
    spec: str
    kind: str
    paths: tuple[Path, ...]  # what will be deleted (hub: the snapshots; url: the file)
    size_bytes: int
    revisions: tuple[str, ...] = ()  # hub commits, deleted through huggingface_hub

    def row(self, action: str) -> dict:
        return {
            "target": self.target.given,
            "scorer": self.target.scorer,
            "spec": self.spec,
            "action": action,
            "size_bytes": self.size_bytes,
            "where": ", ".join(str(p) for p in self.paths),
        }


def plan_removal(t: Target) -> Removal | None:
    """What `rm` would delete for `t`; None when nothing of it is in the caches. A local path is refused."""
    from prefcli import weights
    from prefcli.paths import is_inside
    from prefcli.weights_here import facts

    src = weights.parse(t.spec)
    here = facts(t.spec)
    if src.kind == "local":
        raise WeightsError(
            f"{here.where}: a local path, not a download; `prefcli weights rm` removes only what was "
            "downloaded into the Hugging Face cache or prefcli's cache, never your own files"
        )
    if src.kind == "tiny" or not here.present:
        return None
    if src.kind == "url":
        path = Path(here.where)
        urls = weights.cache_dir() / "urls"
        if not is_inside(urls, path) or path.parent.parent.resolve() != urls.resolve():
            raise WeightsError(f"{path}: not inside prefcli's download folder {urls}; not removed")
        return Removal(t, here.spec, "url", (path,), here.size_bytes or 0)
    return _plan_hub_removal(t, src, here.spec)


def _plan_hub_removal(t: Target, src, name: str) -> Removal | None:
    from huggingface_hub import scan_cache_dir

    from prefcli import weights

    try:
        info = scan_cache_dir(weights.hf_cache())
    except Exception as e:  # noqa: BLE001 - CacheNotFound, a corrupted cache
        raise WeightsError(f"{weights.hf_cache()}: the Hugging Face cache cannot be read ({one_line(e)})") from None
    repo = next((r for r in info.repos if r.repo_type == "model" and r.repo_id == src.repo_id), None)
    if repo is None:
        return None
    revs = [
        r for r in repo.revisions if src.revision is None or r.commit_hash == src.revision or src.revision in r.refs
    ]
    if not revs:
        return None
    strategy = info.delete_revisions(*(r.commit_hash for r in revs))
    return Removal(
        t,
        name,
        "hub",
        tuple(sorted(strategy.snapshots)),
        int(strategy.expected_freed_size),
        tuple(r.commit_hash for r in revs),
    )


def remove(r: Removal) -> dict:
    """Delete what `plan_removal` found; a row for the command's output."""
    from prefcli import weights

    if r.kind == "url":
        for p in r.paths:
            p.unlink(missing_ok=True)
            try:
                p.parent.rmdir()  # the download's own folder, when nothing else is in it
            except OSError:
                pass
        return r.row("removed")
    from huggingface_hub import scan_cache_dir

    scan_cache_dir(weights.hf_cache()).delete_revisions(*r.revisions).execute()
    return r.row("removed")
