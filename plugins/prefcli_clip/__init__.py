"""prefcli first-party plugin: the CLIP text-image similarity scorer.

Registering `clip` with `embedding=True` also gives `clip-probe`,
a per-user logistic model on CLIP image embeddings (see prefcli.probe).
Nothing heavy is imported here; the model loads in `prefcli_clip.scorer`.
"""

from prefcli.hookspecs import hookimpl
from prefcli.options import Options
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
            options=Options,
            # 2: PIL-backed CLIP preprocessing (parity with OpenAI's clip.load); entries of version 1 are stale.
            version=2,
            embedding=True,
            weights_forms=(
                "openai/clip-vit-large-patch14 (default) or any hub id holding an HF CLIPModel",
                "a local folder with an HF CLIP model, its tokenizer and preprocessor_config.json",
                "tiny / tiny:SEED: a seeded random tiny CLIP (offline)",
            ),
        )
    )
