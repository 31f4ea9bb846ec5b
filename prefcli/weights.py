"""Where weights come from, and how they are opened without running anyone's code.

A weights *spec* is one string, the same everywhere (`--weights`, configs,
scorer defaults):

- ``tiny`` / ``tiny:SEED`` - random weights from a tiny config, built by the
  caller (tests, the offline demo);
- ``hf-hub:org/name`` or ``hf-hub:org/name@revision`` - a Hugging Face Hub
  repository; a bare ``org/name`` that is not an existing local path means
  the same;
- ``https://host/path/file.pt#sha256=HEX`` - a URL (https only; ``http://``
  is refused), downloaded once into the prefcli cache and checked against its
  sha256 when one is given;
- anything else - a local file or directory (``~`` expanded).

Offline mode (``HF_HUB_OFFLINE`` / ``PREFCLI_OFFLINE``, or an explicit flag)
uses only what is already cached, and says exactly how to fetch what is
missing. Loading never unpickles arbitrary objects: safetensors, or
``prefcli.safe_load.torch_load`` (``torch.load(weights_only=True)``, a
TorchScript archive refused unread).

torch and huggingface_hub are imported inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefcli.atomic import atomic_path
from prefcli.errors import WeightsError, one_line

# Where plugins and docs/weights.md find them (weights.load_state_dict); they live in safe_load, with the pickle rules.
from prefcli.safe_load import (  # noqa: F401
    check_safetensors,
    check_safetensors_folder,
    hf_folder_state,
    load_safetensors,
    load_state_dict,
    save_state_dict,
)

log = logging.getLogger(__name__)

CACHE_ENV = "PREFCLI_CACHE"
OFFLINE_ENVS = ("HF_HUB_OFFLINE", "PREFCLI_OFFLINE")
_TRUTHY = {"1", "true", "yes", "on", "y", "t"}

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_HUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # legacy ids without an org ("gpt2")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_TINY = re.compile(r"^tiny(?::(-?\d+))?$")
_TINY_SEED_MAX = 2**63 - 1  # torch.manual_seed and numpy accept seeds up to here
_CHUNK = 1 << 20
_URL_TIMEOUT_S = 60


# --------------------------------------------------------------------------- basics


def cache_dir() -> Path:
    """prefcli's cache root: $PREFCLI_CACHE, else $XDG_CACHE_HOME/prefcli, else ~/.cache/prefcli (see prefcli.paths)."""
    from prefcli.paths import cache_root

    return cache_root()


def is_offline(offline: bool | None = None) -> bool:
    """An explicit flag wins; otherwise HF_HUB_OFFLINE or PREFCLI_OFFLINE set to a true value."""
    if offline is not None:
        return bool(offline)
    return any(os.environ.get(k, "").strip().lower() in _TRUTHY for k in OFFLINE_ENVS)


def is_tiny(spec: str | None) -> bool:
    """True for "tiny" and "tiny:SEED": random weights the caller builds itself."""
    return spec is not None and _TINY.match(spec.strip()) is not None


def tiny_seed(spec: str) -> int:
    """0 for "tiny", N for "tiny:N"."""
    m = _TINY.match(spec.strip())
    if m is None:
        raise ValueError(f"not a tiny weights spec: {spec!r}")
    _check_tiny(spec.strip())
    return int(m.group(1) or 0)


def _check_tiny(spec: str) -> None:
    m = _TINY.match(spec)
    digits = (m.group(1) or "0").lstrip("-") if m else "0"
    if len(digits) > 19 or abs(int(digits)) > _TINY_SEED_MAX:
        raise WeightsError(
            f"--weights {spec[:40]}{'...' if len(spec) > 40 else ''}: the tiny seed must lie within "
            f"+-{_TINY_SEED_MAX} (a 64-bit integer)"
        )


@dataclass(frozen=True)
class WeightsSource:
    """A parsed weights spec."""

    kind: str  # "tiny" | "hub" | "local" | "url"
    spec: str
    repo_id: str | None = None
    revision: str | None = None
    path: Path | None = None
    url: str | None = None
    sha256: str | None = None

    def describe(self) -> str:
        """How to name these weights in messages and provenance records."""
        if self.kind == "hub":
            return f"hf-hub:{self.repo_id}" + (f"@{self.revision}" if self.revision else "")
        if self.kind == "url":
            return self.url or self.spec
        if self.kind == "local":
            return str(self.path)
        return self.spec


