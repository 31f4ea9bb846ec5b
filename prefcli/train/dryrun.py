"""`prefcli train --dry-run`: the full-size model's parameters and a GPU memory estimate, offline.

The architecture is built on PyTorch's meta device (no storage, no download:
the IDEFICS2-8B config ships as ``prefcli/vlm/configs/idefics2-8b.json``), the
config's LoRA targets and preference tokens are applied, and every stage's
trainable set is counted per part.

Memory per device (bytes), for the most demanding stage:

- frozen weights: nf4 = 4.127 bits per quantized weight (4 bits + the
  double-quantized block scales, bitsandbytes' blocksize 64) for the language
  model's linear layers under QLoRA; the token embedding, norms, lm_head and
  the connector stay at 2 bytes (bf16); without QLoRA every frozen weight is
  2 bytes (bf16) — or 4 when model.dtype is float32;
- trainable weights (LoRA, preference tokens, the vision encoder when it
  trains in full precision): 4 (fp32 weight) + 4 (gradient) + 8 (AdamW's two
  moments) = 16 bytes each;
- text activations, with gradient checkpointing: each decoder layer keeps its
  input, ``2·s·h`` bytes per sequence (bf16), plus one layer recomputed in
  full during backward, ``34·s·h`` bytes per sequence (Korthikanti et al.
  2022, with fused/sdpa attention so no s² term); without checkpointing all
  ``n_layers·34·s·h``. s = sequence length at N_ref (the template measured
  with the real tokenizer), sequences per micro-batch = 2 x per-device pairs;
- vision activations: the same formula for SigLIP over (2·N_ref + 2) distinct
  images per pair, 1,024 patches each at 448 px, fp32 when it trains
  (4 bytes instead of 2), nothing stored when it is frozen (no grad);
- a fixed 1.5 GiB for the CUDA context, kernels and allocator slack.

It is an estimate to choose a GPU before renting one, not a guarantee:
fragmentation and library versions move it by a few GiB.
"""

from __future__ import annotations

from typing import Any

from prefcli.train.config import TrainConfig

GIB = 1 << 30
NF4_BITS = 4.127
CONTEXT_BYTES = int(1.5 * GIB)
TYPICAL_PROMPT = "a cinematic photo of an old lighthouse on a cliff at sunset, dramatic clouds, highly detailed"
LONG_PROMPT = " ".join(["a very detailed fantasy castle with towers and flags under a stormy sky"] * 12)


def sequence_lengths(vlm: Any, n_ref: int) -> dict[str, int]:
    """Tokens of one training sequence (history of n_ref pairs + target) with typical and 100-token prompts."""
    from prefcli.vlm.template import HistoryItem

    out = {}
    for name, prompt in (("typical", TYPICAL_PROMPT), ("max_prompt", LONG_PROMPT)):
        items = [HistoryItem(None, lab, prompt) for _ in range(n_ref) for lab in ("-", "+")]
        out[name] = len(vlm.encoder.encode(items, None, prompt).ids) + vlm.n_pref_tokens
    return out


def _stage_trainable(vlm: Any, cfg: TrainConfig, index: int) -> dict[str, dict[str, int]]:
    from prefcli.train.loop import apply_stage
    from prefcli.vlm.model import parameter_counts

    apply_stage(vlm, cfg, index)
    return parameter_counts(vlm)


