"""The input side of `rank` and `eval`: decodes per distinct image and where the time goes, before/after.

Ranks N distinct PNG candidates (default 64, 1024 px) for one person with an
8 + 8 history, the model loaded beforehand, through `prefcli.rank`:

- "before": the scan decodes every file to prove it decodes and drops the
  pixels, the scorer decodes it again (the behaviour before issue 23's
  decode-once), emulated by swapping the header check for a full decode and
  the history's kept pixels for a dropped decode;
- "after": what prefcli does now (headers at scan, one decode when scored,
  the history decoded once and kept), with --workers 0 and with --workers N
  (threads decoding the next batch while one is scored; decode seconds then
  overlap the model's, so decode + other exceeds the wall time).

Both in one run, on the same files; it prints decodes per distinct image,
seconds decoding, preprocessing, in the model and the rest (prefcli.stage_times),
wall time and the ratio.

`eval` over a synthetic dataset of 1024-px images (`--eval-size`), the 1v3
tasks at N_ref 4, each scorer: "before" decodes at every use (no image cache,
`--image-cache-mb 0`, the behaviour before the run's image cache: a person's
history decoded again for every task), "after" with the run's cache, then
with `--workers`.

First, whether threads can decode in parallel: the candidates decoded one
after the other, by `--workers` threads and by as many processes (each image
sent back through a pipe, as a process pool must); if the threads' ratio is
near the process pool's, Pillow releases the GIL while it decodes. With --viper-dir (a
checkout of github.com/EPFL-VILAB/ViPer) it also times ViPer's own loop on
the same files and the tiny viper model — `load_context_images` +
`calculate_score` per candidate, metric.py imported as it is (see
tests/reference/viper_metric_oracle.py) — and prints its ratio to prefcli's.

    python bench/bench_input.py                                  # viper, preftoken, clip-probe; N=64, 1024 px
    python bench/bench_input.py --n 16 --size 512 --scorers viper --viper-dir /tmp/ViPer
    python bench/bench_input.py --skip-rank --eval-size 1024      # only the GIL check and eval

Timings depend on the machine and its load; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path


def _picture(seed: int, size: int):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(30, 240, (8, 8, 3), dtype=np.uint8)
    arr = np.asarray(Image.fromarray(small).resize((size, size), Image.BILINEAR), dtype=np.int16)
    arr = arr + rng.integers(-12, 12, arr.shape)  # photo-like noise: PNG decoding costs what it costs on photos
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def make_folders(root: Path, n: int, size: int) -> dict[str, Path]:
    out = {}
    for sub, count, base in (("cands", n, 0), ("liked", 8, 10_000), ("disliked", 8, 20_000)):
        d = root / sub
        d.mkdir(parents=True)
        for i in range(count):
            _picture(base + i, size).save(d / f"{i:04d}.png")
        out[sub] = d
    return out


@contextlib.contextmanager
def before_decode_once():
    """The scan decodes (and drops) every file; the history keeps nothing: two decodes per image."""
    from prefcli import image_folder, images

    saved = images.check_image_bytes, image_folder.scan_folder

    def full_check(data, name="<bytes>"):
        im = images.decode_image(data, name=name)
        return im.size

    def scan_dropping(folder, recursive=False, *, keep_pixels=False):
        return saved[1](folder, recursive)

    images.check_image_bytes, image_folder.scan_folder = full_check, scan_dropping
    try:
        yield
    finally:
        images.check_image_bytes, image_folder.scan_folder = saved


def time_rank(scorer, folders: dict[str, Path], n_files: int, workers: int = 0) -> dict:
    import prefcli
    from prefcli.stage_times import DECODE, MODEL, PREPROCESS

    at = {s: s.snapshot() for s in (DECODE, PREPROCESS, MODEL)}
    t0 = time.perf_counter()
    res = prefcli.rank(
        folders["cands"], likes=folders["liked"], dislikes=folders["disliked"], scorer=scorer, workers=workers
    )
    wall = time.perf_counter() - t0
    d = {s: (s.snapshot()[0] - at[s][0], s.snapshot()[1] - at[s][1]) for s in at}
    return {
        "wall": wall,
        "decodes_per_image": d[DECODE][0] / n_files,
        "decode_s": d[DECODE][1],
        "pre_s": d[PREPROCESS][1],
        "model_s": d[MODEL][1],
        "other_s": max(0.0, wall - d[DECODE][1] - d[PREPROCESS][1] - d[MODEL][1]),
        "scores": [r.score for r in sorted(res.ranked, key=lambda r: r.path)],
    }


def gil_check(files: list[Path], workers: int) -> None:
    """Decode every file in turn, with `workers` threads and with `workers` processes; print the speed-ups."""
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    from prefcli import images

    datas = [f.read_bytes() for f in files]
    t0 = time.perf_counter()
    for d in datas:
        images.decode_image(d, keep_mode=True)
    serial = time.perf_counter() - t0
    with ThreadPoolExecutor(workers) as pool:
        t0 = time.perf_counter()
        list(pool.map(lambda d: images.decode_image(d, keep_mode=True), datas))
        threads = time.perf_counter() - t0
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_decode_in_process, datas[:workers]))  # start the processes, not counted
        t0 = time.perf_counter()
        list(pool.map(_decode_in_process, datas))
        procs = time.perf_counter() - t0
    print(
        f"decode {len(files)} files: in turn {serial:.2f} s; {workers} threads {threads:.2f} s ({serial / threads:.2f}x); "
        f"{workers} processes {procs:.2f} s ({serial / procs:.2f}x, the decoded images sent back)"
    )


def _decode_in_process(data: bytes):
    from prefcli import images

    return images.decode_image(data, keep_mode=True)


def make_dataset(root: Path, size: int) -> Path:
    from prefcli.data import pickapic, synthetic

    cfg = synthetic.WorldConfig.from_preset(
        "opposed", n_users=8, pairs_per_user=12, image_size=size, n_prompts=4, images_per_prompt=6
    )
    synthetic.write_world(root / "world", cfg, progress=False)
    pickapic.build(
        str(root / "world"),
        root / "ds",
        pickapic.BuildParams(n_ref=4, min_liked=6, test_users=4, val_users=2),
        progress=False,
    )
    return root / "ds"


def time_eval(scorer, ds_path: Path, workers: int, image_cache_mb: float | None) -> dict:
    from prefcli import image_cache
    from prefcli.harness import source
    from prefcli.harness.evaluate import evaluate
    from prefcli.harness.runner import ScorerHandle

    ds = source.open_dataset(ds_path)
    tasks = source.load_tasks(ds, "test", "1v3", 4)
    distinct = {c.image_id for t in tasks for c in list(t.candidates) + t.history.images()}
    t0 = time.perf_counter()
    with image_cache.session(image_cache_mb):
        run, records = evaluate(
            ScorerHandle.wrap(scorer), tasks, batch_size=16, n_boot=10, protocol="1v3", n_ref=4, workers=workers
        )
    wall = time.perf_counter() - t0
    st = run["stats"]
    return {
        "wall": wall,
        "decodes_per_image": st["images_decoded"] / len(distinct),
        "decode_s": st["decode_seconds"],
        "pre_s": st["preprocess_seconds"],
        "model_s": st["model_seconds"],
        "other_s": st["other_seconds"],
        "scores": [r["scores"] for r in records],
        "images": len(distinct),
        "tasks": len(tasks),
    }


def _row(name: str, label: str, r: dict) -> str:
    return (
        f"{name:<11} {label:<26} {r['decodes_per_image']:>11.2f} {r['decode_s']:>9.2f} {r['pre_s']:>7.2f} {r['model_s']:>8.2f} "
        f"{r['other_s']:>8.2f} {r['wall']:>7.2f}"
    )


HEADER = f"{'scorer':<11} {'run':<26} {'decodes/img':>11} {'decode s':>9} {'pre s':>7} {'model s':>8} {'other s':>8} {'wall s':>7}"


def time_viper_loop(viper_dir: str, scorer, folders: dict[str, Path]) -> float:
    """ViPer's own loop (metric.py): load_context_images + calculate_score per candidate, the tiny model."""
    import copy

    import torch
    import transformers

    torch.cuda.set_device = lambda device: None  # metric.py line 20
    transformers.AutoModelForVision2Seq = transformers.AutoModelForImageTextToText  # before other transformers imports
    sys.path.insert(0, viper_dir)
    import metric

    metric.DEVICE = "cpu"
    from transformers import Idefics2ImageProcessor, Idefics2Processor

    vlm = scorer.vlm
    ip = Idefics2ImageProcessor(do_image_splitting=False, size=dict(vlm.preprocess.size))
    proc = Idefics2Processor(
        image_processor=ip, tokenizer=copy.deepcopy(vlm.tokenizer), image_seq_len=vlm.image_seq_len
    )
    neg = [str(p) for p in sorted(folders["disliked"].iterdir())]
    pos = [str(p) for p in sorted(folders["liked"].iterdir())]
    t0 = time.perf_counter()
    for q in sorted(folders["cands"].iterdir()):
        metric.calculate_score(proc, vlm.core, metric.load_context_images(neg, pos), str(q))
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=64, help="candidates")
    ap.add_argument("--size", type=int, default=1024, help="image side in px")
    ap.add_argument("--scorers", default="viper,preftoken,clip-probe")
    ap.add_argument(
        "--viper-dir", default=None, help="a checkout of EPFL-VILAB/ViPer (metric.py), for the upstream ratio"
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2, help="decode threads of the third run")
    ap.add_argument("--eval-size", type=int, default=1024, help="image side of the eval dataset (0: no eval section)")
    ap.add_argument("--skip-rank", action="store_true", help="only the GIL check and the eval section")
    args = ap.parse_args(argv)

    import torch

    from prefcli.plugins import load_scorer

    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="bench-input-") as tmp:
        folders = make_folders(Path(tmp), args.n, args.size)
        n_files = args.n + 16
        print(
            f"{args.n} candidates + 8/8 history, {args.size} px PNG, torch threads {args.threads}, "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        gil_check(sorted(folders["cands"].iterdir()), args.workers)
        print(HEADER)
        for name in [] if args.skip_rank else args.scorers.split(","):
            # viper with the real IDEFICS2 tokenizer (built offline): ViPer's loop reads the logits of ids 648 and 387
            extra = {"tokenizer": "idefics2"} if name == "viper" else {}
            scorer = load_scorer(name, weights="tiny", device="cpu", **extra)
            time_rank(scorer, folders, n_files)  # warm-up (lazy imports, first-call costs), not counted
            with before_decode_once():
                before = time_rank(scorer, folders, n_files)
            after = time_rank(scorer, folders, n_files)
            after2 = time_rank(scorer, folders, n_files, workers=args.workers)
            for label, r in (("before", before), ("after", after), (f"after, --workers {args.workers}", after2)):
                print(_row(name, "rank " + label, r))
            same = before["scores"] == after["scores"] == after2["scores"]
            print(
                f"{name:<11} before/after wall ratio {before['wall'] / after['wall']:.2f}x "
                f"({before['wall'] / after2['wall']:.2f}x with --workers {args.workers}); scores identical: {same}"
            )
            if name == "viper" and args.viper_dir:
                upstream = time_viper_loop(args.viper_dir, scorer, folders)
                print(
                    f"viper       ViPer's loop (load_context_images + calculate_score per candidate): {upstream:.2f} s; "
                    f"prefcli rank is {upstream / after['wall']:.1f}x faster "
                    f"({upstream / after2['wall']:.1f}x with --workers {args.workers})"
                )
        if args.eval_size:
            ds = make_dataset(Path(tmp) / "eval", args.eval_size)
            print(
                f"eval: synthetic dataset, {args.eval_size} px PNG, 1v3 at N_ref 4, load average {os.getloadavg()[0]:.1f}"
            )
            print(HEADER)
            for name in args.scorers.split(","):
                # A fresh model for each run: the VLMs keep image features by image id for their lifetime.
                fresh = lambda name=name: load_scorer(name, weights="tiny", device="cpu")  # noqa: E731
                time_eval(fresh(), ds, 0, 0)  # warm-up (lazy imports, first-call costs), not counted
                before = time_eval(fresh(), ds, 0, 0)
                after = time_eval(fresh(), ds, 0, None)
                after2 = time_eval(fresh(), ds, args.workers, None)
                for label, r in (("before", before), ("after", after), (f"after, --workers {args.workers}", after2)):
                    print(_row(name, "eval " + label, r))
                same = before["scores"] == after["scores"] == after2["scores"]
                print(
                    f"{name:<11} eval of {after['tasks']} tasks, {after['images']} distinct images: before/after wall ratio "
                    f"{before['wall'] / after['wall']:.2f}x ({before['wall'] / after2['wall']:.2f}x with --workers {args.workers}); "
                    f"scores identical: {same}"
                )


if __name__ == "__main__":
    main()
