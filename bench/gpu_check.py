"""One prepared full-size GPU check: the real architectures with random weights, one JSON of numbers.

On one GPU (an H100 with 80 GB in mind), within a time budget (8 minutes by
default), with no network and no downloaded weights:

- input: the input pipeline (read the file, decode, the IDEFICS2 preprocessing)
  on the available CPU cores, candidates/s delivered, beside what the model
  consumes (rank_bf16's rate);
- rank_bf16 / rank_4bit: `rank` of 64 candidates for one user with 8 history
  pairs through the preference-token scorer (condition once, score the
  candidates on the cached prefix), IDEFICS2-8B in bf16 and with the language
  model in nf4 (QLoRA's quantization), candidates/s against the
  380 candidates/s compute limit of bf16 on an H100 (issue 22's figure);
- generate: ReNO with SD-Turbo (the sd-turbo UNet, VAE and OpenCLIP-H text
  encoder, random) and the preference reward (the bf16 model above) at 512 px,
  seconds per iteration and peak memory;
- train_step: one QLoRA training step of the `preftoken-idefics2-8b` config
  (2 pairs, 8 history pairs, L_all, AdamW), seconds and peak GPU memory against
  the estimate `prefcli train --config preftoken-idefics2-8b --dry-run` prints;
- hpsv3: scoring throughput, only when `prefcli scorers` lists hpsv3 (otherwise
  reported as skipped).

IDEFICS2-8B is built from the shipped config (prefcli/vlm/configs/idefics2-8b.json)
with the real tokenizer (mistral-common's SentencePiece model); SD-Turbo from the
hyperparameters of stabilityai/sd-turbo's unet, vae and text_encoder configs,
written below, whose parameter counts tests/e2e/test_gpu_check.py checks against
prefcli.generate.pipelines.KNOWN_PARAMS. `--tiny` runs the same code on tiny
models on a CPU in well under a minute (what the test runs).

    bash bench/gpu_check.sh                         # full size, cuda, writes gpu_check.json
    bash bench/gpu_check.sh --tiny --out /tmp/g.json

A part that fails is recorded with its error and the others still run.
Timings depend on the machine; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

FORMAT = 1
#: bf16 compute limit of rank on one H100 for 64 candidates and 8 history pairs (issue 22).
COMPUTE_LIMIT_CAND_PER_S = 380.0
N_CANDIDATES = 64
N_HISTORY = 8
PARTS = ("input", "rank_bf16", "generate", "rank_4bit", "train_step", "hpsv3")
WORDS = ["a red circle on a blue sea", "a castle at night", "a portrait of a cat in warm light", "a green forest"]

#: stabilityai/sd-turbo: unet/config.json, vae/config.json, text_encoder/config.json (the SD 2.1 architecture).
SD_TURBO_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True, act_fn="silu",
    norm_num_groups=32, norm_eps=1e-5, flip_sin_to_cos=True, freq_shift=0,
)  # fmt: skip
SD_TURBO_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, act_fn="silu",
    norm_num_groups=32, sample_size=768, scaling_factor=0.18215,
)  # fmt: skip
SD_TURBO_TEXT = dict(
    vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
    max_position_embeddings=77, hidden_act="gelu", projection_dim=512, layer_norm_eps=1e-5,
)  # fmt: skip


# --------------------------------------------------------------------------- helpers


class Clock:
    """The run's time budget: a part that would start past it is skipped, not half-run."""

    def __init__(self, budget_s: float) -> None:
        self.t0 = time.perf_counter()
        self.budget_s = budget_s

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak(device: str) -> int | None:
    import torch

    return int(torch.cuda.max_memory_allocated()) if device.startswith("cuda") else None


