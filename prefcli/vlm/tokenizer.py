"""The tokenizers of the IDEFICS2 family, built offline.

Two are available:

- ``"idefics2"``: the real IDEFICS2-8B tokenizer. It is the Mistral-7B-v0.1
  SentencePiece model (shipped inside the ``mistral-common`` package as
  ``mistral_common/data/tokenizer.model.v1``) plus IDEFICS2's three added
  tokens, so it can be rebuilt without the hub: ``<fake_token_around_image>``
  = 32000, ``<image>`` = 32001, ``<end_of_utterance>`` = 32002.
- ``"tiny"``: a ~300-token BPE trained on the spot (deterministically) on the
  template strings and a small word list, with the same special tokens, for
  tiny models that train on two CPU cores.

A directory holding a saved tokenizer (``save_pretrained``) loads as well.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from prefcli.errors import WeightsError

FAKE_IMAGE_TOKEN = "<fake_token_around_image>"
IMAGE_TOKEN = "<image>"
END_OF_UTTERANCE = "<end_of_utterance>"
# IDEFICS2's order: the processor adds the fake token and <image> first, then <end_of_utterance>.
SPECIAL_TOKENS = (FAKE_IMAGE_TOKEN, IMAGE_TOKEN, END_OF_UTTERANCE)

MISTRAL_SP_FILE = "tokenizer.model.v1"
MISTRAL_SP_BYTES = 493_443


def mistral_sentencepiece_path() -> Path:
    """Where mistral-common keeps the Mistral-7B-v0.1 SentencePiece model."""
    try:
        import mistral_common
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise WeightsError(
            "the IDEFICS2 tokenizer needs the 'mistral-common' package (pip install mistral-common)"
        ) from e
    path = Path(mistral_common.__file__).parent / "data" / MISTRAL_SP_FILE
    if not path.is_file():
        raise WeightsError(f"{path}: missing from the installed mistral-common; reinstall it")
    return path


def _add_special_tokens(tok: Any) -> Any:
    from transformers import AddedToken

    tok.add_special_tokens(
        {"additional_special_tokens": [AddedToken(t, normalized=False, special=True) for t in SPECIAL_TOKENS]}
    )
    if tok.pad_token is None:
        # IDEFICS2's text config uses pad_token_id 0, which is <unk>.
        tok.pad_token = tok.unk_token
    return tok


@functools.lru_cache(maxsize=2)
def _idefics2_tokenizer_cached() -> Any:
    from transformers import LlamaTokenizer

    src = mistral_sentencepiece_path()
    with tempfile.TemporaryDirectory(prefix="prefcli-tok-") as d:
        shutil.copyfile(src, os.path.join(d, "tokenizer.model"))
        # from_pretrained on a directory converts the SentencePiece model properly;
        # LlamaTokenizer(vocab_file=...) silently yields a 3-token vocabulary in transformers 5.
        tok = LlamaTokenizer.from_pretrained(d, add_bos_token=True, add_eos_token=False, legacy=False)
    if len(tok) != 32000:
        raise WeightsError(f"{src}: expected a 32,000-token SentencePiece model, got {len(tok)} tokens")
    _add_special_tokens(tok)
    ids = tok.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    if ids != [32000, 32001, 32002]:
        raise WeightsError(f"{src}: IDEFICS2 special tokens got ids {ids}, expected [32000, 32001, 32002]")
    return tok


def idefics2_tokenizer() -> Any:
    """The real IDEFICS2-8B tokenizer (32,003 tokens), built offline from mistral-common."""
    import copy

    return copy.deepcopy(_idefics2_tokenizer_cached())


# The tiny tokenizer's training text: every template string plus enough words for
# short synthetic prompts. Unknown characters map to <unk>; that is fine at toy scale.
_TINY_WORDS = (
    "a an the of in on with and or at by for to from is are this that image photo painting drawing "
    "portrait landscape city forest sea mountain sky sun moon night day red orange yellow green blue "
    "purple pink brown black white gray grey dark light bright pale vivid soft warm cool striped dotted "
    "plain checkered circle square triangle star flower tree house car cat dog bird fish boat horse "
    "person woman man child robot dragon castle garden river lake road bridge tower street room table "
    "style styled art artwork detailed simple minimal abstract realistic cartoon anime concept "
    "shape shapes pattern patterns color colors colour palette big small large tiny many one two three "
    "left right top bottom center middle background foreground close up view scene"
)


def _tiny_corpus() -> list[str]:
    templates = []
    for lab in ("+", "-"):
        templates.append(f"User:<image>Score for this image?<end_of_utterance>\nAssistant: {lab}<end_of_utterance>\n")
        templates.append(
            f"User:<image>The prompt is 'a red circle' Score for this image?<end_of_utterance>\nAssistant: {lab}<end_of_utterance>\n"
        )
        templates.append(f"Assistant: {lab}")
    # Template text is by far the most frequent, so its words (and " +", " -") become single tokens.
    lines = templates * 50
    words = _TINY_WORDS.split()
    # Deterministic pseudo-sentences so that frequent word pieces merge.
    for i in range(len(words)):
        lines.append(" ".join(words[(i * k) % len(words)] for k in range(1, 9)))
    lines.append("The prompt is ' Score for this image? User: Assistant: ")
    lines.append("0 1 2 3 4 5 6 7 8 9 , . ! ? ' \" : ; ( ) - + * / = _ & % # @")
    return lines


@functools.lru_cache(maxsize=2)
def _tiny_tokenizer_cached(vocab_size: int) -> Any:
    import string

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=sorted(set(string.printable) - set(" \t\r\x0b\x0c")) + ["\u2581"],
        show_progress=False,
    )
    # Special tokens are taught to the trainer as plain text would waste merges on them.
    corpus = [
        line.replace(FAKE_IMAGE_TOKEN, " ").replace(IMAGE_TOKEN, " ").replace(END_OF_UTTERANCE, " ")
        for line in _tiny_corpus()
    ]
    tok.train_from_iterator(corpus, trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<unk>"
    )
    _add_special_tokens(fast)
    return fast


def tiny_tokenizer(vocab_size: int = 384) -> Any:
    """A small BPE tokenizer with IDEFICS2's special tokens, built deterministically offline."""
    import copy

    return copy.deepcopy(_tiny_tokenizer_cached(int(vocab_size)))


def load_tokenizer(spec: str | os.PathLike = "idefics2") -> Any:
    """``"idefics2"``, ``"tiny"`` or a directory written by ``save_pretrained``."""
    s = str(spec)
    if s == "idefics2":
        return idefics2_tokenizer()
    if s == "tiny":
        return tiny_tokenizer()
    path = Path(s)
    if path.is_dir():
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(str(path))
        except Exception as e:  # noqa: BLE001 - any failure means the directory is unusable
            raise WeightsError(f"{path}: cannot load a tokenizer ({e})") from e
        missing = [t for t in SPECIAL_TOKENS if tok.convert_tokens_to_ids(t) in (None, tok.unk_token_id)]
        if missing:
            raise WeightsError(f"{path}: tokenizer lacks the IDEFICS2 special tokens {missing}")
        return tok
    raise WeightsError(f"{s}: not a known tokenizer ('idefics2', 'tiny') nor a tokenizer directory")


def special_token_ids(tok: Any) -> dict[str, int]:
    """Ids of the fake-image, image and end-of-utterance tokens in `tok`."""
    return {t: int(tok.convert_tokens_to_ids(t)) for t in SPECIAL_TOKENS}
