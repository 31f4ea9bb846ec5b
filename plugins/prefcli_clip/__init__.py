"""prefcli first-party plugin: the CLIP text-image similarity scorer.

Registering `clip` with `extra={"embedding": True}` also gives `clip-probe`,
a per-user logistic model on CLIP image embeddings (see prefcli.probe).
Nothing heavy is imported here; the model loads in `prefcli_clip.scorer`.
"""

from prefcli.hookspecs import hookimpl
from prefcli.scorer import ScorerSpec

DEFAULT_WEIGHTS = "openai/clip-vit-large-patch14"


@hookimpl
def register_scorers(register):
    register(
        ScorerSpec(
            name="clip",
            factory="prefcli_clip.scorer:ClipScorer",
            description="CLIP text-image alignment: 100 · cos(image, prompt)",
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
