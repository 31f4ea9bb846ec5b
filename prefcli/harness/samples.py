"""`--log-samples`: one JSON line per task, so every number of a table can be checked by hand.

Like lm-evaluation-harness's ``--log_samples``: each line holds the task
id, the user, whether they are seen, the protocol and N_ref, the candidate
image ids (in candidate order), the scorer's scores, the liked candidate's
index, its pessimistic rank (ties count against it) and whether it was a hit
at each reported top-k. The file is written atomically.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

from prefcli.harness import metrics


def sample_lines(records: Iterable[dict], higher_is_better: bool = True, scorer: str | None = None) -> list[str]:
    out = []
    for r in records:
        scores = [None if (isinstance(s, float) and not math.isfinite(s)) else s for s in r["scores"]]
        n = len(r["scores"])
        rank = metrics.liked_rank(r["scores"], r["liked_index"], higher_is_better)
        ks = metrics.ks_for(n)
        line = {
            "task_id": r.get("task_id"),
            "user_id": r.get("user_id"),
            "seen": r.get("seen"),
            "protocol": r.get("protocol"),
            "n_ref": r.get("n_ref"),
            "scorer": scorer,
            "candidates": list(r.get("candidates") or []),
            "scores": scores,
            "liked_index": r["liked_index"],
            "rank": rank,
            "hit": rank == 1,
            "hits": {f"top{k}": rank <= k for k in ks},
        }
        out.append(json.dumps(line, ensure_ascii=False, allow_nan=False))
    return out


def write_samples(
    path: str | os.PathLike, records: Iterable[dict], higher_is_better: bool = True, scorer: str | None = None
) -> Path:
    from prefcli import atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = sample_lines(records, higher_is_better, scorer)
    atomic.write_text(path, "\n".join(lines) + ("\n" if lines else ""))
    return path


def samples_name(run: dict) -> str:
    """File name of a bench run's samples: scorer, protocol and N_ref (history-free: no N_ref)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(run.get("scorer")))
    nref = f"_nref{run['n_ref']}" if run.get("n_ref") is not None else ""
    return f"{safe}_{run.get('protocol')}{nref}.jsonl"