def _free(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def timed(fn: Callable[[], Any], device: str, repeats: int) -> tuple[float, Any]:
    """Median seconds of `repeats` calls after one warm-up call (kernels, allocator, lazy imports)."""
    out = fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def pictures(n: int, seed: int, size: int) -> list:
    """Noise pictures (never all black: IDEFICS2 reads black as padding)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(1, 255, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def user(args: argparse.Namespace):
    """One history of `args.history` pairs with prompts, and `args.candidates` candidates with prompts."""
    from prefcli.types import Candidate, HistoryPair, UserHistory

    size = 64 if args.tiny else 512
    imgs = pictures(2 * args.history, args.seed + 1, size)
    history = UserHistory(
        tuple(
            HistoryPair(
                liked=Candidate.from_image(imgs[2 * i]),
                disliked=Candidate.from_image(imgs[2 * i + 1]),
                prompt=WORDS[i % len(WORDS)],
            )
            for i in range(args.history)
        )
    )
    cands = [
        Candidate.from_image(im, prompt=WORDS[i % len(WORDS)])
        for i, im in enumerate(pictures(args.candidates, args.seed + 100, size))
    ]
    return history, cands


def around(vlm: Any, batch_size: int, label: str) -> Any:
    """The preftoken scorer (condition/score/reward as `rank` and `generate` call them) around a built model."""
    from prefcli_preftoken.scorer import PrefTokenScorer

    class Built(PrefTokenScorer):
        def _build(self) -> Any:
            self._weights_id = label
            return vlm

    from prefcli.plugins import get_scorer_spec

    spec = get_scorer_spec("preftoken")
    return Built(label, str(vlm.device), spec=spec, options=spec.parse_options({"batch_size": batch_size}))


def idefics2(args: argparse.Namespace, *, qlora: bool) -> Any:
    """IDEFICS2-8B (or the tiny model) with random weights, 10 preference tokens, the paper's template."""
    from prefcli.vlm.model import VLMSpec, build_model

    base = "tiny" if args.tiny else "idefics2-8b"
    dtype = "float32" if args.device == "cpu" else "bfloat16"
    return build_model(
        VLMSpec(
            base=base,
            weights="random",
            template="preftoken",
            n_pref_tokens=10,
            dtype=dtype,
            device=args.device,
            seed=args.seed,
            lora=qlora,
            qlora=qlora and not args.tiny,
        )
    )


# --------------------------------------------------------------------------- parts


def part_rank(args: argparse.Namespace, ctx: dict, *, qlora: bool) -> dict:
    if qlora:  # the bf16 model is done with (rank, generate): 16 GB back before the quantized one is built
        ctx.pop("bf16_vlm", None)
        ctx.pop("bf16_scorer", None)
        _free(args.device)
    t0 = time.perf_counter()
    vlm = idefics2(args, qlora=qlora)
    build_s = time.perf_counter() - t0
    _reset_peak(args.device)  # the rank's own peak, not the build's (a random init passes through fp32)
    scorer = around(vlm, args.batch_size, "idefics2-8b-random" + ("-nf4" if qlora else "-bf16"))
    history, cands = user(args)

    def rank_once():
        state = scorer.condition(history)
        return scorer.score(cands, state), state

    import torch

    with torch.no_grad():
        t, (scores, state) = timed(rank_once, args.device, args.repeats)
    rate = len(cands) / t
    ctx["qlora_vlm" if qlora else "bf16_vlm"] = vlm
    ctx["qlora_scorer" if qlora else "bf16_scorer"] = scorer
    return {
        "status": "ok",
        "candidates": len(cands),
        "history_pairs": args.history,
        "batch_size": args.batch_size,
        "prefix_tokens": int(state.length),
        "build_seconds": build_s,
        "seconds_per_rank": t,
        "candidates_per_s": rate,
        "compute_limit_candidates_per_s": COMPUTE_LIMIT_CAND_PER_S,
        "fraction_of_limit": rate / COMPUTE_LIMIT_CAND_PER_S,
        "all_finite": bool(all(s == s for s in scores)),
        "peak_memory_bytes": _peak(args.device),
        "weights": "random",
        "quantization": "nf4 (language model), LoRA r8"
        if qlora and not args.tiny
        else ("none (tiny: no bitsandbytes on a CPU)" if qlora else "none"),
    }


def sd_turbo_random(device: str, dtype: Any, tiny: bool, seed: int) -> Any:
    """SD-Turbo's pipeline with random weights in the real architecture (or prefcli's tiny one)."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from prefcli.generate.tiny import SD_TURBO_SCHEDULER, build_tiny_sd, tiny_tokenizer

    if tiny:
        return build_tiny_sd(seed).to(device)
    tok = tiny_tokenizer()  # token ids only feed the text encoder once per prompt; the vocabulary size is the real one
    torch.manual_seed(seed)
    with torch.device(device):
        unet = UNet2DConditionModel(**SD_TURBO_UNET)
        vae = AutoencoderKL(**SD_TURBO_VAE)
        text = CLIPTextModel(
            CLIPTextConfig(
                **SD_TURBO_TEXT,
                bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.eos_token_id,
            )
        )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tok,
        unet=unet,
        scheduler=EulerDiscreteScheduler(**SD_TURBO_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return pipe.to(device, dtype)


def part_generate(args: argparse.Namespace, ctx: dict) -> dict:
    import torch

    from prefcli.generate import reno
    from prefcli.generate.pipelines import GeneratorId, _wrap, count_params
    from prefcli.generate.rewards import LoadedScorer, reward_terms

    scorer = ctx.get("bf16_scorer")
    if scorer is None:
        return {"status": "skipped", "reason": "rank_bf16 did not build the preference model"}
    _reset_peak(args.device)
    dtype = torch.float32 if args.device == "cpu" else torch.float16  # prefcli generate's dtype for sd-turbo on cuda
    pipe = sd_turbo_random(args.device, dtype, args.tiny, args.seed)
    gen = _wrap(
        pipe,
        GeneratorId("sd-turbo" if not args.tiny else "tiny", "random", None, "sd", str(dtype)),
        args.device,
        checkpointing=args.device.startswith("cuda"),
    )
    history, _ = user(args)
    state = scorer.condition(history)
    prompt = WORDS[0]
    loaded = [LoadedScorer("preftoken", scorer, state, weight=0.75)]
    cond = gen.encode(prompt)
    z0 = gen.init_latent(args.seed)
    _sync(args.device)
    res = reno.optimize(lambda z: gen.forward(z, cond), z0, reward_terms(loaded, prompt), steps=args.generate_steps)
    _sync(args.device)
    secs = [it.seconds for it in res.iterations]
    steady = secs[1:-1] or secs  # the first pays warm-up; the last has no backward pass
    return {
        "status": "ok",
        "image_size": gen.image_size,
        "iterations": len(secs),
        "seconds_per_iteration": statistics.median(steady),
        "first_iteration_seconds": secs[0],
        "peak_memory_bytes": _peak(args.device),
        "generator_parameters": count_params(gen),
        "reward_weight": 0.75,
        "generator_dtype": str(dtype).replace("torch.", ""),
        "all_finite": bool(all(it.loss == it.loss for it in res.iterations)),
    }


class _Images:
    """What the trainer's PixelStore reads: image id -> picture."""

    def __init__(self, images: dict) -> None:
        self.images = images

    def open_image(self, image_id: str) -> Any:
        return self.images[image_id]


def part_train_step(args: argparse.Namespace, ctx: dict) -> dict:
    import torch

    from prefcli.train.config import load_config
    from prefcli.train.data import HPair, PixelStore, Sample, collate_pairs
    from prefcli.train.dryrun import dry_run
    from prefcli.train.loop import PairForward, apply_stage, make_optimizer
    from prefcli.vlm.losses import preference_loss
    from prefcli.vlm.model import build_model
    from prefcli.vlm.template import train_history_items

    overrides = (
        {"model": {"base": "tiny", "qlora": False, "dtype": "float32"}, "data": {"n_ref": args.history}}
        if args.tiny
        else None
    )
    cfg = load_config("preftoken-idefics2-8b", overrides)
    estimate = dry_run(cfg)["memory_per_device"]
    for k in ("bf16_vlm", "bf16_scorer", "qlora_scorer"):
        ctx.pop(k, None)
    _free(args.device)
    vlm = ctx.pop("qlora_vlm", None)
    if vlm is None or args.tiny:
        vlm = build_model(cfg.vlm_spec(device=args.device, weights="random"))
    vlm.pref_tokens = None  # stage 1 of the config: no tokens yet
    if cfg.model.gradient_checkpointing:
        vlm.core.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    apply_stage(vlm, cfg, 0)
    params = [p for p in vlm.parameters() if p.requires_grad]
    opt, _ = make_optimizer(params, cfg, cfg.stages[0])
    module = PairForward(vlm)
    module.train()
    size = 64 if args.tiny else 512
    n_pairs = cfg.run.per_device_batch
    imgs = pictures(2 * (cfg.data.n_ref + 1) * n_pairs, args.seed + 7, size)
    ids = {f"img{i}": im for i, im in enumerate(imgs)}
    names = list(ids)
    import random

    rng = random.Random(args.seed)
    samples = []
    for j in range(n_pairs):
        own = names[j * 2 * (cfg.data.n_ref + 1) : (j + 1) * 2 * (cfg.data.n_ref + 1)]
        hist = [HPair(own[2 * i], own[2 * i + 1], WORDS[i % len(WORDS)]) for i in range(cfg.data.n_ref)]
        samples.append(Sample(train_history_items(hist, rng), own[-2], own[-1], WORDS[j % len(WORDS)], f"u{j}"))
    store = PixelStore(_Images(ids), vlm.preprocess, cfg.data.pixel_cache_mb)
    batch = collate_pairs(vlm.encoder, samples, store).to(args.device)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if args.device.startswith("cuda") and cfg.run.mixed_precision == "bf16"
        else contextlib.nullcontext()
    )

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        with autocast:
            logits = module(batch.input_ids, batch.attention_mask, batch.pixel_values, batch.image_index)
            terms = preference_loss(logits[:n_pairs], logits[n_pairs:], vlm.plus_id, vlm.minus_id)
        terms.total.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.optim.max_grad_norm)
        opt.step()
        return float(terms.total.detach())

    _reset_peak(args.device)
    _sync(args.device)
    t0 = time.perf_counter()
    loss0 = step()
    _sync(args.device)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    loss1 = step()
    _sync(args.device)
    second = time.perf_counter() - t0
    peak = _peak(args.device)
    est = int(estimate["total_bytes"])
    return {
        "status": "ok",
        "config": cfg.name,
        "stage": cfg.stages[0].name,
        "pairs": n_pairs,
        "history_pairs": cfg.data.n_ref,
        "sequence_tokens": int(batch.input_ids.shape[1]),
        "trainable_parameters": sum(p.numel() for p in params),
        "first_step_seconds": first,
        "step_seconds": second,
        "peak_memory_bytes": peak,
        "dry_run_estimate_bytes": est,
        "peak_over_estimate": (peak / est) if peak and est else None,
        "loss": [loss0, loss1],
        "all_finite": loss0 == loss0 and loss1 == loss1,
        "quantization": "nf4 (language model), LoRA r8" if cfg.model.qlora else "none (tiny: no bitsandbytes on a CPU)",
    }


