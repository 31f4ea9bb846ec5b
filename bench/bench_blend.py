"""`blend` against its parts on synthetic worlds (issue 21): top-1 of general, personal, blend (auto) and
blend at the best fixed w in hindsight, per preset and N_ref, ± standard error over users.

What runs (cheap enough for a shared 2-core machine; nothing is trained but a logistic regression):
- the worlds: presets `opposed` (test users balanced), `default` (4 groups), `default --groups 6`,
  `consensus`, each with a world seed no tuning used (401–404); training users (user seed 0)
  fit the population model, validation users (user seed 2) fit the population w (one per N_ref), unseen test
  users (user seed 1, `--users`, default 160) are measured; each user's first 8 pairs are the
  history (N_ref 1, 2, 4, 8 are its prefixes), the other pairs are 1-vs-1 targets;
- images enter as the world's true visual features φ (12 numbers; `prefcli.data.synthetic`),
  not pixels: the **general** scorer is a population model, a logistic regression on the
  training users' pairs (φ(liked) − φ(disliked)); the **personal** scorer is prefcli's own
  `*-probe` code (`prefcli.probe.ProbeScorer`) on φ instead of CLIP embeddings (`world-features-probe`);
- `blend` is the registered plugin itself, run through the harness's runner and `evaluate`
  (leave-one-out, shrinkage, standardisation: the code `prefcli rank --scorer blend` runs).

    .venv/bin/python bench/bench_blend.py --out runs/blend          # tables, plots, results.json
    .venv/bin/python bench/bench_blend.py --gap-table               # docs/synthetic.md's achievable-gap table

Nothing is timed or asserted; the targets of issue 21 are checked and printed as yes/no.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from prefcli.hookspecs import hookimpl
from prefcli.scorer import EmbeddingScorer, Scorer, ScorerSpec

#: image uid -> φ, and the population model's weights (set per world before scoring).
FEATURES: dict[str, np.ndarray] = {}
POPULATION: dict[str, np.ndarray] = {}

PRESETS = [  # (name, preset, overrides, world seed)
    ("opposed", "opposed", {}, 401),
    ("default", "default", {}, 402),
    ("default --groups 6", "default", {"n_groups": 6}, 403),
    ("consensus", "consensus", {}, 404),
]
N_REFS = (1, 2, 4, 8)
N_BOOT = 200


class WorldFeatures(EmbeddingScorer):
    """φ(image) as the embedding (so prefcli derives `world-features-probe`); its own score is unused."""

    def embed_images(self, candidates):
        return np.stack([FEATURES[c.image_id] for c in candidates]).astype(np.float32)

    def score(self, candidates, state=None):
        return [float(v[0]) for v in self.embed_images(candidates)]


class WorldPopulation(Scorer):
    """The population model: w_pop · φ(image), w_pop fitted on the training users' pairs."""

    def score(self, candidates, state=None):
        w = POPULATION[self.weights]
        return [float(FEATURES[c.image_id] @ w) for c in candidates]


class Plugin:
    @hookimpl
    def register_scorers(self, register):
        register(ScorerSpec(name="world-features", factory="__main__:WorldFeatures", needs=frozenset({"image"}), embedding=True,
                            default_weights="world"))
        register(ScorerSpec(name="world-population", factory="__main__:WorldPopulation", needs=frozenset({"image"}),
                            default_weights="world"))


def world_users(cfg) -> list[tuple[str, list]]:
    """[(user id, [(uid_a, uid_b, label_a), ...])] in the world's pair order, φ recorded in FEATURES."""
    from prefcli.data import synthetic as S

    pool = S.world_pool(cfg)
    for row in pool:
        for im in row:
            FEATURES[im.uid] = np.asarray(im.phi, dtype=np.float64)
    users: dict[str, list] = {}
    for r in S.iter_pairs(cfg, pool):
        users.setdefault(str(r.user_id), []).append((r.image_0.uid, r.image_1.uid, r.label_0))
    return list(users.items())


def fit_population(users) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    d = np.array([FEATURES[a] - FEATURES[b] for _, ps in users for a, b, _ in ps])
    y = np.array([lab for _, ps in users for _, _, lab in ps])
    x = np.concatenate([d, -d])  # both orders: no intercept is learnable, none is wanted
    return LogisticRegression(C=1.0, fit_intercept=False, max_iter=2000).fit(x, np.concatenate([y, 1 - y])).coef_[0]


