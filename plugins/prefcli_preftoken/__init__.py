"""prefcli first-party plugin: `preftoken`, the preference-token model of this project.

Q(S, z) = softmax(M+, M-)[+]: IDEFICS2 (+ LoRA) with learnable preference
tokens prepended, reading the user's history as turns (each with the image's
prompt) and answering "+" or "-" for the target. The history prefix is
encoded once per user and cached. Weights: a folder written by `prefcli
train` or `prefcli convert learn-user-pref`, a shipped tiny model's name, or
`tiny`. Nothing heavy is imported here; the model loads in
`prefcli_preftoken.scorer`.
"""

from dataclasses import dataclass

from prefcli.hookspecs import hookimpl
from prefcli.options import Options, option
from prefcli.scorer import ScorerSpec


@dataclass(frozen=True)
class PrefTokenOptions(Options):
    n_ref: int | None = option(
        None,
        "History length the model was trained with (for the short-history note; default: read from the model, else 8).",
        scores=False,
        min=1,
    )
    offline: bool | None = option(None, "Never touch the network (default: --offline / HF_HUB_OFFLINE).", scores=False)


@hookimpl
def register_scorers(register):
    register(
        ScorerSpec(
            name="preftoken",
            factory="prefcli_preftoken.scorer:PrefTokenScorer",
            description="preference-token model: P(+) for the image after the user's history (prompts included)",
            aliases=("pref-token",),
            # The template writes each image's prompt, so a score depends on it (and caches key on it).
            needs=frozenset({"image", "prompt", "history"}),
            higher_is_better=True,
            trainable=True,
            differentiable=True,
            default_weights="",
            install_hint="pip install torch transformers peft",
            requires=("torch", "transformers", "peft"),
            options=PrefTokenOptions,
            weights_forms=(
                "a model folder written by `prefcli train` (a run, a checkpoints/step-* folder, or model/) or `prefcli convert learn-user-pref`",
                "the name of a shipped tiny model (e.g. tiny-opposed-tokens)",
                "hf-hub:org/name: a hub repository holding such a folder",
                "tiny / tiny:SEED: a random tiny model with 10 preference tokens (offline)",
            ),
        )
    )
