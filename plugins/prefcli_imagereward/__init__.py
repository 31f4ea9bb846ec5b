"""prefcli first-party plugin: ImageReward, a BLIP reward model of human preference for text-to-image outputs.

Nothing heavy is imported here; the model loads in `prefcli_imagereward.scorer`
(built from timm and transformers, not from the `image-reward` package).
"""

from dataclasses import dataclass

from prefcli.hookspecs import hookimpl
from prefcli.options import Options, option
from prefcli.scorer import ScorerSpec

DEFAULT_WEIGHTS = "THUDM/ImageReward"
DEFAULT_TOKENIZER = "google-bert/bert-base-uncased"  # the hub's current id of `bert-base-uncased`


@dataclass(frozen=True)
class ImageRewardOptions(Options):
    tokenizer: str = option(
        DEFAULT_TOKENIZER,
        "BERT vocabulary (hub id or local folder), used when the weights folder has no vocab.txt.",
        weights=True,
    )


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
            options=ImageRewardOptions,
            version=2,  # 2: preprocessing parity with the image-reward package
            weights_forms=(
                "THUDM/ImageReward (default): ImageReward.pt + med_config.json",
                "a local folder with those two files (and optionally vocab.txt), or the .pt with med_config.json beside it",
                "tiny / tiny:SEED: a tiny BLIP reward model with random weights (offline)",
            ),
        )
    )
