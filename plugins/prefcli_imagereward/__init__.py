"""prefcli first-party plugin: ImageReward, a BLIP reward model of human preference for text-to-image outputs.

Nothing heavy is imported here; the model loads in `prefcli_imagereward.scorer`
(built from timm and transformers, not from the `image-reward` package).
"""

from prefcli.hookspecs import hookimpl
from prefcli.scorer import ScorerSpec

DEFAULT_WEIGHTS = "THUDM/ImageReward"


@hookimpl
def register_scorers(register):
    register(
        ScorerSpec(
            name="imagereward",
            factory="prefcli_imagereward.scorer:ImageRewardScorer",
            description="ImageReward: BLIP text-image reward, (r − 0.1672) / 1.0333",
            needs=frozenset({"image", "prompt"}),
            higher_is_better=True,
            trainable=False,
            differentiable=True,
            default_weights=DEFAULT_WEIGHTS,
            install_hint="pip install torch timm transformers",
            requires=("torch", "timm", "transformers"),
        )
    )