def dry_run(cfg: TrainConfig, num_processes: int = 1) -> dict[str, Any]:
    """Parameter counts per part and stage, sequence lengths and the memory estimate."""
    import dataclasses

    from prefcli.vlm.model import build_model

    spec = dataclasses.replace(cfg.vlm_spec(device="cpu", weights="meta"), qlora=False, offline=True)
    vlm = build_model(spec)
    # Tokens sized as the config will add them (meta: shape only).
    if any(s.add_tokens for s in cfg.stages):
        import torch

        from prefcli.vlm.pref_tokens import PreferenceTokens

        with torch.device("meta"):
            vlm.pref_tokens = PreferenceTokens(cfg.tokens.n_tokens, vlm.core.config.text_config.hidden_size)
    tokens_module = vlm.pref_tokens
    stages = []
    for i, _st in enumerate(cfg.stages):
        vlm.pref_tokens = tokens_module if cfg.tokens_at(i) else None
        stages.append(_stage_trainable(vlm, cfg, i))
    vlm.pref_tokens = tokens_module
    parts = [
        k
        for k in ("vision", "connector", "text", "lm_head", "lora", "pref_tokens")
        if k in stages[-1] or k in stages[0]
    ]
    rows = []
    for k in parts + ["all"]:
        total = max(s.get(k, {}).get("total", 0) for s in stages)
        row = {"part": k, "total": total}
        for st, c in zip(cfg.stages, stages):
            row[f"trainable:{st.name}"] = c.get(k, {}).get("trainable", 0)
        rows.append(row)
    seq = sequence_lengths(vlm, cfg.data.n_ref)
    mem = [memory_estimate(vlm, cfg, c, seq["max_prompt"], st) for st, c in zip(cfg.stages, stages)]
    worst = max(range(len(mem)), key=lambda i: mem[i]["total_bytes"])
    accum = cfg.grad_accum_for(num_processes)
    return {
        "config": cfg.name,
        "base": cfg.model.base,
        "qlora": cfg.model.qlora,
        "lora": {"r": cfg.model.lora_r, "alpha": cfg.model.lora_alpha, "dropout": cfg.model.lora_dropout}
        if cfg.model.lora
        else None,
        "pref_tokens": cfg.tokens.n_tokens if any(s.add_tokens for s in cfg.stages) else 0,
        "parameters": rows,
        "sequence_tokens": seq,
        "batch": {
            "per_device_pairs": cfg.run.per_device_batch,
            "grad_accum": accum,
            "processes": num_processes,
            "global_pairs": cfg.run.per_device_batch * accum * num_processes,
        },
        "memory_per_device": {"stage": cfg.stages[worst].name, **mem[worst]},
        "memory_by_stage": {st.name: m for st, m in zip(cfg.stages, mem)},
        "gradient_checkpointing": cfg.model.gradient_checkpointing,
    }


def memory_estimate(vlm: Any, cfg: TrainConfig, counts: dict, seq_len: int, stage: Any) -> dict[str, Any]:
    """Bytes per device for one stage (the module docstring gives the formula)."""
    tc = vlm.core.config.text_config
    vc = vlm.core.config.vision_config
    h, layers = int(tc.hidden_size), int(tc.num_hidden_layers)
    frozen_bytes_per = 4 if cfg.model.dtype in ("float32", "fp32") else 2

    text_linear = 0
    for name, p in vlm.core.named_parameters():
        if "text_model.layers" in name and p.ndim == 2 and "lora_" not in name:
            text_linear += p.numel()
    weights = 0.0
    for part in ("vision", "connector", "text", "lm_head"):
        c = counts.get(part, {"total": 0, "trainable": 0})
        frozen = c["total"] - c["trainable"]
        if part == "text" and cfg.model.qlora:
            weights += text_linear * NF4_BITS / 8 + (frozen - text_linear) * 2
        else:
            weights += frozen * frozen_bytes_per
    trainable = sum(c["trainable"] for k, c in counts.items() if k != "all")
    train_state = trainable * 16

    seqs = 2 * cfg.run.per_device_batch
    act_dtype = 2
    if cfg.model.gradient_checkpointing:
        text_act = seqs * (layers * 2 * seq_len * h + 34 * seq_len * h * act_dtype // 2)
    else:
        text_act = seqs * layers * 34 * seq_len * h
    vision_trains = counts.get("vision", {}).get("trainable", 0) > 0
    patches = (
        (448 // int(vc.patch_size)) ** 2 if not vlm.spec.is_tiny else (int(vc.image_size) // int(vc.patch_size)) ** 2
    )
    images = cfg.run.per_device_batch * (2 * cfg.data.n_ref + 2)
    vh, vl = int(vc.hidden_size), int(vc.num_hidden_layers)
    if vision_trains:
        vb = 4  # fp32 when it trains in full precision
        if cfg.model.gradient_checkpointing:
            vision_act = images * (vl * patches * vh * vb + 17 * patches * vh * vb)
        else:
            vision_act = images * vl * 17 * patches * vh * vb
    else:
        vision_act = 0
    total = weights + train_state + text_act + vision_act + CONTEXT_BYTES
    return {
        "weights_gib": round(weights / GIB, 2),
        "trainable_params_and_adam_gib": round(train_state / GIB, 2),
        "text_activations_gib": round(text_act / GIB, 2),
        "vision_activations_gib": round(vision_act / GIB, 2),
        "context_gib": round(CONTEXT_BYTES / GIB, 2),
        "total_gib": round(total / GIB, 1),
        "total_bytes": int(total),
        "sequence_tokens": seq_len,
        "images_per_micro_batch": images,
    }
