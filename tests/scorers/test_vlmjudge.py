"""`vlm-judge`: PreferThinker's question, token for token, and its answers parsed.

Upstream: github:Shengqi77/PreferThinker, `eval_PreferThinker.py` at commit
4cdc1efc (20,736 characters). The prompt strings are pinned by the length and
sha256 each has in that file (SYSTEM_PROMPT lines 16-18; the user-turn texts
lines 106, 120, 134, 148), measured on the file itself; set
PREFCLI_PREFERTHINKER_EVAL=/path/to/eval_PreferThinker.py to also compare the
strings directly and run the script's own `evaluate()` (lines 57-253) on a
tiny model (test_upstream_script_on_a_tiny_model).
The message construction is the script's (tests/reference/preferthinker.py,
lines 94-154); the pixels go through qwen_vl_utils 0.0.11 (the version its
requirements.txt pins), installed --no-deps as a test oracle.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import pytest

from prefcli_vlmjudge import protocol as P

UPSTREAM = {  # name: (characters, sha256 of the UTF-8 text) in eval_PreferThinker.py @ 4cdc1efc
    "SYSTEM_PROMPT": (8789, "ed0a06c87724da1b4c90b6c879f346ab850ab268c620719257823cc45c2b1085"),
    "PREFERRED_INTRO": (391, "4a5abcca790f824b29db4cb58b306b3f7d4f2a610d5db46257cc3c2fd28026fa"),
    "NON_PREFERRED_INTRO": (408, "8d5abe68aa10f26314f752f9fab1dfd737981ec2bb5c7bd2e2de0c14f0793f1b"),
    "CANDIDATES_INTRO": (69, "63519f50fe2d1cb63c305fcde4d7ef738e7049b2f82048097c32ae6a0a8a18fd"),
    "FINAL_INSTRUCTION": (746, "ec7e1e628ecdf0c2796ebdbccc9d022a84d3914db91d1268a455467020d5070c"),
}
UPSTREAM_FILE = os.environ.get("PREFCLI_PREFERTHINKER_EVAL")


def _upstream_source() -> str:
    if not UPSTREAM_FILE or not Path(UPSTREAM_FILE).is_file():
        pytest.skip("set PREFCLI_PREFERTHINKER_EVAL to a copy of PreferThinker's eval_PreferThinker.py")
    return Path(UPSTREAM_FILE).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(UPSTREAM))
def test_prompt_strings_are_the_upstream_ones(name):
    text = getattr(P, name)
    assert (len(text), hashlib.sha256(text.encode()).hexdigest()) == UPSTREAM[name]


def test_prompt_strings_against_the_upstream_file():
    import ast

    tree = ast.parse(_upstream_source())
    consts = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    system = next(
        ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "SYSTEM_PROMPT"
    )
    assert P.SYSTEM_PROMPT == system
    for name, head in (
        ("PREFERRED_INTRO", "First, given"),
        ("NON_PREFERRED_INTRO", "Second, given"),
        ("CANDIDATES_INTRO", "Then, given"),
        ("FINAL_INSTRUCTION", "Using the predicted"),
    ):
        assert getattr(P, name) == next(c for c in consts if c.startswith(head))


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    """One PreferImg-Bench-shaped record and its image root: 6 liked, 6 disliked (the script keeps 5 of each)."""
    from picture_factory import structured_images

    root = tmp_path_factory.mktemp("preferimg")
    sizes = [(40, 50), (64, 48), (30, 30), (90, 60), (50, 40), (33, 57)] * 2 + [(60, 60), (45, 70)]
    names = []
    for i, im in enumerate(structured_images(sizes, 5)):
        if i == 3:  # one RGBA image: qwen_vl_utils composites it on white
            im = im.convert("RGBA")
            im.putalpha(128)
        if i == 7:  # one palette image with a transparent index: qwen_vl_utils just converts it to RGB
            im = im.convert("P", palette=1, colors=16)
            im.info["transparency"] = 0
        p = root / "imgs" / f"{i:02d}.png"
        p.parent.mkdir(exist_ok=True)
        im.save(p)
        names.append(f"imgs/{i:02d}.png")
    x = {"prefered_images": names[0:6], "non_prefered_images": names[6:12], "imageA": names[12], "imageB": names[13],
         "conversations": [{"from": "gpt", "value": "Image A"}]}  # fmt: skip
    return x, root


@pytest.fixture(scope="module")
def judge():
    from prefcli import plugins

    return plugins.load_scorer("vlm-judge", weights="tiny", device="cpu", max_new_tokens=8)


def _candidates(x, root):
    from prefcli.types import Candidate, HistoryPair, UserHistory

    c = lambda rel: Candidate.from_path(str(root / rel))  # noqa: E731
    history = UserHistory(
        tuple(HistoryPair(c(a), c(b)) for a, b in zip(x["prefered_images"], x["non_prefered_images"]))
    )
    return history, c(x["imageA"]), c(x["imageB"])


# -- the prompt -----------------------------------------------------------------------------


def test_prompt_text_equals_the_scripts(judge, record):
    from reference.preferthinker import upstream_messages, upstream_text

    x, root = record
    history, a, b = _candidates(x, root)
    ours = judge.prompt(judge.messages(a, b, judge.condition(history)))
    theirs = upstream_text(judge.processor, [upstream_messages(x, str(root))])[0]
    assert ours == theirs
    # The shape the script's template gives: system prompt, 5 + 5 history pictures, A and B.
    assert ours.startswith(
        "<|im_start|>system\n"
        + P.SYSTEM_PROMPT
        + "<|im_end|>\n<|im_start|>user\n"
        + P.PREFERRED_INTRO
        + "Picture 1: <|vision_start|>"
    )
    assert ours.count("<|image_pad|>") == 12 and "Picture 12: " in ours and "Picture 13" not in ours
    assert "Image APicture 11: <|vision_start|><|image_pad|><|vision_end|>Image BPicture 12: " in ours
    assert ours.endswith(P.FINAL_INSTRUCTION + "<|im_end|>\n<|im_start|>assistant\n")
    assert "Preferred Image 1." not in ours  # the items' text/label keys are not printed by the template


def test_prompt_tokens_and_pixels_equal_the_scripts(judge, record):
    pytest.importorskip(
        "qwen_vl_utils", reason="qwen-vl-utils (test oracle, pip install --no-deps qwen-vl-utils==0.0.11)"
    )
    import torch

    from reference.preferthinker import upstream_inputs, upstream_messages

    x, root = record
    history, a, b = _candidates(x, root)
    ours = judge.inputs([judge.messages(a, b, judge.condition(history))])
    theirs = upstream_inputs(judge.processor, [upstream_messages(x, str(root))])
    assert ours["input_ids"].tolist() == theirs["input_ids"].tolist()
    assert torch.equal(ours["image_grid_thw"], theirs["image_grid_thw"])
    assert torch.equal(ours["pixel_values"], theirs["pixel_values"])
    assert ours["input_ids"].shape[1] > 1000  # the whole system prompt is there


def test_image_preparation_is_qwen_vl_utils(record):
    vp = pytest.importorskip("qwen_vl_utils.vision_process", reason="qwen-vl-utils test oracle")
    import numpy as np
    from PIL import Image

    x, root = record
    for rel in x["prefered_images"][:4] + [x["imageA"]]:
        ours = P.prepare_image(Image.open(root / rel))
        theirs = vp.fetch_image({"type": "image", "image": f"file://{root / rel}"})
        assert ours.size == theirs.size and ours.mode == theirs.mode == "RGB"
        assert np.array_equal(np.asarray(ours), np.asarray(theirs))
    for hw in [(10, 10), (3000, 4000), (28, 5000), (57, 83)]:
        assert P.smart_resize(*hw) == vp.smart_resize(
            *hw, factor=28, min_pixels=vp.MIN_PIXELS, max_pixels=vp.MAX_PIXELS
        )


def test_without_both_kinds_of_history_the_history_block_is_left_out():
    msgs = P.build_messages(["liked"], [], "A", "B")
    texts = [c.get("text") for c in msgs[1]["content"] if c["type"] == "text"]
    assert texts == [P.CANDIDATES_INTRO, "Image A", "Image B", P.FINAL_INSTRUCTION]
    full = P.build_messages(list("123456"), list("abcdef"), "A", "B", num_history=2)
    assert P.message_images(full) == ["1", "2", "a", "b", "A", "B"]


# -- the answer -----------------------------------------------------------------------------

EXAMPLE_1 = P.SYSTEM_PROMPT.split('output example 1:\n"')[1].split('"\n\n\noutput example 2')[0]
EXAMPLE_2 = P.SYSTEM_PROMPT.split('output example 2:\n"')[1].rstrip("\n").rstrip('"')


def test_parse_the_protocols_own_examples():
    """Reference strings from running lines 38-55 and 214-218 of the script on these outputs."""
    one = P.parse_output(EXAMPLE_1)
    assert one["winner"] == 1 and one["answer"] == "Image B" and one["total_scores"] == [11.0, 22.0]
    assert (
        one["preference_profile"]
        == "art styles: mesoamerican art, color: pink, artistic medium: coiling, saturation: muted, detail: realistic"
    )
    assert (
        one["non_preference_profile"]
        == "art styles: pixel art, color: jungle green, artistic medium: digital painting, saturation: mid-tone, detail: selective"
    )
    two = P.parse_output(EXAMPLE_2)
    assert two["winner"] == 0 and two["total_scores"] == [21.0, 12.0]
    assert (
        two["preference_profile"]
        == "art styles: oceanic art, color: alloy silver, artistic medium: silkscreen, saturation: pastel, detail: smooth"
    )
    assert (
        two["non_preference_profile"]
        == "art styles: romanticism, color: charcoal gray, artistic medium: 3d modeling, saturation: intense, detail: fine"
    )
    assert "error" not in one and "error" not in two


@pytest.mark.parametrize(
    "text, winner, reason",
    [
        ("I think the first one.", None, "no <answer>"),
        ("<answer>Image C</answer>", None, "neither"),
        ("<answer>image a</answer>", None, "neither"),  # the script compares by equality: lower case is a miss
        ("<answer>Image A", None, "no <answer>"),  # unclosed tag
        ("<answer>Image A</answer> then <answer>Image B</answer>", 1, None),  # the last answer counts
        ("<answer>\n Image A \n</answer>", 0, None),  # stripped
        ("", None, "no <answer>"),
    ],
)
def test_parse_malformed_answers(text, winner, reason):
    out = P.parse_output(text)
    assert out["winner"] == winner
    if reason is None:
        assert "error" not in out
    else:
        assert out["error"].startswith("no answer") and reason in out["error"]
    assert out["preference_profile"] is None  # no tag: no profile (the script would return the whole text)


def test_total_scores_partial_and_last_wins():
    assert P.parse_total_scores("Image A: total_score=1+2=3") == (3.0, None)
    assert P.parse_total_scores(
        "Image A: total_score=1=1\nImage B: total_score = 2+2 = 4\nImage A: total_score=5=5"
    ) == (5.0, 4.0)


def test_preference_from_output_counts_no_answer_as_a_miss():
    from prefcli_vlmjudge.scorer import preference

    p = preference(EXAMPLE_1)
    assert p.winner == 1 and p.scores == (11.0, 22.0) and p.value == 0.0 and p.details["output"] == EXAMPLE_1
    miss = preference("garbage")
    assert miss.winner is None and math.isnan(miss.value) and "no answer" in miss.details["error"]


# -- the model ------------------------------------------------------------------------------


def test_tiny_judge_generates_deterministically_and_reports(judge, record):
    x, root = record
    history, a, b = _candidates(x, root)
    state = judge.condition(history)
    first = judge.compare(a, b, state)
    again = judge.compare(a, b, state)
    assert first.details["output"] == again.details["output"]  # greedy decoding
    assert first.winner is None and "no answer" in first.details["error"]  # random weights never answer
    assert judge.spec.pairwise and "tokens=8" in judge.weights_id and "rep=1.15" in judge.weights_id


def test_generation_options_reach_generate(judge, record, monkeypatch):
    x, root = record
    history, a, b = _candidates(x, root)
    seen = {}
    real = judge.model.generate

    def spy(**kw):
        seen.update(
            {k: v for k, v in kw.items() if k in ("max_new_tokens", "do_sample", "repetition_penalty", "num_beams")}
        )
        return real(**kw)

    monkeypatch.setattr(judge.model, "generate", spy)
    judge.compare(a, b, judge.condition(history))
    assert seen == {"max_new_tokens": 8, "do_sample": False, "repetition_penalty": 1.15, "num_beams": 1}


def test_a_checkpoint_folder_loads_and_a_foreign_one_is_refused(tmp_path):
    from prefcli import plugins
    from prefcli.errors import WeightsError
    from prefcli_vlmjudge import tiny

    d = tiny.save_tiny(tmp_path / "judge", seed=0)
    j = plugins.load_scorer("vlm-judge", weights=str(d), device="cpu", max_new_tokens=4)
    assert j.processor.chat_template and "tiny" not in j.weights_id and "tokens=4" in j.weights_id
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(WeightsError, match="Qwen2.5-VL"):
        plugins.load_scorer("vlm-judge", weights=str(tmp_path / "other"), device="cpu")


# -- the script itself ------------------------------------------------------------------------


def _run_upstream_script(
    src: str, model_dir: Path, data: list[dict], root: Path, out_dir: Path, max_new_tokens: int
) -> tuple[dict, list]:
    """Run the script's `evaluate()` unchanged on CPU: only its GPU/distributed set-up is stood in for."""
    import argparse
    import types

    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    mod = types.ModuleType("eval_PreferThinker")
    exec(compile(src, UPSTREAM_FILE, "exec"), mod.__dict__)
    captured: list = []

    class Model:  # from_pretrained(path, torch_dtype=bf16, flash_attention_2, device_map=cuda) -> fp32 on CPU
        @staticmethod
        def from_pretrained(path, **_):
            m = Qwen2_5_VLForConditionalGeneration.from_pretrained(path).eval()
            real = m.generate

            def generate(**kw):
                captured.append(kw["input_ids"].tolist())
                return real(**kw)

            m.generate = generate
            return m

    class OnCpu:  # the processor's output, whose .to("cuda:0") stays on the CPU
        def __init__(self, enc):
            self.enc = enc

        def to(self, _device):
            return self.enc

    class Processor:
        @staticmethod
        def from_pretrained(path):
            proc = AutoProcessor.from_pretrained(path)

            class Wrapped:
                def __getattr__(self, name):
                    return getattr(proc, name)

                def __call__(self, **kw):
                    return OnCpu(proc(**kw))

            return Wrapped()

    mod.setup_distributed = lambda: (0, 1, 0)
    mod.dist = types.SimpleNamespace(all_gather_object=lambda out, obj: out.__setitem__(0, obj), barrier=lambda: None)
    mod.Qwen2_5_VLForConditionalGeneration, mod.AutoProcessor = Model, Processor
    data_path = out_dir / "TEST_TINY.json"
    data_path.write_text(json.dumps(data))
    args = argparse.Namespace(model_path=str(model_dir), data_path=str(data_path), image_root=str(root), output_dir=str(out_dir), run_name="tiny",
                              batch_size=1, num_samples=10000, num_history=5, max_new_tokens=max_new_tokens, seed=42)  # fmt: skip
    with torch.no_grad():
        mod.evaluate(args)
    return json.loads((out_dir / "rec_results_tiny_TEST_TINY.json").read_text()), captured


