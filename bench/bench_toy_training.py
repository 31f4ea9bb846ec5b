"""Toy-scale reproduction of the paper's tables on a synthetic taste world, on 2 CPU cores.

One command trains, for the same data,

  population   tiny-cpu-population  history-free: the average taste only
  base         tiny-cpu-base        history model, L_base
  cp           tiny-cpu-cp          history model, L_base + L_CP
  tokens       tiny-cpu-tokens      history model, L_all, then 10 preference tokens added (stage 2)
  tokens-start tiny-cpu-tokens-from-start  the tokens prepended from the first preference step
  (or any config names / YAML paths with --configs)

each for every training seed of --seeds, then scores every 1-vs-1 test task
(N_ref 8) and prints one table: top-1 accuracy of seen and unseen test users
(group-balanced: the mean of the taste groups' accuracies, and raw), the
history-swap check (each test user gets the history of a user from another
group: a model that reads the history falls, one that ignores it does not
move), and the gap fraction

    gap = (model - population utility) / (Bayes group from the history - population utility)
    gap_vs_pop_model = (model - population model) / (Bayes group - population model)

on unseen users: the share of what the history can add that the model gets.
Beside the models, reference rows from the world's ground truth on the very
same tasks (prefcli.harness.world): the user's own utility, the group's, the
training population's mean utility (the best a history-free model can learn),
the Bayes-optimal group read from the 8 history pairs (the best possible from
the history) and a per-user logistic fit. With several seeds a summary table
gives mean ± standard deviation (and min / max) per config.

The world: `--data DS` evaluates on any dataset built from a synthetic world
(`prefcli data synthetic` + `prefcli data pickapic --source WORLD`, any
preset, any number of groups); `--world KEY=VALUE ...` builds one from the
configs' world with knobs changed (cached by content); neither: the configs'
own world (the `opposed` preset).

Each training runs in its own process (its peak RSS and CPU time are its own);
`--jobs 2` runs two at once (each with `--threads` torch threads). `--reuse`
evaluates runs that already finished.

    .venv/bin/python bench/bench_toy_training.py --out runs/toy-bench
    .venv/bin/python bench/bench_toy_training.py --out runs/toy-default --world preset=default n_groups=4 world_seed=7 user_seed=7 --only population,cp --seeds 0,1,2
    .venv/bin/python bench/bench_toy_training.py --out runs/toy-x --data path/to/dataset --configs tiny-cpu-population,tiny-cpu-swap
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

RUNS = {
    "population": ("population", "tiny-cpu-population"),
    "base": ("base", "tiny-cpu-base"),
    "cp": ("+ L_CP", "tiny-cpu-cp"),
    "tokens": ("+ tokens", "tiny-cpu-tokens"),
    "tokens-start": ("+ tokens from the start", "tiny-cpu-tokens-from-start"),
}
DEFAULT_ONLY = "population,base,cp,tokens,tokens-start"


def _overrides(args: argparse.Namespace, config: str, seed: int | None) -> dict:
    """Optional step changes (the history models' last stage; the population's one stage = their sum) and the seed."""
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
    run = {"eval_every": args.eval_every, "checkpoint_every": 0, "log_every": 50, "num_threads": args.threads}
    out = {"stages": stages, "run": run}
    if seed is not None:  # another training seed (init, batches, tokens); the data stay the same
        run["seed"] = seed
        out["model"] = {"seed": seed}
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
    cfg = load_config(args.child_config, _overrides(args, args.child_config, args.child_seed))
    t = time.perf_counter()
    res = train(cfg, data=args.data, out=args.run_dir, progress=False, log=lambda s: print(s, flush=True))
    ru = resource.getrusage(resource.RUSAGE_SELF)
    rec = {
        "config": cfg.name,
        "seed": cfg.run.seed,
        "steps": res.steps,
        "seconds": round(time.perf_counter() - t, 1),
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 1),
        "threads": args.threads,
        "pairs_per_s": round(res.samples_per_s, 1),
        "final_val_acc": res.final_val_acc,
        "peak_rss_mb": round(ru.ru_maxrss / 1024, 1),
        "stages": [
            {
                "name": s.name,
                "steps": s.steps,
                "history": s.history,
                "loss_base": s.loss_base,
                "loss_cp": s.loss_cp,
                "loss_swap": s.loss_swap,
                "add_tokens": s.add_tokens,
            }
            for s in cfg.stages
        ],
    }
    Path(args.run_dir, "bench_train.json").write_text(json.dumps(rec, indent=2))


# ---------------------------------------------------------------------------
# evaluation


#: Rows per forward pass and candidates per call of the harness runner: on the tiny models, large
#: batches are what makes scoring fast (bench/bench_eval_batching.py measures it).
SCORER_BATCH, RUNNER_BATCH = 64, 128


def evaluate_model(model_dir: Path, tasks, swapped, threads: int) -> dict:
    """Top-1 hits with the task's own history and with the swapped one, through the harness
    (the very scoring `prefcli eval` does: the runner, the preftoken scorer batched across histories)."""
    import torch

    from prefcli.harness.runner import run_scorer
    from prefcli.harness.world import hit
    from prefcli.plugins import load_scorer

    torch.set_num_threads(threads)
    scorer = load_scorer("preftoken", weights=str(model_dir), device="cpu", options={"batch_size": SCORER_BATCH})
    t0 = time.perf_counter()
    records, _ = run_scorer(scorer, tasks, batch_size=RUNNER_BATCH)
    hits = [hit(r["scores"], r["liked_index"]) for r in records]
    if scorer.reads_history:
        sw, _ = run_scorer(scorer, swapped, batch_size=RUNNER_BATCH)
        swap_hits = [hit(r["scores"], r["liked_index"]) for r in sw]
    else:
        swap_hits = None  # a history-free model cannot see a swap
    return {
        "hits": hits,
        "swap_hits": swap_hits,
        "eval_s": round(time.perf_counter() - t0, 1),
        "reads_history": bool(scorer.reads_history),
    }


def row_of(name: str, rep_model: dict, rep_swap: dict | None, gap: dict | None) -> dict:
    def g(rep, split, key="balanced"):
        return rep.get(split, {}).get(key) if rep else None

    return {
        "model": name,
        "seen": g(rep_model, "seen"),
        "unseen": g(rep_model, "unseen"),
        "unseen_raw": g(rep_model, "unseen", "raw"),
        "swap_unseen": g(rep_swap, "unseen"),
        "gap_frac_unseen": (gap or {}).get("unseen"),
        "gap_frac_seen": (gap or {}).get("seen"),
    }


def _world_overrides(items: list[str]) -> dict:
    out: dict = {}
    for it in items or []:
        if "=" not in it:
            raise SystemExit(f"--world: expected KEY=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/toy-bench"))
    ap.add_argument("--data", default=None, help="a dataset built from a synthetic world (default: the configs' world)")
    ap.add_argument(
        "--world",
        nargs="*",
        default=None,
        metavar="KEY=VALUE",
        help="build the configs' world with these knobs changed (e.g. preset=default n_groups=4 world_seed=7)",
    )
    ap.add_argument(
        "--main-steps", type=int, default=None, help="steps of each config's last stage (default: the configs')"
    )
    ap.add_argument("--warmup-steps", type=int, default=None, help="steps of the first stage (default: the configs')")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per training and for scoring")
    ap.add_argument("--jobs", type=int, default=1, help="trainings run at once")
    ap.add_argument(
        "--seed", type=int, default=None, help="one training seed for every model (default: the configs', 0)"
    )
    ap.add_argument(
        "--seeds", default=None, help="comma-separated training seeds: every config is trained once per seed"
    )
    ap.add_argument("--only", default=None, help=f"comma-separated subset of: {','.join(RUNS)} (default: all)")
    ap.add_argument("--configs", default=None, help="comma-separated config names or YAML paths (instead of --only)")
    ap.add_argument("--reuse", action="store_true", help="do not retrain runs whose model/ exists")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the tables to this file")
    ap.add_argument(
        "--ship",
        action="store_true",
        help="copy the population, base, cp and tokens models into prefcli/train/pretrained/tiny-opposed-* with their results",
    )
    ap.add_argument("--child-config", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-seed", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_config:
        train_child(args)
        return

    import torch

    from prefcli.data.dataset import Dataset
    from prefcli.harness import source
    from prefcli.harness.world import World, find_world, gap_fraction, swap_donors, swapped_tasks, world_report
    from prefcli.train.config import load_config
    from prefcli.train.loop import synthetic_dataset

    torch.set_num_threads(args.threads)
    base = load_config("tiny-cpu-base")
    if args.data:
        ds_path = Path(args.data)
    else:
        w = dict(base.data.world)
        w.update(_world_overrides(args.world))
        ds_path = synthetic_dataset(w, base.data.world_build, root=args.out / "data")
    ds = Dataset.open(ds_path)
    world_dir = find_world(ds)
    if world_dir is None:
        raise SystemExit(f"{ds_path}: not built from a synthetic world (no world.json next to it or at its source)")

    if args.configs:
        runs = [(Path(c).stem if c.endswith((".yaml", ".yml", ".toml")) else c, c) for c in args.configs.split(",")]
    else:
        keys = (args.only or DEFAULT_ONLY).split(",")
        bad = [k for k in keys if k not in RUNS]
        if bad:
            raise SystemExit(f"--only: unknown {', '.join(bad)}; choose from {', '.join(RUNS)}")
        runs = [RUNS[k] for k in keys]
    seeds: list[int | None] = [int(x) for x in args.seeds.split(",")] if args.seeds else [args.seed]

    def run_dir_of(config: str, seed: int | None) -> Path:
        name = Path(config).stem if config.endswith((".yaml", ".yml", ".toml")) else config
        return args.out / (name if seed is None else f"{name}-seed{seed}")

    todo = []
    for label, config in runs:
        for seed in seeds:
            rd = run_dir_of(config, seed)
            if args.reuse and (rd / "model").is_dir() and (rd / "bench_train.json").is_file():
                continue
            if rd.exists():
                import shutil

                shutil.rmtree(rd)
            cmd = [
                sys.executable,
                __file__,
                "--child-config",
                config,
                "--run-dir",
                str(rd),
                "--data",
                str(ds_path),
                "--eval-every",
                str(args.eval_every),
                "--threads",
                str(args.threads),
            ]
            if args.main_steps is not None:
                cmd += ["--main-steps", str(args.main_steps)]
            if args.warmup_steps is not None:
                cmd += ["--warmup-steps", str(args.warmup_steps)]
            if seed is not None:
                cmd += ["--child-seed", str(seed)]
            todo.append((f"{label} ({config}) seed {seed if seed is not None else 'config'}", cmd, rd))
    running: list = []
    while todo or running:
        while todo and len(running) < max(1, args.jobs):
            what, cmd, rd = todo.pop(0)
            rd.mkdir(parents=True, exist_ok=True)
            print(f"== training {what}", flush=True)
            log = open(rd.parent / f"{rd.name}.log", "w")
            running.append((what, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log))
        time.sleep(2)
        for item in list(running):
            what, proc, log = item
            if proc.poll() is not None:
                log.close()
                running.remove(item)
                if proc.returncode:
                    raise SystemExit(f"training {what} failed (exit {proc.returncode}); see {log.name}")
                print(f"== done {what}", flush=True)

    tasks = source.load_tasks(ds, "test", "1v1", source.default_n_ref(ds))  # the N_ref it was built with
    world = World(world_dir, ds.users("train"))
    groups = [world.group(t.user_id) for t in tasks]
    swapped = swapped_tasks(tasks, swap_donors(tasks, groups))
    ref_rep = world_report(world, tasks)
    rows = []
    for name, rep in ref_rep["references"].items():
        rows.append(row_of(f"ref: {name}", rep, None, None))
    pop_ref = ref_rep["references"]["population utility"]
    best_ref = ref_rep["references"]["history: Bayes group"]
    for label, config in runs:
        for seed in seeds:
            rd = run_dir_of(config, seed)
            info = json.loads((rd / "bench_train.json").read_text())
            history = any(s["history"] for s in info["stages"])
            ev = evaluate_model(rd / "model", tasks, swapped, args.threads)
            if ev["reads_history"] != history:
                raise SystemExit(
                    f"{rd / 'model'}: trained {'with' if history else 'without'} histories, but the scorer "
                    f"reads it as a {'history' if ev['reads_history'] else 'population'} model"
                )
            rep = world_report(world, tasks, ev["hits"], ev["swap_hits"], references=False)
            gap = {
                s: gap_fraction(rep["model"][s]["balanced"], pop_ref[s]["balanced"], best_ref[s]["balanced"])
                for s in rep["model"]
                if s in pop_ref
            }
            row = row_of(f"{label} ({config})", rep["model"], rep.get("swap"), gap)
            row.update(
                config=config,
                seed=info.get("seed"),
                steps=info["steps"],
                train_s=info["seconds"],
                cpu_s=info.get("cpu_s"),
                pairs_per_s=info["pairs_per_s"],
                peak_rss_mb=info["peak_rss_mb"],
                eval_s=ev["eval_s"],
            )
            row["history"] = history
            rows.append(row)
    # The measure: the share of the gap between the trained population model (mean over
    # its seeds) and the best reader of the history that each model closes.
    pops = [r["unseen"] for r in rows if r.get("history") is False and r.get("unseen") is not None]
    if pops:
        pop_model = sum(pops) / len(pops)
        for r in rows:
            if "config" in r:
                r["gap_vs_pop_model"] = gap_fraction(r["unseen"], pop_model, best_ref["unseen"]["balanced"])

    meta = {
        "dataset": str(ds_path),
        "world": world.describe(),
        "test_tasks": len(tasks),
        "seen_tasks": sum(1 for t in tasks if t.seen),
        "unseen_tasks": sum(1 for t in tasks if not t.seen),
        "unseen_tasks_by_group": [
            sum(1 for t, g in zip(tasks, groups) if not t.seen and g == k) for k in range(world.n_groups)
        ],
        "unseen_users": len({t.user_id for t in tasks if not t.seen}),
        "seen_users": len({t.user_id for t in tasks if t.seen}),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    summary = summarize_seeds([r for r in rows if "config" in r])
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows, "summary": summary}, indent=2))
    cols = [
        "model",
        "seed",
        "seen",
        "unseen",
        "unseen_raw",
        "swap_unseen",
        "gap_frac_unseen",
        "gap_vs_pop_model",
        "steps",
        "train_s",
        "cpu_s",
        "peak_rss_mb",
    ]
    from prefcli.output import to_markdown

    md = to_markdown(rows, cols, digits=3)
    print(json.dumps(meta, indent=2))
    print(md)
    md_sum = ""
    if len(seeds) > 1:
        md_sum = to_markdown(
            summary,
            [
                "config",
                "n",
                "unseen",
                "unseen_min",
                "unseen_max",
                "swap_unseen",
                "gap_frac_unseen",
                "gap_min",
                "gap_max",
                "gap_vs_pop_model",
                "cpu_s",
            ],
            digits=3,
        )
        print()
        print(md_sum)
    if args.markdown:
        args.markdown.write_text(md + ("\n\n" + md_sum if md_sum else ""))
    if args.ship:
        ship(args, runs, rows, meta, base, run_dir_of, seeds[0])


def summarize_seeds(rows: list[dict]) -> list[dict]:
    """Mean ± standard deviation over seeds per config (unseen, swap, gap fraction)."""
    import numpy as np

    out = []
    for config in dict.fromkeys(r["config"] for r in rows):
        rs = [r for r in rows if r["config"] == config]

        def ms(key):
            v = [r[key] for r in rs if r.get(key) is not None]  # noqa: B023 - called within this iteration
            if not v:
                return None, None, None, None
            return float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, min(v), max(v)

        u, us, umin, umax = ms("unseen")
        s, ss, _, _ = ms("swap_unseen")
        g, gs, gmin, gmax = ms("gap_frac_unseen")
        gp, gps, _, _ = ms("gap_vs_pop_model")
        c, _, _, _ = ms("cpu_s")

        def pm(m, sd):
            return None if m is None else f"{m:.3f} ± {sd:.3f}"

        out.append(
            {
                "config": config,
                "n": len(rs),
                "unseen": pm(u, us),
                "unseen_min": umin,
                "unseen_max": umax,
                "swap_unseen": pm(s, ss),
                "gap_frac_unseen": pm(g, gs),
                "gap_min": gmin,
                "gap_max": gmax,
                "gap_vs_pop_model": pm(gp, gps),
                "cpu_s": c,
            }
        )
    return out


SHIP_NAMES = {
    "tiny-cpu-population": "tiny-opposed-population",
    "tiny-cpu-base": "tiny-opposed-base",
    "tiny-cpu-cp": "tiny-opposed-cp",
    "tiny-cpu-tokens": "tiny-opposed-tokens",
    "tiny-cpu-tokens-from-start": "tiny-opposed-tokens-from-start",
}


SHIPPED = (
    "tiny-cpu-population",
    "tiny-cpu-base",
    "tiny-cpu-cp",
    "tiny-cpu-tokens",
)  # the baseline, ViPer*-style base loss (which did not learn here), and the models that learned


def ship(args: argparse.Namespace, runs, rows, meta, base_cfg, run_dir_of, seed) -> None:
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
        shutil.copytree(run_dir_of(config, seed) / "model", dest)
        info = json.loads((run_dir_of(config, seed) / "bench_train.json").read_text())
        row = by_model[f"{label} ({config})"]
        results = {
            "name": dest.name,
            "config": config,
            "trained_with": info,
            "world": meta["world"],
            "dataset": meta["dataset"],
            "history_free": not any(s["history"] for s in info["stages"]),
            "test_1v1_top1": {k: row[k] for k in ("seen", "unseen", "unseen_raw", "swap_unseen", "gap_frac_unseen")},
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
