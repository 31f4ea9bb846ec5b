"""Synthetic-world metrics: group-balanced accuracy, the history swap, and ground-truth references.

On a synthetic taste world (``prefcli data synthetic``) every user belongs to
a taste group and the world keeps its hidden variables, so an evaluation can
say more than a raw accuracy:

- **group-balanced accuracy**: the mean of the groups' accuracies. Training
  users may be unevenly split between groups (the ``opposed`` preset is
  80/20), so a raw accuracy mostly measures the majority group; balanced, a
  model that learned only the average taste of two opposed groups scores 0.5.
- **history swap**: every task's history replaced by the history of a user
  from *another* group (same targets, same images). A model that ignores the
  history scores the same as without the swap; one that reads it falls.
- **references** computed from the world's ground truth on the very same
  tasks: the user's own utility (the ceiling), the group's utility, the
  training population's mean utility (the best a history-free model can
  learn), the Bayes-optimal group read from the task's history pairs (the
  best possible from that history: posterior over the groups under the
  world's label model, training prior), and a per-user logistic fit on the
  history pairs' true features.
- **gap fraction** = (model - population) / (Bayes from history - population):
  how much of what the history can add a model actually gets.

Hits use the harness's tie rule (``metrics.top1_hit``): a tie for first is
a miss. Tasks can be harness ``RankTask``s or the trainer's ``EvalTask``s
(``task_view`` reads both). Nothing here imports torch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prefcli.harness.metrics import top1_hit

REFERENCES = ("user utility", "group utility", "population utility", "history: Bayes group", "history: logistic fit")


@dataclass(frozen=True)
class TaskView:
    """What the world metrics need of a task, whatever its type."""

    user_id: str
    seen: bool | None
    candidates: tuple  # image ids
    liked_index: int
    history: tuple  # (liked image id, disliked image id) per pair


def _image_id(x: Any) -> str:
    return x if isinstance(x, str) else x.image_id


def task_view(t: Any) -> TaskView:
    hist = t.history.pairs if hasattr(t.history, "pairs") else t.history
    user = t.user_id if getattr(t, "user_id", None) is not None else getattr(t.history, "user_id", None)
    return TaskView(
        str(user),
        t.seen,
        tuple(_image_id(c) for c in t.candidates),
        int(t.liked_index),
        tuple((_image_id(p.liked), _image_id(p.disliked)) for p in hist),
    )


def hit(scores: Sequence[float], liked_index: int) -> bool:
    """Top-1 hit under the harness's rule (ties and NaN count against the liked image)."""
    return top1_hit(scores, liked_index)


# ---------------------------------------------------------------------------
# balanced accuracy and the swap


def balanced(hits: Sequence[bool], groups: Sequence[int]) -> float:
    """Mean over groups of each group's accuracy (NaN without tasks)."""
    by: dict[int, list[bool]] = {}
    for h, g in zip(hits, groups):
        by.setdefault(int(g), []).append(bool(h))
    return float(np.mean([np.mean(v) for v in by.values()])) if by else float("nan")


def by_split(hits: Sequence[bool], tasks: Sequence[TaskView], groups: Sequence[int]) -> dict:
    """{"all"|"seen"|"unseen": {"balanced", "raw", "n_tasks", "per_group"}} (splits without tasks left out)."""
    out: dict = {}
    for name in ("all", "seen", "unseen"):
        idx = [i for i, t in enumerate(tasks) if name == "all" or (t.seen is True) == (name == "seen")]
        if name != "all" and not any(tasks[i].seen is not None for i in idx):
            continue
        if not idx:
            continue
        h = [bool(hits[i]) for i in idx]
        g = [int(groups[i]) for i in idx]
        per = {}
        for k in sorted(set(g)):
            sel = [x for x, gg in zip(h, g) if gg == k]
            per[str(k)] = {"accuracy": float(np.mean(sel)), "n_tasks": len(sel)}
        out[name] = {"balanced": balanced(h, g), "raw": float(np.mean(h)), "n_tasks": len(h), "per_group": per}
    return out