def _looks_like_path(s: str) -> bool:
    seps = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    return s.startswith(("/", ".", "~")) or any(sep in s for sep in seps) or bool(re.match(r"^[A-Za-z]:\\", s))


def _split_rev(s: str) -> tuple[str, str | None]:
    if "@" in s:
        repo, rev = s.split("@", 1)
        return repo, (rev or None)
    return s, None


def parse(spec: str) -> WeightsSource:
    """Turn a weights spec string into a WeightsSource (see the module docstring)."""
    if spec is None or not str(spec).strip():
        raise WeightsError("empty weights spec (expected tiny, hf-hub:org/name, an https URL or a local path)")
    spec = str(spec).strip()
    if is_tiny(spec):
        _check_tiny(spec)
        return WeightsSource(kind="tiny", spec=spec)
    if spec.startswith("hf-hub:"):
        repo, rev = _split_rev(spec[len("hf-hub:") :].strip())
        if not (_HUB_ID.match(repo) or _HUB_NAME.match(repo)):
            raise WeightsError(
                f"{spec}: not a Hugging Face repository id (expected hf-hub:org/name or hf-hub:org/name@revision)"
            )
        return WeightsSource(kind="hub", spec=spec, repo_id=repo, revision=rev)
    if re.match(r"^http://", spec, re.IGNORECASE):
        # Weights over plain HTTP can be swapped in transit; a sha256 in the URL is not always given.
        raise WeightsError(f"{spec}: weights are downloaded over https only; use the https:// address")
    if re.match(r"^https://", spec, re.IGNORECASE):
        base, _, frag = spec.partition("#")
        sha = None
        if frag:
            m = re.fullmatch(r"sha256=([0-9a-fA-F]+)", frag.strip())
            if not m or not _SHA256.match(m.group(1)):
                raise WeightsError(f"{spec}: the URL fragment must be #sha256=<64 hex digits>")
            sha = m.group(1).lower()
        return WeightsSource(kind="url", spec=spec, url=base, sha256=sha)
    path = Path(spec).expanduser()
    if path.exists():
        return WeightsSource(kind="local", spec=spec, path=path.resolve())
    repo, rev = _split_rev(spec)
    if _HUB_ID.match(repo) and not spec.startswith((".", "~", "/")):
        return WeightsSource(kind="hub", spec=spec, repo_id=repo, revision=rev)
    if _looks_like_path(spec):
        raise WeightsError(
            f"{spec}: weights path does not exist (expected a local file or folder, hf-hub:org/name, an https URL, or tiny)"
        )
    return WeightsSource(kind="local", spec=spec, path=path)


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 hex of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _verify(path: Path, expected: str | None, what: str) -> None:
    if not expected:
        return
    actual = sha256_file(path)
    if actual != expected.lower():
        raise WeightsError(f"{what}: sha256 mismatch (expected {expected.lower()}, got {actual})")


# --------------------------------------------------------------------------- hub


def hf_cache() -> Path:
    """The Hugging Face hub cache folder: HF_HUB_CACHE, else HF_HOME/hub, else huggingface_hub's default."""
    # Read the environment at call time: huggingface_hub fixes its constants
    # when first imported, but HF_HOME may be set later (tests, notebooks).
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def split_specs(entries: Sequence[str], scorers: Sequence[str] | None = None) -> tuple[str | None, dict[str, str]]:
    """`--weights SPEC` (every scorer) and `--weights NAME=SPEC` (one) → (default, {name: spec}); the one reading of a
    repeated --weights (bench, generate, bench generate). At most one SPEC without a name; with `scorers`, a NAME
    must be one of them. A spec that holds "=" (a URL's query) is told apart by its "/" or ":"."""
    default: str | None = None
    per: dict[str, str] = {}
    for e in entries:
        name, sep, spec = str(e).partition("=")
        name, spec = name.strip(), spec.strip()
        if sep and name and "/" not in name and ":" not in name and "." not in name:
            if scorers is not None and name not in scorers:
                raise WeightsError(f"--weights {e!r}: {name!r} is not one of the scorers here ({', '.join(scorers)})")
            per[name] = spec
        elif sep and scorers is not None and name in scorers:
            per[name] = spec
        else:
            if default is not None:
                raise WeightsError(
                    f"--weights given twice without a scorer name ({default!r}, {e!r}); use NAME=SPEC for one scorer"
                )
            default = str(e).strip()
    return default, per


