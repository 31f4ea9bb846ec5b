"""prefcli first-party plugin: HPSv2 / HPSv2.1, human preference score on an OpenCLIP ViT-H-14.

Registering `hpsv2` with `embedding=True` also gives `hpsv2-probe`
(a per-user logistic model on HPSv2 image embeddings, see prefcli.probe).
Nothing heavy is imported here; the model loads in `prefcli_hpsv2.scorer`.
"""

from dataclasses import dataclass

from prefcli.hookspecs import hookimpl
from prefcli.options import Options, option
from prefcli.scorer import ScorerSpec

DEFAULT_WEIGHTS = "xswu/HPSv2"
VERSIONS = ("2.0", "2.1")
DEFAULT_VERSION = "2.1"


def normalize_version(version: str | float) -> str:
    """ "2", "v2.0", 2.0 → "2.0"; "2.1", "v2.1" → "2.1"; anything else is a ValueError."""
    v = str(version).strip().lower().lstrip("v")
    v = {"2": "2.0", "2.0": "2.0", "2.1": "2.1"}.get(v, v)
    if v not in VERSIONS:
        raise ValueError(f"unknown HPS version {version!r}; use one of {list(VERSIONS)}")
    return v


@dataclass(frozen=True)
class HPSv2Options(Options):
    version: str = option(
        DEFAULT_VERSION,
        "HPS checkpoint: 2.0 (HPS_v2_compressed.pt) or 2.1 (HPS_v2.1_compressed.pt).",
        choices=VERSIONS,
        parse=normalize_version,
    )
    percent: bool = option(False, "Report 100 · cos, as the HPS benchmark tables do (the ranking is the same).")
    arch: str = option("ViT-H-14", "open_clip architecture of a local checkpoint; tiny for the tiny test config.")
    antialias: bool = option(
        False,
        "Antialias in the tensor resize: false (torchvision < 0.17's default, the published tables) "
        "or true (what the official code gives under torchvision >= 0.17).",
    )


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
            options=HPSv2Options,
            version=2,  # 2: the official ResizeMaxSize transform (hpsv2/img_score.py); version-1 entries are stale
            embedding=True,
            weights_forms=(
                "xswu/HPSv2 (default): -o version picks HPS_v2_compressed.pt or HPS_v2.1_compressed.pt",
                "a local folder holding the version's file, or the checkpoint file itself (.pt with state_dict, or .safetensors)",
                "tiny / tiny:SEED: a tiny open_clip config with seeded random weights (offline)",
            ),
        )
    )
