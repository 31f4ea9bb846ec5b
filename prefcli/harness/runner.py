"""Run one scorer over a list of RankTasks: batched, cached, resumable.

The runner does not care where tasks come from (a Dataset, a folder, a test).
What it guarantees:

- History-free scorers see each unique (image, prompt) once, in batches of
  `batch_size`, however many tasks share it (tasks at different N_ref share
  their candidates).
- History-conditioned scorers get `condition()` once per distinct
  `history.key()`, then every candidate of every task with that history in
  batches. A scorer that can batch across histories (`score_histories`, the
  VLM family) gets the histories with fewer than `batch_size` candidates to
  score together, about `batch_size` candidates per call: an evaluation has
  one short history per task.
- `*-probe` scorers (specs with a `base_spec`) have the base
  embeddings of every history and candidate image computed once, in batches,
  and cached; the per-user logistic fit then costs milliseconds.
- Scores are written to the cache after every batch, so an interrupted run
  resumes where it stopped and a second run recomputes nothing. A fully
  cached run does not even load the model (see `ScorerHandle`).
- Under `accelerate launch` (WORLD_SIZE > 1) the missing work is split across
  processes with `accelerate.PartialState` and gathered on every rank.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prefcli import messages
from prefcli.errors import PrefcliError, bad_value
from prefcli.harness.cache import CacheDir, ScoreStore
from prefcli.harness.handle import ScorerHandle  # noqa: F401 - its home; still importable from here
from prefcli.progress import progress_or_callback
from prefcli.stage_times import MODEL, timed
from prefcli.types import Candidate, RankTask

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (history key, image id, prompt)


@dataclass
class RunStats:
    """What a run actually computed (tests and the bench scripts read these)."""

    candidates_scored: int = 0  # candidates sent to scorer.score
    score_calls: int = 0
    scores_cached: int = 0  # unique keys answered by the cache
    conditioned: int = 0  # condition() calls
    images_embedded: int = 0  # base embeddings computed for probes
    embeddings_cached: int = 0
    loaded_model: bool = False
    seconds: float = 0.0
    #: (path, reason) of candidates that did not decode and were left out (only with skip_unreadable).
    unreadable: list = field(default_factory=list)
    images_decoded: int = 0  # image files decoded during the run (prefcli.images.DECODES)
    # Where the seconds went (prefcli.stage_times), so a user sees which side bounds the run. Decodes made
    # ahead by the decode threads overlap the model, so the stages may add up to more than `seconds`.
    decode_seconds: float = 0.0
    preprocess_seconds: float = 0.0  # images into model tensors (the CLIP and IDEFICS2 families' shared code)
    model_seconds: float = 0.0  # inside the scorer's condition / score / embeddings, less the two above
    #: The rest of the run's time: the cache, batching, waiting for a decode thread.
    other_seconds: float = 0.0
    workers: int = 0  # decode threads
    image_cache_hits: int = 0  # loads answered by the run's decoded-image cache (--image-cache-mb)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# -- helpers -------------------------------------------------------------------


def _prompt_key(handle: ScorerHandle, c: Candidate) -> str:
    return (c.prompt or "") if "prompt" in handle.spec.needs else ""


class _Dist:
    """Accelerate's PartialState when launched with several processes, else a no-op."""

    def __init__(self, enabled: bool | None = None):
        if enabled is None:
            enabled = int(os.environ.get("WORLD_SIZE", "1")) > 1
        self.state = None
        if enabled:
            from accelerate import PartialState

            self.state = PartialState()

    @property
    def active(self) -> bool:
        return self.state is not None and self.state.num_processes > 1

    @property
    def is_main(self) -> bool:
        return self.state is None or self.state.is_main_process

    def split(self, items: list) -> list:
        if not self.active:
            return items
        with self.state.split_between_processes(items) as mine:
            return list(mine)

    def gather(self, items: list) -> list:
        if not self.active:
            return items
        from accelerate.utils import gather_object

        return list(gather_object(items))

    def barrier(self) -> None:
        if self.active:
            self.state.wait_for_everyone()


def is_main_process() -> bool:
    """False on every Accelerate rank but the first (only the main one prints and writes files)."""
    return _Dist().is_main


