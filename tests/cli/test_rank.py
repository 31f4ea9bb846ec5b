"""`prefcli rank`: ranking a folder, bad files, histories, prompts, formats, sheets, ties."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from cli_runner import run_cli as run
from prefcli import plugins
from prefcli.errors import HistoryError, ImageError, PrefcliError
from prefcli.hookspecs import hookimpl
from prefcli.ranking import order, rank_folder
from prefcli.scorer import Scorer, ScorerSpec


def ranking(text: str) -> list[dict]:
    """The rows of `rank --format json` (the envelope's results.ranking)."""
    return json.loads(text)["results"]["ranking"]


# --- mock scorers (the simonw/llm MockModel pattern) -------------------------


class BrightnessScorer(Scorer):
    """History-free: mean brightness (0-255)."""

    def score(self, candidates, state=None):
        from PIL import ImageStat

        return [ImageStat.Stat(c.image.convert("L")).mean[0] for c in candidates]


class ConstantScorer(Scorer):
    """Every image ties: the order must then come from the paths alone."""

    def score(self, candidates, state=None):
        return [0.5] * len(candidates)


class PromptLengthScorer(Scorer):
    """Needs a prompt: scores by its length, so prompts visibly reach the scorer."""

    def score(self, candidates, state=None):
        return [float(len(c.prompt)) for c in candidates]


class ColourProbe(Scorer):
    """Personalized: minus the distance of the mean colour to the mean liked colour."""

    min_history = 1

    def condition(self, history):
        super().condition(history)
        import numpy as np

        liked = np.array([np.asarray(p.liked.image, dtype=float).mean((0, 1)) for p in history.pairs])
        return liked.mean(0)

    def score(self, candidates, state=None):
        import numpy as np

        return [-float(np.linalg.norm(np.asarray(c.image, dtype=float).mean((0, 1)) - state)) for c in candidates]


class RankMocks:
    @hookimpl
    def register_scorers(self, register):
        register(ScorerSpec(name="rank-bright", factory=f"{__name__}:BrightnessScorer"))
        register(ScorerSpec(name="rank-constant", factory=f"{__name__}:ConstantScorer"))
        register(
            ScorerSpec(
                name="rank-prompt", factory=f"{__name__}:PromptLengthScorer", needs=frozenset({"image", "prompt"})
            )
        )
        register(
            ScorerSpec(name="rank-colour", factory=f"{__name__}:ColourProbe", needs=frozenset({"image", "history"}))
        )


@pytest.fixture
def mocks():
    plugin = RankMocks()
    plugins.register_plugin(plugin, name="rank-mocks")
    yield
    plugins.unregister_plugin(plugin)


# --- fixtures: small image folders ---------------------------------------------


def grey(path: Path, level: int, size=(24, 20), fmt=None) -> Path:
    Image.new("RGB", size, (level, level, level)).save(path, format=fmt)
    return path


def colour(path: Path, rgb, size=(20, 20)) -> Path:
    Image.new("RGB", size, rgb).save(path)
    return path


@pytest.fixture
def mixed(tmp_path) -> Path:
    """Good images (one of them CMYK) plus a truncated JPEG, a zero-byte file and a text file named .jpg."""
    d = tmp_path / "mixed"
    d.mkdir()
    grey(d / "a_dark.png", 40)
    grey(d / "b_bright.jpg", 220)
    grey(d / "c_mid.webp", 130)
    Image.new("CMYK", (30, 20), (0, 0, 0, 100)).save(d / "d_cmyk.jpg")  # a mid-grey CMYK JPEG: good
    full = io.BytesIO()
    Image.effect_noise((64, 64), 60).convert("RGB").save(full, format="JPEG", quality=95)
    (d / "e_truncated.jpg").write_bytes(full.getvalue()[: len(full.getvalue()) // 2])
    (d / "f_empty.jpg").write_bytes(b"")
    (d / "g_text.jpg").write_text("this is not an image\n")
    (d / "notes.txt").write_text("ignored: not an image suffix\n")
    return d


@pytest.fixture
def history(tmp_path) -> tuple[Path, Path]:
    likes, dislikes = tmp_path / "liked", tmp_path / "disliked"
    likes.mkdir()
    dislikes.mkdir()
    for i, rgb in enumerate([(220, 30, 30), (200, 50, 40), (240, 20, 60)]):
        colour(likes / f"{i}.png", rgb)
    for i, rgb in enumerate([(30, 30, 220), (40, 60, 200), (20, 80, 240)]):
        colour(dislikes / f"{i}.png", rgb)
    return likes, dislikes


# --- the done-when ------------------------------------------------------


def test_viper_examples_rank_with_clip_probe_tiny(capsys, viper_examples):
    v = viper_examples
    code, out, err = run(
        capsys,
        "rank",
        v,
        "--likes",
        v / "liked",
        "--dislikes",
        v / "disliked",
        "--scorer",
        "clip-probe",
        "--weights",
        "tiny",
        "--format",
        "json",
    )
    assert code == 0, err
    rows = ranking(out)
    assert sorted(Path(r["path"]).name for r in rows) == ["query1.png", "query2.png", "query3.png", "query4.png"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)  # P(liked)
    assert all(len(r["image_id"]) == 64 for r in rows)
    assert "skipped" not in err


@pytest.mark.parametrize("scorer", ["rank-bright", "clip-probe"])
def test_mixed_folder_ranks_good_and_names_bad(capsys, mocks, mixed, history, scorer):
    likes, dislikes = history
    code, out, err = run(
        capsys,
        "rank",
        mixed,
        "--scorer",
        scorer,
        "--weights",
        "tiny",
        "--likes",
        likes,
        "--dislikes",
        dislikes,
        "--format",
        "json",
    )
    assert code == 0, err
    ranked = sorted(Path(r["path"]).name for r in ranking(out))
    assert ranked == ["a_dark.png", "b_bright.jpg", "c_mid.webp", "d_cmyk.jpg"]
    skipped = {
        line.split(":")[0].removeprefix("skipped ").strip(): line
        for line in err.splitlines()
        if line.startswith("skipped ")
    }
    assert set(map(lambda p: Path(p).name, skipped)) == {"e_truncated.jpg", "f_empty.jpg", "g_text.jpg"}
    by_name = {Path(p).name: line for p, line in skipped.items()}
    assert "truncated" in by_name["e_truncated.jpg"] or "corrupt" in by_name["e_truncated.jpg"]
    assert "empty" in by_name["f_empty.jpg"]
    assert "not an image" in by_name["g_text.jpg"]
    assert "notes.txt" not in err


def test_brightness_order_is_best_first_and_history_free_notes_ignored_history(capsys, mocks, mixed, history):
    likes, dislikes = history
    code, out, err = run(
        capsys, "rank", mixed, "--scorer", "rank-bright", "--likes", likes, "--dislikes", dislikes, "--format", "json"
    )
    assert code == 0
    names = [Path(r["path"]).name for r in ranking(out)]
    assert names.index("b_bright.jpg") == 0 and names[-1] == "a_dark.png"
    assert "note: scorer rank-bright uses no history" in err


def test_personalized_scorer_uses_the_history(tmp_path, mocks, history):
    likes, dislikes = history
    cands = tmp_path / "cands"
    cands.mkdir()
    colour(cands / "blue.png", (30, 40, 230))
    colour(cands / "red.png", (230, 35, 40))
    colour(cands / "green.png", (30, 220, 40))
    result = rank_folder(cands, scorer="rank-colour", likes=likes, dislikes=dislikes)
    assert Path(result.ranked[0].path).name == "red.png"
    assert result.history_pairs == 3 and result.total == 3
    # Swapping the folders swaps the taste.
    flipped = rank_folder(cands, scorer="rank-colour", likes=dislikes, dislikes=likes)
    assert Path(flipped.ranked[0].path).name == "blue.png"


# --- errors ----------------------------------------------------------------------


def test_empty_folder_is_one_clear_error_line(capsys, mocks, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = run(capsys, "rank", empty, "--scorer", "rank-bright")
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("prefcli: error:")
    assert str(empty) in lines[0] and "no images" in lines[0]
    assert out == ""


def test_folder_of_only_bad_files_is_an_error(tmp_path, mocks):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "x.jpg").write_bytes(b"")
    (d / "y.png").write_text("nope")
    with pytest.raises(ImageError, match="no readable image"):
        rank_folder(d, scorer="rank-bright")


def test_missing_folder_is_an_error(capsys, mocks, tmp_path):
    code, _, err = run(capsys, "rank", tmp_path / "nope", "--scorer", "rank-bright")
    assert code == 2 and "folder not found" in err


def test_unequal_likes_and_dislikes(capsys, mocks, mixed, history):
    likes, dislikes = history
    (dislikes / "0.png").unlink()
    code, _, err = run(capsys, "rank", mixed, "--scorer", "rank-colour", "--likes", likes, "--dislikes", dislikes)
    assert code == 2
    assert "found 3 liked and 2 disliked images" in err
    assert "equal numbers" in err and "--pairs" in err


def test_personalized_scorer_without_history(capsys, mocks, mixed):
    code, _, err = run(capsys, "rank", mixed, "--scorer", "rank-colour")
    assert code == 2
    assert "scorer rank-colour is personalized: give --likes DIR and --dislikes DIR" in err


def test_unknown_scorer_suggests(capsys, mocks, mixed):
    code, _, err = run(capsys, "rank", mixed, "--scorer", "rank-brigth")
    assert code == 2 and "rank-bright" in err


# --- prompts ---------------------------------------------------------------------


def test_prompt_needed_but_missing_names_the_scorer(tmp_path, mocks):
    d = tmp_path / "c"
    d.mkdir()
    grey(d / "a.png", 100)
    with pytest.raises(PrefcliError, match="scorer rank-prompt needs a prompt.*a.png"):
        rank_folder(d, scorer="rank-prompt")


def test_single_prompt_applies_to_all(tmp_path, mocks):
    d = tmp_path / "c"
    d.mkdir()
    grey(d / "a.png", 100)
    grey(d / "b.png", 120)
    result = rank_folder(d, scorer="rank-prompt", prompt="a cat")
    assert [r.prompt for r in result.ranked] == ["a cat", "a cat"]
    assert [r.score for r in result.ranked] == [5.0, 5.0]


@pytest.mark.parametrize("kind", ["json", "csv"])
def test_prompts_file(tmp_path, mocks, capsys, kind):
    d = tmp_path / "c"
    d.mkdir()
    grey(d / "a.png", 100)
    grey(d / "b.png", 120)
    if kind == "json":
        f = tmp_path / "p.json"
        f.write_text(json.dumps({"a.png": "short", "b.png": "a much longer prompt"}))
    else:
        f = tmp_path / "p.csv"
        f.write_text('file,prompt\na.png,short\nb.png,"a much longer prompt, with a comma"\n')
    code, out, err = run(capsys, "rank", d, "--scorer", "rank-prompt", "--prompts", f, "--format", "json")
    assert code == 0, err
    rows = ranking(out)
    assert Path(rows[0]["path"]).name == "b.png" and rows[0]["prompt"].startswith("a much longer prompt")
    assert rows[1]["prompt"] == "short"


# --- formats, top, sheet, ties ----------------------------------------------------


def test_formats_parse_and_agree(capsys, mocks, mixed):
    base = ("rank", mixed, "--scorer", "rank-bright")
    _, js, _ = run(capsys, *base, "--format", "json")
    _, cs, _ = run(capsys, *base, "--format", "csv")
    _, md, _ = run(capsys, *base, "--format", "markdown")
    code, table, _ = run(capsys, *base)
    assert code == 0
    rows = ranking(js)
    assert {"path", "score", "rank", "image_id", "prompt"} <= set(rows[0])
    csv_rows = list(csv.DictReader(io.StringIO(cs)))
    assert [r["path"] for r in csv_rows] == [r["path"] for r in rows]
    assert [int(r["rank"]) for r in csv_rows] == [1, 2, 3, 4]
    assert [float(r["score"]) for r in csv_rows] == pytest.approx([r["score"] for r in rows])
    md_lines = [line for line in md.splitlines() if line.startswith("|")]
    assert md_lines[0].split("|")[1].strip() == "rank" and len(md_lines) == 2 + len(rows)
    assert "b_bright.jpg" in table


def test_top_k(capsys, mocks, mixed):
    code, out, _ = run(capsys, "rank", mixed, "--scorer", "rank-bright", "--top", "2", "--format", "json")
    assert code == 0
    rows = ranking(out)
    assert [r["rank"] for r in rows] == [1, 2]
    assert Path(rows[0]["path"]).name == "b_bright.jpg"
    code, _, err = run(capsys, "rank", mixed, "--scorer", "rank-bright", "--top", "0")
    assert code != 0


def test_sheet_is_written_and_opens(capsys, mocks, mixed, tmp_path):
    sheet = tmp_path / "out" / "sheet.jpg"
    code, _, err = run(capsys, "rank", mixed, "--scorer", "rank-bright", "--top", "3", "--sheet", sheet)
    assert code == 0, err
    with Image.open(sheet) as im:
        im.load()
        assert im.format == "JPEG" and im.width > 3 * 100
    assert [p.name for p in sheet.parent.iterdir()] == ["sheet.jpg"]  # no temporary left behind


def test_bad_sheet_suffix_fails_before_scoring(capsys, mocks, mixed, tmp_path):
    code, _, err = run(capsys, "rank", mixed, "--scorer", "rank-bright", "--sheet", tmp_path / "s.gif")
    assert code == 2 and ".gif" in err


def test_ties_are_ordered_by_path_whatever_the_creation_order(tmp_path, mocks):
    d1, d2 = tmp_path / "one", tmp_path / "two"
    d1.mkdir()
    d2.mkdir()
    names = ["c.png", "a.png", "b.png", "d.png"]
    for i, n in enumerate(names):
        grey(d1 / n, 50 + 30 * i)
    for i, n in enumerate(reversed(names)):
        grey(d2 / n, 50 + 30 * i)
    got1 = [Path(r.path).name for r in rank_folder(d1, scorer="rank-constant").ranked]
    got2 = [Path(r.path).name for r in rank_folder(d2, scorer="rank-constant").ranked]
    assert got1 == got2 == ["a.png", "b.png", "c.png", "d.png"]


def test_order_puts_nan_last_and_respects_lower_is_better():
    assert order([1.0, float("nan"), 3.0, 3.0], ["a", "b", "d", "c"]) == [3, 2, 0, 1]
    assert order([1.0, 2.0], ["a", "b"], higher_is_better=False) == [0, 1]


# --- folders and recursion --------------------------------------------------------


def test_subfolders_are_not_candidates_unless_recursive(tmp_path, mocks, history):
    likes, dislikes = history  # tmp_path/liked and tmp_path/disliked sit inside the candidates folder
    grey(tmp_path / "top.png", 100)
    (tmp_path / "more").mkdir()
    grey(tmp_path / "more" / "deep.png", 200)
    flat = rank_folder(tmp_path, scorer="rank-colour", likes=likes, dislikes=dislikes)
    assert [Path(r.path).name for r in flat.ranked] == ["top.png"]
    deep = rank_folder(tmp_path, scorer="rank-colour", likes=likes, dislikes=dislikes, recursive=True)
    assert sorted(Path(r.path).name for r in deep.ranked) == ["deep.png", "top.png"]  # history folders left out


def test_help_has_examples(capsys):
    code, out, _ = run(capsys, "rank", "--help")
    assert code == 0
    assert "--likes" in out and "viper_examples" in out and "Examples" in out


def test_history_error_type_from_library(tmp_path, mocks, history):
    likes, _ = history
    d = tmp_path / "c"
    d.mkdir()
    grey(d / "a.png", 90)
    with pytest.raises(HistoryError):
        rank_folder(d, scorer="rank-colour", likes=likes)


def test_unreadable_history_image_is_named_when_counts_differ(capsys, mocks, mixed, history):
    likes, dislikes = history
    (dislikes / "1.png").write_text("not an image\n")  # 3 liked, 2 readable disliked
    code, _, err = run(capsys, "rank", mixed, "--scorer", "rank-colour", "--likes", likes, "--dislikes", dislikes)
    assert code == 2
    assert "found 3 liked and 2 disliked images" in err
    assert "1.png" in err and "not an image" in err
    assert "Traceback" not in err


def test_sheet_path_under_a_file_is_one_error_line(capsys, mocks, mixed, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, _, err = run(capsys, "rank", mixed, "--scorer", "rank-bright", "--sheet", blocker / "s.jpg")
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("prefcli: error: ") and str(blocker) in err
    assert "Traceback" not in err


def test_sheet_is_readable_by_others_like_any_new_file(capsys, mocks, mixed, tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        import prefcli.atomic as atomic

        atomic._UMASK = None  # re-read the umask set above
        sheet = tmp_path / "sheet.png"
        code, _, err = run(capsys, "rank", mixed, "--scorer", "rank-bright", "--sheet", sheet)
        assert code == 0, err
        assert stat.S_IMODE(sheet.stat().st_mode) == 0o644  # mkstemp alone would leave 0600
    finally:
        os.umask(old)
        atomic._UMASK = None
