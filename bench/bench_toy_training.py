"""Toy-scale reproduction of the paper's tables on the synthetic taste world, on 2 CPU cores.

Trains, for the same number of steps and on the same data,

  (a) population   tiny-cpu-population  history-free: the average taste only
  (b) base         tiny-cpu-base        history model, L_base
  (c) + L_CP       tiny-cpu-cp          history model, L_base + L_CP
  (d) + tokens     tiny-cpu-tokens      history model, L_all, then 10 preference tokens added (stage 2)
  (d') tokens from the start  tiny-cpu-tokens-from-start  the tokens prepended from the first preference step

then scores every 1-vs-1 test task (N_ref 8) and reports top-1 accuracy on
seen and unseen test users (group-balanced: the mean of the two taste
groups' accuracies, since training users are 80/20 between the groups, and
raw), the seen/unseen gap, the history-swap check (each test user gets the
history of a user from the other group: a model that reads the history must
fall far below 0.5), samples/s and peak RSS of each training process — beside
reference accuracies computed from the world's ground truth on the very same
tasks:

  user utility      the user's own true utility (the best any model can do)
  group utility     the utility of the user's taste group
  population        the mean true taste of the training users (what a history-free model can learn)
  history: Bayes    the Bayes-optimal group from the 8 history pairs (posterior over the
                    two groups under the world's label model, training prior), then its utility
  history: logistic a per-user logistic regression on the 8 history pairs' true features

Each training runs in its own process (so its peak RSS is its own), one after
another; pass --reuse to evaluate runs that already finished.

    .venv/bin/python bench/bench_toy_training.py --out runs/toy-bench
    .venv/bin/python bench/bench_toy_training.py --out runs/toy-bench --reuse --markdown docs/toy-results-table.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

RUNS = [
    ("population", "tiny-cpu-population"),
    ("base", "tiny-cpu-base"),
    ("+ L_CP", "tiny-cpu-cp"),
    ("+ tokens", "tiny-cpu-tokens"),
    ("+ tokens from the start", "tiny-cpu-tokens-from-start"),
]


def _overrides(args: argparse.Namespace, config: str) -> dict:
    """Same steps for every model: the history models' stages, the population's one stage = their sum."""
    from prefcli.train.config import load_config

    cfg = load_config(config)
    stages = [dict(vars_of(s)) for s in cfg.stages]
    if args.main_steps is not None:
        if len(stages) == 1:
            stages[0]["steps"] = args.main_steps + (args.warmup_steps if args.warmup_steps is not None else 300)
        else:
            stages[-1]["steps"] = args.main_steps
    if args.warmup_steps is not None and len(stages) > 1:
        stages[0]["steps"] = args.warmup_steps
    run = {"eval_every": args.eval_every, "checkpoint_every": 0, "log_every": 50}
    out = {"stages": stages, "run": run}
    if args.seed is not None:  # another training seed (init, batches, tokens); the data stay the same
        run["seed"] = args.seed
        out["model"] = {"seed": args.seed}
    return out


def vars_of(stage) -> dict:
    import dataclasses

    return dataclasses.asdict(stage)


def train_child(args: argparse.Namespace) -> None:
    """Runs inside the child process: one training, then its own numbers as JSON."""
    import torch

    from prefcli.train.config import load_config
    from prefcli.train.loop import train

    torch.set_num_threads(args.threads)
    cfg = load_config(args.child_config, _overrides(args, args.child_config))
    t = time.perf_counter()
    res = train(cfg, data=args.data, out=args.run_dir, progress=False, log=lambda s: print(s, flush=True))
    rec = {"config": cfg.name, "steps": res.steps, "seconds": round(time.perf_counter() - t, 1),
           "pairs_per_s": round(res.samples_per_s, 1), "final_val_acc": res.final_val_acc,
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "stages": [{"name": s.name, "steps": s.steps, "history": s.history, "loss_base": s.loss_base,
                       "loss_cp": s.loss_cp, "add_tokens": s.add_tokens} for s in cfg.stages]}
    Path(args.run_dir, "bench_train.json").write_text(json.dumps(rec, indent=2))


# ---------------------------------------------------------------------------
# ground truth


def image_uid_map(world_dir: Path) -> dict[str, str]:
    """Dataset image id (sha256 of the stored bytes) -> the world's image uid."""
    import pyarrow.parquet as pq

    out: dict[str, str] = {}
    for shard in sorted(world_dir.glob("shard-*.parquet")):
        t = pq.read_table(shard, columns=["image_0_uid", "image_1_uid", "jpg_0", "jpg_1"]).to_pydict()
        for k in (0, 1):
            for uid, data in zip(t[f"image_{k}_uid"], t[f"jpg_{k}"]):
                out.setdefault(hashlib.sha256(data).hexdigest(), uid)
    return out


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


