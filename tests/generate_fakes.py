"""Tiny colour scorers with a known optimum, for the generation tests.

`red` prefers red: reward = mean(R) − ½(mean(G) + mean(B)), highest (1.0) on a
pure red image. `taste` is personalized: its history state is the mean colour
of the liked images minus that of the disliked ones, and the reward is the
image's mean colour along that direction; it counts its `condition` and
`reward` calls so tests can check the history is conditioned once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from prefcli.hookspecs import hookimpl
from prefcli.scorer import Scorer, ScorerSpec
from prefcli.types import Candidate, UserHistory

CALLS: Counter = Counter()


def _pixels(images: Sequence[Any]) -> Any:
    import numpy as np
    import torch

    return torch.stack(
        [torch.from_numpy(np.asarray(im.convert("RGB"), dtype="float32") / 255).permute(2, 0, 1) for im in images]
    )


def redness(pixels: Any) -> Any:
    m = pixels.float().mean(dim=(2, 3))
    return m[:, 0] - 0.5 * (m[:, 1] + m[:, 2])


class Red(Scorer):
    def reward(self, pixels: Any, prompts: Sequence[str] | str | None = None, state: Any = None) -> Any:
        CALLS["red.reward"] += 1
        return redness(pixels)

    def score(self, candidates: Sequence[Candidate], state: Any = None) -> list[float]:
        return [float(v) for v in redness(_pixels([c.image for c in candidates]))]


class Green(Scorer):
    """A held-out judge: the mean of the green channel (not differentiable on purpose)."""

    def score(self, candidates: Sequence[Candidate], state: Any = None) -> list[float]:
        return [float(v) for v in _pixels([c.image for c in candidates]).mean(dim=(2, 3))[:, 1]]


class Taste(Scorer):
    min_history = 1

    def condition(self, history: UserHistory | None) -> Any:
        super().condition(history)
        CALLS["taste.condition"] += 1
        liked = _pixels([p.liked.image for p in history.pairs]).mean(dim=(0, 2, 3))
        disliked = _pixels([p.disliked.image for p in history.pairs]).mean(dim=(0, 2, 3))
        return liked - disliked

    def reward(self, pixels: Any, prompts: Sequence[str] | None = None, state: Any = None) -> Any:
        CALLS["taste.reward"] += 1
        return pixels.float().mean(dim=(2, 3)) @ state.to(pixels.device)

    def score(self, candidates: Sequence[Candidate], state: Any = None) -> list[float]:
        return [float(v) for v in _pixels([c.image for c in candidates]).mean(dim=(2, 3)) @ state]


class ColourPlugin:
    @hookimpl
    def register_scorers(self, register):
        register(ScorerSpec(name="red", factory="generate_fakes:Red", differentiable=True, default_weights="none"))
        register(ScorerSpec(name="green", factory="generate_fakes:Green", default_weights="none"))
        register(
            ScorerSpec(
                name="taste",
                factory="generate_fakes:Taste",
                needs=frozenset({"image", "history"}),
                differentiable=True,
                default_weights="none",
            )
        )


def tiny_flux(size: int = 32):
    """A FluxPipeline of seeded random tiny components (CLIP + T5 text encoders, one double and one single block).

    The T5 tokenizer is built offline from mistral-common's SentencePiece model (a test dependency)."""
    import pathlib
    import shutil
    import tempfile

    import mistral_common
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel, T5TokenizerFast

    from prefcli.generate.pipelines import GeneratorId, OneStepFlux
    from prefcli.generate.tiny import tiny_tokenizer

    with tempfile.TemporaryDirectory() as d:
        shutil.copy(pathlib.Path(mistral_common.__file__).parent / "data" / "tokenizer.model.v1", f"{d}/spiece.model")
        t5tok = T5TokenizerFast.from_pretrained(d, model_max_length=256, legacy=False)
    tok = tiny_tokenizer()
    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8],
        guidance_embeds=False,
    )
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            projection_dim=32,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.eos_token_id,
        )
    )
    t5 = T5EncoderModel(T5Config(vocab_size=len(t5tok), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4))
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )
    # FLUX.1-schnell's scheduler: no dynamic shifting, shift 1.
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False),
        vae=vae,
        text_encoder=clip,
        tokenizer=tok,
        text_encoder_2=t5,
        tokenizer_2=t5tok,
        transformer=transformer,
    )
    gen = OneStepFlux(pipe, GeneratorId("tiny-flux", "tiny-flux", None, "flux", "float32"), "cpu")
    gen.size = size
    return gen


def tiny_sdxl():
    """A StableDiffusionXLPipeline of seeded random tiny components (two CLIP text encoders, text_time embedding)."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from prefcli.generate.pipelines import GeneratorId, _wrap
    from prefcli.generate.tiny import SD_TURBO_SCHEDULER, tiny_tokenizer

    tok = tiny_tokenizer()
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=80,
        cross_attention_dim=64,
        norm_num_groups=4,
    )
    cfg = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        projection_dim=32,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.eos_token_id,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
    )
    pipe = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=CLIPTextModel(CLIPTextConfig(**cfg)),
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**cfg)),
        tokenizer=tok,
        tokenizer_2=tok,
        unet=unet,
        scheduler=EulerDiscreteScheduler(**SD_TURBO_SCHEDULER),
    )
    return _wrap(pipe, GeneratorId("tiny-sdxl", "tiny-sdxl", None, "?", "float32"), "cpu", checkpointing=False)