def _give(flag: str) -> str:
    """How the user hands a downloaded folder back: a flag takes it (`--weights DIR`), a positional argument is it."""
    return f"{flag} DIR" if flag.startswith("-") else f"DIR as {flag}"


def _offline_miss(
    src: WeightsSource,
    filename: str | None,
    cache: Path,
    flag: str = "--weights",
    also: Sequence[str] = (),
    then: str = "",
    include: Sequence[str] = (),
) -> WeightsError:
    repo = src.repo_id
    rev = f" --revision {src.revision}" if src.revision else ""
    what = f"hf-hub:{repo}" + (f"@{src.revision}" if src.revision else "")
    files = [f for f in dict.fromkeys([*([filename] if filename else []), *also]) if f]
    # A folder given by patterns: listing only its plain names would download only those files.
    patterns = "".join(f" --include '{p}'" for p in include)
    command = f"hf download {repo}{''.join(' ' + f for f in files)}{rev}{patterns} --local-dir DIR" + (
        f" && {then}" if then else ""
    )
    return WeightsError(
        f"weights {what}{f' ({filename})' if filename else ''} are not in the local Hugging Face cache ({cache}) and offline "
        f"mode is on; on a machine with network run `{command}` and pass {_give(flag)} "
        f"(or run it without --local-dir, with HF_HOME set to share that cache)"
    )


def hub_call(
    src: WeightsSource,
    file: str | None,
    offline: bool,
    fn,
    flag: str = "--weights",
    also: Sequence[str] = (),
    then: str = "",
    include: Sequence[str] = (),
    **kwargs,
) -> Any:
    """`fn(repo_id, revision=, cache_dir=, local_files_only=, **kwargs)` (a huggingface_hub call) with every failure
    turned into one WeightsError that says what to do; `flag` names the user's own option in that advice."""
    from huggingface_hub import constants as hf_constants
    from huggingface_hub import errors as hf_errors

    cache = hf_cache()
    # HF_HUB_OFFLINE read by huggingface_hub at import also keeps it off the network.
    told_offline = offline or bool(getattr(hf_constants, "HF_HUB_OFFLINE", False))
    what = src.describe() + (f" ({file})" if file else "")
    try:
        return fn(src.repo_id, revision=src.revision, cache_dir=str(cache), local_files_only=offline, **kwargs)
    except hf_errors.GatedRepoError:
        raise WeightsError(
            f"{what}: the repository is gated; accept its terms on huggingface.co and log in with `hf auth login`"
        ) from None
    except hf_errors.RepositoryNotFoundError:
        raise WeightsError(
            f"{what}: repository not found on the Hugging Face Hub (or it is private and you are not logged in)"
        ) from None
    except hf_errors.RevisionNotFoundError:
        raise WeightsError(f"{what}: revision {src.revision!r} not found") from None
    except hf_errors.LocalEntryNotFoundError:
        # Raised both in offline mode and when the hub cannot be reached.
        if told_offline:
            raise _offline_miss(src, file, cache, flag, also, then, include) from None
        raise WeightsError(
            f"{what}: not in the local Hugging Face cache ({cache}) and the hub could not be reached; "
            f"check the network, or pass {_give(flag)} with the downloaded files"
        ) from None
    except hf_errors.EntryNotFoundError:
        raise WeightsError(f"{what}: no such file in the repository") from None
    except getattr(hf_errors, "OfflineModeIsEnabled", ()):  # HF_HUB_OFFLINE set while we were told online
        raise _offline_miss(src, file, cache, flag, also, then, include) from None
    except hf_errors.HfHubHTTPError as e:
        raise WeightsError(f"{what}: download from the Hugging Face Hub failed ({one_line(e)})") from None
    except (OSError, ValueError) as e:
        raise WeightsError(f"{what}: could not be fetched ({one_line(e)})") from None
    except Exception as e:  # noqa: BLE001 - network stacks (httpx, requests) raise their own types
        raise WeightsError(f"{what}: could not be fetched ({type(e).__name__}: {one_line(e)})") from None


# --------------------------------------------------------------------------- URLs


