"""prefcli first-party plugin: HPSv2 / HPSv2.1, human preference score on an OpenCLIP ViT-H-14.

Registering `hpsv2` with `extra={"embedding": True}` also gives `hpsv2-probe`
(a per-user logistic model on HPSv2 image embeddings, see prefcli.probe).
Nothing heavy is imported here; the model loads in `prefcli_hpsv2.scorer`.
"""

from prefcli.hookspecs import hookimpl
from prefcli.scorer import ScorerSpec

DEFAULT_WEIGHTS = "xswu/HPSv2"


@hookimpl
def register_scorers(register):
    register(
        ScorerSpec(
            name="hpsv2",
            factory="prefcli_hpsv2.scorer:HPSv2Scorer",
            description="Human Preference Score v2 / v2.1: cos(image, prompt) of a preference-tuned OpenCLIP ViT-H-14",
            needs=frozenset({"image", "prompt"}),
            higher_is_better=True,
            trainable=False,
            differentiable=True,
            default_weights=DEFAULT_WEIGHTS,
            install_hint="pip install torch open_clip_torch",
            requires=("torch", "open_clip"),
            extra={"embedding": True},
        )
    )
