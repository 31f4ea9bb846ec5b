"""`blend`: the general and the personal scorer run through the harness's runner, then combined per ranking.

Each part is an ordinary scorer run by `prefcli.harness.runner.run_scorer`, so
its scores go through the score cache under its own identity (a bench row of
`blend` beside rows of its parts computes nothing twice), and the personal
part's leave-one-out conditionings are ordinary history tasks (batched across
histories by scorers that can).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

from prefcli.errors import OptionError
from prefcli.scorer import Scorer, ScorerSpec
from prefcli.types import Candidate, RankTask, UserHistory

from prefcli_blend import weighting


def _with_prompt(c: Candidate, prompt: str | None) -> Candidate:
    """A history image as a candidate: it carries its pair's prompt (scorers that read prompts need it)."""
    if c.prompt is None and prompt is not None:
        return dataclasses.replace(c, prompt=prompt)
    return c


def _pair_images(history: UserHistory) -> list[Candidate]:
    """liked₀, disliked₀, liked₁, disliked₁, ...: the order every per-pair array below follows."""
    out: list[Candidate] = []
    for p in history.pairs:
        out += [_with_prompt(p.liked, p.prompt), _with_prompt(p.disliked, p.prompt)]
    return out


def _merge_stats(into: Any, more: Any) -> None:
    for k, v in more.as_dict().items():
        if isinstance(v, bool):
            setattr(into, k, getattr(into, k) or v)
        else:
            setattr(into, k, getattr(into, k) + v)


