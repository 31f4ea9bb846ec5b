"""prefcli first-party plugin: `viper` (IDEFICS2-8B + the Metric-ViPer LoRA) and `idefics` (zero-shot).

Both read the user's history as ViPer's chat turns (each pair disliked, then
liked; no prompt text) and score P(+) from the "+" and "-" next-token logits
of the query turn; the history prefix is encoded once per user and cached.
Nothing heavy is imported here; the models load in `prefcli_viper.scorer`.
"""

from dataclasses import dataclass

from prefcli.hookspecs import hookimpl
from prefcli.options import Options, option
from prefcli.scorer import ScorerSpec

IDEFICS2 = "HuggingFaceM4/idefics2-8b"
METRIC_VIPER = "EPFL-VILAB/Metric-ViPer"


@dataclass(frozen=True)
class IdeficsOptions(Options):
    tokenizer: str = option(
        "tiny",
        "Tokenizer of tiny models: tiny, or idefics2 (the real one, built offline).",
        choices=("tiny", "idefics2"),
    )
    offline: bool | None = option(None, "Never touch the network (default: --offline / HF_HUB_OFFLINE).", scores=False)


@dataclass(frozen=True)
class ViperOptions(IdeficsOptions):
    base: str = option(
        f"hf-hub:{IDEFICS2}", "The IDEFICS2 base model the adapter goes on: a hub id or a local folder.", weights=True
    )


@hookimpl
def register_scorers(register):
    common = dict(
        needs=frozenset({"image", "history"}),
        higher_is_better=True,
        trainable=False,
        differentiable=True,
        install_hint="pip install torch transformers peft",
        requires=("torch", "transformers", "peft"),
        # 2: ViPer's processor at every aspect ratio (1 squared non-square images first).
        version=2,
    )
    register(
        ScorerSpec(
            name="viper",
            factory="prefcli_viper.scorer:ViperScorer",
            description="ViPer proxy metric: IDEFICS2-8B + Metric-ViPer LoRA, P(+) after the user's liked/disliked history",
            aliases=("metric-viper",),
            default_weights=f"hf-hub:{METRIC_VIPER}",
            options=ViperOptions,
            weights_forms=(
                f"hf-hub:{METRIC_VIPER} (default) or a local folder holding the LoRA adapter (adapter_config.json + adapter_model.safetensors)",
                "tiny / tiny:SEED: a tiny random model with ViPer's template (offline)",
                "the base model is an option: -o base PATH (a local IDEFICS2 folder) or -o base hf-hub:org/name",
            ),
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
            options=IdeficsOptions,
            weights_forms=(
                f"hf-hub:{IDEFICS2} (default) or a local IDEFICS2 folder",
                "tiny / tiny:SEED: a tiny random model with ViPer's template (offline)",
            ),
            **common,
        )
    )