class References:
    def __init__(self, world_dir: Path, ds) -> None:
        import numpy as np

        from prefcli.data.synthetic import load_truth

        self.np = np
        self.truth = load_truth(world_dir)
        self.uid = image_uid_map(world_dir)
        self.T = self.truth.config.temperature
        train_users = [int(u) for u in ds.users("train")]
        W = np.stack([self.truth.user_weights[u] for u in train_users])
        self.pop_w = W.mean(0)
        groups = [self.truth.user_group[u] for u in train_users]
        self.prior = np.bincount(groups, minlength=len(self.truth.group_weights)) / len(groups)

    def phi(self, image_id: str):
        return self.truth.features(self.uid[image_id])

    def group(self, user_id: str) -> int:
        return self.truth.user_group[int(user_id)]

    def _pick(self, w, task) -> bool:
        s = [float(w @ self.phi(c)) for c in task.candidates]
        return all(s[task.liked_index] > x for j, x in enumerate(s) if j != task.liked_index)

    def user(self, task) -> bool:
        return self._pick(self.truth.user_weights[int(task.user_id)], task)

    def group_util(self, task) -> bool:
        return self._pick(self.truth.group_weights[self.group(task.user_id)], task)

    def population(self, task) -> bool:
        return self._pick(self.pop_w, task)

    def bayes(self, task) -> bool:
        """Posterior over groups from the history pairs (group utility as the label model), training prior."""
        np = self.np
        logp = np.log(self.prior + 1e-12)
        for g, w in enumerate(self.truth.group_weights):
            for hp in task.history:
                d = float(w @ (self.phi(hp.liked) - self.phi(hp.disliked))) / self.T
                logp[g] += math.log(max(_sigmoid(d), 1e-12))
        post = np.exp(logp - logp.max())
        post /= post.sum()
        w = (post[:, None] * self.truth.group_weights).sum(0)
        return self._pick(w, task)

    def logistic(self, task) -> bool:
        from sklearn.linear_model import LogisticRegression

        np = self.np
        X, y = [], []
        for hp in task.history:
            d = self.phi(hp.liked) - self.phi(hp.disliked)
            X += [d, -d]
            y += [1, 0]
        clf = LogisticRegression(C=1.0, fit_intercept=False).fit(np.asarray(X), np.asarray(y))
        return self._pick(clf.coef_[0], task)


# ---------------------------------------------------------------------------
# evaluation


def balanced(hits: list[bool], groups: list[int]) -> float:
    by: dict[int, list[bool]] = {}
    for h, g in zip(hits, groups):
        by.setdefault(g, []).append(h)
    return sum(sum(v) / len(v) for v in by.values()) / len(by) if by else float("nan")


def swap_histories(tasks, groups: list[int]) -> list:
    """For each task, the history of a task of a user in another group (deterministic round robin)."""
    donors: dict[int, list] = {}
    for t, g in zip(tasks, groups):
        donors.setdefault(g, []).append(t)
    out, used = [], {g: 0 for g in donors}
    for t, g in zip(tasks, groups):
        others = sorted(k for k in donors if k != g)
        d = others[used[g] % len(others)] if others else g
        pool = donors[d]
        out.append(pool[used[g] % len(pool)].history)
        used[g] += 1
    return out