def process_device(default: str) -> str:
    """The device this process should use: its own GPU under `accelerate launch`."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        return str(PartialState().device)
    return default


class CachedEmbedder:
    """Stands in for a probe's base scorer: embeddings from memory, then disk, then the model."""

    def __init__(
        self, base: Any, store: ScoreStore | None, memory: dict, stats: RunStats, batch_size: int, guard: Any = None
    ):
        self.base, self.store, self.memory, self.stats, self.batch_size = base, store, memory, stats, batch_size
        self.guard = guard

    def __getattr__(self, name: str) -> Any:
        return getattr(self.base, name)

    def ensure(self, candidates: Sequence[Candidate], on_batch: Callable[[int], None] | None = None) -> None:
        import numpy as np

        unique = {c.image_id: c for c in candidates if c.image_id not in self.memory}
        if not unique:
            return
        if self.store is not None:
            found = self.store.get_embeddings(list(unique))
            self.memory.update(found)
            self.stats.embeddings_cached += len(found)
            for k in found:
                unique.pop(k, None)
        for batch in _readable_batches(list(unique.values()), self.batch_size, self.guard):
            with timed(MODEL):
                vecs = np.asarray(self.base.embed_images(batch), dtype=np.float32)
            ids = [c.image_id for c in batch]
            if self.store is not None:
                self.store.put_embeddings(ids, vecs)
            self.memory.update(zip(ids, vecs))
            self.stats.images_embedded += len(batch)
            for c in batch:
                c.release()
            if on_batch:
                on_batch(len(batch))

    def embed_images(self, candidates: Sequence[Candidate]):  # noqa: D102 - the base scorer's
        import numpy as np

        candidates = list(candidates)
        self.ensure(candidates)
        if not candidates:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self.memory[c.image_id] for c in candidates])


def _readable_batches(todo: list[Candidate], batch_size: int, guard: Any = None):
    """`todo` in batches of `batch_size` readable candidates (the same batches as filtering first), each
    decoded as its turn comes, the next decoding meanwhile: a folder of 10,000 images never holds them all."""
    if guard is None:
        for start in range(0, len(todo), batch_size):
            yield todo[start : start + batch_size]
        return
    batch: list[Candidate] = []
    for i, c in enumerate(todo):
        if i % batch_size == 0:
            guard.prefetch(todo[i : i + 2 * batch_size])
        if guard.ok(c):
            batch.append(c)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


# -- the run -------------------------------------------------------------------


@messages.on_purpose_when(
    "history_length", lambda scorer, tasks, **kw: bool(tasks) and all(t.n_ref is not None for t in tasks)
)
def run_scorer(
    scorer: Any,
    tasks: Sequence[RankTask],
    *,
    cache: CacheDir | None = None,
    batch_size: int = 32,
    progress: bool = False,
    distributed: bool | None = None,
    label: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    batch_histories: bool = True,
    skip_unreadable: bool = False,
    workers: int = 0,
    image_cache_mb: float | None = None,
) -> tuple[list[dict], RunStats]:
    """Score every task's candidates; return one record per task (in order) and what was computed.

    This is the one scoring loop: eval, bench and rank all score through it.
    `scorer` is a loaded Scorer or a ScorerHandle (loaded only on a cache miss).
    `on_progress(done, total)` replaces the progress bar with the caller's own.
    `batch_histories=False` conditions and scores history by history even when
    the scorer could batch across histories (the same numbers, slower; for
    benches and tests that compare the two). `skip_unreadable` (ranking a
    header-checked folder): a candidate that does not decode scores NaN, is
    not cached and is listed in `stats.unreadable`; otherwise its ImageError stops the run.
    `workers`: threads decoding the next batch (and the next histories) while this one is scored; the
    same scores in the same order as 0. Decoded images are shared by every task of the run through
    prefcli.image_cache (joining the caller's session, else one bounded by `image_cache_mb`).
    A record holds task_id, user_id, seen, protocol, n_ref, liked_index,
    candidate image ids and the scores, in candidate order.
    """
    if batch_size < 1:
        raise bad_value("batch_size", batch_size, "must be at least 1")
    handle = scorer if isinstance(scorer, ScorerHandle) else ScorerHandle.wrap(scorer, cache)
    if handle.cache is None:
        handle.cache = cache
    from prefcli import image_cache

    if handle.spec.kind == "composite":  # a scorer of scorers runs its parts through this loop itself
        with image_cache.session(image_cache_mb):  # its parts share the decoded images
            records, stats = handle.scorer.run_tasks(
                tasks,
                cache=cache,
                batch_size=batch_size,
                progress=progress,
                distributed=distributed,
                label=label,
                on_progress=on_progress,
                batch_histories=batch_histories,
                skip_unreadable=skip_unreadable,
                workers=workers,
            )
        stats.workers = max(0, int(workers))  # the parts' runs used the same threads, one after the other
        return records, stats

    guard = None
    if skip_unreadable or workers > 0:
        from prefcli.harness.readable import ReadableGuard

        guard = ReadableGuard(workers, skip=skip_unreadable)
    try:
        with image_cache.session(image_cache_mb) as images:
            hits0 = images.hits
            records, stats = _run(
                handle,
                tasks,
                cache=cache,
                batch_size=batch_size,
                progress=progress,
                distributed=distributed,
                label=label,
                on_progress=on_progress,
                batch_histories=batch_histories,
                guard=guard,
            )
            stats.image_cache_hits = images.hits - hits0
    finally:
        if guard is not None:
            guard.close()  # also when the run stops on an error: no decode thread outlives it
    stats.workers = max(0, int(workers))
    return records, stats


