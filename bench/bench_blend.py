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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
        register(
            ScorerSpec(
                name="world-features",
                factory="__main__:WorldFeatures",
                needs=frozenset({"image"}),
                embedding=True,
                default_weights="world",
            )
        )
        register(
            ScorerSpec(
                name="world-population",
                factory="__main__:WorldPopulation",
                needs=frozenset({"image"}),
                default_weights="world",
            )
        )


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


def tasks_for(users, n_ref: int, n_hist: int = 8, make=None) -> list:
    """1-vs-1 tasks: each user's first `n_hist` pairs are the history (N_ref its prefix), the others targets.
    `make(uid)`: the candidate of an image (default: its id alone, for the feature stand-ins)."""
    from prefcli.types import Candidate, HistoryPair, RankTask, UserHistory

    make = make or Candidate
    tasks = []
    for uid, ps in users:
        pairs = []
        for i, (a, b, lab) in enumerate(ps[:n_hist]):
            liked, disliked = (a, b) if lab == 1.0 else (b, a)
            lc, dc = make(liked), make(disliked)
            pairs.append(HistoryPair(lc, dc, prompt=lc.prompt, pair_id=f"{uid}-{i}"))
        hist = UserHistory(pairs=tuple(pairs[:n_ref]), user_id=uid)
        for j, (a, b, lab) in enumerate(ps[n_hist:]):
            tasks.append(
                RankTask(
                    task_id=f"{uid}-{j}",
                    candidates=[make(a), make(b)],
                    liked_index=0 if lab == 1.0 else 1,
                    history=hist,
                    user_id=uid,
                    protocol="1v1",
                    n_ref=n_ref,
                )
            )
    return tasks


def run(
    name: str, weights: str, tasks, cache, n_ref: int, label: str | None = None, **options
) -> tuple[dict, list[dict]]:
    from prefcli.harness.evaluate import evaluate
    from prefcli.harness.runner import ScorerHandle

    handle = ScorerHandle(name, weights, device="cpu", cache=cache, options=options or None)
    rec, records = evaluate(
        handle, tasks, cache=cache, batch_size=256, n_boot=N_BOOT, protocol="1v1", n_ref=n_ref, split="test"
    )
    if label:
        rec["scorer"] = label
    return rec, records


def history_free(rec: dict) -> dict:
    """The general part's run, marked as reading no history (the population model: preftoken without one), so
    the N_ref plot draws it as a line across every N_ref instead of one point at the first."""
    return {**rec, "uses_history": False}


def at_weight(records: list[dict], w: float, n_ref: int, label: str) -> dict:
    """The run record of blend at a fixed w, from a blend run's extras.

    Exact, not an approximation: the z's do not depend on w (the leave-one-out pool is computed
    for any weight), so blend -o weight W scores z_general + W·z_personal of these very extras.
    """
    from prefcli.harness import metrics

    fixed = [{**r, "scores": [e["z_general"] + w * e["z_personal"] for e in r["extras"]]} for r in records]
    return {
        "scorer": label,
        "protocol": "1v1",
        "n_ref": n_ref,
        "uses_history": True,
        "n_candidates": 2,
        "n_tasks": len(records),
        "metrics": metrics.summarize(fixed, n_boot=N_BOOT),
        "weight": w,
    }


def top1(rec: dict) -> tuple[float, float]:
    m = rec["metrics"]["all"]["top1"]
    return float(m["value"]), float(m["se"] or 0.0)


def measure(name: str, preset: str, overrides: dict, seed: int, n_users: int, cache) -> tuple[list[dict], dict]:
    from prefcli.data import synthetic as S
    from prefcli_blend import weighting

    balanced = {"group_weights": None} if preset != "opposed" else {"group_weights": (0.5, 0.5)}
    base = dict(pairs_per_user=24, world_seed=seed, **overrides)
    train = world_users(
        S.WorldConfig.from_preset(preset, n_users=300, user_seed=0, pairs_per_user=40, world_seed=seed, **overrides)
    )
    val = world_users(S.WorldConfig.from_preset(preset, n_users=80, user_seed=2, **balanced, **base))
    test = world_users(S.WorldConfig.from_preset(preset, n_users=n_users, user_seed=1, **balanced, **base))
    w = f"world-{preset}-{seed}-{json.dumps(overrides, sort_keys=True)}"
    POPULATION[w] = fit_population(train)
    parts = {
        "general": "world-population",
        "personal": "world-features-probe",
        "general_weights": w,
        "personal_weights": w,
    }

    # The population w, one per N_ref (how much a history of that length can be trusted): the fixed w
    # with the best top-1 on the validation users (ties: the smaller w). Test users never enter it.
    val_records = {n: run("blend", w, tasks_for(val, n), cache, n, **parts)[1] for n in N_REFS}
    val_acc = {n: {g: top1(at_weight(val_records[n], g, n, ""))[0] for g in weighting.GRID} for n in N_REFS}
    w0s = {n: max(val_acc[n], key=lambda g: (val_acc[n][g], -g)) for n in N_REFS}

    runs = []
    for n in N_REFS:
        tasks = tasks_for(test, n)
        if n == N_REFS[0]:
            runs.append(history_free(run("world-population", w, tasks, cache, n, label="general: population model")[0]))
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
    return runs, {
        "population_w": {str(n): g for n, g in w0s.items()},
        "validation_top1_by_w": {str(n): {str(g): v for g, v in acc.items()} for n, acc in val_acc.items()},
        "population_model": POPULATION[w].tolist(),
        "test_users": n_users,
        "world_seed": seed,
    }