def _check_redirect_https(resp: Any, url: str) -> None:
    final = getattr(resp, "geturl", lambda: url)()
    if not str(final).lower().startswith("https://"):
        raise WeightsError(f"{url}: the server redirected to {final}, which is not https; refused")


def url_target(src: WeightsSource, sha: str | None) -> Path:
    """Where a URL's download is kept in the cache: under its pinned sha256, else under a hash of the URL."""
    """Where a URL's download lives in the cache: keyed by its pinned sha256, else by the URL itself."""
    name = urllib.parse.unquote(Path(urllib.parse.urlparse(src.url or "").path).name)
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", name).lstrip(".") or "download"
    key = sha or hashlib.sha256((src.url or "").encode()).hexdigest()[:32]
    return cache_dir() / "urls" / key / name


def _download(url: str, target: Path, sha: str | None) -> None:
    import http.client
    import urllib.error
    import urllib.request

    h = hashlib.sha256()
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "prefcli"})
        with urllib.request.urlopen(req, timeout=_URL_TIMEOUT_S) as resp, atomic_path(target) as tmp:
            _check_redirect_https(resp, url)
            total = resp.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            got = 0
            with open(tmp, "wb") as f, _progress(target.name, total) as advance:
                while chunk := resp.read(_CHUNK):
                    f.write(chunk)
                    h.update(chunk)
                    got += len(chunk)
                    advance(len(chunk))
            if total is not None and got != total:
                raise WeightsError(f"{url}: download incomplete ({got} of {total} bytes)")
            actual = h.hexdigest()
            if sha and actual != sha:
                # Leaving the with-block by an exception deletes the temporary file.
                raise WeightsError(f"{url}: sha256 mismatch (expected {sha}, got {actual}); the download was discarded")
    except WeightsError:
        raise
    except urllib.error.HTTPError as e:
        raise WeightsError(f"{url}: download failed (HTTP {e.code} {e.reason})") from None
    except urllib.error.URLError as e:
        raise WeightsError(
            f"{url}: download failed ({one_line(e.reason) if isinstance(e.reason, BaseException) else e.reason})"
        ) from None
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise WeightsError(f"{url}: download failed ({type(e).__name__}: {one_line(e)})") from None


class _progress:
    """Progress of a large download through prefcli.progress (a rich bar on a terminal, plain lines in a log)."""

    def __init__(self, name: str, total: int | None):
        self.name, self.total, self.bar = name, total, None

    def __enter__(self):
        if self.total is None or self.total > 8 * _CHUNK:
            self.bar = download_progress()
            self.bar.start()
            task = self.bar.add_task(f"downloading {self.name}", total=self.total)
            return lambda n: self.bar.advance(task, n)
        return lambda n: None

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


def download_progress() -> Any:
    """The one progress display of downloads (URL files here, hub files in `prefcli weights pull`): bytes and speed."""
    from prefcli.progress import progress_bar, use_plain

    if use_plain():
        return progress_bar(True)
    from rich.progress import BarColumn, DownloadColumn, TextColumn, TransferSpeedColumn

    return progress_bar(
        True,
        columns=[TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn()],
        transient=True,
    )


# --------------------------------------------------------------------------- resolve