def test_upstream_script_on_a_tiny_model(record, tmp_path):
    """The script's own run (lines 57-253) and vlm-judge on the same tiny checkpoint: same tokens, same output, same answer."""
    src = _upstream_source()
    pytest.importorskip("qwen_vl_utils", reason="the script imports qwen_vl_utils")
    from prefcli import plugins
    from prefcli_vlmjudge import tiny

    x, root = record
    y = {**x, "imageA": x["imageB"], "imageB": x["imageA"], "conversations": [{"from": "gpt", "value": "Image B"}]}
    model_dir = tiny.save_tiny(tmp_path / "ckpt", seed=3)
    upstream, captured = _run_upstream_script(src, model_dir, [x, y], root, tmp_path, max_new_tokens=24)
    judge = plugins.load_scorer("vlm-judge", weights=str(model_dir), device="cpu", max_new_tokens=24)
    for res in upstream["results"]:
        rec = x if res["imageA"] == x["imageA"] else y
        history, a, b = _candidates(rec, root)
        state = judge.condition(history)
        ids = judge.inputs([judge.messages(a, b, state)])["input_ids"].tolist()
        assert ids in captured
        pref = judge.compare(a, b, state)
        assert pref.details["output"] == res["model_output"]
        assert pref.details["answer"] == res["extracted_answer"]
        assert (pref.winner is not None and ["Image A", "Image B"][int(pref.winner)] == res["ground_truth"]) == bool(
            res["correct"]
        )
    assert upstream["accuracy"] == 0.0  # random weights: no answer tag, every task a miss in both