def tasks_for(users, n_ref: int, n_hist: int = 8) -> list:
    from prefcli.types import Candidate, HistoryPair, RankTask, UserHistory

    tasks = []
    for uid, ps in users:
        pairs = []
        for i, (a, b, lab) in enumerate(ps[:n_hist]):
            liked, disliked = (a, b) if lab == 1.0 else (b, a)
            pairs.append(HistoryPair(Candidate(liked), Candidate(disliked), pair_id=f"{uid}-{i}"))
        hist = UserHistory(pairs=tuple(pairs[:n_ref]), user_id=uid)
        for j, (a, b, lab) in enumerate(ps[n_hist:]):
            tasks.append(RankTask(task_id=f"{uid}-{j}", candidates=[Candidate(a), Candidate(b)], liked_index=0 if lab == 1.0 else 1,
                                  history=hist, user_id=uid, protocol="1v1", n_ref=n_ref))
    return tasks


def run(name: str, weights: str, tasks, cache, n_ref: int, label: str | None = None, **options) -> tuple[dict, list[dict]]:
    from prefcli.harness.evaluate import evaluate
    from prefcli.harness.runner import ScorerHandle

    handle = ScorerHandle(name, weights, device="cpu", cache=cache, options=options or None)
    rec, records = evaluate(handle, tasks, cache=cache, batch_size=256, n_boot=N_BOOT, protocol="1v1", n_ref=n_ref, split="test")
    if label:
        rec["scorer"] = label
    return rec, records


def at_weight(records: list[dict], w: float, n_ref: int, label: str) -> dict:
    """The run record of blend at a fixed w, from a blend run's extras.

    Exact, not an approximation: the z's do not depend on w (the leave-one-out pool is computed
    for any weight), so blend -o weight W scores z_general + W·z_personal of these very extras.
    """
    from prefcli.harness import metrics

    fixed = [{**r, "scores": [e["z_general"] + w * e["z_personal"] for e in r["extras"]]} for r in records]
    return {"scorer": label, "protocol": "1v1", "n_ref": n_ref, "uses_history": True, "n_candidates": 2, "n_tasks": len(records),
            "metrics": metrics.summarize(fixed, n_boot=N_BOOT), "weight": w}


def top1(rec: dict) -> tuple[float, float]:
    m = rec["metrics"]["all"]["top1"]
    return float(m["value"]), float(m["se"] or 0.0)


def measure(name: str, preset: str, overrides: dict, seed: int, n_users: int, cache) -> tuple[list[dict], dict]:
    from prefcli.data import synthetic as S
    from prefcli_blend import weighting

    balanced = {"group_weights": None} if preset != "opposed" else {"group_weights": (0.5, 0.5)}
    base = dict(pairs_per_user=24, world_seed=seed, **overrides)
    train = world_users(S.WorldConfig.from_preset(preset, n_users=300, user_seed=0, pairs_per_user=40, world_seed=seed, **overrides))
    val = world_users(S.WorldConfig.from_preset(preset, n_users=80, user_seed=2, **balanced, **base))
    test = world_users(S.WorldConfig.from_preset(preset, n_users=n_users, user_seed=1, **balanced, **base))
    w = f"world-{preset}-{seed}-{json.dumps(overrides, sort_keys=True)}"
    POPULATION[w] = fit_population(train)
    parts = {"general": "world-population", "personal": "world-features-probe", "general_weights": w, "personal_weights": w}

    # The population w, one per N_ref (how much a history of that length can be trusted): the fixed w
    # with the best top-1 on the validation users (ties: the smaller w). Test users never enter it.
    val_records = {n: run("blend", w, tasks_for(val, n), cache, n, **parts)[1] for n in N_REFS}
    val_acc = {n: {g: top1(at_weight(val_records[n], g, n, ""))[0] for g in weighting.GRID} for n in N_REFS}
    w0s = {n: max(val_acc[n], key=lambda g: (val_acc[n][g], -g)) for n in N_REFS}

    runs = []
    for n in N_REFS:
        tasks = tasks_for(test, n)
        if n == N_REFS[0]:
            runs.append(run("world-population", w, tasks, cache, n, label="general: population model")[0])
        runs.append(run("world-features-probe", w, tasks, cache, n, label="personal (probe)")[0])
        auto, records = run("blend", w, tasks, cache, n, label="blend auto", population_weight=str(w0s[n]), **parts)
        auto["population_w"] = w0s[n]
        runs.append(auto)
        fixed = [at_weight(records, g, n, "blend best fixed w") for g in weighting.GRID]
        best = max(fixed, key=lambda r: top1(r)[0])
        best["best_w"] = best["weight"]
        runs.append(best)
        chosen = [r["extras"][0]["weight"] for r in records]
        auto["chosen_w"] = {"mean": float(np.mean(chosen)), "median": float(np.median(chosen))}
    return runs, {"population_w": {str(n): g for n, g in w0s.items()},
                  "validation_top1_by_w": {str(n): {str(g): v for g, v in acc.items()} for n, acc in val_acc.items()},
                  "population_model": POPULATION[w].tolist(), "test_users": n_users, "world_seed": seed}


