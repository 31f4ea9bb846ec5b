"""The on-disk score and embedding cache.

One sqlite3 file per (scorer name, weights id) under the cache directory, in
WAL mode and committed after every batch, so a crash loses at most the batch
in flight and several processes (Accelerate ranks) can share it. Keys:

- scores: (history key, image id, prompt) -> score. History-free scorers use
  an empty history key; a scorer that ignores prompts uses an empty prompt.
  Image ids are content ids (sha256 of the image bytes, as the dataset's
  content-addressed store names them), so a renamed file is still a hit.
- embeddings: image id -> float32 vector (what `*-probe` scorers fit on).

`index.sqlite` remembers which weights id a (scorer, weights spec) resolved
to, so a fully cached rerun need not load the model at all.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import sqlite3
from pathlib import Path
from typing import Iterable, Sequence

CACHE_ENV = "PREFCLI_CACHE_DIR"  # deprecated alias; the rule lives in prefcli.paths
_CHUNK = 500


def default_cache_dir() -> Path:
    """$PREFCLI_CACHE/harness, else $XDG_CACHE_HOME/prefcli/harness (~/.cache/prefcli/harness); see prefcli.paths."""
    from prefcli.paths import cache_subdir

    return cache_subdir("harness")


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(path), timeout=60.0, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    return con


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:40]


class ScoreStore:
    """Scores and embeddings of one scorer with one set of weights."""

    def __init__(self, path: str | os.PathLike, scorer: str = "", weights_id: str = ""):
        self.path = Path(path)
        self.con = _connect(self.path)
        with self.con:
            self.con.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self.con.execute(
                "CREATE TABLE IF NOT EXISTS scores (history TEXT NOT NULL, image_id TEXT NOT NULL, prompt TEXT NOT NULL, "
                "score REAL, PRIMARY KEY (history, image_id, prompt)) WITHOUT ROWID"
            )
            self.con.execute("CREATE TABLE IF NOT EXISTS embeddings (image_id TEXT PRIMARY KEY, dim INTEGER NOT NULL, data BLOB NOT NULL) WITHOUT ROWID")
            if scorer:
                self.con.execute("INSERT OR IGNORE INTO meta VALUES ('scorer', ?), ('weights_id', ?)", (scorer, weights_id))

    # -- scores --------------------------------------------------------------
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
                        out[(h, image_id, prompt)] = float("nan") if score is None else float(score)
        return out

    def put_scores(self, items: Iterable[tuple[tuple[str, str, str], float]]) -> None:
        rows = [(h, i, p, None if s is None or math.isnan(s) else float(s)) for (h, i, p), s in items]
        with self.con:
            self.con.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?)", rows)

    def n_scores(self) -> int:
        return self.con.execute("SELECT COUNT(*) FROM scores").fetchone()[0]

    # -- embeddings ----------------------------------------------------------
    def get_embeddings(self, image_ids: Sequence[str]) -> dict:
        import numpy as np

        out = {}
        ids = sorted(set(image_ids))
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            q = f"SELECT image_id, dim, data FROM embeddings WHERE image_id IN ({','.join('?' * len(chunk))})"
            for image_id, dim, data in self.con.execute(q, chunk):
                vec = np.frombuffer(data, dtype=np.float32)
                if vec.size == dim:
                    out[image_id] = vec
        return out

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

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self._stores: dict[tuple[str, str], ScoreStore] = {}
        self._index = _connect(self.root / "index.sqlite")
        with self._index:
            self._index.execute("CREATE TABLE IF NOT EXISTS weights (scorer TEXT, spec TEXT, weights_id TEXT, PRIMARY KEY (scorer, spec))")

    def store(self, scorer: str, weights_id: str) -> ScoreStore:
        key = (scorer, weights_id)
        if key not in self._stores:
            digest = hashlib.sha256(f"{scorer}\0{weights_id}".encode()).hexdigest()[:16]
            self._stores[key] = ScoreStore(self.root / f"{_slug(scorer)}--{_slug(weights_id)}--{digest}.sqlite", scorer, weights_id)
        return self._stores[key]

    @staticmethod
    def _spec_key(weights: str | None) -> str | None:
        """What identifies a weights spec on this machine; None when it cannot be trusted."""
        spec = weights or ""
        p = Path(spec).expanduser() if spec else None
        if p is not None and p.exists():
            # A local file or folder: its size and mtime stand for its content.
            try:
                stats = [p.stat()] if p.is_file() else [q.stat() for q in sorted(p.rglob("*")) if q.is_file()]
            except OSError:
                return None
            sig = ";".join(f"{s.st_size}:{s.st_mtime_ns}" for s in stats)
            return f"{p.resolve()}|{hashlib.sha256(sig.encode()).hexdigest()[:16]}"
        return spec

    def remembered_weights_id(self, scorer: str, weights: str | None) -> str | None:
        key = self._spec_key(weights)
        if key is None:
            return None
        row = self._index.execute("SELECT weights_id FROM weights WHERE scorer = ? AND spec = ?", (scorer, key)).fetchone()
        return row[0] if row else None

    def remember_weights_id(self, scorer: str, weights: str | None, weights_id: str) -> None:
        key = self._spec_key(weights)
        if key is None:
            return
        with self._index:
            self._index.execute("INSERT OR REPLACE INTO weights VALUES (?, ?, ?)", (scorer, key, weights_id))

    def close(self) -> None:
        for s in self._stores.values():
            s.close()
        self._stores.clear()
        self._index.close()