# Recorded from the run above (the script's evaluate() on tiny seed 3, 24 new tokens, this test's record):
UPSTREAM_RUN = {
    "n_tokens": 3254,
    "ids_sha256": "e5030155d537947b58f1bd3be3bf5a34454dbaadf6bcb62ec148464c421fde58",
    "output": "ack�\x19\t[core propref+�� balanc\x01 particul attribute\x0fi�atedactereren tec�p",
}


def test_matches_the_numbers_recorded_from_the_upstream_run(record):
    from prefcli import plugins

    x, root = record
    judge = plugins.load_scorer("vlm-judge", weights="tiny:3", device="cpu", max_new_tokens=24)
    history, a, b = _candidates(x, root)
    state = judge.condition(history)
    ids = judge.inputs([judge.messages(a, b, state)])["input_ids"][0].tolist()
    assert (len(ids), hashlib.sha256(json.dumps(ids).encode()).hexdigest()) == (
        UPSTREAM_RUN["n_tokens"],
        UPSTREAM_RUN["ids_sha256"],
    )
    assert judge.compare(a, b, state).details["output"] == UPSTREAM_RUN["output"]


# -- through the harness -------------------------------------------------------------------


def _record_folders(record, tmp_path: Path) -> tuple[Path, Path, Path]:
    """The upstream record's images as folders: three preferred candidates, two liked, two disliked."""
    x, root = record
    cands, likes, dislikes = (tmp_path / n for n in ("cands", "likes", "dislikes"))
    for d, names in (
        (cands, x["prefered_images"][:3]),
        (likes, x["prefered_images"][3:5]),
        (dislikes, x["non_prefered_images"][:2]),
    ):
        d.mkdir()
        for n in names:
            (d / Path(n).name).write_bytes((root / n).read_bytes())
    return cands, likes, dislikes


