"""PickScore*: PickScore fine-tuned on a dataset's training pairs (the paper's Table 1 asterisk row).

The paper marks PickScore* as "trained with the same settings as our model".
This trainer keeps PickScore's own objective and data handling, from its
training code (github:yuvalkirstain/PickScore, trainer/):

- objective (criterions/clip_criterion.py lines 89-121, `in_batch_negatives`
  False, its default at line 18): the two images of a pair compete for their
  prompt, logits = logit_scale.exp() · cos(text, image) (lines 66-68, 90-94);
  loss = label_0·CE(logits, 0) + label_1·CE(logits, 1) + log(0.5)·[tie]
  (lines 95-106), each example weighted by 1/(examples of its prompt),
  normalized over the batch, summed (lines 115-120). A prefcli pair is the
  liked image (label 1) against the disliked one (label 0); no ties;
- text: `tokenizer(caption, max_length=model_max_length, padding="max_length",
  truncation=True)` (datasetss/clip_hf_dataset.py lines 150-156), fed to
  `get_text_features(input_ids)` alone (models/clip_model.py line 29);
- images: `convert("RGB")` then the CLIP image processor (lines 159-166);
- every weight trains, `logit_scale` included (the model's parameters are the
  optimizer's, scripts/train.py); gradient-norm clip 1.0 and bf16 mixed
  precision (accelerators/base_accelerator.py line 64, conf/experiment/clip.yaml
  line 9) — the same as the paper's.

The optimizer settings come from the paper where they apply (configs
`pickscore-star*`): AdamW lr 1e-5 (PickScore: 1e-6 in optimizers/adamw.py line
7), weight decay 1e-2 (PickScore: AdamW's default, the same), global batch 64
pairs (PickScore: 16 per GPU x 8 = 128), 5,000 steps (the paper's stage 1;
PickScore: 4,000), a constant schedule without warm-up (PickScore: 500 warm-up
steps). LoRA, QLoRA, history and preference tokens do not apply.

A run directory holds metrics.jsonl, train_config.json, checkpoints/step-N/
(model/ as below, optimizer.safetensors, rng-0.safetensors,
trainer_state.json; written to a temporary folder and renamed; the last K
kept; `--resume` continues exactly) and model/: an HF CLIPModel in
safetensors with its tokenizer and preprocessor, which the `pickscore` scorer
(and its `pickscore-star` name) loads as weights.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from prefcli.errors import ConfigError
from prefcli.train.config import TrainConfig

MODEL_INFO = "prefcli_model.json"


# ---------------------------------------------------------------------------
# the objective


def pickscore_loss(
    text: torch.Tensor,
    image_0: torch.Tensor,
    image_1: torch.Tensor,
    logit_scale: torch.Tensor,
    label_0: torch.Tensor,
    label_1: torch.Tensor,
    examples_per_prompt: torch.Tensor,
) -> torch.Tensor:
    """PickScore's loss on L2-normalized features (the module docstring cites each line)."""
    import torch.nn.functional as F

    s0 = logit_scale * (text * image_0).sum(-1)
    s1 = logit_scale * (text * image_1).sum(-1)
    logits = torch.stack([s0, s1], dim=-1)
    zeros = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    loss = label_0 * F.cross_entropy(logits, zeros, reduction="none") + label_1 * F.cross_entropy(
        logits, zeros + 1, reduction="none"
    )
    # A tie's best loss is -2·½·log ½; shifting by log ½ makes it 0, as upstream.
    loss = loss + (label_0 == label_1).to(loss.dtype) * torch.log(
        torch.tensor(0.5, device=loss.device, dtype=loss.dtype)
    )
    w = 1.0 / examples_per_prompt.to(loss.dtype)
    return (loss * (w / w.sum())).sum()


# ---------------------------------------------------------------------------
# data: batches as a pure function of (seed, global micro-batch index), so a resumed run sees the same ones