def resolve_file(
    spec: str,
    filename: str | None = None,
    *,
    sha256: str | None = None,
    offline: bool | None = None,
    flag: str = "--weights",
    also: Sequence[str] = (),
    then: str = "",
) -> Path:
    """A local path to one weights file named by `spec` (and `filename` inside a repo or folder).

    Hub files come from (or go into) the Hugging Face cache; URLs are
    downloaded once into ``cache_dir()/urls``; `sha256`, when given, is
    checked. Raises WeightsError with what failed and what to do about it;
    `flag` is how the user gave this spec (`--weights`, or `-o base` for a
    scorer option, or a positional argument's name), so the advice names the right one;
    `also` (other files of the same repository) and `then` (another download command) complete
    the download advice with everything the caller needs besides this file.
    """
    src = parse(spec)
    off = is_offline(offline)
    log.debug("resolving file %s (%s) %s, offline=%s", spec, src.kind, filename or "", off)
    sha = sha256.lower() if sha256 else None
    if sha and not _SHA256.match(sha):
        raise WeightsError(f"{spec}: sha256 must be 64 hex digits, got {sha256!r}")
    if src.kind == "tiny":
        raise ValueError(f"{spec!r} names random tiny weights: build the tiny model instead of resolving a file")

    if src.kind == "hub":
        if not filename:
            raise WeightsError(f"{src.describe()}: a file name inside the repository is needed")
        from huggingface_hub import hf_hub_download

        path = Path(hub_call(src, filename, off, hf_hub_download, flag=flag, also=also, then=then, filename=filename))
        _verify(path, sha, f"{src.describe()} ({filename})")
        record_used(spec)
        return path

    if src.kind == "url":
        if sha and src.sha256 and sha != src.sha256:
            raise WeightsError(f"{spec}: the URL says sha256={src.sha256} but {sha} was expected")
        sha = sha or src.sha256
        target = url_target(src, sha)
        if target.is_file():
            record_used(spec)
            return target  # only a complete, verified download is ever renamed into place
        by_url = url_target(src, None)
        if sha and by_url.is_file() and sha256_file(by_url) == sha:
            # Fetched before without its sha256 (`prefcli weights pull URL`); the pinned hash now vouches for it.
            record_used(spec)
            return by_url
        if off:
            raise WeightsError(
                f"{src.url} is not in the prefcli cache ({target.parent}) and offline mode is on; "
                f"download it on a machine with network and pass {_give(flag).replace('DIR', 'PATH')}, "
                f"or copy it to {target}"
            )
        _download(src.url or "", target, sha)
        record_used(spec)
        return target

    # local
    path = src.path
    assert path is not None
    if not path.exists():
        raise WeightsError(f"{spec}: weights path does not exist")
    if path.is_dir():
        if not filename:
            raise WeightsError(f"{path}: is a folder; name the weights file inside it")
        inner = path / filename
        if not inner.exists():
            raise WeightsError(f"{path}: has no {filename}")
        path = inner
    from prefcli.safe_load import not_a_file

    why = not_a_file(path)
    if why:
        raise WeightsError(f"{spec}: {why}")
    # A file given directly wins over the expected file name (a renamed mirror is fine).
    _verify(path, sha, str(path))
    record_used(spec)
    return path


def resolve_dir(
    spec: str, *, allow_patterns: list[str] | None = None, offline: bool | None = None, flag: str = "--weights"
) -> Path:
    """A local folder for `spec`: a hub snapshot (only `allow_patterns` files) or a local folder."""
    src = parse(spec)
    off = is_offline(offline)
    log.debug("resolving folder %s (%s), offline=%s", spec, src.kind, off)
    if src.kind == "tiny":
        raise ValueError(f"{spec!r} names random tiny weights: build the tiny model instead of resolving a folder")
    if src.kind == "url":
        raise WeightsError(f"{spec}: a URL names one file, but a folder of weights is needed here")
    if src.kind == "hub":
        from huggingface_hub import snapshot_download

        patterns = list(allow_patterns or [])
        folder = Path(
            hub_call(src, None, off, snapshot_download, flag=flag, include=patterns, allow_patterns=allow_patterns)
        )
        record_used(spec)
        return folder
    path = src.path
    assert path is not None
    if not path.exists():
        raise WeightsError(f"{spec}: weights folder does not exist")
    if not path.is_dir():
        from prefcli.safe_load import not_a_file

        what = not_a_file(path) or "a file"
        raise WeightsError(
            f"{spec}: is {what.replace('not a regular file (', '').rstrip(')')}, but a folder of weights is needed here"
        )
    record_used(spec)
    return path


def record_used(spec: str) -> None:
    """Remember the spec for `prefcli weights ls` (prefcli.weights_used; never fails a load), named as
    `prefcli weights` names it: hub ids with their hf-hub: prefix, local paths resolved, URLs as given."""
    from prefcli import weights_used

    if not spec or is_tiny(spec):
        return
    try:
        src = parse(spec)
    except Exception:  # noqa: BLE001 - it was just loaded by this name; a record is never worth an error
        return
    weights_used.record(src.spec if src.kind == "url" else src.describe(), src.kind)


# --------------------------------------------------------------------------- identity