def test_rank_a_folder_by_round_robin_wins(record, tmp_path, monkeypatch):
    """`rank` with the judge: every pair once, A before B in path order, answers parsed into wins."""
    from prefcli.harness.handle import ScorerHandle
    from prefcli.ranking import rank_folder
    from prefcli_vlmjudge import scorer as S

    cands, likes, dislikes = _record_folders(record, tmp_path)
    result = rank_folder(
        cands,
        scorer=ScorerHandle("vlm-judge", "tiny", device="cpu", options={"max_new_tokens": 4}),
        likes=likes,
        dislikes=dislikes,
    )
    assert result.total == 3 and all(r.score == 0.0 for r in result.ranked)  # random weights: no answers, no wins
    assert any("round-robin wins over 3 comparison(s)" in n for n in result.notes)
    # With answers (the model's text stood in for), wins order the images: 00 beats both, 01 beats 02.
    asked = []

    def fake_generate(self, batch):
        asked.extend(batch)
        return ["<answer>Image A</answer>"] * len(batch)

    monkeypatch.setattr(S.VlmJudge, "generate", fake_generate)
    result = rank_folder(
        cands,
        scorer=ScorerHandle("vlm-judge", "tiny", device="cpu", options={"max_new_tokens": 4}),
        likes=likes,
        dislikes=dislikes,
    )
    assert [(Path(r.path).name, r.score) for r in result.ranked] == [("00.png", 2.0), ("01.png", 1.0), ("02.png", 0.0)]
    assert len(asked) == 3 and all(len(P.message_images(m)) == 2 + 2 + 2 for m in asked)  # 2 liked, 2 disliked, A, B