class PairDraw:
    """Training pairs in a seeded order, reshuffled every epoch; batch k is always the same pairs."""

    def __init__(self, pairs: Sequence[Any], seed: int):
        if not pairs:
            raise ConfigError("PickScore*: the dataset has no training pairs")
        self.pairs, self.seed = list(pairs), int(seed)
        counts: dict[str, int] = {}
        for p in self.pairs:
            counts[p.prompt or ""] = counts.get(p.prompt or "", 0) + 1
        self.per_prompt = counts  # PickScore's num_example_per_prompt, over the training pairs
        self._orders: dict[int, list[int]] = {}

    def _order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            idx = list(range(len(self.pairs)))
            random.Random(f"prefcli-pickscore-star|{self.seed}|{epoch}").shuffle(idx)
            self._orders = {epoch: idx}
        return self._orders[epoch]

    def batch(self, index: int, size: int) -> list[Any]:
        out = []
        n = len(self.pairs)
        for pos in range(index * size, (index + 1) * size):
            out.append(self.pairs[self._order(pos // n)[pos % n]])
        return out


def _preprocess(image_processor: Any) -> Callable[[list], torch.Tensor]:
    def run(images: list) -> torch.Tensor:
        return image_processor(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]

    return run


def _tokens(tokenizer: Any, prompts: Sequence[str | None]) -> torch.Tensor:
    return tokenizer(
        [p or "" for p in prompts],
        max_length=tokenizer.model_max_length,
        padding="max_length",
        truncation=True,
        return_tensors="pt",
    ).input_ids


def _features(model: Any, input_ids: torch.Tensor, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    from prefcli.clip_common import projected

    text = projected(model.get_text_features(input_ids=input_ids))
    image = projected(model.get_image_features(pixel_values=pixels))
    return text / text.norm(dim=-1, keepdim=True), image / image.norm(dim=-1, keepdim=True)


# ---------------------------------------------------------------------------
# checkpoints


def save_model_folder(bundle: Any, path: Path, meta: dict) -> Path:
    """An HF CLIP folder (safetensors, tokenizer, preprocessor) that loads as `pickscore` weights."""
    bundle.model.save_pretrained(str(path), safe_serialization=True)
    bundle.tokenizer.save_pretrained(str(path))
    bundle.processor.save_pretrained(str(path))
    (path / MODEL_INFO).write_text(json.dumps(meta, indent=2, allow_nan=False))
    return path


def _atomic_folder(final: Path, fill: Callable[[Path], None]) -> Path:
    """Fill a temporary folder beside `final`, then move it into place (prefcli.atomic.replace_dir)."""
    from prefcli.atomic import replace_dir, writing

    final.parent.mkdir(parents=True, exist_ok=True)
    with writing(final):  # a full disk names the folder it could not write, not its temp folder
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        with writing(final, work=tmp):
            fill(tmp)
            replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


# ---------------------------------------------------------------------------
# validation


def val_accuracy(bundle: Any, tasks: Sequence[Any], store: Any, device: Any, batch: int = 32) -> float:
    """1-vs-1 top-1 on the validation tasks, a hit counted by the harness's rule (prefcli.harness.metrics.top1_hit)."""
    from prefcli.harness.metrics import top1_hit

    if not tasks:
        return float("nan")
    model = bundle.model
    was = model.training
    model.eval()
    hits = 0
    with torch.no_grad():
        for start in range(0, len(tasks), batch):
            chunk = tasks[start : start + batch]
            ids = [i for t in chunk for i in t.candidates]
            prompts = [p for t in chunk for p in t.prompts]
            text, image = _features(model, _tokens(bundle.tokenizer, prompts).to(device), store.get(ids).to(device))
            scores = (model.logit_scale.exp() * (text * image).sum(-1)).tolist()
            k = 0
            for t in chunk:
                s = scores[k : k + len(t.candidates)]
                k += len(t.candidates)
                hits += top1_hit(s, t.liked_index)
    model.train(was)
    return hits / len(tasks)


# ---------------------------------------------------------------------------
# the run


def load_bundle(cfg: TrainConfig, device: Any) -> Any:
    """The PickScore model to start from, loaded exactly as the `pickscore` scorer loads its weights."""
    from prefcli_pickscore.scorer import DEFAULT_PROCESSOR, load_pickscore

    processor = DEFAULT_PROCESSOR if cfg.model.tokenizer in ("", "auto") else cfg.model.tokenizer
    bundle = load_pickscore(cfg.model.base, processor=processor, device=device, dtype=torch.float32)
    bundle.model.train()
    for p in bundle.model.parameters():
        p.requires_grad_(True)
    return bundle


def train_pickscore(
    cfg: TrainConfig,
    *,
    data: str | os.PathLike | None = None,
    out: str | os.PathLike = "runs/train",
    resume: bool = False,
    max_steps: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Any:
    """Fine-tune PickScore on the training pairs of a dataset; see the module docstring."""
    from accelerate.utils import set_seed

    from prefcli.data.dataset import Dataset
    from prefcli.readable import per_second
    from prefcli.train import checkpoint as ck
    from prefcli.train.common import MetricsLog, checkpoint_model, make_accelerator, resume_point, training_progress
    from prefcli.train.data import PixelStore, load_eval_tasks
    from prefcli.train.loop import TrainResult, make_optimizer, resolve_dataset, val_shown

    say = log or (lambda s: None)
    out = Path(out)
    r = cfg.run
    if r.num_threads:
        torch.set_num_threads(r.num_threads)
    acc = make_accelerator(r, out, trackers=False)
    main = acc.is_main_process
    accum = cfg.grad_accum_for(acc.num_processes)
    per_step = r.per_device_batch * accum * acc.num_processes
    ckpt_root = out / ck.CHECKPOINTS_DIR
    last = resume_point(out, resume=resume, main=main, say=say)

    ds_path = resolve_dataset(cfg, data)
    ds = Dataset.open(ds_path)
    set_seed(r.seed)
    bundle = load_bundle(cfg, acc.device)
    store = PixelStore(ds, _preprocess(bundle.processor), cfg.data.pixel_cache_mb)
    draw = PairDraw(ds.pairs("train"), r.seed)
    val_tasks = load_eval_tasks(ds, cfg.data.val_split, n_ref=None, max_tasks=cfg.data.val_max_tasks, seed=r.seed)
    val_tasks = val_tasks[acc.process_index :: acc.num_processes]

    stage = cfg.stages[0]
    total = stage.steps
    stop = min(total, max_steps) if max_steps else total
    params = [p for p in bundle.model.parameters() if p.requires_grad]
    optimizer, scheduler = make_optimizer(params, cfg, stage)
    start, last_val = 0, None
    if last is not None:
        state = ck.read_state(last)
        start, last_val = int(state["step"]), state.get("val_acc")
        from prefcli.weights import load_safetensors  # checked first: a garbage file is one line

        bundle.model.load_state_dict(
            load_safetensors(last / ck.MODEL_DIR / "model.safetensors", device=str(acc.device))
        )
        ck.load_optimizer(optimizer, last / ck.OPTIMIZER_FILE)
        scheduler.load_state_dict(state["scheduler"])
        rng = last / f"rng-{acc.process_index}.safetensors"
        if rng.is_file():
            ck.set_rng_state(*ck.load_tensors(rng))
        say(f"resumed from {last} (step {start})")
    model, optimizer = acc.prepare(bundle.model, optimizer)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        from prefcli.atomic import write_text

        write_text(
            out / ck.CONFIG_FILE,
            json.dumps({**cfg.to_dict(), "_source": cfg.source, "_dataset": str(ds_path)}, indent=2, allow_nan=False),
        )
    metrics = MetricsLog(out / "metrics.jsonl", main, start if last is not None else None)
    meta = {
        "trainer": "pickscore",
        "train_config": cfg.name,
        "dataset": str(ds_path),
        "base": cfg.model.base,
        "loss": "PickScore (clip_criterion, in_batch_negatives=False)",
    }

    def save(step: int) -> None:
        if not main:
            return
        st = {
            "step": step,
            "stage": 0,
            "stage_name": stage.name,
            "scheduler": scheduler.state_dict(),
            "config_name": cfg.name,
            "per_step_pairs": per_step,
            "val_acc": last_val,
        }

        def fill(tmp: Path) -> None:
            save_model_folder(bundle, tmp / ck.MODEL_DIR, {**meta, "step": step})
            ck.save_optimizer(optimizer, tmp / ck.OPTIMIZER_FILE)
            ck.save_tensors(tmp / "rng-0.safetensors", *ck.rng_state())
            (tmp / ck.STATE_FILE).write_text(json.dumps(st, indent=2, allow_nan=False))

        path = _atomic_folder(ckpt_root / ck.checkpoint_name(step), fill)
        ck.prune_checkpoints(ckpt_root, r.keep_last)
        say(f"checkpoint {path}")

    t0 = time.perf_counter()
    pairs_done, run_loss, n_loss = 0, 0.0, 0
    model.train()
    with training_progress(progress and main) as bar:
        task = bar.add_task(
            f"training {cfg.name} ({stage.name})",
            total=stop,
            completed=start,
            loss="-",
            acc=val_shown(last_val),
            sps="-",
        )
        for step in range(start + 1, stop + 1):
            for micro in range(accum):
                k = ((step - 1) * accum + micro) * acc.num_processes + acc.process_index
                pairs = draw.batch(k, r.per_device_batch)
                ids = _tokens(bundle.tokenizer, [p.prompt for p in pairs]).to(acc.device)
                pix = store.get([p.liked_image_id for p in pairs] + [p.disliked_image_id for p in pairs]).to(acc.device)
                n_ex = torch.tensor([float(draw.per_prompt[p.prompt or ""]) for p in pairs], device=acc.device)
                ones = torch.ones(len(pairs), device=acc.device)
                with acc.autocast():
                    text, image = _features(acc.unwrap_model(model), ids, pix)
                    img_liked, img_disliked = image.float().chunk(2, dim=0)
                    loss = pickscore_loss(
                        text.float(),
                        img_liked,
                        img_disliked,
                        acc.unwrap_model(model).logit_scale.exp().float(),
                        ones,
                        ones * 0,
                        n_ex,
                    )
                    acc.backward(loss / accum)
                run_loss += float(loss.detach()) / accum
            n_loss += 1
            if cfg.optim.max_grad_norm > 0:
                acc.clip_grad_norm_(params, cfg.optim.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            pairs_done += per_step
            elapsed = time.perf_counter() - t0
            sps = pairs_done / elapsed if elapsed > 0 else 0.0
            if r.log_every and (step % r.log_every == 0 or step == stop):
                rec = {
                    "step": step,
                    "stage": stage.name,
                    "lr": scheduler.get_last_lr()[0],
                    "loss": run_loss / n_loss,
                    "logit_scale": float(acc.unwrap_model(model).logit_scale.detach().exp()),
                    "pairs_per_s": round(sps, 2),
                    "elapsed_s": round(elapsed, 2),
                }
                metrics.log(rec)
                bar.update(task, loss=f"{rec['loss']:.4f}", sps=per_second(sps))
                run_loss, n_loss = 0.0, 0
            bar.update(task, completed=step)
            if (r.eval_every and step % r.eval_every == 0) or step == stop:
                last_val = val_accuracy(bundle, val_tasks, store, acc.device)
                metrics.log({"step": step, "stage": stage.name, "val_acc": last_val, "val_tasks": len(val_tasks)})
                bar.update(task, acc=val_shown(last_val))
            if (r.checkpoint_every and step % r.checkpoint_every == 0) or step == stop:
                save(step)
    seconds = time.perf_counter() - t0
    finished = stop == total
    model_dir = checkpoint_model(ckpt_root, stop) if main and not finished else None
    if main and finished:
        model_dir = _atomic_folder(
            out / ck.MODEL_DIR, lambda tmp: save_model_folder(bundle, tmp, {**meta, "step": total, "val_acc": last_val})
        )
    acc.wait_for_everyone()
    return TrainResult(
        out,
        stop,
        not finished,
        last_val,
        pairs_done / seconds if seconds > 0 else 0.0,
        seconds,
        model_dir,
        metrics.records,
    )


# ---------------------------------------------------------------------------
# dry run: the real CLIP-H on the meta device

# laion/CLIP-ViT-H-14-laion2B-s32B-b79K's config.json (PickScore_v1 has the same architecture).
CLIP_H = {
    "projection_dim": 1024,
    "text_config": {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_attention_heads": 16,
        "num_hidden_layers": 24,
        "max_position_embeddings": 77,
        "vocab_size": 49408,
        "hidden_act": "gelu",
        "projection_dim": 1024,
    },
    "vision_config": {
        "hidden_size": 1280,
        "intermediate_size": 5120,
        "num_attention_heads": 16,
        "num_hidden_layers": 32,
        "image_size": 224,
        "patch_size": 14,
        "hidden_act": "gelu",
        "projection_dim": 1024,
    },
}
GIB = 1 << 30


def dry_run_pickscore(cfg: TrainConfig, num_processes: int = 1) -> dict:
    """Parameter counts of CLIP-H (built on the meta device, offline) and a memory estimate per device.

    Every weight trains in fp32 (4 bytes weight + 4 gradient + 8 AdamW
    moments); activations without checkpointing, per layer ≈ 34·s·h bytes per
    sequence in bf16 (the estimate dryrun.py uses), for 2 images (257 tokens
    each, 1,280 wide) and one 77-token text (1,024 wide) per pair; plus 1.5 GiB
    of CUDA context. An estimate to pick a GPU, not a guarantee.
    """
    from transformers import CLIPConfig, CLIPModel

    with torch.device("meta"):
        model = CLIPModel(CLIPConfig(**CLIP_H))
    parts = {"vision": 0, "text": 0, "projections_and_scale": 0}
    for name, p in model.named_parameters():
        key = (
            "vision"
            if name.startswith("vision_model.")
            else "text"
            if name.startswith("text_model.")
            else "projections_and_scale"
        )
        parts[key] += p.numel()
    total = sum(parts.values())
    rows = [{"part": k, "total": v, f"trainable:{cfg.stages[0].name}": v} for k, v in parts.items()]
    rows.append({"part": "all", "total": total, f"trainable:{cfg.stages[0].name}": total})
    accum = cfg.grad_accum_for(num_processes)
    b = cfg.run.per_device_batch
    vc, tc = CLIP_H["vision_config"], CLIP_H["text_config"]
    patches = (vc["image_size"] // vc["patch_size"]) ** 2 + 1
    vision_act = 2 * b * vc["num_hidden_layers"] * 34 * patches * vc["hidden_size"]
    text_act = b * tc["num_hidden_layers"] * 34 * tc["max_position_embeddings"] * tc["hidden_size"]
    state = total * 16
    ctx = int(1.5 * GIB)
    all_bytes = state + vision_act + text_act + ctx
    mem = {
        "stage": cfg.stages[0].name,
        "weights_gib": 0.0,
        "trainable_params_and_adam_gib": round(state / GIB, 2),
        "text_activations_gib": round(text_act / GIB, 2),
        "vision_activations_gib": round(vision_act / GIB, 2),
        "context_gib": round(ctx / GIB, 2),
        "total_gib": round(all_bytes / GIB, 1),
        "total_bytes": int(all_bytes),
        "sequence_tokens": patches,
        "images_per_micro_batch": 2 * b,
    }
    return {
        "config": cfg.name,
        "trainer": "pickscore",
        "base": cfg.model.base,
        "architecture": "CLIP ViT-H/14 (laion/CLIP-ViT-H-14-laion2B-s32B-b79K, as yuvalkirstain/PickScore_v1)",
        "parameters": rows,
        "batch": {
            "per_device_pairs": b,
            "grad_accum": accum,
            "processes": num_processes,
            "global_pairs": b * accum * num_processes,
        },
        "memory_per_device": mem,
        "sequence_label": "image tokens per image (16x16 patches + class token; text: 77)",
    }