def evaluate_model(model_dir: Path, ds, tasks, groups, history: bool, threads: int) -> dict:
    import torch

    from prefcli.train.checkpoint import load_checkpoint
    from prefcli.train.data import PixelStore
    from prefcli.train.loop import score_tasks, top1_correct

    torch.set_num_threads(threads)
    vlm = load_checkpoint(model_dir)
    store = PixelStore(ds, vlm.preprocess, 256)
    scores = score_tasks(vlm, tasks, store, history=history)
    hits = [top1_correct(s, t.liked_index) for s, t in zip(scores, tasks)]
    swapped = swap_histories(tasks, groups)
    if history:
        sw = score_tasks(vlm, tasks, store, history=True, history_of=lambda i: swapped[i])
        swap_hits = [top1_correct(s, t.liked_index) for s, t in zip(sw, tasks)]
    else:
        swap_hits = hits  # a history-free model cannot see a swap
    return {"hits": hits, "swap_hits": swap_hits}


def summarize(name: str, hits, swap_hits, tasks, groups) -> dict:
    seen = [i for i, t in enumerate(tasks) if t.seen]
    unseen = [i for i, t in enumerate(tasks) if not t.seen]

    def b(idx, h):
        return balanced([h[i] for i in idx], [groups[i] for i in idx])

    def raw(idx, h):
        return sum(h[i] for i in idx) / len(idx) if idx else float("nan")

    row = {"model": name, "seen": b(seen, hits), "unseen": b(unseen, hits)}
    row["gap"] = row["seen"] - row["unseen"]
    row["unseen_raw"] = raw(unseen, hits)
    row["swap_unseen"] = b(unseen, swap_hits)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/toy-bench"))
    ap.add_argument("--main-steps", type=int, default=None, help="steps of each config's last stage (default: the configs')")
    ap.add_argument("--warmup-steps", type=int, default=None, help="steps of the history-free warm-up (default: the configs')")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=None, help="training seed for every model (default: the configs', 0)")
    ap.add_argument("--only", default=None, help="comma-separated subset of: population,base,cp,tokens,tokens-start")
    ap.add_argument("--reuse", action="store_true", help="do not retrain runs whose model/ exists")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the table to this file")
    ap.add_argument("--ship", action="store_true",
                    help="copy the population, cp and tokens models into prefcli/train/pretrained/tiny-opposed-* with their results")
    ap.add_argument("--child-config", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_config:
        train_child(args)
        return

    import torch

    from prefcli.data.dataset import Dataset
    from prefcli.train.config import load_config
    from prefcli.train.data import load_eval_tasks
    from prefcli.train.loop import synthetic_dataset

    torch.set_num_threads(args.threads)
    base = load_config("tiny-cpu-base")
    ds_path = synthetic_dataset(base.data.world, base.data.world_build, root=args.out / "data")
    world_dir = ds_path.parent / "world"
    ds = Dataset.open(ds_path)
    keys = {"population": 0, "base": 1, "cp": 2, "tokens": 3, "tokens-start": 4}
    runs = RUNS if not args.only else [RUNS[keys[k]] for k in args.only.split(",")]

    for label, config in runs:
        run_dir = args.out / config
        if args.reuse and (run_dir / "model").is_dir() and (run_dir / "bench_train.json").is_file():
            continue
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        cmd = [sys.executable, __file__, "--child-config", config, "--run-dir", str(run_dir), "--data", str(ds_path),
               "--eval-every", str(args.eval_every), "--threads", str(args.threads)]
        if args.main_steps is not None:
            cmd += ["--main-steps", str(args.main_steps)]
        if args.warmup_steps is not None:
            cmd += ["--warmup-steps", str(args.warmup_steps)]
        if args.seed is not None:
            cmd += ["--seed", str(args.seed)]
        print(f"== training {label} ({config})", flush=True)
        subprocess.run(cmd, check=True)

    tasks = load_eval_tasks(ds, "test", n_ref=8)
    refs = References(world_dir, ds)
    groups = [refs.group(t.user_id) for t in tasks]
    rows = []
    for label, fn in (("ref: user utility", refs.user), ("ref: group utility", refs.group_util),
                      ("ref: population utility", refs.population), ("ref: history, Bayes group", refs.bayes),
                      ("ref: history, logistic fit", refs.logistic)):
        h = [fn(t) for t in tasks]
        rows.append(summarize(label, h, h, tasks, groups))
    for label, config in runs:
        run_dir = args.out / config
        info = json.loads((run_dir / "bench_train.json").read_text())
        history = any(s["history"] for s in info["stages"])
        ev = evaluate_model(run_dir / "model", ds, tasks, groups, history, args.threads)
        row = summarize(f"{label} ({config})", ev["hits"], ev["swap_hits"], tasks, groups)
        if not history:
            row["swap_unseen"] = None
        row.update(steps=info["steps"], pairs_per_s=info["pairs_per_s"], train_s=info["seconds"],
                   peak_rss_mb=info["peak_rss_mb"])
        rows.append(row)

    seen_t = [t for t in tasks if t.seen]
    unseen_t = [t for t in tasks if not t.seen]
    count = lambda ts, g: sum(1 for t in ts if refs.group(t.user_id) == g)  # noqa: E731
    meta = {
        "dataset": str(ds_path), "test_tasks": len(tasks),
        "seen_tasks": len(seen_t), "unseen_tasks": len(unseen_t),
        "unseen_tasks_by_group": [count(unseen_t, 0), count(unseen_t, 1)],
        "seen_tasks_by_group": [count(seen_t, 0), count(seen_t, 1)],
        "unseen_users": len({t.user_id for t in unseen_t}), "seen_users": len({t.user_id for t in seen_t}),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    cols = ["model", "seen", "unseen", "gap", "unseen_raw", "swap_unseen", "steps", "pairs_per_s", "train_s", "peak_rss_mb"]
    from prefcli.output import to_markdown

    md = to_markdown(rows, cols, digits=3)
    print(json.dumps(meta, indent=2))
    print(md)
    if args.markdown:
        args.markdown.write_text(md)
    if args.ship:
        ship(args, runs, rows, meta, base)


SHIP_NAMES = {"tiny-cpu-population": "tiny-opposed-population", "tiny-cpu-base": "tiny-opposed-base",
              "tiny-cpu-cp": "tiny-opposed-cp", "tiny-cpu-tokens": "tiny-opposed-tokens",
              "tiny-cpu-tokens-from-start": "tiny-opposed-tokens-from-start"}


SHIPPED = ("tiny-cpu-population", "tiny-cpu-base", "tiny-cpu-cp", "tiny-cpu-tokens")  # the baseline, ViPer*-style base loss (which did not learn here), and the models that learned


def ship(args: argparse.Namespace, runs, rows, meta, base_cfg) -> None:
    """Copy each trained model folder into the package, with what trained it and what it reached."""
    import shutil

    from prefcli.train import pretrained

    by_model = {r["model"]: r for r in rows}
    refs = {r["model"]: r for r in rows if r["model"].startswith("ref:")}
    for label, config in runs:
        if config not in SHIPPED:
            continue
        dest = pretrained.ROOT / SHIP_NAMES[config]
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(args.out / config / "model", dest)
        info = json.loads((args.out / config / "bench_train.json").read_text())
        row = by_model[f"{label} ({config})"]
        results = {
            "name": dest.name, "config": config, "trained_with": info,
            "world": base_cfg.data.world, "world_build": base_cfg.data.world_build,
            "history_free": not any(s["history"] for s in info["stages"]),
            "test_1v1_top1": {k: row[k] for k in ("seen", "unseen", "gap", "unseen_raw", "swap_unseen")},
            "references": {k: {"seen": v["seen"], "unseen": v["unseen"]} for k, v in refs.items()},
            "meta": meta,
            "note": "accuracies are group-balanced (mean of the two taste groups) on the test tasks; see docs/toy-results.md",
        }
        (dest / "results.json").write_text(json.dumps(results, indent=2))
        size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
        print(f"shipped {dest} ({size / 1e6:.2f} MB)")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
