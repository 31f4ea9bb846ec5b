"""`vlm-judge`: a chat VLM of the Qwen2.5-VL family asked PreferThinker's question.

A pairwise scorer (prefcli.pairwise): `compare(a, b, state)` shows the model
the person's preferred and non-preferred images, then Image A and Image B,
exactly as PreferThinker's `eval_PreferThinker.py` builds its prompt (see
`protocol`), decodes greedily, and reads the `<answer>`. PreferThinker's own
checkpoints are not released, so any Qwen2.5-VL (or Qwen2-VL) checkpoint with a
chat template works: PreferThinker's when it appears, or an instruction model as
a zero-shot judge.

Weights: a hub id (default `Qwen/Qwen2.5-VL-7B-Instruct`, the zero-shot row),
a local checkpoint folder, or "tiny"/"tiny:SEED" (a random tiny Qwen2.5-VL built
offline by `prefcli_vlmjudge.tiny`).

Options (all change the answers, so all are part of `weights_id`):
`max_new_tokens` (4096, upstream's default), `repetition_penalty` (1.15),
`num_history` (5 liked and 5 disliked images at most), `min_pixels` /
`max_pixels` (qwen_vl_utils' image size bounds), `batch_size` (comparisons per
`generate` call, left-padded as upstream; 1 by default because batched greedy
decoding of padded sequences is not bit-identical to one at a time).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefcli.errors import OptionError, WeightsError, one_line
from prefcli.pairwise import Preference
from prefcli.scorer import PairwiseScorer
from prefcli.types import Candidate, UserHistory
from prefcli_vlmjudge import protocol as P

SUPPORTED = ("qwen2_5_vl", "qwen2_vl")
_FILES = ["*.json", "*.txt", "*.jinja", "*.safetensors"]


def load_judge(weights: str, device: Any, dtype: Any) -> tuple[Any, Any, str]:
    """(model, processor, source) for a weights spec; a non-Qwen-VL checkpoint is an error."""
    from prefcli import weights as W

    if W.is_tiny(weights):
        from prefcli_vlmjudge import tiny

        seed = W.tiny_seed(weights)
        with tempfile.TemporaryDirectory(prefix="prefcli-vlmjudge-") as d:
            processor = tiny.tiny_processor(d)
        model = tiny.tiny_model(processor.tokenizer, seed)
        return model.to(device=device, dtype=dtype), processor, f"tiny:{seed}"

    from transformers import AutoModelForImageTextToText, AutoProcessor

    d = Path(W.resolve_dir(weights, allow_patterns=_FILES))
    from prefcli.jsonio import read_json

    model_type = read_json(d / "config.json", error=WeightsError, expect=dict, what="a model config").get("model_type")
    if model_type not in SUPPORTED:
        raise WeightsError(
            f"{d}: vlm-judge needs a Qwen2.5-VL or Qwen2-VL checkpoint (config model_type {model_type!r})"
        )
    W.check_safetensors_folder(d, "vlm-judge")
    if not any(d.glob("*.safetensors")):
        raise WeightsError(f"{d}: no *.safetensors weights for vlm-judge")
    processor = AutoProcessor.from_pretrained(str(d))
    if not getattr(processor, "chat_template", None):
        raise WeightsError(
            f"{d}: the processor has no chat template (chat_template.json or .jinja); vlm-judge asks through it"
        )
    try:
        model = AutoModelForImageTextToText.from_pretrained(str(d), dtype=dtype)
    except Exception as e:  # noqa: BLE001 - transformers and safetensors raise their own types; never a traceback
        raise WeightsError(f"{d}: cannot load the vlm-judge model ({type(e).__name__}: {one_line(e)})") from None
    model = model.to(device).eval()
    return model, processor, str(weights)


class JudgeState:
    """One person's history as the judge sees it: at most `num_history` liked and disliked images."""

    def __init__(self, preferred: list[Candidate], non_preferred: list[Candidate]):
        self.preferred, self.non_preferred = preferred, non_preferred


