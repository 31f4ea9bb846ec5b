"""Histories from --likes/--dislikes folders: pairing, prompts, pairing files, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from prefcli.data.folders import PromptMap, history_from_folders, load_prompts
from prefcli.errors import DataError, HistoryError


def img(path: Path, level: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 12), (level, 255 - level, 90)).save(path)
    return path


@pytest.fixture
def folders(tmp_path) -> tuple[Path, Path]:
    likes, dislikes = tmp_path / "user" / "liked", tmp_path / "user" / "disliked"
    for i, name in enumerate(["b.png", "a.png", "c.png"]):
        img(likes / name, 10 + 20 * i)
    for i, name in enumerate(["z.png", "x.png", "y.png"]):
        img(dislikes / name, 150 + 20 * i)
    return likes, dislikes


def names(history):
    return [(Path(p.liked.path).name, Path(p.disliked.path).name) for p in history.pairs]


def test_pairs_by_sorted_order(folders):
    history, bad = history_from_folders(*folders)
    assert bad == []
    assert names(history) == [("a.png", "x.png"), ("b.png", "y.png"), ("c.png", "z.png")]
    assert all(p.prompt is None for p in history.pairs)
    assert len({p.liked.image_id for p in history.pairs}) == 3
    # Pixels load on demand and are real images.
    assert history.pairs[0].liked.image.size == (16, 12)


def test_unequal_counts_say_what_is_required(folders):
    likes, dislikes = folders
    (dislikes / "x.png").unlink()
    with pytest.raises(HistoryError) as e:
        history_from_folders(likes, dislikes)
    msg = str(e.value)
    assert f"found 3 liked and 2 disliked images in {likes} / {dislikes}" in msg
    assert "equal numbers" in msg and "--pairs FILE" in msg


def test_bad_files_are_dropped_before_counting_and_reported(folders):
    likes, dislikes = folders
    (likes / "d.jpg").write_bytes(b"")
    (dislikes / "w.png").write_text("not an image")
    history, bad = history_from_folders(likes, dislikes)
    assert len(history) == 3
    reasons = {Path(p).name: r for p, r in bad}
    assert set(reasons) == {"d.jpg", "w.png"}
    assert "empty" in reasons["d.jpg"] and "not an image" in reasons["w.png"]


def test_empty_or_missing_folder(tmp_path, folders):
    likes, _ = folders
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(HistoryError, match="no readable images in the dislikes folder"):
        history_from_folders(likes, empty)
    with pytest.raises(HistoryError, match="folder not found"):
        history_from_folders(likes, tmp_path / "missing")
    with pytest.raises(HistoryError, match="--likes DIR and --dislikes DIR"):
        history_from_folders(likes, None)


def test_prompts_found_inside_and_beside_the_folders(folders):
    likes, dislikes = folders
    (likes / "prompts.json").write_text(json.dumps({"a.png": "a fox"}))
    # Beside the folders (their parent), keyed by path relative to it.
    (likes.parent / "prompts.csv").write_text(
        "file,prompt\nliked/b.png,a bear\ndisliked/x.png,ignored for the pair\nz.png,a zebra\n"
    )
    history, _ = history_from_folders(likes, dislikes)
    p0, p1, p2 = history.pairs
    assert p0.prompt == "a fox" and p0.liked.prompt == "a fox" and p0.disliked.prompt == "ignored for the pair"
    assert p1.prompt == "a bear"
    assert p2.prompt == "a zebra" and p2.liked.prompt is None  # falls back to the disliked image's prompt
    # Discovery can be switched off; an explicit map wins over found files.
    history, _ = history_from_folders(likes, dislikes, discover=False)
    assert history.pairs[0].prompt is None
    history, _ = history_from_folders(likes, dislikes, {"a.png": "explicit"})
    assert history.pairs[0].prompt == "explicit"


def test_pairs_file_csv_and_json(tmp_path, folders):
    likes, dislikes = folders
    f = tmp_path / "pairs.csv"
    f.write_text("liked,disliked,prompt\nc.png,x.png,a cat\na.png,z.png,\n")
    history, bad = history_from_folders(likes, dislikes, pairs=f)
    assert names(history) == [("c.png", "x.png"), ("a.png", "z.png")]
    assert [p.prompt for p in history.pairs] == ["a cat", None]
    j = tmp_path / "pairs.json"
    j.write_text(json.dumps([{"liked": str(likes / "b.png"), "disliked": "y.png", "prompt": "p"}, ["a.png", "x.png"]]))
    history, _ = history_from_folders(likes, dislikes, pairs=j)
    assert names(history) == [("b.png", "y.png"), ("a.png", "x.png")]
    assert history.pairs[0].prompt == "p"


def test_pairs_file_with_unreadable_image_skips_that_pair(tmp_path, folders):
    likes, dislikes = folders
    f = tmp_path / "pairs.csv"
    f.write_text("liked,disliked\na.png,x.png\nmissing.png,y.png\n")
    history, bad = history_from_folders(likes, dislikes, pairs=f)
    assert names(history) == [("a.png", "x.png")]
    assert [(Path(p).name, r) for p, r in bad] == [("missing.png", "file not found")]


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("pairs.csv", "good,bad\na.png,x.png\n", "header 'liked,disliked"),
        ("pairs.json", '{"liked": "a.png"}', "must be a list"),
        ("pairs.json", "[1, 2", "invalid JSON"),
        ("pairs.txt", "a.png x.png", "must be .csv"),
    ],
)
def test_malformed_pairs_files(tmp_path, folders, name, text, match):
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(DataError, match=match):
        history_from_folders(*folders, pairs=f)


def test_prompt_files(tmp_path):
    j = tmp_path / "p.json"
    j.write_text(json.dumps({"a.png": "x", "sub/b.png": "y"}))
    pm = load_prompts(j)
    assert pm.get(tmp_path / "a.png") == "x"
    assert pm.get(tmp_path / "sub" / "b.png") == "y"
    assert pm.get(tmp_path / "other" / "b.png") is None
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(DataError, match="one object mapping"):
        load_prompts(bad)
    c = tmp_path / "p.csv"
    c.write_text("name,text\na.png,x\n")
    with pytest.raises(DataError, match="header 'file,prompt'"):
        load_prompts(c)
    with pytest.raises(DataError, match="not found"):
        load_prompts(tmp_path / "nope.json")
    chained = PromptMap.chain(PromptMap({"a.png": "first"}), pm, None)
    assert chained.get("a.png") == "first" and chained.get(tmp_path / "sub" / "b.png") == "y"
