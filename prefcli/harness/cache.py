"""The on-disk score and embedding cache.

One sqlite3 file per (scorer name, cache key) under the cache directory, in
WAL mode and committed after every batch, so a crash loses at most the batch
in flight and several processes (Accelerate ranks) can share it. Keys:

- scores: (history key, image id, prompt) -> score. History-free scorers use
  an empty history key; a scorer that ignores prompts uses an empty prompt.
  Image ids are content ids (sha256 of the image bytes, as the dataset's
  content-addressed store names them), so a renamed file is still a hit.
- embeddings: image id -> float32 vector (what `*-probe` scorers fit on).

The cache key is the scorer's whole identity (`Scorer.identity`): name, code
version, the weights' content fingerprint or hub commit, every option that
changes scores, the dtype and the device kind actually used. A model
rewritten in place, another file under the same name, another dtype or a
scorer whose code version was bumped all get a fresh store.

`index.sqlite` remembers which cache key a request (the same fields, as
asked for) resolved to, so a fully cached rerun need not load the model.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

from prefcli.errors import CacheError

CACHE_ENV = "PREFCLI_CACHE_DIR"  # deprecated alias; the rule lives in prefcli.paths
_CHUNK = 500


def default_cache_dir() -> Path:
    """$PREFCLI_CACHE/harness, else $XDG_CACHE_HOME/prefcli/harness (~/.cache/prefcli/harness); see prefcli.paths."""
    from prefcli.paths import cache_subdir

    return cache_subdir("harness")


def cache_error(path: Path, e: sqlite3.Error) -> CacheError:
    """One line for a cache file sqlite could not use. A full disk reaches sqlite as "disk I/O
    error" or "database or disk is full"; the free space says which. A failed write is rolled
    back, so what the cache held before is still there."""
    import shutil

    from prefcli.errors import CacheError

    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    if free is not None and free < (1 << 20):
        why = f"no space left on the device ({e}); free some space, or pass --no-cache or another --cache-dir"
    elif "not a database" in str(e) or "malformed" in str(e):
        why = f"not a readable score cache ({e}); move it away (prefcli starts a fresh one) or pass another --cache-dir"
    else:
        why = f"cannot use the score cache ({e}); pass --no-cache or another --cache-dir"
    return CacheError(f"{path}: {why}")


def _guarded(method):
    """Turn an sqlite error inside a cache method into a CacheError naming the file."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as e:
            raise cache_error(self.path, e) from None

    return wrapper


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = sqlite3.connect(str(path), timeout=60.0, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as e:
        raise cache_error(path, e) from None
    return con


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:40]


