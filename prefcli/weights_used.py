"""The record of weights specs prefcli has loaded, for `prefcli weights ls`.

One small JSON file under prefcli's cache root, ``weights-used.json``::

    {"format": 1, "specs": [{"spec": "hf-hub:xswu/HPSv2", "kind": "hub", "last_used": "2026-...Z"}, ...]}

Bounded on both sides: at most `MAX_ENTRIES` specs are kept (the least
recently used are dropped) and the file is read through the bounded JSON
reader with a small size limit, so a corrupted or hostile file costs an
empty list, never a crash or a load of gigabytes. Writes are atomic and made
under the cache's lock; a read-only cache only costs the record.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "weights-used.json"
FORMAT = 1
MAX_ENTRIES = 200
MAX_SPEC_CHARS = 4096
#: 200 entries of at most ~4 KB each, with room to spare.
MAX_FILE_BYTES = 2 * 1024 * 1024


def record_file() -> Path:
    from prefcli.paths import cache_root

    return cache_root() / FILE_NAME


def read() -> list[dict]:
    """The recorded specs, most recent first; an unreadable or malformed file reads as empty (and is logged)."""
    from prefcli import jsonio
    from prefcli.errors import DataError

    path = record_file()
    if not path.is_file():
        return []
    try:
        doc = jsonio.read_json(path, expect=dict, limit=MAX_FILE_BYTES, max_depth=8)
    except DataError as e:
        log.warning("%s", e)
        return []
    entries = doc.get("specs") if doc.get("format") == FORMAT else None
    if not isinstance(entries, list):
        return []
    out = []
    for e in entries[:MAX_ENTRIES]:
        if (
            isinstance(e, dict)
            and isinstance(e.get("spec"), str)
            and 0 < len(e["spec"]) <= MAX_SPEC_CHARS
            and isinstance(e.get("kind"), str)
            and isinstance(e.get("last_used"), str)
        ):
            out.append({"spec": e["spec"], "kind": e["kind"], "last_used": e["last_used"][:40]})
    return sorted(out, key=lambda e: e["last_used"], reverse=True)


def record(key: str, kind: str) -> None:
    """Remember that the weights `key` (as `prefcli weights` names them: prefcli.weights names them, this module
    only stores) of `kind` were loaded now. Never raises: the record is a convenience, not part of loading."""
    try:
        if not key or len(key) > MAX_SPEC_CHARS:
            return
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        path = record_file()
        from prefcli.lock import output_lock

        with output_lock(path, command="prefcli (weights record)"):
            entries = [e for e in read() if e["spec"] != key]
            entries.insert(0, {"spec": key, "kind": kind, "last_used": now})
            _write(path, entries[:MAX_ENTRIES])
    except Exception as e:  # noqa: BLE001 - a read-only or locked cache must not stop a scorer from loading
        log.debug("weights record not updated: %s", e)


def _write(path: Path, entries: list[dict]) -> None:
    import json

    from prefcli.atomic import write_text

    write_text(path, json.dumps({"format": FORMAT, "specs": entries}, indent=1, ensure_ascii=False) + "\n")