def _run(
    handle: ScorerHandle,
    tasks: Sequence[RankTask],
    *,
    cache: CacheDir | None,
    batch_size: int,
    progress: bool,
    distributed: bool | None,
    label: str | None,
    on_progress: Callable[[int, int], None] | None,
    batch_histories: bool,
    guard: Any,
) -> tuple[list[dict], RunStats]:
    from prefcli.stage_times import DECODE, PREPROCESS

    stats = RunStats()
    at_start = {stage: stage.snapshot() for stage in (DECODE, PREPROCESS, MODEL)}
    dist = _Dist(distributed)
    t0 = time.perf_counter()
    store = cache.store(handle.name, handle.cache_key) if cache is not None else None
    label = label or handle.name
    if handle.spec.pairwise:  # a judge of two images: round-robin comparisons, scores are wins
        from prefcli.harness.pairwise_run import run_pairwise

        records = run_pairwise(
            handle,
            tasks,
            cache=cache,
            batch_size=batch_size,
            progress=progress,
            dist=dist,
            label=label,
            stats=stats,
            on_progress=on_progress,
        )
        _stage_stats(stats, at_start, time.perf_counter() - t0)
        return records, stats

    # One key per (history, candidate); history-free scorers share keys across tasks.
    task_keys: list[list[Key]] = []
    reps: dict[Key, Candidate] = {}
    groups: dict[str, list[int]] = {}
    for ti, task in enumerate(tasks):
        hk = task.history.key() if handle.uses_history else ""
        keys = []
        for c in task.candidates:
            k = (hk, c.image_id, _prompt_key(handle, c))
            reps.setdefault(k, c)
            keys.append(k)
        task_keys.append(keys)
        groups.setdefault(hk, []).append(ti)

    scores: dict[Key, float] = store.get_scores(reps) if store is not None else {}
    stats.scores_cached = len(scores)
    dist.barrier()  # every rank has read the cache before anyone writes to it
    missing = [k for k in reps if k not in scores]
    log.info("%s: %d unique candidate(s), %d from the cache, %d to score", label, len(reps), len(scores), len(missing))

    computed: list[tuple[Key, float]] = []
    prog, desc = progress_or_callback(progress and dist.is_main and bool(missing), on_progress), f"scoring {label}"
    with prog:
        if not handle.uses_history:
            mine = dist.split(missing)
            bar = prog.add_task(desc, total=len(mine))
            if mine:
                model = handle.scorer
                with timed(MODEL):
                    state = model.condition(None)
                stats.conditioned += 1
                for cands, pairs in _score_in_batches(model, mine, state, reps, store, stats, batch_size, guard):
                    computed.extend(pairs)
                    for c in cands:
                        c.release()
                    prog.advance(bar, len(pairs))
        else:
            missing_set = set(missing)
            todo_groups = [
                hk for hk, idx in groups.items() if any(k in missing_set for ti in idx for k in task_keys[ti])
            ]
            mine = dist.split(todo_groups)
            if mine:
                model = handle.scorer
                embedder = None
                if (
                    handle.spec.base_spec is not None
                ):  # a probe: on an embedder answering from memory, disk, then its base
                    embedder = _cached_embedder(handle, model.base, cache, stats, batch_size, guard)
                    model = model.with_embedder(embedder)
                if guard is not None and embedder is None:
                    guard.prepare = getattr(model, "prepare_images", None)
                if embedder is not None:
                    # Embed every image the probes will need, in full batches, once.
                    imgs: dict[str, Candidate] = {}
                    for hk in mine:
                        for ti in groups[hk]:
                            t = tasks[ti]
                            for h in t.history.images():  # pairs, unpaired and rated images
                                imgs.setdefault(h.image_id, h)
                            for c in t.candidates:
                                imgs.setdefault(c.image_id, c)
                    ebar = prog.add_task(f"embedding images for {label}", total=len(imgs))
                    embedder.ensure(list(imgs.values()), on_batch=lambda n: prog.advance(ebar, n))
                    prog.update(ebar, completed=len(imgs))
                    if guard is not None:
                        guard.decode = False  # the probe scores from the embeddings: no pixels needed
                # Progress counts candidates scored (a single rank task is one history).
                mine_set = set(mine)
                bar = prog.add_task(desc, total=sum(1 for k in missing_set if k[0] in mine_set))
                batched = batch_histories and embedder is None and model.batches_histories
                few: list[tuple[str, list[Key]]] = []  # histories with few candidates, scored together
                n_few = 0
                todo_keys = {
                    hk: list(dict.fromkeys(k for ti in groups[hk] for k in task_keys[ti] if k in missing_set))
                    for hk in mine
                }
                ahead = _Ahead(guard, mine, todo_keys, groups, tasks, reps, batch_size)
                for gi, hk in enumerate(mine):
                    idx = groups[hk]
                    keys = todo_keys[hk]
                    ahead.past(gi)  # the next histories decode while this one is scored
                    if batched and len(keys) < batch_size:
                        few.append((hk, keys))
                        n_few += len(keys)
                        if n_few >= batch_size:
                            pairs = _score_histories(model, few, groups, tasks, reps, store, stats, guard)
                            computed.extend(pairs)
                            prog.advance(bar, len(pairs))
                            few, n_few = [], 0
                        continue
                    with timed(MODEL):
                        state = model.condition(tasks[idx[0]].history)
                    stats.conditioned += 1
                    for cands, pairs in _score_in_batches(model, keys, state, reps, store, stats, batch_size, guard):
                        computed.extend(pairs)
                        prog.advance(bar, len(pairs))
                        for c in cands:  # one history may have thousands of candidates (rank): keep two batches at most
                            c.release()
                    _release(tasks, idx)
                if few:
                    pairs = _score_histories(model, few, groups, tasks, reps, store, stats, guard)
                    computed.extend(pairs)
                    prog.advance(bar, len(pairs))
    for k, v in dist.gather(computed):
        scores[tuple(k)] = v
    stats.loaded_model = handle.loaded
    if guard is not None:
        guard.close()  # every decode ahead is done: the stage times below include them
        stats.unreadable = guard.unreadable
    _stage_stats(stats, at_start, time.perf_counter() - t0)

    records = []
    for task, keys in zip(tasks, task_keys):
        records.append(
            {
                "task_id": task.task_id,
                "user_id": task.user_id if task.user_id is not None else task.history.user_id,
                "seen": task.seen,
                "protocol": task.protocol,
                "n_ref": task.n_ref if handle.uses_history else None,
                "liked_index": task.liked_index,
                "candidates": [c.image_id for c in task.candidates],
                "scores": [scores[k] for k in keys],
            }
        )
    return records, stats