class ScoreStore:
    """Scores and embeddings of one scorer with one set of weights."""

    @_guarded
    def __init__(self, path: str | os.PathLike, scorer: str = "", weights_id: str = ""):
        self.path = Path(path)
        self.con = _connect(self.path)
        with self.con:
            self.con.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self.con.execute(
                "CREATE TABLE IF NOT EXISTS scores (history TEXT NOT NULL, image_id TEXT NOT NULL, prompt TEXT NOT NULL, "
                "score REAL, PRIMARY KEY (history, image_id, prompt)) WITHOUT ROWID"
            )
            self.con.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (image_id TEXT PRIMARY KEY, dim INTEGER NOT NULL, data BLOB NOT NULL) WITHOUT ROWID"
            )
            if scorer:
                self.con.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('scorer', ?), ('weights_id', ?)", (scorer, weights_id)
                )

    # -- scores --------------------------------------------------------------
    @_guarded
    def get_scores(self, keys: Iterable[tuple[str, str, str]]) -> dict[tuple[str, str, str], float]:
        """The cached subset of `keys` ((history, image_id, prompt) triples)."""
        keys = list(keys)
        out: dict[tuple[str, str, str], float] = {}
        by_history: dict[str, list[tuple[str, str]]] = {}
        for h, i, p in keys:
            by_history.setdefault(h, []).append((i, p))
        for h, items in by_history.items():
            wanted = set(items)
            ids = sorted({i for i, _ in items})
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                q = f"SELECT image_id, prompt, score FROM scores WHERE history = ? AND image_id IN ({','.join('?' * len(chunk))})"
                for image_id, prompt, score in self.con.execute(q, (h, *chunk)):
                    if (image_id, prompt) in wanted:
                        out[(h, image_id, prompt)] = self._score_value(score, image_id)
        return out

    def _score_value(self, score: object, image_id: str) -> float:
        # SQLite keeps whatever type a row was written with: a file altered by hand may hold text here.
        if score is None:
            return float("nan")
        if isinstance(score, (int, float)) and not isinstance(score, bool):
            return float(score)
        raise CacheError(
            f"{self.path}: corrupt score cache (the score of image {image_id} is {type(score).__name__} "
            f"{str(score)[:40]!r}, not a number); delete the file or pass --no-cache"
        )

    @_guarded
    def put_scores(self, items: Iterable[tuple[tuple[str, str, str], float]]) -> None:
        rows = [(h, i, p, None if s is None or math.isnan(s) else float(s)) for (h, i, p), s in items]
        with self.con:
            self.con.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)", rows)

    @_guarded
    def n_scores(self) -> int:
        return self.con.execute("SELECT COUNT(*) FROM scores").fetchone()[0]

    # -- embeddings ----------------------------------------------------------
    @_guarded
    def get_embeddings(self, image_ids: Sequence[str]) -> dict:
        import numpy as np

        out = {}
        ids = sorted(set(image_ids))
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            q = f"SELECT image_id, dim, data FROM embeddings WHERE image_id IN ({','.join('?' * len(chunk))})"
            for image_id, dim, data in self.con.execute(q, chunk):
                if not isinstance(data, bytes) or not isinstance(dim, int) or len(data) % 4:
                    raise CacheError(
                        f"{self.path}: corrupt embedding cache (the embedding of image {image_id} is not "
                        f"float32 bytes); delete the file or pass --no-cache"
                    )
                vec = np.frombuffer(data, dtype=np.float32)
                if vec.size == dim:
                    out[image_id] = vec
        return out

    @_guarded
    def put_embeddings(self, image_ids: Sequence[str], vectors) -> None:
        import numpy as np

        arr = np.asarray(vectors, dtype=np.float32)
        rows = [(i, int(v.size), np.ascontiguousarray(v).tobytes()) for i, v in zip(image_ids, arr)]
        with self.con:
            self.con.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows)

    def close(self) -> None:
        self.con.close()


class CacheDir:
    """A directory of ScoreStores plus the weights-id index."""

    @property
    def path(self) -> Path:  # what a CacheError names for the index's own errors
        return self.root / "index.sqlite"

    @_guarded
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self._stores: dict[tuple[str, str], ScoreStore] = {}
        self._index = _connect(self.root / "index.sqlite")
        with self._index:
            # Requests are JSON: scorer, code version, weights fingerprint, options, dtype, device kind.
            self._index.execute(
                "CREATE TABLE IF NOT EXISTS identities (scorer TEXT, request TEXT, cache_key TEXT, PRIMARY KEY (scorer, request))"
            )

    def store(self, scorer: str, cache_key: str) -> ScoreStore:
        key = (scorer, cache_key)
        if key not in self._stores:
            digest = hashlib.sha256(f"{scorer}\0{cache_key}".encode()).hexdigest()[:24]
            self._stores[key] = ScoreStore(self.root / f"{_slug(scorer)}--{digest}.sqlite", scorer, cache_key)
        return self._stores[key]

    @_guarded
    def remembered_key(self, scorer: str, request: str) -> str | None:
        """The cache key a request (scorer, version, weights fingerprint, options, dtype, device) resolved to before."""
        row = self._index.execute(
            "SELECT cache_key FROM identities WHERE scorer = ? AND request = ?", (scorer, request)
        ).fetchone()
        return row[0] if row else None

    @_guarded
    def remember_key(self, scorer: str, request: str, cache_key: str) -> None:
        with self._index:
            self._index.execute("INSERT OR REPLACE INTO identities VALUES (?, ?, ?)", (scorer, request, cache_key))

    def close(self) -> None:
        for s in self._stores.values():
            s.close()
        self._stores.clear()
        self._index.close()
