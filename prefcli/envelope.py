"""The one JSON document every command prints (``--format json``) and writes as a ``.json`` result.

``{"command", "prefcli_version", "results", "scorer" | "scorers", "weights",
"revision", "options", "skipped", "provenance"}``: the command's own content
lives only under ``results``; beside it is what produced it. A command with
one scorer names it in ``scorer`` with its ``weights`` (as given) and
``revision`` (resolved id or content fingerprint); a command with several
names them in ``scorers`` (``{name: {"weights", "revision"}}``); a command
with none has ``scorer``, ``weights`` and ``revision`` null. The schema of
each command's document is ``docs/schemas/<command>.schema.json``.

Like lm-evaluation-harness's results file (one object: results, configs,
versions, git hash, date), not a bare list: a saved ranking or table must say
what produced it. Kept import-light: no torch, no numpy.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prefcli import __version__

#: The top-level keys, in the order they are printed.
KEYS = (
    "command",
    "prefcli_version",
    "results",
    "scorer",
    "scorers",
    "weights",
    "revision",
    "options",
    "skipped",
    "provenance",
)


def provenance(**extra: Any) -> dict:
    """What every document carries about the run: versions, git commit, command line, time (and `extra`)."""
    from prefcli.harness.results import run_facts

    return {**run_facts(), **extra}


def skipped_items(items: Iterable[Any]) -> list[dict]:
    """``[{"item", "reason"}]`` from (item, reason) pairs or dicts already in that shape."""
    out = []
    for it in items or ():
        if isinstance(it, Mapping):
            out.append({"item": str(it.get("item", it.get("path", ""))), "reason": str(it.get("reason", ""))})
        else:
            item, reason = it
            out.append({"item": str(item), "reason": str(reason)})
    return out


def envelope(
    command: str,
    results: Any,
    *,
    scorer: str | None = None,
    weights: str | None = None,
    revision: str | None = None,
    scorers: Mapping[str, Mapping[str, Any]] | None = None,
    options: Mapping[str, Any] | None = None,
    skipped: Iterable[Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> dict:
    """The document of one command run; `scorers` (several scorers) replaces scorer/weights/revision."""
    doc: dict[str, Any] = {"command": command, "prefcli_version": __version__, "results": results}
    if scorers is not None:
        if scorer is not None or weights is not None or revision is not None:
            raise ValueError("give either scorer/weights/revision or scorers, not both")
        doc["scorers"] = {str(n): {"weights": _str(s.get("weights")), "revision": _str(s.get("revision", s.get("weights_id")))}
                          for n, s in scorers.items()}  # fmt: skip
    else:
        doc.update(scorer=scorer, weights=_str(weights), revision=_str(revision))
    doc["options"] = dict(options or {})
    doc["skipped"] = skipped_items(skipped or ())
    doc["provenance"] = dict(provenance) if provenance is not None else globals()["provenance"]()
    return doc


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


def _clean(obj: Any) -> Any:
    """JSON has no NaN/inf, tuples or paths: null, lists and strings instead, so every reader loads it."""
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    try:  # numpy scalars and the like
        return _clean(obj.item())
    except (AttributeError, ValueError):
        return str(obj)


def dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(_clean(doc), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def print_doc(doc: Mapping[str, Any]) -> None:
    sys.stdout.write(dumps(doc))


def write(path: str | os.PathLike, doc: Mapping[str, Any]) -> Path:
    """Write atomically, through the harness's one result writer (the point tests cut to simulate a full disk)."""
    from prefcli.harness import results

    results.write_json(path, _clean(doc))
    return Path(path)


def rows_results(rows: Sequence[Mapping[str, Any]], **more: Any) -> dict:
    """``results`` of a command whose output is one table: ``{"rows": [...], **more}``."""
    return {"rows": [dict(r) for r in rows], **more}


def bench_document(runs: Sequence[Mapping[str, Any]], tables: Sequence[Any], prov: Mapping[str, Any]) -> dict:
    """`prefcli bench`'s document: printed with --format json and written as OUT/results.json."""
    return envelope("bench", {"tables": [t.to_dict() for t in tables], "runs": [dict(r) for r in runs]},
                    scorers={n: {"weights": s.get("weights"), "revision": s.get("weights_id")} for n, s in prov.get("scorers", {}).items()},
                    options=prov.get("config", {}), provenance=prov)  # fmt: skip


def read(path: str | os.PathLike, command: str) -> dict:
    """A `command`'s result file as an envelope; files of earlier versions are read into it.

    Earlier `bench` results.json were ``{"provenance", "runs", "tables"}`` and
    earlier `eval --out` files ``{"provenance", "run", "tasks"}``; both are
    still read. Anything else is refused in one line naming what it is.
    """
    from prefcli.errors import DataError
    from prefcli.jsonio import read_json

    p = Path(path)
    doc = read_json(p)  # bounded in size and depth, one line naming the file
    if not isinstance(doc, dict):
        raise DataError(f"{p}: not a prefcli {command} result (a JSON {type(doc).__name__}, not an object)")
    if "prefcli_version" in doc and "results" in doc:
        if doc.get("command") != command:
            raise DataError(
                f"{p}: a prefcli {doc.get('command')!r} result (prefcli {doc['prefcli_version']}), not a {command} result"
            )
        return doc
    # Shapes written before the envelope (prefcli 0.1.0 up to this change).
    if not isinstance(doc.get("provenance", {}), dict):
        raise DataError(f"{p}: 'provenance' must be a JSON object")
    if command == "bench" and "runs" in doc and not isinstance(doc["runs"], list):
        raise DataError(f"{p}: not a `prefcli bench` results file (no 'runs' list of run records)")
    if command == "bench" and isinstance(doc.get("runs"), list):
        return envelope("bench", {"runs": doc["runs"], "tables": doc.get("tables", [])},
                        scorers={n: s for n, s in (doc.get("provenance") or {}).get("scorers", {}).items()},
                        options=(doc.get("provenance") or {}).get("config", {}), provenance=doc.get("provenance") or {})  # fmt: skip
    if command == "eval" and isinstance(doc.get("run"), dict):
        prov = doc.get("provenance") or {}
        run = doc["run"]
        out = envelope("eval", run, scorer=run.get("scorer"), weights=doc.get("weights", run.get("weights")),
                       revision=doc.get("revision", run.get("weights_id")), options=prov.get("config", {}), provenance=prov)  # fmt: skip
        if "tasks" in doc:
            out["results"] = {**run, "tasks": doc["tasks"]}
        return out
    version = doc.get("prefcli_version") or (doc.get("provenance") or {}).get("versions", {}).get("prefcli")
    raise DataError(
        f"{p}: not a prefcli {command} result this version ({__version__}) reads"
        + (f" (written by prefcli {version})" if version else " (no prefcli version in it)")
    )