def test_eval_one_vs_one_and_one_vs_three(tmp_path, monkeypatch):
    """The harness on a synthetic dataset: 1-vs-1 asks once per task, 1-vs-3 six times; no answer is a miss."""
    from prefcli.data import pickapic, synthetic
    from prefcli.harness import source
    from prefcli.harness.evaluate import evaluate
    from prefcli.harness.runner import ScorerHandle
    from prefcli_vlmjudge import scorer as S

    cfg = synthetic.WorldConfig.from_preset(
        "opposed", n_users=12, pairs_per_user=12, image_size=32, n_prompts=4, images_per_prompt=6
    )
    synthetic.write_world(tmp_path / "world", cfg, progress=False)
    pickapic.build(
        str(tmp_path / "world"),
        tmp_path / "ds",
        pickapic.BuildParams(n_ref=4, min_liked=6, test_users=4, val_users=2),
        progress=False,
    )
    ds = source.open_dataset(tmp_path / "ds")
    handle = ScorerHandle("vlm-judge", "tiny", options={"max_new_tokens": 4})
    tasks = source.load_tasks(ds, "test", "1v1", 4, limit=3)
    run, records = evaluate(handle, tasks, n_boot=20, protocol="1v1", n_ref=4)
    assert run["kind"] == "pairwise" and run["pairwise"] == {"comparisons": 3, "no_answer": 3}
    assert run["metrics"]["all"]["top1"]["value"] == 0.0  # unanswered: every task a miss
    assert all(c["error"].startswith("no answer") and "output" in c for r in records for c in r["comparisons"])
    # A judge that always answers "Image A" is right exactly when the liked image comes first.
    monkeypatch.setattr(S.VlmJudge, "generate", lambda self, batch: ["<answer>Image A</answer>"] * len(batch))
    tasks3 = source.load_tasks(ds, "test", "1v3", 4, limit=2)
    run3, rec3 = evaluate(
        ScorerHandle("vlm-judge", "tiny", options={"max_new_tokens": 4}), tasks3, n_boot=20, protocol="1v3", n_ref=4
    )
    assert run3["pairwise"] == {"comparisons": 12, "no_answer": 0}
    for r, _t in zip(rec3, tasks3):
        assert r["scores"] == [3.0, 2.0, 1.0, 0.0]
        assert run3["metrics"]["all"]["top1"]["n_tasks"] == 2
    expected = sum(t.liked_index == 0 for t in tasks3) / 2
    assert run3["metrics"]["all"]["top1"]["value"] == expected


