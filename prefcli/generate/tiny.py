"""A tiny Stable-Diffusion-shaped pipeline built from configs, for tests and offline runs.

`--model tiny` (or `tiny:SEED`) builds it in memory with seeded random weights:
the real sd-turbo component classes (UNet2DConditionModel, AutoencoderKL,
CLIPTextModel, CLIPTokenizer, EulerDiscreteScheduler with sd-turbo's schedule)
at a size that runs a ReNO iteration in well under a second on a CPU; images
are 64x64. Its tokenizer is a byte-level CLIP BPE vocabulary with no merges,
written offline (one token per character).
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

#: sd-turbo's scheduler (scheduler/scheduler_config.json of stabilityai/sd-turbo).
SD_TURBO_SCHEDULER = dict(
    num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    prediction_type="epsilon", timestep_spacing="trailing", steps_offset=1,
)  # fmt: skip


def tiny_tokenizer() -> Any:
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    with tempfile.TemporaryDirectory() as d:
        with open(f"{d}/vocab.json", "w") as f:
            json.dump(vocab, f)
        with open(f"{d}/merges.txt", "w") as f:
            f.write("#version: 0.2\n")
        # transformers 5: the constructor with file paths yields an empty vocabulary;
        # from_pretrained converts the files properly.
        return CLIPTokenizer.from_pretrained(d, model_max_length=77)


def build_tiny_sd(seed: int = 0) -> Any:
    """A StableDiffusionPipeline with seeded random tiny components (64 px images)."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from prefcli import messages

    messages.watch()  # diffusers' and transformers' own log handlers: CLIP's per-prompt truncation note, once per run

    tok = tiny_tokenizer()
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            block_out_channels=(8, 16), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32, norm_num_groups=4, attention_head_dim=2,
        )  # fmt: skip
        vae = AutoencoderKL(
            block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=64,
        )  # fmt: skip
        text = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=77, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        ))  # fmt: skip
    finally:
        torch.random.set_rng_state(gen_state)
    scheduler = EulerDiscreteScheduler(**SD_TURBO_SCHEDULER)
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