def targets(runs: Sequence[dict]) -> list[dict]:
    """Issue 21's targets per N_ref: auto ≥ general, ≥ personal − 1 SE, within 1 SE of the best fixed w."""
    gen = top1(next(r for r in runs if r["scorer"].startswith("general")))
    rows = []
    for n in N_REFS:
        by = {r["scorer"]: top1(r) for r in runs if r.get("n_ref") == n}
        best_w = next(r.get("best_w") for r in runs if r.get("n_ref") == n and r["scorer"] == "blend best fixed w")
        auto, per, best = by["blend auto"], by["personal (probe)"], by["blend best fixed w"]
        rows.append({"n_ref": n, "general": gen[0], "personal": per[0], "auto": auto[0], "auto_se": auto[1], "best_fixed": best[0],
                     "best_w": best_w, "auto_ge_general": auto[0] >= gen[0], "auto_ge_personal_minus_se": auto[0] >= per[0] - per[1],
                     "auto_within_se_of_best": auto[0] >= best[0] - auto[1]})
    return rows


def gap_table() -> None:
    from prefcli.data import synthetic as S

    print("| world | population utility | group utility | own utility | gap (group − population) |")
    print("|---|---|---|---|---|")
    for name, preset, kw in [("`opposed` (balanced)", "opposed", {}), ("`default` (4 groups)", "default", {}),
                             ("`default --groups 6`", "default", {"n_groups": 6}), ("`default --groups 8`", "default", {"n_groups": 8}),
                             ("`consensus` (4 groups)", "consensus", {})]:
        accs = []
        for ws in range(3):
            cfg = S.WorldConfig.from_preset(preset, n_users=200, world_seed=ws, group_weights=(0.5, 0.5) if preset == "opposed" else None, **kw)
            W = S.group_weight_vectors(cfg)
            pop = W.mean(0)
            acc, n = np.zeros(3), 0
            for r in S.iter_pairs(cfg, S.world_pool(cfg), W):
                d = r.image_0.phi - r.image_1.phi
                for k, w in enumerate((pop, W[r.group], S.user_weights(cfg, W, r.group, r.user_index))):
                    s = float(w @ d)
                    acc[k] += r.p_0 if s > 0 else (1 - r.p_0) if s < 0 else 0.5
                n += 1
            accs.append(acc / n)
        a = np.mean(accs, 0)
        print(f"| {name} | {a[0]:.3f} | {a[1]:.3f} | {a[2]:.3f} | {a[1] - a[0]:.3f} |")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/blend", help="Folder for results.json, tables and plots.")
    ap.add_argument("--users", type=int, default=160, help="Unseen test users per preset (≥ 120 for issue 21).")
    ap.add_argument("--only", default="", help="Comma-separated preset names (default: all four).")
    ap.add_argument("--gap-table", action="store_true", help="Print docs/synthetic.md's achievable-gap table and stop.")
    args = ap.parse_args(argv)
    if args.gap_table:
        gap_table()
        return
    os.environ.setdefault("PREFCLI_LOAD_PLUGINS", "blend")
    from prefcli import plugins
    from prefcli.harness import plots, tables
    from prefcli.harness.cache import CacheDir

    plugins.register_plugin(Plugin(), name="bench-blend-world")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = CacheDir(tmp)
        for name, preset, overrides, seed in PRESETS:
            if only and name not in only:
                continue
            runs, info = measure(name, preset, overrides, seed, args.users, cache)
            stem = name.replace(" --groups ", "-g")
            table = tables.nref_table(runs)
            w0s = ", ".join(f"{g:g}" for g in info["population_w"].values())
            table.title = f"{name} (world seed {seed}, {args.users} unseen users, population w at N_ref 1/2/4/8: {w0s}): top-1 vs N_ref"
            # The general scorer reads no history: one row, beside the N_ref sweep.
            g = top1(runs[0])
            print(table.render("markdown") if hasattr(table, "render") else table)
            print(f"general (population model, no history): {100 * g[0]:.1f} ± {100 * g[1]:.1f}")
            tg = targets(runs)
            for r in runs:
                if r.get("chosen_w"):
                    print(f"  N_ref {r['n_ref']}: blend auto's w over users: mean {r['chosen_w']['mean']:.2f}, median {r['chosen_w']['median']:.2f}")
            for t in tg:
                print(f"  N_ref {t['n_ref']}: auto ≥ general {'yes' if t['auto_ge_general'] else 'NO'}; "
                      f"≥ personal − SE {'yes' if t['auto_ge_personal_minus_se'] else 'NO'}; "
                      f"within SE of best fixed w ({t['best_w']:g}) {'yes' if t['auto_within_se_of_best'] else 'NO'}")
            paths = plots.nref_plot(runs, out / f"blend-{stem}", formats=["png"])
            print(f"  plot: {', '.join(str(p) for p in paths)}\n")
            results[name] = {"runs": runs, "targets": tg, **info}
        cache.close()
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
