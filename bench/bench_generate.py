"""ReNO iterations with the preference model as the reward: cached history prefix vs recomputed.

`prefcli generate` conditions the preference-token model on the history once
(`condition(history)` builds the key/value prefix) and every iteration scores
only the new image on top of it. The reference conditions again in every
iteration, as a loop that does not keep the state would. Both optimize the same
latent with the same rewards; this measures seconds per iteration and peak
memory of each, in one run, and prints the ratios.

    python bench/bench_generate.py                      # tiny generator + tiny preference model, CPU
    python bench/bench_generate.py --full --device cuda # SD-Turbo architecture + full-size IDEFICS2-8B, random weights, 512 px

Each configuration runs in its own child process, so its peak memory is its
own (CPU: the child's max RSS; GPU: torch.cuda.max_memory_allocated).
Timings depend on the machine; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def sd_turbo_random(device: str, dtype):
    """stabilityai/sd-turbo's architecture (its unet/vae/text_encoder configs) with random weights."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from prefcli.generate.tiny import SD_TURBO_SCHEDULER, tiny_tokenizer

    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2,
        attention_head_dim=(5, 10, 20, 20), cross_attention_dim=1024, use_linear_projection=True,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",), up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    )  # fmt: skip
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4, sample_size=768,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    )  # fmt: skip
    tok = tiny_tokenizer()  # the real vocabulary needs the hub; the sequence length (77) is what costs
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                                        num_attention_heads=16, hidden_act="gelu", projection_dim=512,
                                        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id))  # fmt: skip
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=EulerDiscreteScheduler(**SD_TURBO_SCHEDULER),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)  # fmt: skip
    return pipe.to(device, dtype)


def child(args: argparse.Namespace) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    sys.path.insert(0, str(HERE))
    from bench_prefix_cache import _images, build_scorer

    from prefcli.generate import reno
    from prefcli.generate.pipelines import GeneratorId, OneStepSD, load_generator
    from prefcli.generate.rewards import call_reward
    from prefcli.types import Candidate, HistoryPair, UserHistory

    torch.manual_seed(args.seed)
    if args.full:
        dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[
            args.dtype or "float16"
        ]
        pipe = sd_turbo_random(args.device, dtype)
        gen = OneStepSD(
            pipe, GeneratorId("sd-turbo-random", "random", None, "sd", str(dtype)), args.device, checkpointing=True
        )
    else:
        gen = load_generator("tiny", device=args.device)
    ns = argparse.Namespace(full=args.full, seed=args.seed, device=args.device, dtype=args.dtype, batch_size=1)
    scorer = build_scorer(ns)
    for p in scorer.vlm.model.parameters() if hasattr(scorer.vlm, "model") else []:
        p.requires_grad_(False)
    size = 512 if args.full else 64
    imgs = _images(2 * args.history, args.seed + 1, size)
    prompt = "a watercolor fox in the snow"
    hist = UserHistory(pairs=tuple(HistoryPair(Candidate.from_image(imgs[2 * i], prompt), Candidate.from_image(imgs[2 * i + 1], prompt), prompt=prompt)
                                   for i in range(args.history)))  # fmt: skip
    t0 = time.perf_counter()
    state = scorer.condition(hist)
    condition_s = time.perf_counter() - t0

    if args.mode == "cached":

        def fn(px):
            return call_reward(scorer, px, [prompt], state)
    else:

        def fn(px):
            return call_reward(scorer, px, [prompt], scorer.condition(hist))  # what a loop without the state does

    cond = gen.encode(prompt)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    res = reno.optimize(
        lambda z: gen.forward(z, cond),
        gen.init_latent(args.seed),
        [reno.RewardTerm("preftoken", 0.75, 1.0, fn)],
        steps=args.steps,
    )
    per_it = (
        statistics.median(it.seconds for it in res.iterations[1:])
        if len(res.iterations) > 1
        else res.iterations[0].seconds
    )
    out = {"mode": args.mode, "seconds_per_iteration": per_it, "condition_seconds": condition_s, "steps": args.steps,
           "final_q": res.iterations[res.best_iteration].rewards["preftoken"]}  # fmt: skip
    if args.device.startswith("cuda"):
        out["peak_gpu_bytes"] = int(torch.cuda.max_memory_allocated())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--steps",
        type=int,
        default=8,
        help="ReNO iterations per configuration (median seconds reported, first excluded)",
    )
    ap.add_argument("--history", type=int, default=8, help="history pairs")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None)
    ap.add_argument(
        "--full",
        action="store_true",
        help="SD-Turbo architecture + full-size IDEFICS2-8B preference model, random weights, 512 px (GPU)",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: the shared 2-core machine)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mode", choices=["cached", "uncached"], help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    rows = []
    for mode in ("cached", "uncached"):
        cmd = [sys.executable, __file__, "--child", "--mode", mode] + [
            a for a in (argv if argv is not None else sys.argv[1:])
        ]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads or "")}
        )
        _, status, usage = os.wait4(proc.pid, 0)
        text = proc.stdout.read()
        if os.waitstatus_to_exitcode(status) != 0:
            print(f"{mode}: child failed", file=sys.stderr)
            return 1
        rec = json.loads(text.strip().splitlines()[-1])
        rec["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux: kilobytes
        rows.append(rec)
    c, u = rows
    print(f"{'full-size SD-Turbo + IDEFICS2-8B (random)' if args.full else 'tiny generator + tiny preftoken'}, {args.history} history pairs, "
          f"{args.steps} iterations, device {args.device}")  # fmt: skip
    for r in rows:
        mem = (
            f"peak GPU {r['peak_gpu_bytes'] / 2**30:.2f} GiB"
            if "peak_gpu_bytes" in r
            else f"peak RSS {r['peak_rss_mb']:.0f} MB"
        )
        print(
            f"  {r['mode']:9s} {r['seconds_per_iteration'] * 1000:9.1f} ms/iteration   {mem}   (conditioning once: {r['condition_seconds'] * 1000:.0f} ms)"
        )
    print(f"  uncached / cached time per iteration: {u['seconds_per_iteration'] / c['seconds_per_iteration']:.2f}x")
    if "peak_gpu_bytes" in c:
        print(f"  uncached / cached peak GPU memory: {u['peak_gpu_bytes'] / c['peak_gpu_bytes']:.2f}x")
    else:
        print(f"  uncached / cached peak RSS: {u['peak_rss_mb'] / c['peak_rss_mb']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
