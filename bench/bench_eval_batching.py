"""`prefcli eval` of a history model: history by history vs batched across histories, in one run.

An evaluation on a synthetic world scores every test task twice (its own
history, then the history swap), and each task has its own 8-pair history
with two candidates. The harness used to condition and score history by
history: a vision pass over the 16 history images, a prefix pass and a
candidate pass per task. A VLM scorer now scores many histories per call
(`score_histories`: each distinct image through the vision tower once per
run, up to `batch_size` histories per prefix pass, `batch_size` candidates
per candidate pass). This bench times both paths of the harness runner on the
same tasks, back to back in one process, each with a freshly loaded scorer,
and checks that they give the same scores:

  per history   run_scorer(..., batch_histories=False): condition + score per task
  batched       run_scorer(...): what `prefcli eval` does now

Each path scores the tasks and the swapped tasks (what eval's world table
adds). The time is the scoring only (the model load is printed apart: it is
the same for both). `--cli` also times the whole `prefcli eval` command
(tasks loading, both runs, the references, the tables) as a subprocess.

Without `--data` it builds the toy world and dataset the documented way
(docs/synthetic.md):

  prefcli data synthetic --out W --preset opposed --users 400 --image-size 32
  prefcli data pickapic --source W --out D --n-ref 8 --val-users 40 --test-users 120 --hold-out user --seed 0

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python bench/bench_eval_batching.py --cli
    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python bench/bench_eval_batching.py --cli --cli-baseline /tmp/base   # mkdir /tmp/base; git archive 689f1b2 | tar -x -C /tmp/base
    .venv/bin/python bench/bench_eval_batching.py --data path/to/dataset --weights runs/my-run --limit 500
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


def prefcli_cmd() -> list[str]:
    return [sys.executable, "-m", "prefcli"]


def build_toy(out: Path) -> Path:
    """The 400-user opposed world and its dataset, with the commands docs/synthetic.md gives."""
    world, data = out / "toy-world", out / "toy-data"
    if not (data / "dataset.json").is_file():
        out.mkdir(parents=True, exist_ok=True)
        for cmd in (
            ["data", "synthetic", "--out", str(world), "--preset", "opposed", "--users", "400", "--image-size", "32"],
            [
                "data",
                "pickapic",
                "--source",
                str(world),
                "--out",
                str(data),
                "--n-ref",
                "8",
                "--val-users",
                "40",
                "--test-users",
                "120",
                "--hold-out",
                "user",
                "--seed",
                "0",
            ],
        ):
            print("$ prefcli " + " ".join(cmd), flush=True)
            subprocess.run(prefcli_cmd() + cmd, check=True, stdout=subprocess.DEVNULL)
    return data


def time_path(args: argparse.Namespace, tasks: list, swapped: list, batched: bool) -> dict:
    """A fresh scorer, then the tasks and the swapped tasks through the harness runner."""
    from prefcli.harness.runner import run_scorer
    from prefcli.plugins import load_scorer

    t0 = time.perf_counter()
    scorer = load_scorer(
        "preftoken",
        weights=args.weights,
        device="cpu",
        options={"batch_size": args.scorer_batch} if args.scorer_batch else None,
    )
    load_s = time.perf_counter() - t0
    t1, c1 = time.perf_counter(), time.process_time()
    rec, st = run_scorer(scorer, tasks, batch_size=args.batch_size, batch_histories=batched)
    rec_sw, st_sw = run_scorer(scorer, swapped, batch_size=args.batch_size, batch_histories=batched)
    out = {
        "path": "batched" if batched else "per history",
        "load_s": load_s,
        "score_s": time.perf_counter() - t1,
        "cpu_s": time.process_time() - c1,
        "forward_calls": st.score_calls + st_sw.score_calls,
        "histories": st.conditioned + st_sw.conditioned,
        "images_encoded": getattr(getattr(scorer, "features", None), "encoded", None) if batched else None,
        "scores": [r["scores"] for r in rec],
        "swap_scores": [r["scores"] for r in rec_sw],
        "reads_history": getattr(scorer, "reads_history", True),
    }
    return out


def time_cli(args: argparse.Namespace, data: Path, checkout: Path | None = None) -> dict:
    """The whole `prefcli eval` command in a subprocess (the code of another `checkout` if given)."""
    env, cwd = dict(os.environ), None
    if checkout is not None:
        # Its prefcli and its plugins ahead of the installed (editable) ones.
        cwd = str(checkout)
        env["PYTHONPATH"] = os.pathsep.join([str(checkout), str(checkout / "plugins"), env.get("PYTHONPATH", "")])
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "import prefcli, prefcli_preftoken; print(prefcli.__file__, prefcli_preftoken.__file__)",
            ],
            check=True,
            capture_output=True,
            text=True,
            cwd=cwd,
            env=env,
        ).stdout.split()
        if not all(Path(f).resolve().is_relative_to(checkout.resolve()) for f in probe):
            raise SystemExit(f"--cli-baseline {checkout}: prefcli would not be imported from there ({probe})")
    cmd = [
        sys.executable,
        "-m",
        "prefcli",
        "eval",
        str(Path(data).resolve()),
        "--scorer",
        "preftoken",
        "--weights",
        args.weights,
        "--no-cache",
        "--no-progress",
        "--format",
        "json",
        "--bootstrap",
        "1000",
    ]
    if args.scorer_batch:
        cmd += ["-o", "batch_size", str(args.scorer_batch)]
    cmd += ["--batch-size", str(args.batch_size)] + (["--limit", str(args.limit)] if args.limit else [])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=cwd, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    doc = json.loads(proc.stdout)
    return {
        "command": " ".join(["prefcli", *cmd[3:]]),
        "wall_s": wall,
        "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "stats": doc["results"]["stats"],
        "top1": doc["results"]["metrics"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data", type=Path, default=None, help="a dataset built from a synthetic world (default: build the toy one)"
    )
    ap.add_argument("--out", type=Path, default=Path("runs/bench-eval-batching"), help="where the toy dataset is built")
    ap.add_argument("--weights", default="tiny-opposed-cp", help="a history model (a shipped name or a model folder)")
    ap.add_argument("--batch-size", type=int, default=32, help="candidates per scorer call (eval's --batch-size)")
    ap.add_argument(
        "--scorer-batch", type=int, default=None, help="rows per forward pass (-o batch_size; default: the scorer's)"
    )
    ap.add_argument("--limit", type=int, default=None, help="only the first N test tasks")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--cli", action="store_true", help="also time the whole `prefcli eval` command (batched) as a subprocess"
    )
    ap.add_argument(
        "--cli-baseline",
        type=Path,
        default=None,
        metavar="CHECKOUT",
        help="with --cli, also time the command with the code of this checkout first (a commit from before "
        "the batched path: `git archive 689f1b2 | tar -x -C /tmp/base`), and print the ratio",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers to this file")
    args = ap.parse_args()

    import numpy as np
    import torch

    from prefcli.data.dataset import Dataset
    from prefcli.harness import source
    from prefcli.harness.world import World, find_world, hit, swap_donors, swapped_tasks

    torch.set_num_threads(args.threads)
    data = args.data or build_toy(args.out)
    ds = Dataset.open(data)
    tasks = source.load_tasks(ds, "test", "1v1", source.default_n_ref(ds))
    world_dir = find_world(ds)
    if world_dir is None:
        raise SystemExit(f"{data}: not built from a synthetic world (no world.json next to it or at its source)")
    world = World(world_dir, ds.users("train"))
    # Donors from all the tasks (as eval does), then the first --limit: a subset may hold one group only.
    swapped = swapped_tasks(tasks, swap_donors(tasks, [world.group(t.user_id) for t in tasks]))
    tasks, swapped = tasks[: args.limit or None], swapped[: args.limit or None]

    # The old path first: the batched one keeps image features in its own (fresh) scorer only.
    runs = [time_path(args, tasks, swapped, batched=False), time_path(args, tasks, swapped, batched=True)]
    slow, fast = runs
    flat = lambda r: np.array([x for s in r["scores"] + r["swap_scores"] for x in s])  # noqa: E731
    diff = float(np.abs(flat(slow) - flat(fast)).max()) if len(flat(slow)) else 0.0
    acc = {r["path"]: float(np.mean([hit(s, t.liked_index) for s, t in zip(r["scores"], tasks)])) for r in runs}
    swap_acc = {
        r["path"]: float(np.mean([hit(s, t.liked_index) for s, t in zip(r["swap_scores"], tasks)])) for r in runs
    }
    rows = [
        {
            "path": r["path"],
            "score_s": round(r["score_s"], 2),
            "cpu_s": round(r["cpu_s"], 2),
            "tasks_per_s": round(2 * len(tasks) / r["score_s"], 1),
            "scorer_calls": r["forward_calls"],
            "histories": r["histories"],
            "images_encoded": r["images_encoded"],
            "load_s": round(r["load_s"], 2),
            "top1_raw": round(acc[r["path"]], 4),
            "swap_top1_raw": round(swap_acc[r["path"]], 4),
        }
        for r in runs
    ]
    from prefcli.output import to_markdown

    meta = {
        "dataset": str(data),
        "weights": args.weights,
        "tasks": len(tasks),
        "scored": 2 * len(tasks),
        "batch_size": args.batch_size,
        "scorer_batch": args.scorer_batch or "default",
        "threads": args.threads,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "reads_history": fast["reads_history"],
    }
    print(json.dumps(meta))
    print(to_markdown(rows, list(rows[0]), digits=3))
    ratio = slow["score_s"] / fast["score_s"]
    print(
        f"\nscoring (tasks + history swap): per history {slow['score_s']:.1f} s, batched {fast['score_s']:.1f} s, "
        f"ratio {ratio:.1f}x (CPU {slow['cpu_s'] / max(fast['cpu_s'], 1e-9):.1f}x); "
        f"max |score difference| {diff:.2e}"
    )
    result = {"meta": meta, "rows": rows, "ratio": ratio, "max_abs_diff": diff}
    if args.cli:
        base = time_cli(args, data, args.cli_baseline) if args.cli_baseline else None
        cli = time_cli(args, data)
        if base is not None:
            print(
                f"whole `{base['command']}` with the code of {args.cli_baseline}: {base['wall_s']:.1f} s wall, "
                f"{base['cpu_s']:.1f} s CPU"
            )
            result["cli_baseline"] = {
                "checkout": str(args.cli_baseline),
                **{k: base[k] for k in ("command", "wall_s", "cpu_s", "stats")},
            }
        print(f"whole `{cli['command']}`: {cli['wall_s']:.1f} s wall, {cli['cpu_s']:.1f} s CPU")
        if base is not None:
            print(
                f"whole command: ratio {base['wall_s'] / cli['wall_s']:.1f}x wall, {base['cpu_s'] / cli['cpu_s']:.1f}x CPU"
            )
        result["cli"] = {k: cli[k] for k in ("command", "wall_s", "cpu_s", "stats")}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
