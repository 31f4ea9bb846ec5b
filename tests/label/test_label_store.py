"""`prefcli label`'s log and the folders rebuilt from it: pairing, undo, ties/skips, resume, foreign files."""

from __future__ import annotations

import json
import os

import pytest

from label_fixtures import make_pool, make_session
from prefcli.errors import PrefcliError
from prefcli.label.store import LOG, LabelStore


def _answer(session, choice, comment=""):
    v = session.view()
    return session.answer(v["pair"]["token"], choice, comment, 900)


def _lines(out):
    return [json.loads(ln) for ln in (out / LOG).read_text().splitlines()]


def test_log_to_folders_pairs_by_name_and_keeps_ties_and_skips_in_the_log(tmp_path):
    pool = make_pool(tmp_path / "pool")
    out = tmp_path / "alice"
    s = make_session(pool, out)
    shown = []
    for choice in ("left", "right", "tie", "skip", "left"):
        shown.append(s.view()["pair"])
        _answer(s, choice, comment=f"because {choice}")
    recs = _lines(out)
    assert [r["choice"] for r in recs] == ["left", "right", "tie", "skip", "left"]
    for r, pair in zip(recs, shown):
        assert (r["left"]["id"], r["right"]["id"]) == (pair["left"], pair["right"])  # the sides as shown
        assert r["comment"] == f"because {r['choice']}" and r["rt_ms"] == 900 and r["user"] == "tester"
        assert r["strategy"] == "random" and 0.0 < r["p_left"] < 1.0 and r["shown"] in ("as-proposed", "swapped")
        assert r["prompt"] in ("a circle", "a square") and os.path.isfile(r["left"]["path"])
    liked, disliked = sorted(os.listdir(out / "liked")), sorted(os.listdir(out / "disliked"))
    assert len(liked) == len(disliked) == 3  # ties and skips are not pairs
    from prefcli import images

    for lk, dk, r in zip(liked, disliked, [r for r in recs if r["choice"] in ("left", "right")]):
        win, lose = (r["left"], r["right"]) if r["choice"] == "left" else (r["right"], r["left"])
        assert images.content_id_of_file(out / "liked" / lk) == win["id"]
        assert images.content_id_of_file(out / "disliked" / dk) == lose["id"]
        assert lk.split("-")[0] == dk.split("-")[0] == f"{r['seq']:05d}"
    prompts = json.loads((out / "prompts.json").read_text())
    assert set(prompts) == set(liked) | set(disliked)
    # rank's own reader pairs them exactly so, with their prompts found beside the folders
    from prefcli.data.folders import history_from_folders

    hist, bad = history_from_folders(out / "liked", out / "disliked")
    assert not bad and len(hist.pairs) == 3
    assert all(p.prompt in ("a circle", "a square") for p in hist.pairs)
    from prefcli.generate.run import load_history  # what `generate --likes --dislikes` reads

    gen, _ = load_history(str(out / "liked"), str(out / "disliked"), None)
    assert [(p.liked.image_id, p.disliked.image_id) for p in gen.pairs] == [
        (p.liked.image_id, p.disliked.image_id) for p in hist.pairs
    ]
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]


def test_undo_is_appended_and_rewrites_the_folders(tmp_path):
    out = tmp_path / "p"
    s = make_session(make_pool(tmp_path / "pool"), out)
    _answer(s, "left")
    first = s.view()["pair"]
    _answer(s, "right")
    assert len(os.listdir(out / "liked")) == 2
    v = s.undo()
    assert "undid label 2" in v["message"]
    assert (v["pair"]["left"], v["pair"]["right"]) == (first["left"], first["right"])  # the same pair, same sides
    assert len(os.listdir(out / "liked")) == len(os.listdir(out / "disliked")) == 1
    assert [r["event"] for r in _lines(out)] == ["label", "label", "undo"]  # nothing erased from the log
    _answer(s, "left")
    recs = LabelStore(out).effective()
    assert [r["seq"] for r in recs] == [1, 4] and recs[1]["left"]["id"] == first["left"]
    assert len(os.listdir(out / "liked")) == 2


def test_restart_resumes_and_never_shows_a_pair_twice(tmp_path):
    pool = make_pool(tmp_path / "pool", prompts=2, per_prompt=4)
    out = tmp_path / "p"
    s = make_session(pool, out, max_appearances=9)
    for _ in range(4):
        _answer(s, "left")
    del s  # no clean shutdown: the log is all there is
    s2 = make_session(pool, out, max_appearances=9)
    assert s2.view()["progress"]["answered"] == 4
    while not s2.view()["done"]:
        _answer(s2, "skip")
    pairs = [frozenset((r["left"]["id"], r["right"]["id"])) for r in _lines(out)]
    assert len(pairs) == len(set(pairs)) == 2 * 6  # every same-prompt pair of 2 x 4 images, once
    assert s2.view()["exhausted"] and "ran out" in s2.view()["message"]


def test_a_torn_last_line_is_dropped_and_never_glued_to_the_next(tmp_path):
    pool = make_pool(tmp_path / "pool")
    out = tmp_path / "p"
    s = make_session(pool, out)
    _answer(s, "left")
    with open(out / LOG, "ab") as f:
        f.write(b'{"v": 1, "seq": 2, "event": "lab')  # killed mid-write
    s2 = make_session(pool, out)
    assert s2.view()["progress"]["answered"] == 1
    _answer(s2, "right")
    recs = _lines(out)
    assert [r["seq"] for r in recs] == [1, 2] and recs[1]["choice"] == "right"


def test_files_label_did_not_write_are_refused_or_left_alone(tmp_path):
    pool = make_pool(tmp_path / "pool")
    out = tmp_path / "p"
    (out / "liked").mkdir(parents=True)
    (out / "liked" / "mine.png").write_bytes(b"x")
    with pytest.raises(PrefcliError, match=r"did not write \(liked/mine.png\)"):
        make_session(pool, out)
    (out / "liked" / "mine.png").unlink()
    (out / "prompts.json").write_text("{}")
    with pytest.raises(PrefcliError, match="prompts.json"):
        make_session(pool, out)
    (out / "prompts.json").unlink()
    (out / "notes.txt").write_text("keep me")
    s = make_session(pool, out)
    for c in ("left", "right"):
        _answer(s, c)
    s.undo()
    assert (out / "notes.txt").read_text() == "keep me"
    assert (out / "prompts.json").exists()


def test_a_corrupt_log_line_is_one_clear_error(tmp_path):
    out = tmp_path / "p"
    s = make_session(make_pool(tmp_path / "pool"), out)
    _answer(s, "left")
    with open(out / LOG, "a") as f:
        f.write("not json\n")
    with pytest.raises(PrefcliError, match=r"labels.jsonl: line 2"):
        LabelStore(out)