def swap_donors(tasks: Sequence[Any], groups: Sequence[int]) -> list[int]:
    """For each task, the index of a task of a user in another group whose history it gets.

    Deterministic round robin: the k-th task of group g takes the k-th task
    (cyclically) of the k-th other group (cyclically), so every other group
    donates and a donor's history is reused as evenly as possible.
    """
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(int(g), []).append(i)
    used = {g: 0 for g in members}
    out = []
    for i, g in enumerate(groups):
        g = int(g)
        others = sorted(k for k in members if k != g)
        if not others:  # a world of one group has nothing to swap with
            out.append(i)
            continue
        k = used[g]
        d = others[k % len(others)]
        out.append(members[d][(k // len(others)) % len(members[d])])
        used[g] += 1
    return out


def gap_fraction(model: float | None, population: float, best: float) -> float | None:
    """(model - population) / (best - population); None when the history cannot add anything."""
    if model is None or not math.isfinite(model) or not best - population > 1e-9:
        return None
    return (model - population) / (best - population)


# ---------------------------------------------------------------------------
# the world


def find_world(dataset: Any) -> Path | None:
    """The synthetic world a dataset was built from, or None for any other dataset.

    Looks next to the dataset (``../world``, how the toy configs cache them)
    and at the local source the builder recorded in dataset.json
    (``source.location``; a relative one is relative to the dataset's folder).
    The builders put a dataset inside its world or beside it
    (``prefcli data pickapic --source WORLD --out ...``), so a recorded
    location is followed only when, every link resolved, it lies under the
    dataset's parent folder; a world elsewhere is not read, and a warning
    says so (an evaluation then has no world rows).
    """
    root = Path(getattr(dataset, "root", None) or getattr(dataset, "path", None) or dataset)
    if (root.parent / "world" / "world.json").is_file():
        return root.parent / "world"
    info = getattr(dataset, "info", None)
    if info is None and (root / "dataset.json").is_file():
        from prefcli.errors import DataError
        from prefcli.jsonio import read_json

        try:
            info = read_json(root / "dataset.json")
        except DataError:
            info = None
    src = (info or {}).get("source") or {}
    if not isinstance(src, dict):  # some datasets name their source with a plain string
        src = {}
    location = src.get("location")
    if not location or not isinstance(location, str) or "\0" in location:
        return None
    from prefcli.paths import is_inside

    place = root / location  # an absolute location stays as it is
    home = Path(os.path.realpath(root)).parent  # the real folder the dataset lies in
    if is_inside(home, place):
        place = Path(os.path.realpath(place))  # what is opened is what was checked
        return place if (place / "world.json").is_file() else None
    if os.path.isfile(os.path.join(os.path.realpath(place), "world.json")):
        # Said only where a world was there to miss: a dataset imported from a folder elsewhere (PAMELA,
        # Pick-a-Pic shards) records that folder too, and it holds no world.
        import warnings

        warnings.warn(
            f"{root / 'dataset.json'}: source.location {location!r} is a world outside {home}, the folder that "
            "holds this dataset; it is not read (a world is read only around or beside its dataset), "
            "so there are no world rows",
            stacklevel=2,
        )
    return None


class World:
    """A synthetic world's ground truth, addressed by dataset image ids."""

    def __init__(self, world_dir: str | os.PathLike, train_users: Sequence[Any] | None = None) -> None:
        from prefcli.data.synthetic import dataset_image_uids, load_truth

        self.dir = Path(world_dir)
        self.truth = load_truth(self.dir)
        self.uid = dataset_image_uids(self.dir)
        self.T = float(self.truth.config.temperature)
        self.G = np.asarray(self.truth.group_weights)
        users = [int(u) for u in train_users] if train_users else list(self.truth.user_weights)
        users = [u for u in users if u in self.truth.user_weights]
        W = np.stack([self.truth.user_weights[u] for u in users])
        self.population_weights = W.mean(0)
        g = [self.truth.user_group[u] for u in users]
        self.prior = np.bincount(g, minlength=len(self.G)) / max(1, len(g))
        self._phi: dict[str, np.ndarray] = {}
        self._by_history: dict = {}  # (kind, history) -> weights: a user's tasks share one history

    @property
    def n_groups(self) -> int:
        return int(len(self.G))

    def describe(self) -> dict:
        c = self.truth.config
        return {
            "world": str(self.dir),
            "preset": c.preset,
            "groups": c.n_groups,
            "shared_taste": c.shared_taste,
            "world_seed": c.world_seed,
            "user_seed": c.user_seed,
            "temperature": c.temperature,
            "training_prior": [round(float(x), 4) for x in self.prior],
        }

    def phi(self, image_id: str) -> np.ndarray:
        v = self._phi.get(image_id)
        if v is None:
            v = self.truth.features(self.uid.get(image_id, image_id))
            self._phi[image_id] = v
        return v

    def group(self, user_id: Any) -> int:
        return int(self.truth.user_group[int(user_id)])

    def knows(self, user_id: Any) -> bool:
        try:
            return int(user_id) in self.truth.user_group
        except (TypeError, ValueError):
            return False

    def _hit(self, w: np.ndarray, t: TaskView) -> bool:
        return hit([float(w @ self.phi(c)) for c in t.candidates], t.liked_index)

    def posterior(self, history: Sequence[tuple[str, str]]) -> np.ndarray:
        """P(group | history pairs) under the world's label model with the training prior."""
        logp = np.log(self.prior + 1e-12)
        if history:
            d = np.stack([self.phi(a) - self.phi(b) for a, b in history])  # (n, F)
            z = (d @ self.G.T) / self.T  # (n, groups)
            logp = logp + np.sum(-np.logaddexp(0.0, -z), axis=0)
        p = np.exp(logp - logp.max())
        return p / p.sum()

    def reference(self, name: str) -> Callable[[TaskView], bool]:
        if name == "user utility":
            return lambda t: self._hit(self.truth.user_weights[int(t.user_id)], t)
        if name == "group utility":
            return lambda t: self._hit(self.G[self.group(t.user_id)], t)
        if name == "population utility":
            return lambda t: self._hit(self.population_weights, t)
        if name == "history: Bayes group":
            return lambda t: self._hit(self._memo("bayes", t.history, lambda h: self.posterior(h) @ self.G), t)
        if name == "history: logistic fit":
            return self._logistic
        raise KeyError(name)

    def _memo(self, kind: str, history: tuple, fn: Callable[[tuple], np.ndarray]) -> np.ndarray:
        key = (kind, history)
        w = self._by_history.get(key)
        if w is None:
            w = self._by_history[key] = fn(history)
        return w

    def _logistic_weights(self, history: tuple) -> np.ndarray:
        """L2-regularized logistic regression on the pairs' feature differences (both orientations):
        scikit-learn's objective with C = 1 and no intercept, solved by Newton's method (it is
        strictly convex; a few iterations on 16 rows), hundreds of times faster than a fit per task."""
        d = np.stack([self.phi(a) - self.phi(b) for a, b in history])
        X = np.concatenate([d, -d])
        y = np.concatenate([np.ones(len(d)), np.zeros(len(d))])
        w = np.zeros(X.shape[1])
        eye = np.eye(X.shape[1])
        for _ in range(50):
            p = 1.0 / (1.0 + np.exp(-(X @ w)))
            grad = w + X.T @ (p - y)
            hess = eye + (X * (p * (1 - p))[:, None]).T @ X
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.abs(step).max() < 1e-10:
                break
        return w

    def _logistic(self, t: TaskView) -> bool:
        if not t.history:
            return False
        return self._hit(self._memo("logistic", t.history, self._logistic_weights), t)

    def references(self, tasks: Sequence[TaskView], names: Sequence[str] = REFERENCES) -> dict[str, list[bool]]:
        return {n: [self.reference(n)(t) for t in tasks] for n in names}


def world_report(
    world: World,
    tasks: Sequence[Any],
    hits: Sequence[bool] | None = None,
    swap_hits: Sequence[bool] | None = None,
    references: bool = True,
) -> dict:
    """Everything above for one model on one task list: balanced splits, swap, references, gap fraction."""
    views = [task_view(t) for t in tasks]
    groups = [world.group(t.user_id) for t in views]
    rep: dict[str, Any] = {"world": world.describe(), "n_tasks": len(views)}
    refs = world.references(views) if references else {}
    rep["references"] = {n: by_split(h, views, groups) for n, h in refs.items()}
    if hits is not None:
        rep["model"] = by_split(hits, views, groups)
    if swap_hits is not None:
        rep["swap"] = by_split(swap_hits, views, groups)
    if hits is not None and refs:
        pop, best = rep["references"]["population utility"], rep["references"]["history: Bayes group"]
        rep["gap_fraction"] = {
            s: gap_fraction(rep["model"][s]["balanced"], pop[s]["balanced"], best[s]["balanced"])
            for s in rep["model"]
            if s in pop
        }
    return rep


# ---------------------------------------------------------------------------
# `prefcli eval` on a synthetic world


def scorer_reads_history(handle: Any) -> bool:
    """Whether a scorer conditions on the history: its kind does, and a loaded model does not say otherwise
    (a population checkpoint under the preftoken scorer is scored without one)."""
    if not handle.uses_history:
        return False
    return bool(getattr(handle.scorer, "reads_history", True))


def swapped_tasks(tasks: Sequence[Any], donors: Sequence[int]) -> list:
    """The same RankTasks with task donors[i]'s history (same candidates, same user and split)."""
    import dataclasses

    return [
        dataclasses.replace(t, task_id=f"{t.task_id}#swap", history=tasks[d].history) for t, d in zip(tasks, donors)
    ]


def evaluate_on_world(
    handle: Any,
    tasks: Sequence[Any],
    records: Sequence[dict],
    world: World,
    *,
    cache: Any = None,
    batch_size: int = 32,
    progress: bool = False,
) -> dict:
    """Balanced accuracy, history swap (a second, cached run with swapped histories), references, gap fraction."""
    from prefcli.harness.runner import run_scorer

    hits = [hit(r["scores"], r["liked_index"]) for r in records]
    swap_hits = None
    reads = scorer_reads_history(handle)
    if reads:
        groups = [world.group(task_view(t).user_id) for t in tasks]
        sw = swapped_tasks(tasks, swap_donors(tasks, groups))
        sw_records, _ = run_scorer(
            handle, sw, cache=cache, batch_size=batch_size, progress=progress, label=f"{handle.name}: history swap"
        )
        swap_hits = [hit(r["scores"], r["liked_index"]) for r in sw_records]
    rep = world_report(world, tasks, hits, swap_hits)
    rep["reads_history"] = reads
    return rep


def world_table(rep: dict, scorer: str) -> Any:
    """The eval's second table: the model beside the world's references, group-balanced."""
    from prefcli.harness.tables import Column, Table

    splits = [s for s in ("seen", "unseen", "all") if s in rep.get("model", {})]
    if "seen" in splits or "unseen" in splits:
        splits = [s for s in splits if s != "all"]
    cols = [Column("row", "")]
    for s in splits:
        cols.append(Column(s, f"{s} balanced (%)", percent=True))  # rows hold fractions (CSV/JSON), shown as %
    for s in splits:
        cols.append(Column(f"{s}_raw", f"{s} raw (%)", percent=True))
    cols.append(Column("gap", "gap closed (unseen)" if "unseen" in splits else "gap closed", digits=2))

    def row(name: str, r: dict | None, baseline: bool = False) -> dict:
        out: dict[str, Any] = {"row": name, "baseline": baseline}
        for s in splits:
            out[s] = None if not r or s not in r else r[s]["balanced"]
            out[f"{s}_raw"] = None if not r or s not in r else r[s]["raw"]
        return out

    rows = [row(scorer, rep.get("model"))]
    key = "unseen" if "unseen" in splits else (splits[0] if splits else "all")
    rows[0]["gap"] = (rep.get("gap_fraction") or {}).get(key)
    rows.append(
        row(
            f"{scorer}, history swapped" if rep.get("swap") else f"{scorer}, history swap: n/a (history-free)",
            rep.get("swap"),
        )
    )
    if rep.get("swap"):
        pop, best = rep["references"]["population utility"], rep["references"]["history: Bayes group"]
        rows[-1]["gap"] = (
            gap_fraction(rep["swap"][key]["balanced"], pop[key]["balanced"], best[key]["balanced"])
            if key in rep["swap"]
            else None
        )
    for name, r in rep["references"].items():
        rows.append(row(f"ref: {name}", r, baseline=True))
    w = rep["world"]
    title = (
        f"synthetic world · {w['preset']} · {w['groups']} groups · world seed {w['world_seed']} · "
        f"user seed {w['user_seed']}"
    )
    note = (
        "balanced = mean of the taste groups' top-1 accuracies; swap = each task given the history of a user "
        "from another group; gap closed = (model − population utility) / (Bayes group from the history − "
        "population utility); ties count as misses"
    )
    return Table("world", title, cols, rows, note=note)
