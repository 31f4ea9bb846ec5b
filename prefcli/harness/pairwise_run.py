"""The runner's path for pairwise scorers: round-robin comparisons, cached and resumable.

Each task's candidates are compared pair by pair (prefcli.pairwise.round_robin:
one comparison for 1-vs-1, six for 1-vs-3), conditioned once per distinct
history, `batch_size` comparisons per scorer call. A comparison is cached
under (history key, "A id|B id", prompts), its value being how much A won (1,
0, 0.5; NaN for no answer), so an interrupted run resumes and tasks sharing a
pair under the same history ask once. Task scores are round-robin wins, so the
ordinary top-k metrics apply; each record also lists its comparisons.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from prefcli.pairwise import compare_batch, round_robin, wins
from prefcli.types import Candidate, RankTask


def _key(handle: Any, hk: str, a: Candidate, b: Candidate) -> tuple[str, str, str]:
    prompts = f"{a.prompt or ''}\x1f{b.prompt or ''}" if "prompt" in handle.spec.needs else ""
    return (hk, f"{a.image_id}|{b.image_id}", prompts)


def run_pairwise(
    handle: Any,
    tasks: Sequence[RankTask],
    *,
    cache: Any,
    batch_size: int,
    progress: bool,
    dist: Any,
    label: str,
    stats: Any,
    on_progress: Any = None,
) -> list[dict]:
    from prefcli.progress import progress_or_callback

    t0 = time.perf_counter()
    store = cache.store(handle.name, handle.cache_key) if cache is not None else None
    task_keys: list[list[tuple[int, int, tuple]]] = []
    reps: dict[tuple, tuple[Candidate, Candidate]] = {}
    groups: dict[str, list[int]] = {}
    for ti, task in enumerate(tasks):
        hk = task.history.key() if handle.uses_history else ""
        keys = []
        for i, j in round_robin(len(task.candidates)):
            a, b = task.candidates[i], task.candidates[j]
            k = _key(handle, hk, a, b)
            reps.setdefault(k, (a, b))
            keys.append((i, j, k))
        task_keys.append(keys)
        groups.setdefault(hk, []).append(ti)

    values: dict[tuple, float] = store.get_scores(reps) if store is not None else {}
    stats.scores_cached = len(values)
    dist.barrier()
    missing = {k for k in reps if k not in values}
    details: dict[tuple, dict] = {}
    computed: list[tuple[tuple, float]] = []
    todo = [hk for hk, idx in groups.items() if any(k in missing for ti in idx for _, _, k in task_keys[ti])]
    mine = dist.split(todo)
    prog = progress_or_callback(progress and dist.is_main and bool(missing), on_progress)
    with prog:
        bar = prog.add_task(
            f"comparing pairs with {label}",
            total=sum(1 for hk in mine for k in {k for ti in groups[hk] for _, _, k in task_keys[ti]} if k in missing),
        )
        if mine:
            model = handle.scorer
            for hk in mine:
                idx = groups[hk]
                keys = list(dict.fromkeys(k for ti in idx for _, _, k in task_keys[ti] if k in missing))
                state = model.condition(tasks[idx[0]].history if handle.uses_history else None)
                stats.conditioned += 1
                for start in range(0, len(keys), batch_size):
                    chunk = keys[start : start + batch_size]
                    prefs = compare_batch(model, [reps[k] for k in chunk], state)
                    stats.score_calls += 1
                    stats.candidates_scored += 2 * len(chunk)
                    pairs = [(k, p.value) for k, p in zip(chunk, prefs)]
                    if store is not None:
                        store.put_scores(pairs)
                    computed.extend(pairs)
                    details.update((k, p.as_dict()) for k, p in zip(chunk, prefs))
                    prog.advance(bar, len(chunk))
                for ti in idx:
                    for c in tasks[ti].candidates:
                        c.release()
                    for h in tasks[ti].history.images():  # pairs, unpaired and rated images
                        h.release()
    for k, v in dist.gather(computed):
        values[tuple(k)] = v
    stats.loaded_model = handle.loaded
    stats.seconds = time.perf_counter() - t0

    records = []
    for task, keys in zip(tasks, task_keys):
        outcomes = [(i, j, values[k]) for i, j, k in keys]
        comparisons = []
        for i, j, k in keys:
            d = details.get(k)
            if d is None:  # from the cache (or another rank): the outcome, not the judge's text
                v = values[k]
                d = {"winner": None if math.isnan(v) else {1.0: "A", 0.0: "B"}.get(v, "equal"), "cached": True}
            comparisons.append({"a": i, "b": j, **d})
        records.append(
            {
                "task_id": task.task_id,
                "user_id": task.user_id if task.user_id is not None else task.history.user_id,
                "seen": task.seen,
                "protocol": task.protocol,
                "n_ref": task.n_ref if handle.uses_history else None,
                "liked_index": task.liked_index,
                "candidates": [c.image_id for c in task.candidates],
                "scores": wins(len(task.candidates), outcomes),
                "kind": "pairwise",
                "comparisons": comparisons,
            }
        )
    return records
