"""The IDEFICS2 tokenizer built offline, label tokens, and the templates token for token."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from prefcli.errors import ConfigError
from prefcli.types import Candidate, HistoryPair, UserHistory
from prefcli.vlm import template as T
from prefcli.vlm.tokenizer import SPECIAL_TOKENS, load_tokenizer, tiny_tokenizer

VIPER_TURN = "User:<image>Score for this image?<end_of_utterance>\nAssistant: {}<end_of_utterance>\n"
VIPER_QUERY = "User:<image>Score for this image?<end_of_utterance>\nAssistant: "
PREF_TURN = "User:<image>The prompt is '{}' Score for this image?<end_of_utterance>\nAssistant: {}<end_of_utterance>\n"
PREF_QUERY = "User:<image>The prompt is '{}' Score for this image?<end_of_utterance>\nAssistant: "


def _img(seed: int, size: int = 40) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(1, 255, (size, size, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def real_tok():
    try:
        from prefcli.vlm.tokenizer import mistral_sentencepiece_path

        mistral_sentencepiece_path()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"mistral-common's tokenizer.model.v1 is unavailable: {e}")
    return load_tokenizer("idefics2")


def _processor(tok, image_seq_len: int):
    import copy

    from transformers import Idefics2ImageProcessor, Idefics2Processor

    ip = Idefics2ImageProcessor(do_image_splitting=False, size={"longest_edge": 448, "shortest_edge": 378})
    return Idefics2Processor(image_processor=ip, tokenizer=copy.deepcopy(tok), image_seq_len=image_seq_len)


def _history(n: int = 3) -> UserHistory:
    pairs = []
    for i in range(n):
        pairs.append(
            HistoryPair(
                liked=Candidate.from_image(_img(2 * i), image_id=f"L{i}"),
                disliked=Candidate.from_image(_img(2 * i + 1), image_id=f"D{i}"),
                prompt=f"prompt number {i}",
                pair_id=f"p{i}",
            )
        )
    return UserHistory(tuple(pairs), user_id="u")


# -- tokenizer ---------------------------------------------------------------


def test_real_tokenizer_ids(real_tok):
    assert len(real_tok) == 32003
    assert real_tok.convert_tokens_to_ids(list(SPECIAL_TOKENS)) == [32000, 32001, 32002]
    assert real_tok("Assistant: +", add_special_tokens=False)["input_ids"] == [21631, 28747, 648]
    assert real_tok("Assistant: -", add_special_tokens=False)["input_ids"][-1] == 387
    assert T.label_token_ids(real_tok) == (648, 387)
    assert real_tok("hi")["input_ids"][0] == real_tok.bos_token_id == 1


def test_tiny_tokenizer_is_deterministic_with_special_tokens(tmp_path):
    a, b = tiny_tokenizer(), tiny_tokenizer()
    assert a.get_vocab() == b.get_vocab()
    ids = [a.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
    assert ids == list(range(len(a) - 3, len(a)))  # added last, in IDEFICS2's order
    plus, minus = T.label_token_ids(a)
    assert a.convert_ids_to_tokens([plus, minus]) == ["\u2581+", "\u2581-"]
    text = "User:<image>Score for this image?<end_of_utterance>\n"
    assert a(text)["input_ids"].count(ids[1]) == 1
    a.save_pretrained(tmp_path)
    c = load_tokenizer(tmp_path)
    assert c(text)["input_ids"] == a(text)["input_ids"]


def test_label_token_must_be_single():
    class TwoPieces:
        name_or_path = "fake"

        def __call__(self, text, add_special_tokens=False):
            ids = [5, 6] if text == "Assistant:" else [5, 6, 7, 8]  # "+" would be two tokens
            return {"input_ids": ids}

        def convert_ids_to_tokens(self, ids):
            return [str(i) for i in ids]

    with pytest.raises(ConfigError, match="not a single token"):
        T.label_token_ids(TwoPieces())


# -- history order -------------------------------------------------------------


def test_eval_order_is_disliked_then_liked_in_stored_order():
    h = _history(3)
    items = T.eval_history_items(h)
    assert [(it.image.image_id, it.label) for it in items] == [
        ("D0", "-"),
        ("L0", "+"),
        ("D1", "-"),
        ("L1", "+"),
        ("D2", "-"),
        ("L2", "+"),
    ]
    assert items[0].prompt == "prompt number 0"


def test_train_order_shuffles_pairs_and_within_pairs_reproducibly():
    h = _history(6)
    before = list(h.pairs)
    orders = {tuple(it.image.image_id for it in T.train_history_items(h, random.Random(s))) for s in range(20)}
    assert len(orders) > 5
    a = T.train_history_items(h, random.Random(3))
    b = T.train_history_items(h, random.Random(3))
    assert [i.image.image_id for i in a] == [i.image.image_id for i in b]
    # each pair stays adjacent, labelled by its own side
    for x, y in zip(a[::2], a[1::2]):
        assert x.image.image_id[1:] == y.image.image_id[1:] and {x.label, y.label} == {"+", "-"}
        assert all((it.label == "+") == it.image.image_id.startswith("L") for it in (x, y))
    assert list(h.pairs) == before


# -- templates token for token -------------------------------------------------


def test_viper_template_matches_documented_string_and_processor(real_tok):
    h = _history(2)
    items = T.eval_history_items(h)
    history_list = list(items)
    enc = T.SequenceEncoder(real_tok, "viper", image_seq_len=64)
    target = _img(99)
    seq = enc.encode(items, target)
    doc = (
        VIPER_TURN.format("-") + VIPER_TURN.format("+") + VIPER_TURN.format("-") + VIPER_TURN.format("+") + VIPER_QUERY
    )
    assert enc.full_text(items) == doc
    images = [it.image.image for it in items] + [target]
    proc = _processor(real_tok, 64)
    ref = proc(text=doc, images=images, return_tensors="pt")["input_ids"][0].tolist()
    assert seq.ids == ref
    assert seq.ids.count(32001) == 64 * 5
    assert seq.images[-1] is target and len(seq.images) == 5
    assert items == history_list  # the caller's list is not mutated
    # the query ends "Assistant: " -> the last tokens are ':' and the bare space piece
    assert real_tok.convert_ids_to_tokens(seq.ids[-2:]) == [":", "\u2581"]


def test_preftoken_template_matches_documented_string_and_truncates_to_100_tokens(real_tok):
    long_prompt = " ".join(f"word{i}" for i in range(200))
    pairs = (
        HistoryPair(
            liked=Candidate.from_image(_img(1), image_id="L"),
            disliked=Candidate.from_image(_img(2), image_id="D"),
            prompt=long_prompt,
        ),
    )
    items = T.eval_history_items(UserHistory(pairs))
    enc = T.SequenceEncoder(real_tok, "preftoken", image_seq_len=64)
    cut = enc.truncate_prompt(long_prompt)
    assert len(real_tok(cut, add_special_tokens=False)["input_ids"]) == 100
    assert long_prompt.startswith(cut) and len(cut) < len(long_prompt)
    assert enc.truncate_prompt("a short prompt") == "a short prompt"
    seq = enc.encode(items, _img(3), "target prompt")
    doc = PREF_TURN.format(cut, "-") + PREF_TURN.format(cut, "+") + PREF_QUERY.format("target prompt")
    assert enc.full_text(items, "target prompt") == doc
    proc = _processor(real_tok, 64)
    ref = proc(text=doc, images=[_img(2), _img(1), _img(3)], return_tensors="pt")["input_ids"][0].tolist()
    assert seq.ids == ref


def test_tiny_text_templates_match_processor_and_split_cleanly():
    tok = tiny_tokenizer()
    items = T.eval_history_items(_history(2))
    for style, doc in (
        ("viper", (VIPER_TURN.format("-") + VIPER_TURN.format("+")) * 2 + VIPER_QUERY),
        (
            "preftoken",
            PREF_TURN.format("prompt number 0", "-")
            + PREF_TURN.format("prompt number 0", "+")
            + PREF_TURN.format("prompt number 1", "-")
            + PREF_TURN.format("prompt number 1", "+")
            + PREF_QUERY.format("red"),
        ),
    ):
        enc = T.SequenceEncoder(tok, style, image_seq_len=2)
        seq = enc.encode(items, _img(5), "red")
        ref = tok(T.expand_image_tokens(doc, 2))["input_ids"]
        assert seq.ids == ref, style
        assert seq.prefix.ids == ref[: len(seq.prefix.ids)]
        assert seq.suffix.ids[-1] == tok("Assistant: ", add_special_tokens=False)["input_ids"][-1]


def test_compact_template_layout():
    tok = tiny_tokenizer()
    enc = T.SequenceEncoder(tok, "compact", image_seq_len=1)
    items = T.eval_history_items(_history(4))
    seq = enc.encode(items, _img(7))
    assert len(seq.ids) == 18  # <s> + 8 x (image, label) + target image
    img = tok.convert_tokens_to_ids("<image>")
    assert seq.ids[0] == tok.bos_token_id and seq.ids[-1] == img
    labels = seq.ids[2:17:2]
    assert labels == [enc.minus_id, enc.plus_id] * 4
    assert seq.ids[1:17:2] == [img] * 8


def test_unknown_style_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown template style"):
        T.SequenceEncoder(tiny_tokenizer(), "chatty")