# ---------------------------------------------------------------------------------------------------
# With trained models: the images themselves, a trained population model as the general part, the
# shipped toy recipe (tiny-cpu-cp) and clip-probe (tiny) as the personal parts.

#: (name, preset, overrides, world seed, models): the models' folder under --trained, or shipped names.
TRAINED_PRESETS = [
    ("opposed", "opposed", {}, 0, ("tiny-opposed-population", "tiny-opposed-cp")),
    ("default", "default", {}, 502, None),
    ("default --groups 6", "default", {"n_groups": 6}, 503, None),
    ("consensus", "consensus", {}, 504, None),
]
#: User seeds of the measured people: never a training seed (training used user seed = world seed, or 0).
VAL_USER_SEED, TEST_USER_SEED = 1002, 1001
IMAGES: dict[str, Any] = {}  # image uid -> (PoolImage, image size)


def image_candidate(uid: str):
    """The rendered picture of a pool image, as the dataset builder stores it (PNG) and the scorers open it."""
    import io

    from PIL import Image

    from prefcli.data import synthetic as S
    from prefcli.types import Candidate

    im, size = IMAGES[uid]

    def load():
        return Image.open(io.BytesIO(S.png_bytes(S.render_image(im.attrs, size)))).convert("RGB")

    return Candidate(uid, prompt=im.prompt, loader=load)


def trained_users(cfg) -> list[tuple[str, list]]:
    from prefcli.data import synthetic as S

    for row in S.world_pool(cfg):
        for im in row:
            IMAGES[im.uid] = (im, cfg.image_size)
    users: dict[str, list] = {}
    for r in S.iter_pairs(cfg):
        users.setdefault(str(r.user_id), []).append((r.image_0.uid, r.image_1.uid, r.label_0))
    return list(users.items())


def model_dirs(trained: Path | None, name: str, shipped: tuple[str, str] | None) -> tuple[str, str] | None:
    """(population model, toy-recipe model): trained ones under --trained/<stem>/, else the shipped ones, else None."""
    stem = name.replace(" --groups ", "-g")
    if trained is not None:
        pop, cp = trained / stem / "tiny-cpu-population" / "model", trained / stem / "tiny-cpu-cp" / "model"
        if pop.is_dir() and cp.is_dir():
            return str(pop), str(cp)
        if pop.is_dir() and shipped is None:  # the toy recipe still training: the probe can be measured already
            return str(pop), ""
    return shipped


