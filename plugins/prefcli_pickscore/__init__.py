"""prefcli first-party plugin: PickScore, a CLIP model fine-tuned on Pick-a-Pic preferences.

Registering `pickscore` with `extra={"embedding": True}` also gives
`pickscore-probe`, a per-user logistic model on PickScore image embeddings
(see prefcli.probe). Nothing heavy is imported here; the model loads in
`prefcli_pickscore.scorer`.
"""

from prefcli.hookspecs import hookimpl
from prefcli.scorer import ScorerSpec

DEFAULT_WEIGHTS = "yuvalkirstain/PickScore_v1"


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
            extra={"embedding": True},
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
