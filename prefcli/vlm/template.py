"""The interleaved sequences of the IDEFICS2 preference models, token for token.

Three styles share one encoder:

- ``preftoken`` (the paper): one turn per history image,
  ``User:<image>The prompt is '{prompt}' Score for this image?<end_of_utterance>\\nAssistant: {+|-}<end_of_utterance>\\n``,
  and the target turn ends ``Assistant: ``. Prompts are truncated to 100 tokens.
- ``viper``: the same without prompt text,
  ``User:<image>Score for this image?<end_of_utterance>\\nAssistant: {+|-}<end_of_utterance>\\n``.
- ``compact`` (toy scale only): ``<s>``, then per history image its image tokens
  followed by the ``+``/``-`` label token, then the target's image tokens; the
  score is read at the target's last image token. No text, no wrapper tokens.

A sequence is split into a *prefix* (``<s>`` and the history turns) and a
*suffix* (the target turn), so that a history can be encoded once and reused
for many candidates. The text styles are tokenized as one string, exactly as
``Idefics2Processor`` would tokenize it, and then split; the split is checked.

History order: evaluation lists each pair disliked first, then liked, in the
history's stored order (the authors' code); training shuffles the pair order
and the order within each pair with a caller-supplied ``random.Random``.
History items are never copied into the caller's lists; nothing here mutates
its inputs.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prefcli.errors import ConfigError, HistoryError
from prefcli.vlm.tokenizer import END_OF_UTTERANCE, FAKE_IMAGE_TOKEN, IMAGE_TOKEN

STYLES = ("preftoken", "viper", "compact")
PLUS, MINUS = "+", "-"
MAX_PROMPT_TOKENS = 100

_TURN_PREFTOKEN = "User:<image>The prompt is '{prompt}' Score for this image?<end_of_utterance>\nAssistant: "
_TURN_VIPER = "User:<image>Score for this image?<end_of_utterance>\nAssistant: "


@dataclass(frozen=True)
class HistoryItem:
    """One history image with its label ("+" liked, "-" disliked) and the prompt it was made from."""

    image: Any
    label: str
    prompt: str | None = None

    def __post_init__(self) -> None:
        if self.label not in (PLUS, MINUS):
            raise ValueError(f"history label must be '+' or '-', got {self.label!r}")


@dataclass
class Segment:
    """A run of token ids and the images its ``<image>`` runs stand for, in order."""

    ids: list[int]
    images: list[Any] = field(default_factory=list)
    text: str | None = None  # the unexpanded text (text styles), to tokenize suffixes against


@dataclass
class EncodedSequence:
    prefix: Segment
    suffix: Segment

    @property
    def ids(self) -> list[int]:
        return self.prefix.ids + self.suffix.ids

    @property
    def images(self) -> list[Any]:
        return self.prefix.images + self.suffix.images


def _pairs_of(history: Any) -> Sequence[Any]:
    return history.pairs if hasattr(history, "pairs") else history


def eval_history_items(history: Any) -> list[HistoryItem]:
    """Each pair disliked first, then liked, in the history's stored order (deterministic).

    A UserHistory with unpaired liked/disliked images or ratings goes through
    `UserHistory.labelled()` (the same order for its pairs)."""
    if hasattr(history, "labelled"):
        return [HistoryItem(c, PLUS if liked else MINUS, prompt) for c, liked, prompt in history.labelled()]
    items: list[HistoryItem] = []
    for p in _pairs_of(history):
        items.append(HistoryItem(p.disliked, MINUS, p.prompt))
        items.append(HistoryItem(p.liked, PLUS, p.prompt))
    return items


def train_history_items(history: Any, rng: random.Random) -> list[HistoryItem]:
    """Pairs in a shuffled order, each pair's two images in a random order (the paper's training)."""
    pairs = list(_pairs_of(history))  # a new list: the caller's history is untouched
    rng.shuffle(pairs)
    items: list[HistoryItem] = []
    for p in pairs:
        two = [HistoryItem(p.disliked, MINUS, p.prompt), HistoryItem(p.liked, PLUS, p.prompt)]
        if rng.random() < 0.5:
            two.reverse()
        items.extend(two)
    return items


def expand_image_tokens(text: str, image_seq_len: int) -> str:
    """What ``Idefics2Processor`` does to the text before tokenizing (no image splitting)."""
    image_str = f"{FAKE_IMAGE_TOKEN}{IMAGE_TOKEN * image_seq_len}{FAKE_IMAGE_TOKEN}"
    text = text.replace(IMAGE_TOKEN, image_str)
    text = text.replace(f"{FAKE_IMAGE_TOKEN}{FAKE_IMAGE_TOKEN}", FAKE_IMAGE_TOKEN)
    # transformers 5 keeps a word after the closing fake token word-boundary aligned.
    return re.sub(rf"{re.escape(FAKE_IMAGE_TOKEN)}(?=[^\s<])", f"{FAKE_IMAGE_TOKEN} ", text)


def label_token_ids(tokenizer: Any) -> tuple[int, int]:
    """Ids of "+" and "-" as the tokenizer writes them after ``Assistant: ``; each must be one token."""
    base = tokenizer("Assistant:", add_special_tokens=False)["input_ids"]
    out = []
    for lab in (PLUS, MINUS):
        ids = tokenizer(f"Assistant: {lab}", add_special_tokens=False)["input_ids"]
        if len(ids) != len(base) + 1 or ids[: len(base)] != base:
            toks = tokenizer.convert_ids_to_tokens(ids)
            raise ConfigError(
                f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r}: label {lab!r} after 'Assistant: ' is not a single token ({toks})"
            )
        out.append(int(ids[-1]))
    if out[0] == out[1]:
        raise ConfigError("tokenizer: '+' and '-' map to the same token id")
    return out[0], out[1]


class SequenceEncoder:
    """Builds token ids (and the image order) for a history and targets in one template style."""

    def __init__(
        self,
        tokenizer: Any,
        style: str = "preftoken",
        image_seq_len: int = 64,
        max_prompt_tokens: int = MAX_PROMPT_TOKENS,
    ) -> None:
        if style not in STYLES:
            raise ConfigError(f"unknown template style {style!r}; choose one of {', '.join(STYLES)}")
        self.tokenizer = tokenizer
        self.style = style
        self.image_seq_len = int(image_seq_len)
        self.max_prompt_tokens = int(max_prompt_tokens)
        self.plus_id, self.minus_id = label_token_ids(tokenizer)
        self.image_token_id = int(tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))
        self.bos_id = tokenizer.bos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    # -- text --------------------------------------------------------------
    def truncate_prompt(self, prompt: str | None) -> str:
        """The prompt cut to its first `max_prompt_tokens` tokens (cut in the original string)."""
        prompt = prompt or ""
        if not prompt:
            return ""
        enc = self.tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
        if len(enc["input_ids"]) <= self.max_prompt_tokens:
            return prompt
        end = enc["offset_mapping"][self.max_prompt_tokens - 1][1]
        return prompt[:end]

    def turn_text(self, prompt: str | None, label: str | None) -> str:
        """One user turn; with a label it is a finished history turn, without it the target turn."""
        if self.style == "preftoken":
            text = _TURN_PREFTOKEN.format(prompt=self.truncate_prompt(prompt))
        elif self.style == "viper":
            text = _TURN_VIPER
        else:
            raise ConfigError("the compact template has no text")
        if label is not None:
            text += f"{label}{END_OF_UTTERANCE}\n"
        return text

    def history_text(self, items: Iterable[HistoryItem]) -> str:
        return "".join(self.turn_text(it.prompt, it.label) for it in items)

    def _tokenize(self, text: str) -> list[int]:
        expanded = expand_image_tokens(text, self.image_seq_len)
        return list(self.tokenizer(expanded, add_special_tokens=True)["input_ids"])

    # -- ids ---------------------------------------------------------------
    def encode_prefix(self, items: Sequence[HistoryItem]) -> Segment:
        """``<s>`` and the history turns; images in sequence order."""
        images = [it.image for it in items]
        if self.style == "compact":
            ids = [self.bos_id] if self.bos_id is not None else []
            for it in items:
                ids += [self.image_token_id] * self.image_seq_len
                ids.append(self.plus_id if it.label == PLUS else self.minus_id)
            return Segment(ids, images, None)
        text = self.history_text(items)
        return Segment(self._tokenize(text), images, text)

    def encode_suffix(self, prefix: Segment, image: Any, prompt: str | None = None) -> Segment:
        """The target turn that follows `prefix`, ending where M+ and M- are read."""
        if self.style == "compact":
            return Segment([self.image_token_id] * self.image_seq_len, [image], None)
        text = self.turn_text(prompt, None)
        full = self._tokenize((prefix.text or "") + text)
        n = len(prefix.ids)
        if full[:n] != prefix.ids:
            # Cannot happen while history turns end in <end_of_utterance>\n (a special token
            # splits the text); guard anyway, since a silent misalignment would corrupt scores.
            raise RuntimeError("template: the target turn changed the tokenization of the history")
        return Segment(full[n:], [image], text)

    def encode(self, items: Sequence[HistoryItem], image: Any, prompt: str | None = None) -> EncodedSequence:
        prefix = self.encode_prefix(items)
        return EncodedSequence(prefix, self.encode_suffix(prefix, image, prompt))

    def full_text(self, items: Sequence[HistoryItem], prompt: str | None = None) -> str:
        """The whole unexpanded text (text styles) — what the authors pass to the processor."""
        return self.history_text(items) + self.turn_text(prompt, None)


def require_balanced(history: Any, source: str = "history") -> None:
    """A history must pair each liked image with a disliked one."""
    for i, p in enumerate(_pairs_of(history)):
        if getattr(p, "liked", None) is None or getattr(p, "disliked", None) is None:
            raise HistoryError(f"{source}: pair {i} lacks a liked or a disliked image")