def measure_trained(
    name: str,
    preset: str,
    overrides: dict,
    seed: int,
    models: tuple[str, str],
    n_users: int,
    n_val: int,
    cache,
    parts_wanted: Sequence[str] = ("toy recipe", "clip-probe"),
) -> tuple[list[dict], dict]:
    """general: the population model; personal: the toy recipe and clip-probe; blend auto (w₀ fitted on validation
    users per N_ref, by `prefcli eval --fit-blend`'s rule) and at the best fixed w in hindsight, for each personal part."""
    from prefcli.data import synthetic as S
    from prefcli_blend import population

    pop, cp = models
    balanced = {"group_weights": (0.5, 0.5)} if preset == "opposed" else {"group_weights": None}
    base = dict(pairs_per_user=24, world_seed=seed, image_size=32, **balanced, **overrides)
    val = trained_users(S.WorldConfig.from_preset(preset, n_users=n_val, user_seed=VAL_USER_SEED, **base))
    test = trained_users(S.WorldConfig.from_preset(preset, n_users=n_users, user_seed=TEST_USER_SEED, **base))
    personals = [
        p
        for p in [("toy recipe (tiny-cpu-cp)", "preftoken", cp), ("clip-probe (tiny)", "clip-probe", "tiny")]
        if p[0].split(" (")[0] in parts_wanted
    ]
    runs, info = (
        [],
        {
            "population_model": pop,
            "toy_recipe_model": cp,
            "world_seed": seed,
            "test_users": n_users,
            "val_users": n_val,
            "user_seeds": {"val": VAL_USER_SEED, "test": TEST_USER_SEED},
            "population_w": {},
        },
    )
    gen = {"general": "preftoken", "general_weights": pop}
    for n in N_REFS:
        tasks = tasks_for(test, n, make=image_candidate)
        if n == N_REFS[0]:
            runs.append(history_free(run("preftoken", pop, tasks, cache, n, label="general: population model")[0]))
        for label, pname, pweights in personals:
            short = label.split(" (")[0]
            runs.append(run(pname, pweights, tasks, cache, n, label=f"personal: {label}")[0])
            parts = {**gen, "personal": pname, "personal_weights": pweights}
            val_records = run("blend", None, tasks_for(val, n, make=image_candidate), cache, n, **parts)[1]
            w0 = population.best_weight(population.top1_by_weight(val_records))
            info["population_w"].setdefault(short, {})[str(n)] = w0
            auto, records = run(
                "blend", None, tasks, cache, n, label=f"blend auto ({short})", population_weight=str(w0), **parts
            )
            auto["population_w"] = w0
            chosen = [r["extras"][0]["weight"] for r in records]
            auto["chosen_w"] = {"mean": float(np.mean(chosen)), "median": float(np.median(chosen))}
            runs.append(auto)
            best = max(
                (at_weight(records, g, n, f"blend best fixed w ({short})") for g in weighting_grid()),
                key=lambda r: top1(r)[0],
            )
            best["best_w"] = best["weight"]
            runs.append(best)
    return runs, info


def weighting_grid():
    from prefcli_blend import weighting

    return weighting.GRID


def targets_trained(runs: Sequence[dict]) -> list[dict]:
    """Issue 21's targets per personal part and N_ref, as `targets` checks them."""
    gen = top1(next(r for r in runs if r["scorer"].startswith("general")))
    rows = []
    for short, plabel in (
        ("toy recipe", "personal: toy recipe (tiny-cpu-cp)"),
        ("clip-probe", "personal: clip-probe (tiny)"),
    ):
        if not any(r["scorer"] == plabel for r in runs):
            continue
        for n in N_REFS:
            by = {r["scorer"]: (top1(r), r) for r in runs if r.get("n_ref") == n}
            (auto, _), (per, _), (best, brec) = (
                by[f"blend auto ({short})"],
                by[plabel],
                by[f"blend best fixed w ({short})"],
            )
            rows.append(
                {
                    "personal": short,
                    "n_ref": n,
                    "general": gen[0],
                    "general_se": gen[1],
                    "personal_top1": per[0],
                    "personal_se": per[1],
                    "auto": auto[0],
                    "auto_se": auto[1],
                    "best_fixed": best[0],
                    "best_w": brec["best_w"],
                    "auto_ge_general": auto[0] >= gen[0],
                    "auto_ge_personal_minus_se": auto[0] >= per[0] - per[1],
                    "auto_within_se_of_best": auto[0] >= best[0] - auto[1],
                }
            )
    return rows


