"""Decode once (issue 23): through rank every distinct image file is decoded exactly once, scores unchanged."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from cli_runner import run_cli, tiny_eval
from picture_factory import structured_images


@pytest.fixture
def folders(tmp_path) -> dict[str, Path]:
    pics = structured_images([(48, 40)] * 10 + [(40, 56)] * 4, seed=7)
    out = {}
    for sub, idx in (("cands", range(0, 10)), ("liked", range(10, 12)), ("disliked", range(12, 14))):
        d = tmp_path / sub
        d.mkdir()
        for i in idx:
            pics[i].save(d / f"{sub[0]}{i:02d}.png")
        out[sub] = d
    return out


def _add_truncated(d: Path) -> None:
    buf = io.BytesIO()
    Image.effect_noise((64, 64), 60).convert("RGB").save(buf, format="JPEG", quality=95)
    (d / "zz_cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


@pytest.mark.parametrize("scorer", ["viper", "clip-probe"])
def test_rank_decodes_every_distinct_image_once(decodes, folders, scorer):
    import prefcli
    from prefcli.plugins import load_scorer
    from prefcli.types import Candidate, HistoryPair, UserHistory

    res = prefcli.rank(
        folders["cands"],
        likes=folders["liked"],
        dislikes=folders["disliked"],
        scorer=scorer,
        weights="tiny",
        device="cpu",
        batch_size=4,
    )
    files = sorted(p.name for sub in ("cands", "liked", "disliked") for p in folders[sub].iterdir())
    assert sorted(decodes) == files
    assert set(decodes.values()) == {1}, decodes
    # the same numbers as the scorer on images decoded by hand
    s = load_scorer(scorer, weights="tiny", device="cpu")
    liked = sorted(folders["liked"].iterdir())
    disliked = sorted(folders["disliked"].iterdir())
    hist = UserHistory(
        tuple(
            HistoryPair(liked=Candidate.from_path(str(a)), disliked=Candidate.from_path(str(b)))
            for a, b in zip(liked, disliked)
        )
    )
    want = dict(
        zip(
            [str(p) for p in sorted(folders["cands"].iterdir())],
            s.score([Candidate.from_path(str(p)) for p in sorted(folders["cands"].iterdir())], s.condition(hist)),
        )
    )
    # rel 1e-5, not 1e-6: the probe's embeddings are computed in other batches here than by hand (history and
    # candidates together), which moves float32 CLIP outputs in the last bits; the probe's fit on a few pairs
    # amplifies that to a few 1e-6 (measured on c97b3b0 as on today's code: up to 5e-6 on another fixture).
    assert {r.path: r.score for r in res.ranked} == pytest.approx(want, rel=1e-5)


def test_a_truncated_candidate_is_found_when_decoded_skipped_and_reported(decodes, folders, capsys):
    _add_truncated(folders["cands"])
    code, out, err = run_cli(
        capsys,
        "rank",
        folders["cands"],
        "--likes",
        folders["liked"],
        "--dislikes",
        folders["disliked"],
        "--scorer",
        "viper",
        "--weights",
        "tiny",
        "--device",
        "cpu",
        "--format",
        "json",
    )
    assert code == 0, err
    rows = json.loads(out)["results"]["ranking"]  # the one JSON envelope
    assert len(rows) == 10 and all(0 < r["score"] < 1 for r in rows)
    assert any(
        line.startswith("skipped ") and "zz_cut.jpg" in line and "truncated or corrupt" in line
        for line in err.splitlines()
    ), err
    assert set(decodes.values()) == {1}, decodes  # the bad file too: tried once


def test_a_folder_of_only_undecodable_candidates_is_one_line(folders, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    _add_truncated(bad)
    code, out, err = run_cli(
        capsys,
        "rank",
        bad,
        "--likes",
        folders["liked"],
        "--dislikes",
        folders["disliked"],
        "--scorer",
        "viper",
        "--weights",
        "tiny",
        "--device",
        "cpu",
    )
    assert code == 2
    assert "zz_cut.jpg" in err and "Traceback" not in err


@pytest.mark.parametrize("scorer", ["viper", "clip-probe", "clip"])
def test_eval_decodes_each_dataset_image_once(decodes, small_dataset, capsys, scorer):
    """An image met in many tasks (as a candidate and in histories) is decoded once per run."""
    code, out, err = run_cli(
        capsys,
        *tiny_eval(small_dataset, scorer, "--no-cache", "--format", "json"),
    )
    assert code == 0, err
    assert decodes and set(decodes.values()) == {1}, sorted(decodes.values())[-5:]


def test_run_stats_count_decodes_and_their_seconds(folders):
    from prefcli.harness.runner import run_scorer
    from prefcli.plugins import load_scorer
    from prefcli.ranking import scan_candidates
    from prefcli.types import RankTask, UserHistory

    cands, _ = scan_candidates(folders["cands"])
    task = RankTask(task_id="t", candidates=cands, liked_index=0, history=UserHistory(), protocol="rank")
    _, stats = run_scorer(load_scorer("aesthetic", weights="tiny", device="cpu"), [task], batch_size=4)
    assert stats.images_decoded == len(cands) == 10
    assert 0 < stats.decode_seconds <= stats.seconds and stats.other_seconds > 0
    assert {"images_decoded", "decode_seconds", "other_seconds"} <= set(stats.as_dict())


def test_generate_decodes_the_history_once(decodes, folders, tmp_path):
    """`generate --likes --dislikes` with a personalized reward: each history file decoded once for the whole run."""
    pytest.importorskip("diffusers")
    from prefcli.generate.pipelines import load_generator
    from prefcli.generate.run import GenerateConfig, generate

    cfg = GenerateConfig(
        "a fox",
        model="tiny",
        rewards=[("viper", 1.0)],
        weights={"*": "tiny"},
        steps=3,
        n=2,
        out=str(tmp_path / "out"),
        likes=str(folders["liked"]),
        dislikes=str(folders["disliked"]),
    )
    generate(cfg, generator=load_generator("tiny", device="cpu"))
    history = sorted(p.name for sub in ("liked", "disliked") for p in folders[sub].iterdir())
    assert sorted(n for n in decodes if n in history) == history
    assert {decodes[n] for n in history} == {1}, decodes


@pytest.mark.parametrize("scorer", ["viper", "aesthetic"])
def test_workers_decode_ahead_with_identical_scores_and_one_decode_each(decodes, folders, scorer):
    import prefcli

    _add_truncated(folders["cands"])
    kw = dict(likes=folders["liked"], dislikes=folders["disliked"]) if scorer == "viper" else {}
    runs = {}
    for w in (0, 2):
        decodes.clear()
        res = prefcli.rank(folders["cands"], scorer=scorer, weights="tiny", device="cpu", batch_size=3, workers=w, **kw)
        runs[w] = ([(r.path, r.score) for r in res.ranked], res.skipped)
        assert set(decodes.values()) == {1}, (w, decodes)
    assert runs[0] == runs[2]  # the same order, the same floats, the same skipped file
    assert [Path(p).name for p, _ in runs[2][1]] == ["zz_cut.jpg"]


def test_rank_cli_takes_workers(folders, capsys):
    args = [
        "rank",
        folders["cands"],
        "--scorer",
        "aesthetic",
        "--weights",
        "tiny",
        "--device",
        "cpu",
        "--format",
        "json",
    ]
    code0, out0, err0 = run_cli(capsys, *args, "--workers", "0", "--batch-size", "4")
    code2, out2, err2 = run_cli(capsys, *args, "--workers", "2", "--batch-size", "4")
    assert code0 == code2 == 0, err0 + err2
    ranking = lambda out: [(r["path"], r["score"]) for r in json.loads(out)["results"]["ranking"]]  # noqa: E731
    assert ranking(out0) == ranking(out2)
