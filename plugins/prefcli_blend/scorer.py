"""`blend`: the general and the personal scorer run through the harness's runner, then combined per ranking.

Each part is an ordinary scorer run by `prefcli.harness.runner.run_scorer`, so
its scores go through the score cache under its own identity (a bench row of
`blend` beside rows of its parts computes nothing twice), and the personal
part's leave-one-out conditionings are ordinary history tasks (batched across
histories by scorers that can).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from prefcli.errors import ConfigError, OptionError
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


def _z(values: Any, pool: Any) -> Any:
    """`weighting.standardize` in torch: over `values` and the constant `pool` together, gradients through all of it."""
    import torch

    pool_t = torch.as_tensor(pool, dtype=values.dtype, device=values.device)
    both = torch.cat([values, pool_t[torch.isfinite(pool_t)]])
    if both.numel() < 2:
        return torch.zeros_like(values)
    sd = both.std(correction=0)
    if not float(sd.detach()) > 1e-12:
        return torch.zeros_like(values)
    return (values - both.mean()) / sd


def _population(value: str | float) -> tuple[float, dict | None]:
    """(w₀, None) for a number; (w₀, {path, fitted_on, general, personal}) for a file of eval --fit-blend."""
    try:
        return float(value), None
    except ValueError:
        pass
    from prefcli_blend import population

    path = str(value)
    try:
        doc = population.read(path)
    except ValueError as e:
        raise OptionError(f"scorer blend: option population_weight = {path!r}: {e}") from None
    return float(doc["population_weight"]), {
        "path": path,
        "fitted_on": doc.get("fitted_on"),
        "general": doc["general"],
        "personal": doc["personal"],
    }


class BlendScorer(Scorer):
    min_history = 1

    def __init__(
        self,
        weights: str | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        *,
        spec: ScorerSpec | None = None,
        options: Any = None,
    ):
        super().__init__(weights, device, dtype, spec=spec, options=options)
        from prefcli.harness.runner import ScorerHandle
        from prefcli.plugins import get_scorer_spec

        o = self.options
        general, personal = o.general, o.personal
        gspec, pspec = get_scorer_spec(general), get_scorer_spec(personal)
        not_general = (
            f"scorer blend: option general = {general!r} must be a history-free pointwise scorer "
            "(pickscore, hpsv2, imagereward, aesthetic, clip, ..., or a population model: preftoken with weights "
            "trained without histories)"
        )
        if gspec.kind != "pointwise":
            raise OptionError(not_general)
        if not pspec.uses_history or pspec.kind != "pointwise":
            raise OptionError(
                f"scorer blend: option personal = {personal!r} must be a pointwise scorer that reads the history "
                "(clip-probe, preftoken, viper, idefics, ...)"
            )
        opts = {"batch_size": o.batch_size}
        self.general = ScorerHandle(gspec, o.general_weights or weights, device=device, dtype=dtype, options=opts)
        self.personal = ScorerHandle(pspec, o.personal_weights or weights, device=device, dtype=dtype, options=opts)
        # A history scorer whose weights read no history (a population checkpoint) is a general scorer:
        # only the loaded model can say so.
        if gspec.uses_history and getattr(self.general.scorer, "reads_history", True):
            raise OptionError(not_general)
        # The option is a number or an --fit-blend file; the number the weighting uses is read from it once, here.
        self.population_weight, self.population_file = _population(o.population_weight)
        self._population_checked = self.population_file is None

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
        self._check_population()
        # The w itself, not the file that held it: the same w from a file or typed gives the same scores.
        ident["options"] = {**ident.get("options", {}), "population_weight": self.population_weight}
        if self.population_file is not None:
            ident["population_weight_file"] = {
                "path": self.population_file["path"],
                "fitted_on": self.population_file["fitted_on"],
            }
        return ident

    def _check_population(self) -> None:
        """A population w from a file must have been fitted for these parts (names and weights)."""
        if self._population_checked:
            return
        from prefcli_blend import population

        doc = self.population_file
        try:
            population.check_parts(doc, doc["path"], self.general.identity, self.personal.identity)
        except ValueError as e:
            raise OptionError(f"scorer blend: option population_weight = {doc['path']!r}: {e}") from None
        self._population_checked = True

    # -- as a generate reward (both parts differentiable) ------------------------------------
    def check_reward(self) -> None:
        """Before generation: a part that cannot give gradients makes the blend unable to steer; say which."""
        for role, part in (("general", self.general), ("personal", self.personal)):
            if not (part.spec.differentiable and hasattr(part.spec.load_class(), "reward")):
                raise ConfigError(
                    f"--reward blend: its {role} part {part.name} is not differentiable, so the blend cannot steer "
                    f"generation; give it one that is (-o blend.{role} NAME; see `prefcli scorers`, column grad)"
                )

    def parts(self) -> list[Any]:
        """Both parts, loaded (generate freezes their parameters)."""
        return [self.general.scorer, self.personal.scorer]

    def reward(self, pixels: Any, prompts: Sequence[str] | str | None = None, state: Any = None) -> Any:
        """z(general) + w·z(personal) of a batch of images, with gradients.

        As in a ranking, each part is standardised over the batch together with the person's history
        images (the general part's scores of them, the personal part's leave-one-out scores), so a batch
        of one image keeps a scale; w is the person's, fixed from their history (leave-one-out and
        shrinkage, as `rank` chooses it). Both are computed once per history and reused every iteration.
        """
        from prefcli.generate.rewards import call_reward

        if state is None:
            raise ValueError("blend must be conditioned on a history first")
        w, g_hist, p_hist, g_state, p_state = self._reward_state(state)
        gsign = 1.0 if self.general.spec.higher_is_better else -1.0
        psign = 1.0 if self.personal.spec.higher_is_better else -1.0
        g = gsign * call_reward(self.general.scorer, pixels, prompts, g_state).reshape(-1)
        p = psign * call_reward(self.personal.scorer, pixels, prompts, p_state).reshape(-1)
        return _z(g, g_hist) + w * _z(p, p_hist)

    def _reward_state(self, history: UserHistory) -> tuple:
        """(w, general history scores, personal leave-one-out scores, each part's state), once per history."""
        key = history.key()
        cached = self.__dict__.setdefault("_reward_states", {})
        if key not in cached:
            task = RankTask(task_id="reward", candidates=[], liked_index=-1, history=history)
            _, _, evidence = self._run([task], batch_size=self.batch_size)
            ev, g_hist, p_hist = evidence[key]
            cached[key] = (
                ev.weight,
                g_hist,
                p_hist,
                self.general.scorer.condition(None),
                self.personal.scorer.condition(history),
            )
        return cached[key]

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

    def write_population_fit(self, path: Any, records: Sequence[dict], *, fitted_on: dict, provenance: dict) -> dict:
        """`prefcli eval --fit-blend PATH`: the fixed w with the best top-1 over `records` (this blend's run on
        validation users), written atomically with what it was fitted for; returns the document plus its top-1."""
        from prefcli_blend import population

        if not records or any("extras" not in r for r in records):
            raise ValueError("--fit-blend needs the records of a blend run")
        opts = {
            "weight": self.options.weight,
            "population_weight": self.population_weight,
            "shrinkage": self.options.shrinkage,
        }
        doc = population.document(
            records,
            general=self.general.identity,
            personal=self.personal.identity,
            fitted_on=fitted_on,
            options=opts,
            provenance=provenance,
        )
        population.write(path, doc)
        return {**doc, "top1": doc["top1_by_weight"][repr(float(doc["population_weight"]))]}

    # -- the run ------------------------------------------------------------------------
    def run_tasks(
        self,
        tasks: Sequence[RankTask],
        *,
        cache: Any = None,
        batch_size: int = 32,
        progress: bool = False,
        distributed: bool | None = None,
        label: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        **run_options: Any,
    ) -> tuple[list[dict], Any]:
        """One record per task, as `run_scorer` gives them, plus `extras` (per candidate) and `blend` (the evidence).

        `run_options`: further `run_scorer` keywords, given to both parts as they are.
        """
        records, stats, _ = self._run(
            tasks,
            cache=cache,
            batch_size=batch_size,
            progress=progress,
            distributed=distributed,
            label=label,
            on_progress=on_progress,
            **run_options,
        )
        return records, stats

    def _run(
        self,
        tasks: Sequence[RankTask],
        *,
        cache: Any = None,
        batch_size: int = 32,
        progress: bool = False,
        distributed: bool | None = None,
        label: str | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        **run_options: Any,
    ) -> tuple[list[dict], Any, dict]:
        """`run_tasks`, plus per history key (evidence, the general part's history scores, the personal part's
        leave-one-out history scores): the pools that give each part its scale."""
        import numpy as np

        from prefcli.harness.runner import RunStats, run_scorer

        label = label or "blend"
        self._check_population()
        stats = RunStats()
        common = dict(
            cache=cache,
            batch_size=batch_size,
            progress=progress,
            distributed=distributed,
            on_progress=on_progress,
            **run_options,
        )

        # General: each task's candidates and its history's pair images (history-free: shared across tasks).
        hist_images = {}
        for t in tasks:
            hist_images.setdefault(t.history.key(), _pair_images(t.history))
        gtasks = [
            RankTask(
                task_id=f"{t.task_id}/general",
                candidates=list(t.candidates) + hist_images[t.history.key()],
                liked_index=0,
                user_id=t.user_id,
            )
            for t in tasks
        ]
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
            for i, _pr in enumerate(pairs):
                rest = dataclasses.replace(t.history, pairs=tuple(pairs[:i] + pairs[i + 1 :]))
                loo[hk].append(len(ptasks))
                ptasks.append(
                    RankTask(
                        task_id=f"{t.task_id}/loo{i}",
                        candidates=hist_images[hk][2 * i : 2 * i + 2],
                        liked_index=0,
                        history=rest,
                        user_id=t.user_id,
                        n_ref=len(rest),
                    )
                )
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
                {
                    "general": float(gsign * a),
                    "personal": float(psign * b),
                    "z_general": float(c),
                    "z_personal": float(d),
                    "weight": ev.weight,
                    "weight_mode": ev.mode,
                    **why,
                }
                for a, b, c, d in zip(g_cand, p_cand, zg, zp)
            ]
            rec["blend"] = ev.as_dict()
            rec["note"] = ev.sentence()
            records.append(rec)
        return records, stats, evidence

    def _evidence(self, g_hist: Any, p_hist: Any) -> weighting.Evidence:
        o = self.options
        if o.weight != "auto":
            return weighting.fixed(float(o.weight), self.population_weight, o.shrinkage)
        zg = weighting.standardize(g_hist, g_hist)
        zp = weighting.standardize(p_hist, p_hist)
        return weighting.choose_weight(
            zg[0::2] - zg[1::2], zp[0::2] - zp[1::2], population_weight=self.population_weight, shrinkage=o.shrinkage
        )
