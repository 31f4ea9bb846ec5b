"""prefcli first-party plugin: `viper` (IDEFICS2-8B + the Metric-ViPer LoRA) and `idefics` (zero-shot).

Both read the user's history as ViPer's chat turns (each pair disliked, then
liked; no prompt text) and score P(+) from the "+" and "-" next-token logits
of the query turn; the history prefix is encoded once per user and cached.
Nothing heavy is imported here; the models load in `prefcli_viper.scorer`.
"""

from prefcli.hookspecs import hookimpl
from prefcli.scorer import ScorerSpec

IDEFICS2 = "HuggingFaceM4/idefics2-8b"
METRIC_VIPER = "EPFL-VILAB/Metric-ViPer"


@hookimpl
def register_scorers(register):
    common = dict(
        needs=frozenset({"image", "history"}),
        higher_is_better=True,
        trainable=False,
        differentiable=True,
        install_hint="pip install torch transformers peft",
        requires=("torch", "transformers", "peft"),
    )
    register(
        ScorerSpec(
            name="viper",
            factory="prefcli_viper.scorer:ViperScorer",
            description="ViPer proxy metric: IDEFICS2-8B + Metric-ViPer LoRA, P(+) after the user's liked/disliked history",
            aliases=("metric-viper",),
            default_weights=f"hf-hub:{METRIC_VIPER}",
            **common,
        )
    )
    register(
        ScorerSpec(
            name="idefics",
            factory="prefcli_viper.scorer:IdeficsScorer",
            description="zero-shot IDEFICS2-8B with ViPer's template: P(+) after the user's history",
            aliases=("idefics2",),
            default_weights=f"hf-hub:{IDEFICS2}",
            **common,
        )
    )
