"""`viper` and `idefics`: ViPer's exact template through the scorer, P(+) as the reference computes it,
the adapter loading path on a tiny stand-in, no mutation of the caller's lists, offline errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from prefcli.errors import HistoryError, WeightsError
from prefcli.plugins import get_scorer_spec, load_scorer
from prefcli.types import Candidate, HistoryPair, UserHistory

# The documented template (docs/scorers/viper.md, ViPer's metric.py), written out literally.
TURN = "User:<image>Score for this image?<end_of_utterance>\nAssistant: {}<end_of_utterance>\n"
QUERY = "User:<image>Score for this image?<end_of_utterance>\nAssistant: "


def _img(seed: int, size: int = 40) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(1, 255, (size, size, 3), dtype=np.uint8))


def _pairs(n: int) -> list[HistoryPair]:
    return [
        HistoryPair(
            liked=Candidate.from_image(_img(2 * i), image_id=f"L{i}"),
            disliked=Candidate.from_image(_img(2 * i + 1), image_id=f"D{i}"),
            prompt=f"p{i}",
        )
        for i in range(n)
    ]


def _sharpen(vlm) -> None:
    with torch.no_grad():
        for p in vlm.core.parameters():
            if p.ndim >= 2:
                p.mul_(4)


@pytest.fixture(scope="module")
def real_viper():
    try:
        from prefcli.vlm.tokenizer import mistral_sentencepiece_path

        mistral_sentencepiece_path()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"the real IDEFICS2 tokenizer needs mistral-common's tokenizer.model.v1: {e}")
    s = load_scorer("viper", weights="tiny:2", tokenizer="idefics2", batch_size=2)
    _sharpen(s.vlm)
    return s


def _reference_p_plus(vlm, doc: str, images: list) -> float:
    """ViPer's metric.py: the processor's tokens through the HF model, exp(l+) / (exp(l+) + exp(l-))."""
    from transformers import Idefics2ImageProcessor, Idefics2Processor

    ip = Idefics2ImageProcessor(do_image_splitting=False, size={"longest_edge": 448, "shortest_edge": 378})
    proc = Idefics2Processor(
        image_processor=ip, tokenizer=copy.deepcopy(vlm.tokenizer), image_seq_len=vlm.image_seq_len
    )
    ids = proc(text=doc, images=images, return_tensors="pt")["input_ids"]
    pv = vlm.preprocess(images).unsqueeze(0)  # the tiny model's pixels: (1, N_images, 3, S, S)
    with torch.no_grad():
        logits = vlm.core(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pv).logits[:, -1].double()
    return float(torch.exp(logits[0, 648]) / (torch.exp(logits[0, 648]) + torch.exp(logits[0, 387]))), ids[0].tolist()


def test_registered_specs():
    for name in ("viper", "idefics"):
        spec = get_scorer_spec(name)
        assert spec.needs == frozenset({"image", "history"}) and spec.uses_history
    assert "EPFL-VILAB/Metric-ViPer" in get_scorer_spec("viper").default_weights
    assert "HuggingFaceM4/idefics2-8b" in get_scorer_spec("idefics").default_weights


def test_viper_template_token_for_token_and_p_plus_through_the_scorer(real_viper):
    s = real_viper
    assert (s.vlm.plus_id, s.vlm.minus_id) == (648, 387)  # "▁+" and "▁-" after "Assistant:", as ViPer hard-codes
    seen: list[list[int]] = []
    embed = s.vlm.embed

    def spy(input_ids, pixel_values):
        seen.extend(row.tolist() for row in input_ids)  # one candidate: no padding
        return embed(input_ids, pixel_values)

    s.vlm.embed = spy
    try:
        pairs = _pairs(2)
        target = _img(99)
        state = s.condition(UserHistory(tuple(pairs)))
        got = s.score([Candidate.from_image(target, prompt="ignored by ViPer")], state)
    finally:
        del s.vlm.embed
    prefix_ids, suffix_ids = seen
    doc = TURN.format("-") + TURN.format("+") + TURN.format("-") + TURN.format("+") + QUERY
    images = [pairs[0].disliked.image, pairs[0].liked.image, pairs[1].disliked.image, pairs[1].liked.image, target]
    want, ref_ids = _reference_p_plus(s.vlm, doc, images)
    assert prefix_ids + suffix_ids == ref_ids  # what the scorer ran == ViPer's processor output, token for token
    assert s.vlm.tokenizer.convert_ids_to_tokens(suffix_ids[-2:]) == [":", "▁"]  # the query ends "Assistant: "
    np.testing.assert_allclose(got, [want], rtol=1e-4)


def test_batched_cached_scores_equal_one_at_a_time(real_viper):
    s = real_viper
    state = s.condition(UserHistory(tuple(_pairs(3))))
    cands = [Candidate.from_image(_img(200 + i)) for i in range(5)]
    together = s.score(cands, state)  # batch_size 2: three batches
    alone = [s.score([c], state)[0] for c in cands]
    # fp32 agreement far tighter than the spread between candidates (the tiny model is flat)
    np.testing.assert_allclose(together, alone, rtol=0, atol=2e-6)
    assert np.std(together) > 1e-5


def test_callers_lists_are_never_mutated():
    s = load_scorer("viper", weights="tiny")
    pairs = _pairs(2)
    cands = [Candidate.from_image(_img(300 + i)) for i in range(3)]
    pairs_before, cands_before = list(pairs), list(cands)
    state = s.condition(pairs)  # a plain list of pairs works as a history too
    s.score(cands, state)
    s.score(cands, state)
    assert len(pairs) == 2 and all(a is b for a, b in zip(pairs, pairs_before))
    assert len(cands) == 3 and all(a is b for a, b in zip(cands, cands_before))


def test_history_errors():
    s = load_scorer("idefics", weights="tiny")
    with pytest.raises(HistoryError, match="needs a history of liked/disliked image pairs.*found none"):
        s.condition(UserHistory(()))
    with pytest.raises(HistoryError, match="found none"):
        s.condition(None)
    # ViPer accepts any history length: one pair scores without a note
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(s.score([Candidate.from_image(_img(1))], s.condition(_pairs(1)))) == 1


@pytest.fixture(scope="module")
def local_weights(tmp_path_factory):
    """A tiny IDEFICS2 base folder and a LoRA adapter folder standing in for the hub weights."""
    from peft import LoraConfig, get_peft_model

    from prefcli.vlm.model import LORA_TARGET_REGEX, PrefVLM, tiny_vlm

    root = tmp_path_factory.mktemp("viper-weights")
    m = tiny_vlm(template="viper", seed=11).eval()
    _sharpen(m)
    m.core.save_pretrained(root / "base")
    m.tokenizer.save_pretrained(root / "base")
    base_copy = copy.deepcopy(m)
    peft_model = get_peft_model(
        m.core, LoraConfig(r=8, lora_alpha=8, lora_dropout=0.0, target_modules=LORA_TARGET_REGEX)
    )
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    peft_model.save_pretrained(root / "adapter")
    return {"root": root, "with_adapter": PrefVLM(peft_model, m.core, m.tokenizer, m.spec).eval(), "base": base_copy}


def test_real_loading_path_on_local_folders(local_weights, tmp_path):
    from prefcli.vlm import scoring
    from prefcli.vlm.template import eval_history_items

    root = local_weights["root"]
    pairs, cands = _pairs(2), [Candidate.from_image(_img(400 + i)) for i in range(3)]
    viper = load_scorer("viper", weights=str(root / "adapter"), base=str(root / "base"))
    idefics = load_scorer("idefics", weights=str(root / "base"))
    with torch.no_grad():
        want_v = scoring.q_scores(
            scoring.score_uncached(local_weights["with_adapter"], eval_history_items(pairs), cands)
        )
        want_i = scoring.q_scores(scoring.score_uncached(local_weights["base"], eval_history_items(pairs), cands))
    got_v = viper.score(cands, viper.condition(pairs))
    got_i = idefics.score(cands, idefics.condition(pairs))
    np.testing.assert_allclose(got_v, want_v, rtol=1e-4)  # adapter merged == peft's unmerged forward
    np.testing.assert_allclose(got_i, want_i, rtol=1e-4)
    assert not np.allclose(got_v, got_i, rtol=1e-3)  # the adapter matters
    from prefcli.weights import identity

    assert viper.weights_id == identity(str(root / "adapter")) and viper.weights_id.startswith("folder:sha256:")
    assert viper.identity["options"]["base"] == identity(str(root / "base"))  # the base is part of the identity

    # an adapter folder with only a pickled .bin is refused, not unpickled
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "adapter_config.json").write_text((root / "adapter" / "adapter_config.json").read_text())
    (tmp_path / "bin" / "adapter_model.bin").write_bytes(b"\x80\x02")
    with pytest.raises(WeightsError, match="adapter_model.bin: prefcli does not unpickle it"):
        load_scorer("viper", weights=str(tmp_path / "bin"), base=str(root / "base"))


def test_offline_errors_name_the_repositories(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(WeightsError, match="EPFL-VILAB/Metric-ViPer"):
        load_scorer("viper", offline=True)
    with pytest.raises(WeightsError, match="HuggingFaceM4/idefics2-8b"):
        load_scorer("idefics", offline=True)


def test_viper_preprocessor_matches_the_reference_processor_on_square_images():
    from transformers import Idefics2ImageProcessor

    from prefcli_viper.scorer import ViperPreprocessor

    im = _img(5, size=600)
    ref = Idefics2ImageProcessor(do_image_splitting=False, size={"longest_edge": 448, "shortest_edge": 378})
    want = ref(images=[[im]], return_tensors="pt")["pixel_values"][0]
    got = ViperPreprocessor()([im])
    assert got.shape == (1, 3, 448, 448)
    torch.testing.assert_close(got, want.float())
    wide = Image.fromarray(np.random.default_rng(1).integers(1, 255, (300, 500, 3), dtype=np.uint8))
    assert ViperPreprocessor()([wide, im]).shape == (2, 3, 448, 448)  # non-square: squared, stackable


def test_viper_example_user_ranks_end_to_end(viper_examples):
    from prefcli.harness.handle import ScorerHandle
    from prefcli.ranking import rank_folder

    res = rank_folder(
        viper_examples,
        likes=viper_examples / "liked",
        dislikes=viper_examples / "disliked",
        scorer=ScorerHandle("viper", "tiny"),
    )
    assert res.history_pairs == 8 and len(res.ranked) == 4
    assert all(0.0 < r.score < 1.0 for r in res.ranked)


def test_tiny_viper_and_tiny_idefics_are_different_networks():
    pairs, cands = _pairs(1), [Candidate.from_image(_img(9))]
    v, i = load_scorer("viper", weights="tiny"), load_scorer("idefics", weights="tiny")
    assert v.weights_id == "tiny:0/viper" and i.weights_id == "tiny:0/idefics"
    assert v.score(cands, v.condition(pairs)) != i.score(cands, i.condition(pairs))


def test_rank_cli_with_a_local_base_and_adapter_offline(local_weights, tmp_path, monkeypatch, capsys):
    """The issue's command: `prefcli rank ... --scorer viper -o base LOCAL_IDEFICS2 --weights LOCAL_ADAPTER --offline`."""
    import json

    from prefcli.cli import main

    # --offline sets these for the process; monkeypatch puts them back afterwards.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PREFCLI_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))  # nothing cached: only the local folders can work
    root = local_weights["root"]
    for sub, seeds in (("cands", (40, 41, 42)), ("liked", (50, 51)), ("disliked", (60, 61))):
        (tmp_path / sub).mkdir()
        for s in seeds:
            _img(s).save(tmp_path / sub / f"{s}.png")
    with pytest.raises(SystemExit) as done:
        main(
            [
                "rank",
                str(tmp_path / "cands"),
                "--likes",
                str(tmp_path / "liked"),
                "--dislikes",
                str(tmp_path / "disliked"),
                "--scorer",
                "viper",
                "-o",
                "base",
                str(root / "base"),
                "--weights",
                str(root / "adapter"),
                "--offline",
                "--device",
                "cpu",
                "--format",
                "json",
            ]
        )
    assert done.value.code in (0, None)
    rows = json.loads(capsys.readouterr().out)["results"]["ranking"]  # the one JSON envelope (docs/outputs.md)
    assert len(rows) == 3 and all(0.0 < r["score"] < 1.0 for r in rows)
    # the same numbers as the scorer built directly from the two folders
    viper = load_scorer("viper", weights=str(root / "adapter"), base=str(root / "base"))
    from prefcli.data.folders import history_from_folders
    from prefcli.types import Candidate as C

    history, _ = history_from_folders(tmp_path / "liked", tmp_path / "disliked")
    want = viper.score([C.from_path(r["path"]) for r in rows], viper.condition(history))
    np.testing.assert_allclose([r["score"] for r in rows], want, rtol=1e-5)