class BlendScorer(Scorer):
    min_history = 1

    def __init__(self, weights: str | None = None, device: str = "cpu", dtype: str | None = None, *,
                 spec: ScorerSpec | None = None, options: Any = None):
        super().__init__(weights, device, dtype, spec=spec, options=options)
        from prefcli.harness.runner import ScorerHandle
        from prefcli.plugins import get_scorer_spec

        o = self.options
        general, personal = o.general, o.personal
        gspec, pspec = get_scorer_spec(general), get_scorer_spec(personal)
        if gspec.uses_history or gspec.kind != "pointwise":
            raise OptionError(f"scorer blend: option general = {general!r} must be a history-free pointwise scorer "
                              "(pickscore, hpsv2, imagereward, aesthetic, clip, ...)")
        if not pspec.uses_history or pspec.kind != "pointwise":
            raise OptionError(f"scorer blend: option personal = {personal!r} must be a pointwise scorer that reads the history "
                              "(clip-probe, preftoken, viper, idefics, ...)")
        opts = {"batch_size": o.batch_size}
        self.general = ScorerHandle(gspec, o.general_weights or weights, device=device, dtype=dtype, options=opts)
        self.personal = ScorerHandle(pspec, o.personal_weights or weights, device=device, dtype=dtype, options=opts)

    @property
    def weights_id(self) -> str:
        return f"{self.general.name}:{self.general.weights_id} + {self.personal.name}:{self.personal.weights_id}"

    @property
    def identity(self) -> dict[str, Any]:
        """The blend's own options (w, population w, shrinkage) and both parts' full identities."""
        ident = dict(super().identity)
        ident["weights"] = self.weights_id  # what a title or provenance line shows: both parts' weights
        ident["general"] = self.general.identity
        ident["personal"] = self.personal.identity
        return ident

    # -- the Scorer contract, for direct use (the runner calls run_tasks) -----------------
    def condition(self, history: UserHistory | None) -> Any:
        super().condition(history)
        return history

    def score(self, candidates: Sequence[Candidate], state: Any = None) -> list[float]:
        """Scores of `candidates` as one ranking: standardisation is over them (and the history), so
        scoring a subset gives other numbers; give the whole set at once."""
        if state is None:
            raise ValueError("blend must be conditioned on a history first")
        task = RankTask(task_id="blend", candidates=list(candidates), liked_index=0, history=state)
        records, _ = self.run_tasks([task], batch_size=self.batch_size)
        return records[0]["scores"]

    def evidence(self, history: UserHistory) -> weighting.Evidence:
        """Why this person's w is what it is (runs the leave-one-out)."""
        task = RankTask(task_id="evidence", candidates=[], liked_index=-1, history=history)
        records, _ = self.run_tasks([task], batch_size=self.batch_size)
        return weighting.Evidence(**records[0]["blend"])

    # -- the run ------------------------------------------------------------------------
    def run_tasks(self, tasks: Sequence[RankTask], *, cache: Any = None, batch_size: int = 32, progress: bool = False,
                  distributed: bool | None = None, label: str | None = None,
                  on_progress: Callable[[int, int], None] | None = None, **run_options: Any) -> tuple[list[dict], Any]:
        """One record per task, as `run_scorer` gives them, plus `extras` (per candidate) and `blend` (the evidence).

        `run_options`: further `run_scorer` keywords, given to both parts as they are.
        """
        import numpy as np

        from prefcli.harness.runner import RunStats, run_scorer

        label = label or "blend"
        stats = RunStats()
        common = dict(cache=cache, batch_size=batch_size, progress=progress, distributed=distributed, on_progress=on_progress,
                      **run_options)

        # General: each task's candidates and its history's pair images (history-free: shared across tasks).
        hist_images = {}
        for t in tasks:
            hist_images.setdefault(t.history.key(), _pair_images(t.history))
        gtasks = [RankTask(task_id=f"{t.task_id}/general", candidates=list(t.candidates) + hist_images[t.history.key()],
                           liked_index=0, user_id=t.user_id) for t in tasks]
        grec, s = run_scorer(self.general, gtasks, label=f"{label}: {self.general.name}", **common)
        _merge_stats(stats, s)

        # Personal: the tasks themselves, plus per distinct history one task per pair with that pair
        # left out of the history (the pair's two images are then graded by a scorer that never saw them).
        ptasks = list(tasks)
        loo: dict[str, list[int]] = {}
        for t in tasks:
            hk = t.history.key()
            if hk in loo:
                continue
            pairs = list(t.history.pairs)
            loo[hk] = []
            if len(pairs) < 2:
                continue
            for i, pr in enumerate(pairs):
                rest = dataclasses.replace(t.history, pairs=tuple(pairs[:i] + pairs[i + 1:]))
                loo[hk].append(len(ptasks))
                ptasks.append(RankTask(task_id=f"{t.task_id}/loo{i}", candidates=hist_images[hk][2 * i:2 * i + 2],
                                       liked_index=0, history=rest, user_id=t.user_id, n_ref=len(rest)))
        prec, s = run_scorer(self.personal, ptasks, label=f"{label}: {self.personal.name}", **common)
        _merge_stats(stats, s)

        gsign = 1.0 if self.general.spec.higher_is_better else -1.0
        psign = 1.0 if self.personal.spec.higher_is_better else -1.0
        evidence: dict[str, tuple[weighting.Evidence, np.ndarray, np.ndarray]] = {}
        records = []
        for ti, t in enumerate(tasks):
            hk = t.history.key()
            n = len(t.candidates)
            g = gsign * np.asarray(grec[ti]["scores"], dtype=np.float64)
            g_cand, g_hist = g[:n], g[n:]
            if hk not in evidence:
                p_hist = psign * np.asarray([v for j in loo[hk] for v in prec[j]["scores"]], dtype=np.float64)
                evidence[hk] = (self._evidence(g_hist if p_hist.size else g_hist[:0], p_hist), g_hist, p_hist)
            ev, _, p_hist = evidence[hk]
            p_cand = psign * np.asarray(prec[ti]["scores"], dtype=np.float64)
            score, zg, zp = weighting.combine(g_cand, p_cand, ev.weight, g_hist, p_hist)
            rec = dict(prec[ti])
            rec["scores"] = [float(v) for v in score]
            why = {k: v for k, v in ev.as_dict().items() if k not in ("weight", "mode")}
            rec["extras"] = [
                {"general": float(gsign * a), "personal": float(psign * b), "z_general": float(c), "z_personal": float(d),
                 "weight": ev.weight, "weight_mode": ev.mode, **why}
                for a, b, c, d in zip(g_cand, p_cand, zg, zp)
            ]
            rec["blend"] = ev.as_dict()
            rec["note"] = ev.sentence()
            records.append(rec)
        return records, stats

    def _evidence(self, g_hist: "Any", p_hist: "Any") -> weighting.Evidence:
        o = self.options
        if o.weight != "auto":
            return weighting.fixed(float(o.weight), o.population_weight, o.shrinkage)
        zg = weighting.standardize(g_hist, g_hist)
        zp = weighting.standardize(p_hist, p_hist)
        return weighting.choose_weight(zg[0::2] - zg[1::2], zp[0::2] - zp[1::2],
                                       population_weight=o.population_weight, shrinkage=o.shrinkage)