class VlmJudge(PairwiseScorer):
    min_history = 1

    def __init__(
        self,
        weights: str | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        *,
        spec: Any = None,
        options: Any = None,
    ):
        super().__init__(weights, device, dtype, spec=spec, options=options)
        from prefcli import devices

        if self.options.max_pixels < self.options.min_pixels:  # each is checked alone by VlmJudgeOptions
            raise OptionError(
                f"scorer vlm-judge: option max_pixels ({self.options.max_pixels}) is below min_pixels ({self.options.min_pixels})"
            )
        self.torch_device = devices.torch_device(device)
        tdtype = devices.torch_dtype(dtype, self.torch_device, getattr(self.spec, "cuda_dtype", None))
        self.model, self.processor, self.source = load_judge(self.weights, self.torch_device, tdtype)

    def modules(self) -> Any:
        return (self.model,)

    @property
    def weights_id(self) -> str:
        # Local folders and hub ids: whatever the contract's Scorer.weights_id makes of them (a content fingerprint).
        base = f"vlm-judge-{self.source}" if self.source.startswith("tiny:") else super().weights_id
        return (f"{base}|tokens={self.options.max_new_tokens}|rep={self.options.repetition_penalty:g}|hist={self.options.num_history}"
                f"|px={self.options.min_pixels}-{self.options.max_pixels}|{P.PROTOCOL_VERSION}")  # fmt: skip

    # -- the contract --------------------------------------------------------
    def condition(self, history: UserHistory | None) -> JudgeState:
        super().condition(history)
        if history is None:
            return JudgeState([], [])
        if hasattr(
            history, "liked_images"
        ):  # histories that also hold unpaired liked/disliked images (PreferImg-Bench)
            liked, disliked = history.liked_images(), history.disliked_images()
        else:
            liked, disliked = [p.liked for p in history.pairs], [p.disliked for p in history.pairs]
        return JudgeState(list(liked)[: self.options.num_history], list(disliked)[: self.options.num_history])

    def messages(self, a: Candidate, b: Candidate, state: JudgeState) -> list[dict]:
        """The chat turns for one comparison, images prepared as qwen_vl_utils prepares them."""
        # The image in its own mode: qwen_vl_utils does the RGB conversion its way (RGBA over white).
        prep = lambda c: P.prepare_image(_own_mode(c), self.options.min_pixels, self.options.max_pixels)  # noqa: E731
        return P.build_messages(
            [prep(c) for c in state.preferred],
            [prep(c) for c in state.non_preferred],
            prep(a),
            prep(b),
            self.options.num_history,
        )

    def prompt(self, messages: list[dict]) -> str:
        return self.processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, add_vision_id=True
        )

    def inputs(self, batch: Sequence[list[dict]]) -> Any:
        texts = [self.prompt(m) for m in batch]
        images = [img for m in batch for img in P.message_images(m)]
        return self.processor(text=texts, images=images or None, padding=True, padding_side="left", return_tensors="pt")

    def generate(self, batch: Sequence[list[dict]]) -> list[str]:
        import torch

        enc = self.inputs(batch).to(self.torch_device)
        with torch.inference_mode():
            out = self.model.generate(
                **enc, use_cache=True, max_new_tokens=self.options.max_new_tokens, do_sample=False, num_beams=1,
                repetition_penalty=self.options.repetition_penalty,
            )  # fmt: skip
        trimmed = out[:, enc["input_ids"].shape[1] :]
        return self.processor.batch_decode(trimmed, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def compare_batch(self, pairs: Sequence[tuple[Candidate, Candidate]], state: Any = None) -> list[Preference]:
        out: list[Preference] = []
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start : start + self.batch_size]
            texts = self.generate([self.messages(a, b, state) for a, b in chunk])
            out.extend(preference(t) for t in texts)
        return out

    def compare(self, a: Candidate, b: Candidate, state: Any = None) -> Preference:
        return self.compare_batch([(a, b)], state)[0]


def _own_mode(c: Candidate) -> Any:
    return c.original if hasattr(type(c), "original") else c.image


def preference(text: str) -> Preference:
    """A Preference from one generated answer (no valid answer: winner None, with the reason)."""
    parsed = P.parse_output(text)
    winner = parsed.pop("winner")
    scores = tuple(parsed.pop("total_scores"))
    return Preference(winner, scores=scores, details={**parsed, "output": text})
