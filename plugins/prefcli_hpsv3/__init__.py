"""prefcli first-party plugin: HPSv3, a Qwen2-VL-7B-Instruct with a reward head (ICCV 2025).

The score is μ of the head's (μ, σ) at the `<|Reward|>` token (σ is kept in
the per-candidate extras). Nothing heavy is imported here; the model loads in
`prefcli_hpsv3.scorer`.
"""

from dataclasses import dataclass

from prefcli.hookspecs import hookimpl
from prefcli.options import Options, option
from prefcli.scorer import ScorerSpec

# hpsv3 1.0.0 inference.py line 20 (the checkpoint) and HPSv3_7B.yaml (the base model, its processor and config).
DEFAULT_WEIGHTS = "MizzenAI/HPSv3"
DEFAULT_BASE = "Qwen/Qwen2-VL-7B-Instruct"
PIXELS = 256 * 28 * 28  # inference.py lines 98-99: min_pixels = max_pixels, every image becomes ~448×448


@dataclass(frozen=True)
class HPSv3Options(Options):
    batch_size: int = option(
        4, "Images per forward pass (memory vs speed; scores do not change beyond float rounding).", scores=False, min=1
    )
    checkpoint: str = option("HPSv3.safetensors", "The reward model's file inside the weights repository or folder.")
    base: str = option(
        DEFAULT_BASE,
        "Config, tokenizer and chat template of the base Qwen2-VL (a hub id or a local folder; "
        "a weights folder holding its own config.json is used instead).",
        weights=True,
    )
    min_pixels: int = option(PIXELS, "Smallest image area after the resize (upstream: 256·28·28).", min=28 * 28)
    max_pixels: int = option(PIXELS, "Largest image area after the resize (upstream: 256·28·28).", min=28 * 28)
    load_in_4bit: bool = option(
        False,
        "Quantize the language model to 4-bit nf4 with bitsandbytes (CUDA only; the vision tower and "
        "the reward head stay in full precision).",
    )


@hookimpl
def register_scorers(register):
    register(
        ScorerSpec(
            name="hpsv3",
            factory="prefcli_hpsv3.scorer:HPSv3Scorer",
            description="HPSv3: μ of a Qwen2-VL-7B reward model's uncertainty-aware (μ, σ) head at <|Reward|>",
            needs=frozenset({"image", "prompt"}),
            higher_is_better=True,
            trainable=False,
            differentiable=True,
            default_weights=DEFAULT_WEIGHTS,
            install_hint="pip install torch transformers",
            requires=("torch", "transformers"),
            options=HPSv3Options,
            cuda_dtype="bfloat16",  # HPSv3_7B.yaml: bf16 true, torch_dtype bfloat16
            weights_forms=(
                f"{DEFAULT_WEIGHTS} (default): HPSv3.safetensors, on the config and tokenizer of -o base ({DEFAULT_BASE})",
                "a local folder holding HPSv3.safetensors (and optionally the base model's config.json, tokenizer files, "
                "preprocessor_config.json and chat_template.json), or the checkpoint file itself",
                "tiny / tiny:SEED: a tiny random Qwen2-VL and reward head written offline in the official format",
            ),
        )
    )