def _stage_stats(stats: RunStats, at_start: dict, seconds: float) -> None:
    """The run's share of each stage (prefcli.stage_times) since `at_start`."""
    from prefcli.stage_times import DECODE, MODEL, PREPROCESS

    stats.seconds = seconds
    stats.images_decoded = DECODE.snapshot()[0] - at_start[DECODE][0]
    stats.decode_seconds = DECODE.snapshot()[1] - at_start[DECODE][1]
    stats.preprocess_seconds = PREPROCESS.snapshot()[1] - at_start[PREPROCESS][1]
    stats.model_seconds = MODEL.snapshot()[1] - at_start[MODEL][1]
    stats.other_seconds = max(0.0, seconds - stats.decode_seconds - stats.preprocess_seconds - stats.model_seconds)


class _Ahead:
    """Starts decoding the histories and candidates of the next groups, about `batch_size` candidates
    ahead of the one being scored (no-op without decode threads)."""

    def __init__(
        self,
        guard: Any,
        order: list[str],
        keys: dict[str, list[Key]],
        groups: dict[str, list[int]],
        tasks: Sequence[RankTask],
        reps: dict,
        batch_size: int,
    ):
        self.guard, self.order, self.keys, self.groups, self.tasks, self.reps = guard, order, keys, groups, tasks, reps
        self.batch_size = batch_size
        self.next = 0  # the first group not yet started

    def past(self, current: int) -> None:
        if self.guard is None or self.guard._pool is None:
            return
        covered = 0
        j = current
        while j < len(self.order) and covered < 2 * self.batch_size:
            hk = self.order[j]
            if j >= self.next:
                self.guard.warm(self.tasks[self.groups[hk][0]].history.images())
                self.guard.prefetch([self.reps[k] for k in self.keys[hk][: self.batch_size]])
                self.next = j + 1
            covered += min(len(self.keys[hk]), self.batch_size)
            j += 1