_MEMO_FILE = "fingerprints.sqlite"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def _memo_connect():
    import sqlite3

    try:
        root = cache_dir()
        root.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(str(root / _MEMO_FILE), timeout=30.0)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(
            "CREATE TABLE IF NOT EXISTS files (path TEXT, size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER, inode INTEGER, "
            "sha256 TEXT NOT NULL, PRIMARY KEY (path, size, mtime_ns, ctime_ns, inode)) WITHOUT ROWID"
        )
        return con
    except Exception:  # noqa: BLE001 - a read-only or broken cache only costs speed
        return None


def file_fingerprint(path: str | os.PathLike, _con: Any = None) -> str:
    """sha256 of a file's bytes, remembered by (path, size, mtime, ctime, inode).

    The memo only saves rehashing an unchanged file: any rewrite, even one that
    restores the size and modification time, changes the ctime (which no user
    tool can set), so the file is hashed again.
    """
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    con = _con if _con is not None else _memo_connect()
    try:
        if con is not None:
            row = con.execute(
                "SELECT sha256 FROM files WHERE path=? AND size=? AND mtime_ns=? AND ctime_ns=? AND inode=?", key
            ).fetchone()
            if row:
                return row[0]
        log.debug("fingerprinting %s (%d bytes)", p, st.st_size)
        digest = sha256_file(p)
        if con is not None:
            try:
                with con:
                    con.execute("DELETE FROM files WHERE path=?", (str(p),))
                    con.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)", (*key, digest))
            except Exception:  # noqa: BLE001 - the memo is an optimization
                pass
        return digest
    finally:
        if _con is None and con is not None:
            con.close()


def content_fingerprint(path: str | os.PathLike) -> str:
    """sha256 of a file, or of a folder's file names and contents (dot-files skipped), as 64 hex."""
    p = Path(path)
    con = _memo_connect()
    try:
        if p.is_file():
            return file_fingerprint(p, con)
        h = hashlib.sha256()
        for f in sorted(
            q for q in p.rglob("*") if q.is_file() and not any(part.startswith(".") for part in q.relative_to(p).parts)
        ):
            h.update(f"{f.relative_to(p).as_posix()}\0{file_fingerprint(f, con)}\n".encode())
        return h.hexdigest()
    finally:
        if con is not None:
            con.close()


def hub_commit(repo_id: str, revision: str | None = None) -> str | None:
    """The commit a hub revision resolves to in the local Hugging Face cache (None if not cached)."""
    rev = revision or "main"
    if _COMMIT.match(rev):
        return rev
    folder = hf_cache() / f"models--{repo_id.replace('/', '--')}"
    ref = folder / "refs" / rev
    try:
        sha = ref.read_text().strip()
    except OSError:
        return None
    return sha if _COMMIT.match(sha) else None


def commit_of_path(path: str | os.PathLike) -> str | None:
    """The commit of a file or folder inside a Hugging Face cache snapshot (…/snapshots/<commit>/…)."""
    parts = Path(path).parts
    for i, part in enumerate(parts[:-1]):
        if part == "snapshots" and _COMMIT.match(parts[i + 1]):
            return parts[i + 1]
    return None


def identity(spec: str | None) -> str:
    """What identifies the weights a spec names, for cache keys and provenance.

    Local files and folders: the sha256 of their contents (a model retrained in
    place gets a new identity; the same bytes under another name the same one).
    Hub ids: the commit the revision resolves to here (``@unresolved`` when the
    repository is not cached yet). URLs: the pinned sha256, else the
    downloaded file's. tiny: "tiny:SEED".
    """
    if not spec:
        return ""
    try:
        src = parse(spec)
    except WeightsError:
        return str(spec)
    if src.kind == "tiny":
        return f"tiny:{tiny_seed(src.spec)}"
    if src.kind == "local":
        if src.path is not None and src.path.exists():
            commit = commit_of_path(src.path)
            kind = "file" if src.path.is_file() else "folder"
            return f"{kind}:sha256:{content_fingerprint(src.path)}" + (f"@{commit}" if commit else "")
        return str(spec)
    if src.kind == "hub":
        commit = hub_commit(src.repo_id or "", src.revision)
        return f"hf-hub:{src.repo_id}@{commit or (src.revision or 'main') + '?unresolved'}"
    if src.kind == "url":
        if src.sha256:
            return f"url:sha256:{src.sha256}"
        target = url_target(src, None)
        return f"url:sha256:{content_fingerprint(target)}" if target.is_file() else f"url:{src.url}?unresolved"
    return str(spec)