def test_offline_advice_for_the_base_names_the_base_option(local_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(WeightsError, match=r"HuggingFaceM4/idefics2-8b.*-o base DIR"):
        load_scorer("viper", weights=str(local_weights["root"] / "adapter"), offline=True)


# -- non-square images: ViPer's own processor path --------------------------------------------------
#
# ViPer's metric.py (github.com/EPFL-VILAB/ViPer, commit 099a539, metric.py) builds its processor
# with size={"longest_edge": 448, "shortest_edge": 378}, do_image_splitting=False (lines 31-35),
# appends the query image as opened to the history images (line 53), runs
# processor(text=prompt, images=context_images) (line 58) and model(**inputs) (line 62), which
# carries pixel_attention_mask for the padded canvas, and scores
# exp(l648) / (exp(l648) + exp(l387)) at the last position (line 65). The tiny model gets the
# same processor at its own scale (image size 32: longest 32, shortest 27; 378/448 = 27/32).

#: (width, height): the issue's non-square sizes, a 40:1 landscape and portrait (the image cap is 50:1), a square.
NONSQUARE = [(768, 1344), (1216, 832), (640, 320), (300, 700), (1600, 40), (36, 1440), (500, 500)]
#: History: disliked, liked, disliked, liked (ViPer's load_context_images order, metric.py lines 22-28).
HISTORY_SIZES = [(512, 512), (900, 600), (500, 800), (1024, 1024)]

#: ViPer's calculate_score itself (metric.py at 099a539, imported with torch.cuda.set_device stubbed
#: and DEVICE = "cpu") on the `sensitive_viper` fixture below, the history and queries of
#: test_viper_equals_vipers_calculate_score_on_non_square_images, one NONSQUARE query at a time,
#: printed by tests/reference/viper_metric_oracle.py.
VIPER_CALCULATE_SCORE = [0.7906407, 0.7933813, 0.7897775, 0.7958032, 0.7907842, 0.7899256, 0.7908354]


def _blocks(seed: int, width: int, height: int) -> Image.Image:
    """Coloured blocks (6 x 4) stretched to any size: structure that survives a resize to 32 px, never black."""
    small = np.random.default_rng(seed).integers(30, 240, (4, 6, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.NEAREST)


def _vipers_processor(vlm, size: dict):
    """metric.py lines 31-35 (AutoProcessor of idefics2-8b, size, no splitting) around the tiny model's tokenizer."""
    from transformers import Idefics2ImageProcessor, Idefics2Processor

    ip = Idefics2ImageProcessor(do_image_splitting=False, size=size)
    return Idefics2Processor(
        image_processor=ip, tokenizer=copy.deepcopy(vlm.tokenizer), image_seq_len=vlm.image_seq_len
    )


def _vipers_calculate_score(vlm, proc, context_images: list, query) -> float:
    """metric.py's calculate_score (lines 44-68) with the tiny model and its processor: the same calls."""
    prompt = (TURN.format("-") + TURN.format("+")) * (len(context_images) // 2) + QUERY
    inputs = proc(text=prompt, images=list(context_images) + [query], return_tensors="pt")
    assert "pixel_attention_mask" in inputs  # the padded canvas is masked, not squared
    with torch.no_grad():
        logits = vlm.core(**inputs).logits
    lp, lm = logits[0, -1, 648].double(), logits[0, -1, 387].double()
    return float(torch.exp(lp) / (torch.exp(lp) + torch.exp(lm)))


def _history_and_context():
    ims = [_blocks(100 + i, w, h) for i, (w, h) in enumerate(HISTORY_SIZES)]
    pairs = [
        HistoryPair(
            liked=Candidate.from_image(ims[2 * i + 1], image_id=f"L{i}"),
            disliked=Candidate.from_image(ims[2 * i], image_id=f"D{i}"),
        )
        for i in range(2)
    ]
    return UserHistory(tuple(pairs)), ims


def test_viper_preprocessor_is_vipers_processor_at_every_aspect_ratio():
    """Full size (448 / 378): each image's pixels and mask are what Idefics2ImageProcessor gives it in ViPer's batch."""
    from transformers import Idefics2ImageProcessor

    from prefcli_viper.scorer import ViperPreprocessor

    ims = [_blocks(10 + i, w, h) for i, (w, h) in enumerate(NONSQUARE)]
    ref = Idefics2ImageProcessor(do_image_splitting=False, size={"longest_edge": 448, "shortest_edge": 378})
    out = ref(images=[ims], return_tensors="pt")  # ViPer: one call, every image of the conversation
    want, mask = out["pixel_values"][0], out["pixel_attention_mask"][0].bool()
    got = ViperPreprocessor()(ims)
    assert got.shape == want.shape
    torch.testing.assert_close(~torch.isnan(got).any(dim=1), mask, rtol=0, atol=0)
    torch.testing.assert_close(torch.nan_to_num(got, nan=0.0), want.float(), rtol=0, atol=0)
    # the aspect ratio is kept: 768x1344 -> 256 wide, raised to the 378 minimum; 1600x40 -> 448 x 378
    real = ~torch.isnan(got).any(dim=1)
    assert [(int(r.any(1).sum()), int(r.any(0).sum())) for r in real][:5] == [
        (448, 378),
        (378, 448),
        (378, 448),
        (448, 378),
        (378, 448),
    ]


@pytest.mark.parametrize("name", ["viper", "idefics"])
def test_both_scorers_use_vipers_processor(name):
    from prefcli_viper.scorer import ViperPreprocessor

    s = load_scorer(name, weights="tiny")
    assert isinstance(s.vlm.preprocess, ViperPreprocessor)
    assert s.vlm.preprocess.size == {"longest_edge": 32, "shortest_edge": 27}


def _image_sensitive(vlm) -> None:
    """Vision tower and connector x8 more (after _sharpen): query images then score ~1e-2 apart, not ~1e-4."""
    with torch.no_grad():
        for n, p in vlm.core.model.named_parameters():
            if p.ndim >= 2 and ("vision" in n or "connector" in n):
                p.mul_(8)


@pytest.fixture(scope="module")
def sensitive_viper(real_viper):
    s = load_scorer("viper", weights="tiny:2", tokenizer="idefics2", batch_size=2)
    _sharpen(s.vlm)
    _image_sensitive(s.vlm)
    return s


def test_viper_equals_vipers_calculate_score_on_non_square_images(sensitive_viper):
    s = sensitive_viper
    history, context = _history_and_context()
    queries = [_blocks(200 + j, w, h) for j, (w, h) in enumerate(NONSQUARE)]
    proc = _vipers_processor(s.vlm, s.vlm.preprocess.size)
    want = [_vipers_calculate_score(s.vlm, proc, context, q) for q in queries]
    cands = [Candidate.from_image(q, image_id=f"q{j}") for j, q in enumerate(queries)]
    state = s.condition(history)
    batched = s.score(cands, state)  # batch_size 2: candidates of different shapes share a canvas
    alone = [s.score([c], state)[0] for c in cands]
    many = s.score_histories([(history, cands)])[0]  # the evaluation path (feature cache, batched prefixes)
    for got in (batched, alone, many):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(want, VIPER_CALCULATE_SCORE, rtol=0, atol=1e-5)
    np.testing.assert_allclose(batched, VIPER_CALCULATE_SCORE, rtol=0, atol=1e-5)
    # The check can fail: the queries squared first (prefcli before this fix) score 1e-3 and more away.
    squared = s.score([Candidate.from_image(q.resize((max(q.size),) * 2, Image.BICUBIC)) for q in queries], state)
    assert np.abs(np.subtract(squared, want)).max() > 1e-3


def test_reward_keeps_the_aspect_ratio_as_vipers_processor_does(sensitive_viper):
    """The differentiable path (generate's reward) resizes as the processor does, aspect kept, to ViPer's numbers."""
    s = sensitive_viper
    history, context = _history_and_context()
    state = s.condition(history)
    proc = _vipers_processor(s.vlm, s.vlm.preprocess.size)
    # 32x27 and 27x32 pass the tiny processor unresized (exact); 96x40 is squashed to 32x27 by a
    # float resize here, a uint8 one in the processor (2e-3, as tests/scorers/test_scorer_contract.py allows).
    for (w, h), tol in (((32, 27), 1e-5), ((27, 32), 1e-5), ((96, 40), 2e-3)):
        q = _blocks(300 + w, w, h)
        want = _vipers_calculate_score(s.vlm, proc, context, q)
        pixels = torch.from_numpy(np.asarray(q, dtype=np.float32) / 255.0).permute(2, 0, 1)[None].requires_grad_(True)
        got = s.reward(pixels, None, state)
        assert abs(float(got.detach()[0]) - want) < tol, ((w, h), float(got.detach()[0]), want)
        got.sum().backward()
        assert torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0
        squared = s.reward(
            torch.nn.functional.interpolate(pixels.detach(), size=(max(w, h),) * 2, mode="bilinear"), None, state
        )
        if tol < 1e-3:
            assert abs(float(squared[0]) - want) > 100 * tol  # a squared image would be caught


def test_full_size_geometry_equals_vipers_call_on_a_patch_14_model():
    """448 / 378 and IDEFICS2's 14-px patches (a tiny model with the real patch size): prefcli's cached
    path equals ViPer's processor + model(**inputs) on non-square and extreme images."""
    try:
        from prefcli.vlm.tokenizer import mistral_sentencepiece_path

        mistral_sentencepiece_path()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"the real IDEFICS2 tokenizer needs mistral-common's tokenizer.model.v1: {e}")
    from prefcli.vlm import scoring
    from prefcli.vlm.model import tiny_vlm
    from prefcli.vlm.template import eval_history_items
    from prefcli_viper.scorer import ViperPreprocessor

    vlm = tiny_vlm(template="viper", tokenizer="idefics2", seed=5, tiny={"image_size": 28, "patch_size": 14}).eval()
    _sharpen(vlm)
    _image_sensitive(vlm)
    vlm.preprocess = ViperPreprocessor()
    ims = [_blocks(400 + i, w, h) for i, (w, h) in enumerate([(900, 600), (500, 800)])]
    history = UserHistory(
        (
            HistoryPair(
                liked=Candidate.from_image(ims[1], image_id="L"), disliked=Candidate.from_image(ims[0], image_id="D")
            ),
        )
    )
    queries = [_blocks(500 + j, w, h) for j, (w, h) in enumerate([(768, 1344), (1600, 40), (640, 320)])]
    proc = _vipers_processor(vlm, {"longest_edge": 448, "shortest_edge": 378})
    want = [_vipers_calculate_score(vlm, proc, ims, q) for q in queries]
    with torch.no_grad():
        state = scoring.condition(vlm, eval_history_items(history))
        got = scoring.q_scores(
            scoring.score_candidates(vlm, state, [Candidate.from_image(q) for q in queries], batch_size=3)
        )
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