def test_prompt_on_an_imported_preferimg_task_equals_the_scripts(tmp_path):
    """PreferImg-Bench records → `prefcli data preferimg` → vlm-judge: the same tokens and pixels as the script on the records."""
    pytest.importorskip("qwen_vl_utils", reason="qwen-vl-utils test oracle")
    import torch

    from prefcli import plugins
    from prefcli.data import preferimg
    from prefcli.data.dataset import Dataset
    from reference.preferthinker import upstream_inputs, upstream_messages
    from tests.data.test_preferimg import write_benchmark

    src = tmp_path / "PreferImg-Bench"
    write_benchmark(src)
    preferimg.build(
        str(src), tmp_path / "ds", preferimg.PreferImgParams(subset="TEST_PICKAPIC", num_history=5), progress=False
    )
    records = json.loads((src / "data" / "PICKAPIC" / "PICKAPIC.json").read_text())
    tasks = Dataset.open(tmp_path / "ds").tasks("test", "1v1", n_ref=5)
    judge = plugins.load_scorer("vlm-judge", weights="tiny", device="cpu", max_new_tokens=4)
    checked = 0
    for i in (
        0,
        1,
        3,
        4,
        5,
    ):  # records without a broken history image (the importer leaves those out; the script would crash)
        task, rec = tasks[i], records[i]
        assert task.liked_index == (0 if rec["conversations"][0]["value"] == "Image A" else 1)
        ours = judge.inputs([judge.messages(task.candidates[0], task.candidates[1], judge.condition(task.history))])
        theirs = upstream_inputs(judge.processor, [upstream_messages(rec, str(src / "data" / "PICKAPIC" / "images"))])
        assert ours["input_ids"].tolist() == theirs["input_ids"].tolist()
        assert torch.equal(ours["pixel_values"], theirs["pixel_values"])
        checked += 1
    assert checked == 5


