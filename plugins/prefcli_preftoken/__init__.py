"""prefcli first-party plugin: `preftoken`, the preference-token model of this project.

Q(S, z) = softmax(M+, M-)[+]: IDEFICS2 (+ LoRA) with learnable preference
tokens prepended, reading the user's history as turns (each with the image's
prompt) and answering "+" or "-" for the target. The history prefix is
encoded once per user and cached. Weights: a folder written by `prefcli
train` or `prefcli convert learn-user-pref`, a shipped tiny model's name, or
`tiny`. Nothing heavy is imported here; the model loads in
`prefcli_preftoken.scorer`.
"""

from prefcli.hookspecs import hookimpl
from prefcli.scorer import ScorerSpec


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
        )
    )
