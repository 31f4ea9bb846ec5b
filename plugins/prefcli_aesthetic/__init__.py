"""prefcli first-party plugin: the LAION improved aesthetic predictor.

An MLP on L2-normalized OpenAI CLIP ViT-L/14 image embeddings, trained on
SAC + LOGOS + AVA ratings (≈1-10). Nothing heavy is imported here; the model
loads in `prefcli_aesthetic.scorer`.

It does not set `embedding=True`: its features are the CLIP
ViT-L/14 image embeddings that `clip` already gives, so an `aesthetic-probe`
would only repeat `clip-probe`.
"""

from dataclasses import dataclass

from prefcli.hookspecs import hookimpl
from prefcli.options import Options, option
from prefcli.scorer import ScorerSpec

WEIGHTS_FILENAME = "sac+logos+ava1-l14-linearMSE.pth"
DEFAULT_WEIGHTS = (
    "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/sac+logos+ava1-l14-linearMSE.pth"
)
# 3,714,759 bytes; the value many independent projects pin for this file.
WEIGHTS_SHA256 = "21dd590f3ccdc646f0d53120778b296013b096a035a2718c9cb0d511bff0f1e0"
DEFAULT_CLIP_WEIGHTS = "openai/clip-vit-large-patch14"


@dataclass(frozen=True)
class AestheticOptions(Options):
    clip_weights: str | None = option(
        None,
        f"The CLIP ViT-L/14 backbone: a hub id or local folder (default {DEFAULT_CLIP_WEIGHTS}; the tiny CLIP for tiny weights).",
        weights=True,
    )


@hookimpl
def register_scorers(register):
    register(
        ScorerSpec(
            name="aesthetic",
            factory="prefcli_aesthetic.scorer:AestheticScorer",
            description="LAION improved aesthetic predictor (MLP on CLIP ViT-L/14 image embeddings), ≈1-10",
            aliases=("laion-aesthetic",),
            needs=frozenset({"image"}),
            higher_is_better=True,
            trainable=False,
            differentiable=True,
            default_weights=DEFAULT_WEIGHTS,
            install_hint="pip install torch transformers open_clip_torch",
            requires=("torch", "transformers", "open_clip"),
            options=AestheticOptions,
            version=2,  # 2: PIL-backed CLIP preprocessing, as the published predictor used
            weights_forms=(
                "the released sac+logos+ava1-l14-linearMSE.pth (default; URL with pinned sha256)",
                "a local .pth (plain state dict) or .safetensors head, or a folder holding the .pth",
                "tiny / tiny:SEED: a random head on a tiny CLIP (offline)",
            ),
        )
    )