# -- the commands --------------------------------------------------------------------------------


def test_cli_rank_and_eval_run_the_tiny_judge(record, tmp_path):
    """`prefcli rank` (pairs, round-robin) and `prefcli eval` (1-vs-1) offline on the tiny Qwen2.5-VL."""
    from typer.testing import CliRunner

    from prefcli.cli import app
    from prefcli.data import pickapic, synthetic

    cands, likes, dislikes = _record_folders(record, tmp_path)
    rank = ["rank", str(cands), "--likes", str(likes), "--dislikes", str(dislikes), "--scorer", "vlm-judge"]
    rank += ["--weights", "tiny", "-o", "max_new_tokens", "4", "--device", "cpu"]
    res = CliRunner().invoke(app, [*rank, "--format", "json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    rows = doc["results"]["ranking"]
    assert len(rows) == 3 and all(r["score"] == 0.0 for r in rows)  # no answers from random weights: no wins
    assert "round-robin wins over 3 comparison(s)" in res.stderr
    # Said as eval says it: how many comparisons went unanswered.
    assert doc["results"]["comparisons"] == 3 and doc["results"]["no_answer"] == 3
    assert "3 of 3 comparison(s) got no answer from vlm-judge" in res.stderr
    res = CliRunner().invoke(app, [*rank, "--format", "markdown"], catch_exceptions=False)
    scores = [line.split("|")[2].strip() for line in [x for x in res.stdout.splitlines() if x.startswith("|")][2:]]
    assert scores == ["0", "0", "0"], res.stdout  # integer wins, not 0.0000

    synthetic.write_world(
        tmp_path / "world",
        synthetic.WorldConfig.from_preset(
            "opposed", n_users=12, pairs_per_user=12, image_size=32, n_prompts=4, images_per_prompt=6
        ),
        progress=False,
    )
    pickapic.build(
        str(tmp_path / "world"),
        tmp_path / "ds",
        pickapic.BuildParams(n_ref=4, min_liked=6, test_users=4, val_users=2),
        progress=False,
    )
    out = tmp_path / "eval.json"
    res = CliRunner().invoke(app, ["eval", str(tmp_path / "ds"), "--scorer", "vlm-judge", "--weights", "tiny", "-o", "max_new_tokens", "4",
                                   "--protocol", "1v1", "--limit", "2", "--no-cache", "--no-progress", "--device", "cpu", "--bootstrap", "10",
                                   "--format", "json", "--out", str(out)], catch_exceptions=False)  # fmt: skip
    assert res.exit_code == 0, res.output
    run = json.loads(res.stdout)["results"]
    assert run["kind"] == "pairwise" and run["pairwise"] == {"comparisons": 2, "no_answer": 2}
    assert run["metrics"]["all"]["top1"]["value"] == 0.0
    tasks = json.loads(out.read_text())["results"]["tasks"]
    assert all(c["winner"] is None and "no answer" in c["error"] for t in tasks for c in t["comparisons"])