def _score_in_batches(
    model: Any, keys: list, state: Any, reps: dict, store: Any, stats: RunStats, batch_size: int, guard: Any = None
):
    """Score `keys` under one state, a batch at a time; each batch is stored as it
    comes, so an interrupted run resumes. Yields (candidates, [(key, score)])."""
    for start in range(0, len(keys), batch_size):
        chunk = keys[start : start + batch_size]
        cands = [reps[k] for k in chunk]
        if guard is not None:
            guard.prefetch(cands)
            guard.prefetch(
                [reps[k] for k in keys[start + batch_size : start + 2 * batch_size]]
            )  # the next batch, meanwhile
        pairs = list(zip(chunk, _score(model, cands, state, stats, guard)))
        if store is not None:
            store.put_scores(_storable(pairs, guard))
        yield cands, pairs


def _storable(pairs: list, guard: Any) -> list:
    """An unreadable candidate's NaN is never cached: a rerun reports it again."""
    if guard is None or not guard.bad:
        return pairs
    return [p for p in pairs if p[0][1] not in guard.bad]


def _release(tasks: Sequence[RankTask], idx: Sequence[int]) -> None:
    """Decoded pixels are dropped once a history is scored; memory stays flat."""
    for ti in idx:
        for c in tasks[ti].candidates:
            c.release()
        for h in tasks[ti].history.images():
            h.release()


def _score_histories(
    model: Any,
    few: list[tuple[str, list[Key]]],
    groups: dict[str, list[int]],
    tasks: Sequence[RankTask],
    reps: dict,
    store: Any,
    stats: RunStats,
    guard: Any = None,
) -> list[tuple[Key, float]]:
    """Many histories' candidates in one call of a scorer that batches across histories; stored at once (resume)."""
    unreadable: list[tuple[Key, float]] = []
    if guard is not None:
        guard.prefetch([reps[k] for _, keys in few for k in keys])
        unreadable = [(k, math.nan) for _, keys in few for k in keys if not guard.ok(reps[k])]
        few = [(hk, [k for k in keys if k[1] not in guard.bad]) for hk, keys in few]
    jobs = [(tasks[groups[hk][0]].history, [reps[k] for k in keys]) for hk, keys in few]
    with timed(MODEL):
        got = model.score_histories(jobs)
    name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
    if len(got) != len(jobs):
        raise PrefcliError(f"scorer {name} returned scores for {len(got)} histories, asked for {len(jobs)}")
    pairs: list[tuple[Key, float]] = []
    for (_hk, keys), vals in zip(few, got):
        if len(vals) != len(keys):
            raise PrefcliError(f"scorer {name} returned {len(vals)} scores for {len(keys)} images")
        pairs += [(k, float(v) if v is not None else math.nan) for k, v in zip(keys, vals)]
    stats.score_calls += 1
    stats.conditioned += len(jobs)
    stats.candidates_scored += len(pairs)
    if store is not None:
        store.put_scores(pairs)
    for hk, _ in few:
        _release(tasks, groups[hk])
    return pairs + unreadable


def score_list(model: Any, cands: Sequence[Candidate], state: Any = None, batch_size: int = 16) -> list[float]:
    """Score a plain list with no cache (judges of generated images), batch by batch, releasing pixels."""
    stats, out = RunStats(), []
    for s in range(0, len(cands), max(1, batch_size)):
        batch = list(cands[s : s + max(1, batch_size)])
        out += _score(model, batch, state, stats)
        for c in batch:
            c.release()
    return out


def _score(model: Any, cands: list[Candidate], state: Any, stats: RunStats, guard: Any = None) -> list[float]:
    if guard is not None:
        ok = guard.split(cands)
        if not all(ok):
            good = [c for c, k in zip(cands, ok) if k]
            vals = iter(_score(model, good, state, stats) if good else [])
            return [next(vals) if k else math.nan for k in ok]
    with timed(MODEL):
        vals = model.score(cands, state)
    if len(vals) != len(cands):
        name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
        raise PrefcliError(f"scorer {name} returned {len(vals)} scores for {len(cands)} images")
    stats.score_calls += 1
    stats.candidates_scored += len(cands)
    return [float(v) if v is not None else math.nan for v in vals]


def _cached_embedder(
    handle: ScorerHandle, base: Any, cache: CacheDir | None, stats: RunStats, batch_size: int, guard: Any = None
) -> CachedEmbedder:
    """A probe's base scorer behind the embedding cache (this handle's memory, then the disk cache)."""
    store = (
        cache.store(base.spec.name if base.spec is not None else handle.probe_base, base.cache_key)
        if cache is not None
        else None
    )
    return CachedEmbedder(base, store, handle.embeddings, stats, batch_size, guard)
