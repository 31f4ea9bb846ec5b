"""The population w as a file: fitted on validation users by `prefcli eval --fit-blend OUT`, read by
`blend -o population_weight FILE`.

The fit needs no extra scoring: a blend run's extras hold each candidate's z_general and
z_personal, which do not depend on w (the leave-one-out pool that scales the personal part runs
whatever w is), so the top-1 of every fixed w of the grid is computed from one run.

The file says what it was fitted for (both parts' identities), on what (the dataset, split, N_ref,
users, tasks) and with which options; a blend whose parts are other scorers or other weights refuses
it in one line rather than shrinking toward a w fitted for something else.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from prefcli_blend import weighting

FORMAT = "prefcli-blend-population-w"
VERSION = 1
#: A population w above this is not a fit (the grid ends at 8); the reader refuses it.
MAX_WEIGHT = 1e3
#: A population-w file is a few kilobytes; anything much larger is not one.
MAX_BYTES = 4 * 1024 * 1024


def top1_by_weight(records: Sequence[Mapping[str, Any]], grid: Sequence[float] = weighting.GRID) -> dict[float, float]:
    """{w: top-1 over `records`} with every task scored z_general + w·z_personal (one blend run's extras)."""
    from prefcli.harness import metrics

    out: dict[float, float] = {}
    for w in grid:
        fixed = [{**r, "scores": [e["z_general"] + w * e["z_personal"] for e in r["extras"]]} for r in records]
        out[float(w)] = float(metrics.summarize(fixed, n_boot=0)["all"]["top1"]["value"])
    return out


def best_weight(top1: Mapping[float, float]) -> float:
    """The w with the best top-1; of equals, the smallest (leaning general, as real users' choices do)."""
    return min(top1, key=lambda w: (-top1[w], w))


def _part(ident: Mapping[str, Any]) -> dict[str, Any]:
    return {k: ident.get(k) for k in ("scorer", "version", "weights", "options")}


def document(
    records: Sequence[Mapping[str, Any]],
    *,
    general: Mapping[str, Any],
    personal: Mapping[str, Any],
    fitted_on: Mapping[str, Any],
    options: Mapping[str, Any],
    provenance: Mapping[str, Any],
) -> dict[str, Any]:
    """The file's content: the fitted w, the evidence (top-1 per w), what it is for and where it came from."""
    if not records:
        raise ValueError("no tasks to fit the population w on")
    top1 = top1_by_weight(records)
    users = {str(r.get("user_id")) for r in records}
    return {
        "format": FORMAT,
        "version": VERSION,
        "population_weight": best_weight(top1),
        "top1_by_weight": {repr(w): v for w, v in top1.items()},
        "general": _part(general),
        "personal": _part(personal),
        "fitted_on": {**fitted_on, "users": len(users), "tasks": len(records)},
        "options": dict(options),
        "provenance": dict(provenance),
    }


def write(path: str | os.PathLike, doc: Mapping[str, Any]) -> None:
    import json

    from prefcli import atomic
    from prefcli.harness.results import clean_nan

    atomic.write_text(path, json.dumps(clean_nan(dict(doc)), indent=1, sort_keys=True, allow_nan=False) + "\n")


def read(path: str | os.PathLike) -> dict[str, Any]:
    """The checked content of a population-w file; ValueError with the reason (the option parser names the file)."""
    from prefcli.errors import DataError
    from prefcli.jsonio import read_json

    try:
        doc = read_json(path, expect=dict, what="population-w file", limit=MAX_BYTES)
    except DataError as e:
        raise ValueError(str(e)) from None
    if doc.get("format") != FORMAT:
        raise ValueError(
            f'{path}: not a population-w file (no "format": "{FORMAT}"; write one with prefcli eval --fit-blend)'
        )
    if doc.get("version") != VERSION:
        raise ValueError(
            f"{path}: population-w file version {doc.get('version')!r}; this prefcli reads version {VERSION}"
        )
    w = doc.get("population_weight")
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or not 0 <= w <= MAX_WEIGHT:
        raise ValueError(f"{path}: population_weight {w!r} is not a number in [0, {MAX_WEIGHT:g}]")
    for part in ("general", "personal"):
        p = doc.get(part)
        if not isinstance(p, dict) or not isinstance(p.get("scorer"), str) or not isinstance(p.get("weights"), str):
            raise ValueError(
                f"{path}: no {part} part (scorer and weights) recorded; write the file with prefcli eval --fit-blend"
            )
    return doc


def check_parts(doc: Mapping[str, Any], path: str, general: Mapping[str, Any], personal: Mapping[str, Any]) -> None:
    """Refuse a w fitted for other parts: the same scorers with the same weights, or nothing."""
    for role, ident in (("general", general), ("personal", personal)):
        want = doc[role]
        if (want["scorer"], want["weights"]) != (ident.get("scorer"), ident.get("weights")):
            raise ValueError(
                f"{path}: fitted for the {role} part {want['scorer']} (weights {want['weights']}), but this blend's "
                f"is {ident.get('scorer')} (weights {ident.get('weights')}); fit it for these parts with prefcli eval "
                f"--scorer blend --split val --fit-blend OUT"
            )