def main_trained(args) -> None:
    from prefcli.harness import plots, tables
    from prefcli.harness.cache import CacheDir
    from prefcli.output import to_markdown

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    results = {}
    cache = CacheDir(out / "cache")  # scores of the parts: a rerun (or another preset's) recomputes nothing it has
    for name, preset, overrides, seed, shipped in TRAINED_PRESETS:
        if only and name not in only:
            continue
        models = model_dirs(Path(args.trained), name, shipped)
        if models is None:
            print(
                f"{name}: no trained models under {args.trained}/{name.replace(' --groups ', '-g')}/ (train them with "
                f"bench/bench_toy_training.py --only population,cp); skipped\n"
            )
            continue
        wanted = [p.strip() for p in args.personal.split(",")]
        if not models[1]:
            wanted = [p for p in wanted if p != "toy recipe"]
        runs, info = measure_trained(name, preset, overrides, seed, models, args.users, args.val_users, cache, wanted)
        stem = name.replace(" --groups ", "-g")
        table = tables.nref_table(runs)
        table.title = f"{name} (world seed {seed}, {args.users} unseen users, trained models): top-1 vs N_ref"
        print(table.render("markdown") if hasattr(table, "render") else table)
        g = top1(runs[0])
        print(f"general (population model, no history): {100 * g[0]:.1f} ± {100 * g[1]:.1f}")
        tg = targets_trained(runs)
        print(
            to_markdown(
                tg,
                [
                    "personal",
                    "n_ref",
                    "general",
                    "personal_top1",
                    "personal_se",
                    "auto",
                    "auto_se",
                    "best_fixed",
                    "best_w",
                    "auto_ge_general",
                    "auto_ge_personal_minus_se",
                    "auto_within_se_of_best",
                ],
                digits=3,
            )
        )
        print("population w per N_ref:", json.dumps(info["population_w"]))
        paths = plots.nref_plot(runs, out / f"blend-trained-{stem}", formats=["png"])
        print(f"  plot: {', '.join(str(p) for p in paths)}\n", flush=True)
        results[name] = {"runs": runs, "targets": tg, **info}
        (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    cache.close()
    print(f"wrote {out / 'results.json'}")


def targets(runs: Sequence[dict]) -> list[dict]:
    """Issue 21's targets per N_ref: auto ≥ general, ≥ personal − 1 SE, within 1 SE of the best fixed w."""
    gen = top1(next(r for r in runs if r["scorer"].startswith("general")))
    rows = []
    for n in N_REFS:
        by = {r["scorer"]: top1(r) for r in runs if r.get("n_ref") == n}
        best_w = next(r.get("best_w") for r in runs if r.get("n_ref") == n and r["scorer"] == "blend best fixed w")
        auto, per, best = by["blend auto"], by["personal (probe)"], by["blend best fixed w"]
        rows.append(
            {
                "n_ref": n,
                "general": gen[0],
                "personal": per[0],
                "auto": auto[0],
                "auto_se": auto[1],
                "best_fixed": best[0],
                "best_w": best_w,
                "auto_ge_general": auto[0] >= gen[0],
                "auto_ge_personal_minus_se": auto[0] >= per[0] - per[1],
                "auto_within_se_of_best": auto[0] >= best[0] - auto[1],
            }
        )
    return rows


def gap_table() -> None:
    from prefcli.data import synthetic as S

    print("| world | population utility | group utility | own utility | gap (group − population) |")
    print("|---|---|---|---|---|")
    for name, preset, kw in [
        ("`opposed` (balanced)", "opposed", {}),
        ("`default` (4 groups)", "default", {}),
        ("`default --groups 6`", "default", {"n_groups": 6}),
        ("`default --groups 8`", "default", {"n_groups": 8}),
        ("`consensus` (4 groups)", "consensus", {}),
    ]:
        accs = []
        for ws in range(3):
            cfg = S.WorldConfig.from_preset(
                preset, n_users=200, world_seed=ws, group_weights=(0.5, 0.5) if preset == "opposed" else None, **kw
            )
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
    ap.add_argument(
        "--trained",
        default=None,
        metavar="DIR",
        help="With trained models instead of the feature stand-ins: DIR/<preset>/tiny-cpu-{population,cp}/model "
        "(bench/bench_toy_training.py --out DIR/<preset> --world preset=... world_seed=S user_seed=S "
        "--only population,cp); `opposed` falls back to the shipped tiny-opposed-* models.",
    )
    ap.add_argument(
        "--val-users", type=int, default=80, help="Validation users per preset (they fit the population w)."
    )
    ap.add_argument(
        "--personal", default="toy recipe,clip-probe", help="With --trained: the personal parts to measure."
    )
    args = ap.parse_args(argv)
    if args.gap_table:
        gap_table()
        return
    if args.trained:
        main_trained(args)
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
                    print(
                        f"  N_ref {r['n_ref']}: blend auto's w over users: mean {r['chosen_w']['mean']:.2f}, median {r['chosen_w']['median']:.2f}"
                    )
            for t in tg:
                print(
                    f"  N_ref {t['n_ref']}: auto ≥ general {'yes' if t['auto_ge_general'] else 'NO'}; "
                    f"≥ personal − SE {'yes' if t['auto_ge_personal_minus_se'] else 'NO'}; "
                    f"within SE of best fixed w ({t['best_w']:g}) {'yes' if t['auto_within_se_of_best'] else 'NO'}"
                )
            paths = plots.nref_plot(runs, out / f"blend-{stem}", formats=["png"])
            print(f"  plot: {', '.join(str(p) for p in paths)}\n")
            results[name] = {"runs": runs, "targets": tg, **info}
        cache.close()
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
