"""prefcli first-party plugin: `vlm-judge`, a pairwise VLM judge with PreferThinker's protocol.

A chat VLM of the Qwen2.5-VL family is shown the person's preferred and
non-preferred images and asked which of Image A and Image B they prefer, with
the system prompt and answer tags of PreferThinker's `eval_PreferThinker.py`.
It is a *pairwise* scorer: the harness asks it about each pair of a task and
ranks by round-robin wins. Nothing heavy is imported here.
"""

from dataclasses import dataclass

from prefcli.hookspecs import hookimpl
from prefcli.options import Options, option
from prefcli.scorer import ScorerSpec

DEFAULT_WEIGHTS = "Qwen/Qwen2.5-VL-7B-Instruct"


@dataclass(frozen=True)
class VlmJudgeOptions(Options):
    # The defaults are eval_PreferThinker.py's (lines 181, 261, 262) and qwen_vl_utils 0.0.11's.
    max_new_tokens: int = option(4096, "Most tokens generated per comparison (PreferThinker: 4096).", min=1)
    repetition_penalty: float = option(
        1.15, "Repetition penalty of the greedy decoding (PreferThinker: 1.15).", min=0.01
    )
    num_history: int = option(
        5, "At most this many liked and this many disliked images are shown (PreferThinker: 5).", min=1
    )
    min_pixels: int = option(4 * 28 * 28, "Smallest image area after qwen_vl_utils' resize.", min=1)
    max_pixels: int = option(16384 * 28 * 28, "Largest image area after qwen_vl_utils' resize.", min=1)
    batch_size: int = option(
        1,
        "Comparisons per generate call, left-padded as upstream (batched greedy decoding is not bit-identical).",
        scores=False,
        min=1,
    )


@hookimpl
def register_scorers(register):
    register(
        ScorerSpec(
            name="vlm-judge",
            factory="prefcli_vlmjudge.scorer:VlmJudge",
            description="Qwen2.5-VL judge asked PreferThinker's question: which of Image A / Image B this person prefers (pairwise)",
            aliases=("preferthinker",),
            needs=frozenset({"image", "history"}),
            kind="pairwise",
            default_weights=DEFAULT_WEIGHTS,
            install_hint="pip install torch transformers",
            requires=("torch", "transformers"),
            options=VlmJudgeOptions,
            cuda_dtype="bfloat16",  # Qwen2.5-VL checkpoints are published in bf16; fp16 is not the judge's auto
            weights_forms=(
                f"{DEFAULT_WEIGHTS} (default: a zero-shot judge) or another hub id of a Qwen2.5-VL / Qwen2-VL checkpoint",
                "a local checkpoint folder (config.json, *.safetensors, the processor and its chat template), e.g. PreferThinker's",
                "tiny / tiny:SEED: a random tiny Qwen2.5-VL built offline (it never answers)",
            ),
        )
    )