def part_hpsv3(args: argparse.Namespace, ctx: dict) -> dict:
    from prefcli import plugins
    from prefcli.weights_here import availability

    specs = plugins.scorers()
    if "hpsv3" not in specs:
        return {"status": "skipped", "reason": "`prefcli scorers` does not list hpsv3"}
    if args.tiny:
        weights = "tiny"
    elif availability(specs["hpsv3"].default_weights).usable_now:
        weights = None
    else:
        return {
            "status": "skipped",
            "reason": f"hpsv3's default weights ({specs['hpsv3'].default_weights}) are not on this "
            "machine: `prefcli weights pull hpsv3` first",
        }
    _reset_peak(args.device)
    scorer = plugins.load_scorer("hpsv3", weights=weights, device=args.device)
    _, cands = user(args)
    state = scorer.condition(None) if hasattr(scorer, "condition") else None
    t, scores = timed(lambda: scorer.score(cands, state), args.device, args.repeats)
    return {
        "status": "ok",
        "weights": weights or specs["hpsv3"].default_weights,
        "candidates": len(cands),
        "candidates_per_s": len(cands) / t,
        "peak_memory_bytes": _peak(args.device),
    }


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def part_input(args: argparse.Namespace, ctx: dict) -> dict:
    """Files → decoded RGB → the model's pixel tensors, on every available core (threads: PIL releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    from prefcli import images
    from prefcli.vlm.preprocess import ImagePreprocessor

    n = args.candidates
    size = 256 if args.tiny else 1024
    pre = ImagePreprocessor.tiny(32) if args.tiny else ImagePreprocessor.full()
    workers = cores()
    with tempfile.TemporaryDirectory(prefix="prefcli-gpu-check-") as d:
        paths = []
        for i, im in enumerate(pictures(n, args.seed + 11, size)):
            p = Path(d) / f"c{i:03d}.png"
            im.save(p)
            paths.append(p)

        def one(p: Path) -> Any:
            return pre([images.decode_image(images.read_image_file(p), p.name)])

        def run_all() -> None:
            with ThreadPoolExecutor(max_workers=workers) as ex:
                list(ex.map(one, paths))

        t, _ = timed(run_all, "cpu", args.repeats)
    return {
        "status": "ok",
        "candidates": n,
        "image_size": size,
        "format": "png",
        "workers": workers,
        "delivered_candidates_per_s": n / t,
        "model_consumes_candidates_per_s": None,
    }


# --------------------------------------------------------------------------- run


def _device_facts(device: str) -> dict:
    import torch

    facts = {"device": device, "cpu_cores": cores(), "python": platform.python_version(), "torch": torch.__version__}
    if device.startswith("cuda"):
        p = torch.cuda.get_device_properties(torch.device(device))
        facts.update(gpu=p.name, gpu_memory_bytes=int(p.total_memory), cuda=torch.version.cuda)
    return facts


def run(args: argparse.Namespace) -> dict:
    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.tiny:
        torch.set_num_threads(max(1, min(2, cores())))
    clock = Clock(args.budget_s)
    ctx: dict = {}
    results: dict[str, dict] = {}
    fns = {
        "input": part_input,
        "rank_bf16": lambda a, c: part_rank(a, c, qlora=False),
        "generate": part_generate,
        "rank_4bit": lambda a, c: part_rank(a, c, qlora=True),
        "train_step": part_train_step,
        "hpsv3": part_hpsv3,
    }
    for name in PARTS:
        if name in args.skip:
            results[name] = {"status": "skipped", "reason": "--skip"}
            continue
        if clock.left() <= 0:
            results[name] = {"status": "skipped", "reason": f"past the {args.budget_s:.0f} s budget"}
            continue
        print(f"gpu_check: {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            results[name] = fns[name](args, ctx)
        except Exception as e:  # noqa: BLE001 - one failed part is recorded; the others still run
            results[name] = {
                "status": "error",
                "error": f"{type(e).__name__}: {' '.join(str(e).split())[:500]}",
                "where": traceback.format_exc().strip().splitlines()[-3:],
            }
        results[name]["wall_seconds"] = time.perf_counter() - t0
        print(
            f"gpu_check: {name} {results[name]['status']} in {results[name]['wall_seconds']:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    if results.get("input", {}).get("status") == "ok" and results.get("rank_bf16", {}).get("status") == "ok":
        inp = results["input"]
        inp["model_consumes_candidates_per_s"] = results["rank_bf16"]["candidates_per_s"]
        inp["delivered_over_consumed"] = inp["delivered_candidates_per_s"] / inp["model_consumes_candidates_per_s"]
    return {
        "format": FORMAT,
        "mode": "tiny" if args.tiny else "full",
        "budget_seconds": args.budget_s,
        "total_seconds": time.perf_counter() - clock.t0,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": _device_facts(args.device),
        "parts": results,
    }


def _plain(obj: Any) -> Any:
    """JSON has no NaN or infinity (a diverged loss): null instead, so every reader loads the file."""
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj if obj is None or isinstance(obj, (str, int, bool)) else str(obj)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny models on a CPU (the same code, in well under a minute)")
    ap.add_argument("--out", default="gpu_check.json", help="the JSON written (atomically)")
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--budget-s", type=float, default=None, help="no part starts past this (default 480 full, 300 tiny)"
    )
    ap.add_argument(
        "--candidates", type=int, default=None, help=f"candidates ranked (default {N_CANDIDATES} full, 8 tiny)"
    )
    ap.add_argument("--history", type=int, default=None, help=f"history pairs (default {N_HISTORY} full, 2 tiny)")
    ap.add_argument(
        "--repeats", type=int, default=None, help="timed repeats after one warm-up (default 3 full, 1 tiny)"
    )
    ap.add_argument("--batch-size", type=int, default=16, help="candidates per forward pass in rank")
    ap.add_argument("--generate-steps", type=int, default=None, help="ReNO iterations (default 6 full, 3 tiny)")
    ap.add_argument("--skip", default="", help=f"parts to leave out, comma-separated ({', '.join(PARTS)})")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = args.skip - set(PARTS)
    if unknown:
        ap.error(f"--skip: unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    args.budget_s = args.budget_s if args.budget_s is not None else (300.0 if args.tiny else 480.0)
    args.candidates = args.candidates or (8 if args.tiny else N_CANDIDATES)
    args.history = args.history or (2 if args.tiny else N_HISTORY)
    args.repeats = args.repeats if args.repeats is not None else (1 if args.tiny else 3)
    args.generate_steps = args.generate_steps if args.generate_steps is not None else (3 if args.tiny else 6)
    if not args.tiny:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the GPU machine has no network: never wait on it
    doc = run(args)
    from prefcli.atomic import write_text

    write_text(args.out, json.dumps(_plain(doc), indent=2, allow_nan=False) + "\n")
    print(f"gpu_check: wrote {args.out}", file=sys.stderr)
    bad = [k for k, v in doc["parts"].items() if v["status"] == "error"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
