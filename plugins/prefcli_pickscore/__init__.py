"""prefcli first-party plugin: PickScore, a CLIP model fine-tuned on Pick-a-Pic preferences.

Registering `pickscore` with `embedding=True` also gives
`pickscore-probe`, a per-user logistic model on PickScore image embeddings
(see prefcli.probe). Nothing heavy is imported here; the model loads in
`prefcli_pickscore.scorer`.
"""

from dataclasses import dataclass

from prefcli.hookspecs import hookimpl
from prefcli.options import Options, option
from prefcli.scorer import ScorerSpec

DEFAULT_WEIGHTS = "yuvalkirstain/PickScore_v1"
DEFAULT_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"


@dataclass(frozen=True)
class PickScoreOptions(Options):
    processor: str = option(
        DEFAULT_PROCESSOR,
        "Tokenizer and image processor (hub id or local folder), used when the model folder has none.",
        weights=True,
    )


@hookimpl
def register_scorers(register):
    register(
        ScorerSpec(
            name="pickscore",
            factory="prefcli_pickscore.scorer:PickScoreScorer",
            description="PickScore: logit_scale.exp() · cos(prompt, image) of a CLIP-H fine-tuned on Pick-a-Pic",
            needs=frozenset({"image", "prompt"}),
            higher_is_better=True,
            trainable=False,
            differentiable=True,
            default_weights=DEFAULT_WEIGHTS,
            install_hint="pip install torch transformers open_clip_torch",
            requires=("torch", "transformers", "open_clip"),
            options=PickScoreOptions,
            version=2,  # 2: PIL-backed processor, as PickScore's README under transformers 4
            embedding=True,
            weights_forms=(
                "yuvalkirstain/PickScore_v1 (default) or another hub id of an HF CLIPModel",
                "a local folder with the model (its own tokenizer/preprocessor, else -o processor's)",
                "tiny / tiny:SEED: a seeded random tiny CLIP (offline)",
            ),
        )
    )
    # PickScore* (prefcli train --config pickscore-star): the same scorer on a trained folder, named apart for tables.
    register(
        ScorerSpec(
            name="pickscore-star",
            factory="prefcli_pickscore.star:PickScoreStarScorer",
            description="PickScore*: PickScore fine-tuned on a dataset's training pairs (give --weights RUN/model)",
            needs=frozenset({"image", "prompt"}),
            higher_is_better=True,
            # A name for tables; to steer `generate` with the trained folder use `pickscore --weights RUN/model`.
            differentiable=False,
            install_hint="pip install torch transformers open_clip_torch",
            requires=("torch", "transformers", "open_clip"),
        )
    )
