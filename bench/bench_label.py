"""`prefcli label`'s pair strategies on simulated people: `active` against `random`.

For each synthetic-world preset (`opposed`; `default` with 4 groups), draws
unseen users (a user seed no training world uses). Each user gets a pool of
8 prompts x 16 images to label and 8 x 16 other images of the same prompts
held out. A simulated labeller (prefcli.label.simulate) answers each strategy's
pairs from the user's true utility with the world's label noise. After k
labels (k = 2, 4, 8, 12, 16) the personal scorer, the `clip-probe` per-user
logistic probe (prefcli.probe.ProbeScorer, unchanged) fitted on the labelled
liked/disliked images, ranks 64 held-out same-prompt pairs; top-1 = the share
where it puts the image of higher true utility first (noise-free, so a
perfect model scores 1.0).

Embeddings: the world's own feature vectors phi(image) (hue, saturation,
brightness, scale, position, detail, pattern), fed to the probe through the
harness's embedding memory instead of CLIP features. An embedding that holds
the attributes isolates what this measures, the choice of pairs; the tiny
random-weight CLIP of the tests does not hold them, so with it every strategy
scores chance.

"labels to match random@16" = the smallest k at which `active`'s mean reaches
`random`'s mean at 16 labels (k is stepped 1..16 for this number).

    nice python bench/bench_label.py                      # 100 users per preset
    nice python bench/bench_label.py --users 20 --out /tmp/bench_label
    python bench/bench_label.py --timing-only             # ms per label, 500-image pool

Nothing is asserted; numbers depend on the seed and the machine.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

KS = (2, 4, 8, 12, 16)
PRESETS = (("opposed", {}), ("default", {"n_groups": 4}))


def _probe():
    """clip-probe with tiny weights, on an embedding memory (the harness's) in front of its base."""
    from prefcli.harness.runner import CachedEmbedder, RunStats
    from prefcli.plugins import get_scorer_spec

    probe = get_scorer_spec("clip-probe").load("tiny", device="cpu")
    memory: dict = {}
    probe = probe.with_embedder(CachedEmbedder(probe.base, None, memory, RunStats(), 64))
    return probe, memory


def _accuracy(probe, answers, images, held_pairs) -> float:
    from prefcli.types import Candidate, HistoryPair, UserHistory

    pairs = []
    for a, b, choice in answers:
        liked, disliked = (a, b) if choice == "left" else (b, a)
        pairs.append(
            HistoryPair(liked=Candidate(images[liked]), disliked=Candidate(images[disliked]), pair_id=f"p{len(pairs)}")
        )
    state = probe.condition(UserHistory(pairs=tuple(pairs)))
    flat = [Candidate(i) for p in held_pairs for i in p]
    s = probe.score(flat, state)
    # held_pairs list the better image first; a tie is a miss (the harness's rule).
    return sum(1 for j in range(len(held_pairs)) if s[2 * j] > s[2 * j + 1]) / len(held_pairs)


def run_preset(preset: str, overrides: dict, n_users: int, seed: int, image_size: int, ks_all) -> dict:
    import numpy as np

    from prefcli.data.synthetic import WorldConfig, world_pool
    from prefcli.progress import progress_bar

    cfg = WorldConfig.from_preset(
        preset,
        n_prompts=8,
        images_per_prompt=32,
        n_users=n_users,
        user_seed=90_000 + seed,
        image_size=image_size,
        **overrides,
    )
    world = world_pool(cfg)
    probe, memory = _probe()
    acc = {name: np.zeros((n_users, len(ks_all))) for name in ("active", "random")}
    with progress_bar(True) as bar:
        task = bar.add_task(f"{preset}: simulated users", total=n_users)
        for u in range(n_users):
            _user(cfg, world, u, seed, probe, memory, acc, ks_all)
            bar.advance(task)
    return acc


def _user(cfg, world, u, seed, probe, memory, acc, ks_all) -> None:
    import numpy as np

    from prefcli.label.model import PairModel, reduce
    from prefcli.label.simulate import SimulatedLabeller, simulate, world_user
    from prefcli.label.strategies import make_strategy

    _, w = world_user(cfg, u)
    rng = np.random.default_rng([seed, u])
    label_ids, held_pairs, groups = [], [], []
    for row in world:
        order = rng.permutation(len(row))
        mine, held = order[:16], order[16:]
        groups.append(list(range(len(label_ids), len(label_ids) + 16)))
        label_ids += [row[i] for i in mine]
        for j in range(0, 16, 2):
            x, y = row[held[j]], row[held[j + 1]]
            held_pairs.append((x, y) if w @ x.phi >= w @ y.phi else (y, x))
    for im in label_ids + [i for p in held_pairs for i in p]:
        memory[im.uid] = im.phi.astype("float32")
    images = [im.uid for im in label_ids]
    held = [(x.uid, y.uid) for x, y in held_pairs]
    util = np.array([float(w @ im.phi) for im in label_ids])
    emb = np.stack([im.phi for im in label_ids])
    for name in acc:
        model = PairModel(reduce(emb))
        strategy = make_strategy(name, model, seed=seed * 100_003 + u, max_appearances=4)
        labeller = SimulatedLabeller(util, cfg.temperature, seed=seed * 100_003 + u)
        answers = simulate(strategy, labeller, groups, max(ks_all))
        for j, k in enumerate(ks_all):
            acc[name][u, j] = _accuracy(probe, answers[:k], images, held)


def _timing(n_images: int = 500, dim: int = 512, labels: int = 20, prompts: int = 25) -> float:
    """Mean ms per label (refit + choice) on a pool of `n_images` with `dim`-d embeddings."""
    import numpy as np

    from prefcli.label.model import PairModel, reduce
    from prefcli.label.simulate import SimulatedLabeller, simulate
    from prefcli.label.strategies import make_strategy

    rng = np.random.default_rng(0)
    emb = rng.standard_normal((n_images, dim)).astype("float32")
    t0 = time.perf_counter()
    z = reduce(emb)
    t_reduce = time.perf_counter() - t0
    per = n_images // prompts
    groups = [list(range(g * per, (g + 1) * per)) for g in range(prompts)]
    lab = SimulatedLabeller(z @ rng.standard_normal(z.shape[1]), 0.5)
    strategy = make_strategy("active", PairModel(z), max_appearances=4)
    t0 = time.perf_counter()
    simulate(strategy, lab, groups, labels)
    ms = 1000 * (time.perf_counter() - t0) / labels
    print(
        f"pool of {n_images} images ({prompts} prompts x {per}), {dim}-d embeddings: "
        f"{ms:.1f} ms per label (mean of {labels}; PCA once {1000 * t_reduce:.0f} ms)"
    )
    one = make_strategy("active", PairModel(z), max_appearances=n_images)
    t0 = time.perf_counter()
    simulate(one, lab, [list(range(n_images))], labels)
    ms1 = 1000 * (time.perf_counter() - t0) / labels
    print(f"pool of {n_images} images in ONE prompt ({n_images * (n_images - 1) // 2} pairs): {ms1:.1f} ms per label")
    return ms


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=100, help="simulated unseen users per preset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--out", default="bench_label_out", help="folder for the plot (PNG, PDF, SVG) and the table (JSON)")
    ap.add_argument("--format", default="table", choices=("table", "markdown", "csv", "json"))
    ap.add_argument("--timing-only", action="store_true")
    args = ap.parse_args(argv)

    _timing()
    if args.timing_only:
        return 0

    from prefcli import atomic, figures
    from prefcli.harness.tables import Column, Table

    ks_all = tuple(range(1, 17))
    rows, curves, summary = [], {}, []
    for preset, over in PRESETS:
        acc = run_preset(preset, over, args.users, args.seed, args.image_size, ks_all)
        mean = {n: a.mean(0) for n, a in acc.items()}
        se = {n: a.std(0, ddof=1) / math.sqrt(a.shape[0]) for n, a in acc.items()}
        curves[preset] = (mean, se)
        label = f"{preset}" + (f" ({over['n_groups']} groups)" if over.get("n_groups") else "")
        for k in KS:
            j = ks_all.index(k)
            rows.append(
                {
                    "preset": label,
                    "k": k,
                    "active": float(mean["active"][j]),
                    "active_se": float(se["active"][j]),
                    "random": float(mean["random"][j]),
                    "random_se": float(se["random"][j]),
                    "diff": float(mean["active"][j] - mean["random"][j]),
                    "diff_se": float((acc["active"][:, j] - acc["random"][:, j]).std(ddof=1) / math.sqrt(args.users)),
                }
            )
        target = mean["random"][ks_all.index(16)]
        match = next((k for k in ks_all if mean["active"][ks_all.index(k)] >= target), None)
        worst = min(
            float(
                (mean["active"][ks_all.index(k)] - mean["random"][ks_all.index(k)])
                / max(se["random"][ks_all.index(k)], 1e-12)
            )
            for k in KS
        )
        at = {k: float(mean["active"][ks_all.index(k)]) for k in ks_all}
        summary.append((label, match, target, worst, at))

    table = Table(
        name="label_strategies",
        title=f"label: personal-probe top-1 on held-out pairs after k labels ({args.users} users per preset)",
        columns=[
            Column("preset", "preset"),
            Column("k", "k labels"),
            Column("active", "active", pm=True, percent=True),
            Column("random", "random", pm=True, percent=True),
            Column("diff", "active − random (paired)", pm=True, percent=True),
        ],
        rows=rows,
        note="mean ± standard error over users",
    )
    table.print(args.format)
    for label, match, target, worst, at in summary:
        got = f"{match}" if match is not None else "not within 16"
        near = ", ".join(f"{100 * at[k]:.1f}% at {k}" for k in (9, 10, 11, 12) if k in at)
        print(
            f"{label}: labels to match random@16 ({100 * target:.1f}%): {got} (active {near}); "
            f"worst active − random over k in {KS}: {worst:+.2f} random SE"
        )

    plt = figures.pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(3.6 * len(curves), 2.9), squeeze=False)
    for ax, (preset, (mean, se)) in zip(axes[0], curves.items()):
        for i, name in enumerate(("active", "random")):
            ax.errorbar(
                [k + figures.dodge(i, 2, 0.3) for k in ks_all],
                100 * mean[name],
                yerr=100 * se[name],
                capsize=2,
                markersize=3.5,
                linewidth=1.1,
                label=name,
                **figures.series_style(i),
            )
        ax.axhline(100 * mean["random"][-1], color="grey", linestyle=":", linewidth=1.0, label="random@16")
        ax.set_xticks(list(KS))
        ax.set_xlabel("labels (k)")
        ax.set_ylabel("top-1 on held-out pairs (%)")
        ax.set_title(preset)
        ax.grid(alpha=0.3, linewidth=0.5)
    fig.tight_layout()
    figures.legend_outside(axes[0][-1])
    paths = figures.save_figure(fig, os.path.join(args.out, "label_strategies"))
    plt.close(fig)
    atomic.write_text(os.path.join(args.out, "label_strategies.json"), table.to_json())
    print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
