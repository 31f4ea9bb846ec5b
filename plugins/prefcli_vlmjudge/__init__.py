"""prefcli first-party plugin: `vlm-judge`, a pairwise VLM judge with PreferThinker's protocol.

A chat VLM of the Qwen2.5-VL family is shown the person's preferred and
non-preferred images and asked which of Image A and Image B they prefer, with
the system prompt and answer tags of PreferThinker's `eval_PreferThinker.py`.
It is a *pairwise* scorer: the harness asks it about each pair of a task and
ranks by round-robin wins. Nothing heavy is imported here.
"""

from prefcli.hookspecs import hookimpl
from prefcli.scorer import ScorerSpec

DEFAULT_WEIGHTS = "Qwen/Qwen2.5-VL-7B-Instruct"


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
        )
    )
