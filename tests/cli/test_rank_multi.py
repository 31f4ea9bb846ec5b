"""`prefcli rank DIR --scorer a --scorer b`: one column per scorer, one order by their combination (prefcli.combine)."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path

import pytest
from PIL import Image

from cli_runner import one_error_line
from cli_runner import run_cli as run
from json_schemas import validate_text
from prefcli import plugins
from prefcli.combine import combine, ranks, zscores
from prefcli.hookspecs import hookimpl
from prefcli.scorer import Scorer, ScorerSpec


class Bright(Scorer):
    """Mean brightness (greyscale)."""

    def score(self, candidates, state=None):
        from PIL import ImageStat

        return [ImageStat.Stat(c.image.convert("L")).mean[0] for c in candidates]


class Red(Scorer):
    """Mean red minus mean blue: another order than brightness on the same images."""

    def score(self, candidates, state=None):
        from PIL import ImageStat

        out = []
        for c in candidates:
            r, _, b = ImageStat.Stat(c.image).mean
            out.append(r - b)
        return out


class LikesRed(Scorer):
    """Personalized: minus the distance of the image's mean red to the liked images' mean red."""

    min_history = 1

    def condition(self, history):
        super().condition(history)
        from PIL import ImageStat

        return sum(ImageStat.Stat(p.liked.image).mean[0] for p in history.pairs) / len(history.pairs)

    def score(self, candidates, state=None):
        from PIL import ImageStat

        return [-abs(ImageStat.Stat(c.image).mean[0] - state) for c in candidates]


class Mocks:
    @hookimpl
    def register_scorers(self, register):
        register(ScorerSpec(name="mr-likes-red", factory=f"{__name__}:LikesRed", needs=frozenset({"image", "history"})))
        register(ScorerSpec(name="mr-bright", factory=f"{__name__}:Bright"))
        register(ScorerSpec(name="mr-red", factory=f"{__name__}:Red"))
        register(ScorerSpec(name="mr-dark", factory=f"{__name__}:Bright", higher_is_better=False))


@pytest.fixture
def mocks():
    plugin = Mocks()
    plugins.register_plugin(plugin, name="multirank-mocks")
    yield
    plugins.unregister_plugin(plugin)


COLOURS = {"a.png": (200, 0, 0), "b.png": (0, 0, 250), "c.png": (120, 120, 120), "d.png": (250, 250, 0)}
# Brightness orders d, c, a, b; red-minus-blue orders d, a, c, b: a and c swap places.


@pytest.fixture
def folder(tmp_path) -> Path:
    d = tmp_path / "cands"
    d.mkdir()
    for name, rgb in COLOURS.items():
        Image.new("RGB", (16, 16), rgb).save(d / name)
    return d


def names(rows) -> list[str]:
    return [Path(r["path"]).name for r in rows]


# --- the combination, by hand ---------------------------------------------------------------


def test_ranks_share_ties_and_leave_nan_out():
    assert ranks([3.0, 1.0, 3.0, 2.0]) == [1.5, 4.0, 1.5, 3.0]
    assert ranks([3.0, 1.0, 2.0], higher_is_better=False) == [3.0, 1.0, 2.0]
    r = ranks([1.0, math.nan, 0.0])
    assert r[0] == 1.0 and r[2] == 2.0 and math.isnan(r[1])


def test_zscores_against_statistics():
    vals = [1.0, 4.0, 10.0]
    mean, sd = statistics.fmean(vals), statistics.pstdev(vals)
    assert zscores(vals) == pytest.approx([(v - mean) / sd for v in vals])
    assert zscores(vals, higher_is_better=False) == pytest.approx([-(v - mean) / sd for v in vals])
    assert zscores([2.0, 2.0]) == [0.0, 0.0]  # all equal: nothing to tell apart, not a division by zero


def test_mean_rank_is_the_weighted_mean_of_ranks():
    scores = {"x": [10.0, 20.0, 30.0], "y": [3.0, 2.0, 1.0]}  # x ranks 3,2,1; y ranks 1,2,3
    combined, per = combine(scores)
    assert per == {"x": [3.0, 2.0, 1.0], "y": [1.0, 2.0, 3.0]}
    assert combined == [2.0, 2.0, 2.0]
    combined, _ = combine(scores, weights={"x": 3.0})
    assert combined == pytest.approx([(3 * 3 + 1) / 4, 2.0, (3 * 1 + 3) / 4])


def test_a_missing_score_is_left_out_not_counted_worst():
    combined, _ = combine({"x": [1.0, 2.0], "y": [math.nan, 5.0]})
    assert combined == [2.0, 1.0]  # image 0: x's rank 2 alone; image 1: (1 + 1) / 2


def test_lower_is_better_scorer_is_turned_round():
    combined, per = combine({"low": [1.0, 2.0]}, method="z-mean", higher={"low": False})
    assert per["low"] == [1.0, 2.0]
    assert combined[0] > combined[1]


# --- the CLI --------------------------------------------------------------------------------


def test_two_scorers_print_both_columns_and_the_combined_rank(capsys, mocks, folder):
    code, out, err = run(capsys, "rank", folder, "--scorer", "mr-bright", "--scorer", "mr-red", "--no-progress")
    assert code == 0, err
    assert "mr-bright" in out and "mr-red" in out and "mean-rank" in out
    # Mean ranks: d (1+1)/2 = 1, a (3+2)/2 = 2.5, c (2+3)/2 = 2.5 (a tie, ordered by path), b 4.
    lines = [ln for ln in out.splitlines() if ".png" in ln]
    assert [next(n for n in COLOURS if n in ln) for ln in lines] == ["d.png", "a.png", "c.png", "b.png"]
    assert "2=" in lines[1] and "3=" in lines[2]
    assert "by mean-rank of mr-bright, mr-red" in err


def test_json_holds_every_scorer_and_validates(capsys, mocks, folder):
    (folder / "broken.png").write_bytes(b"not an image")
    code, out, err = run(
        capsys, "rank", folder, "-s", "mr-bright", "-s", "mr-red=3", "--format", "json", "--no-progress"
    )
    assert code == 0, err
    doc = validate_text(out, "rank")
    assert set(doc["scorers"]) == {"mr-bright", "mr-red"} and "scorer" not in doc
    assert doc["results"]["combine"] == {
        "method": "mean-rank",
        "weights": {"mr-bright": 1.0, "mr-red": 3.0},
        "higher_is_better": False,
    }
    rows = doc["results"]["ranking"]
    # With red weighing 3: a = (3 + 3·2) / 4 = 2.25 before c = (2 + 3·3) / 4 = 2.75.
    assert names(rows) == ["d.png", "a.png", "c.png", "b.png"]
    assert [r["score"] for r in rows] == pytest.approx([1.0, 2.25, 2.75, 4.0])
    assert rows[1]["ranks"] == {"mr-bright": 3.0, "mr-red": 2.0}
    assert [Path(s["item"]).name for s in doc["skipped"]] == ["broken.png"]  # reported once, not once per scorer
    assert err.count("skipped") == 1


def test_each_column_is_the_single_scorer_ranking(capsys, mocks, folder):
    """The several-scorer path calls the single one: each column equals `rank --scorer NAME` alone."""
    code, out, err = run(
        capsys,
        "rank",
        folder,
        "-s",
        "mr-bright",
        "-s",
        "mr-red",
        "--combine",
        "z-mean",
        "--format",
        "json",
        "--no-progress",
    )
    assert code == 0, err
    multi = {Path(r["path"]).name: r["scores"] for r in json.loads(out)["results"]["ranking"]}
    for name in ("mr-bright", "mr-red"):
        code, out, err = run(capsys, "rank", folder, "-s", name, "--format", "json", "--no-progress")
        assert code == 0, err
        single = json.loads(out)
        validate_text(out, "rank")
        assert single["scorer"] == name
        assert {Path(r["path"]).name: r["score"] for r in single["results"]["ranking"]} == {
            k: v[name] for k, v in multi.items()
        }


def test_z_mean_orders_by_mean_z_score(capsys, mocks, folder):
    code, out, err = run(
        capsys,
        "rank",
        folder,
        "-s",
        "mr-bright",
        "-s",
        "mr-dark",
        "-s",
        "mr-red",
        "--combine",
        "z-mean",
        "--format",
        "csv",
        "--no-progress",
    )
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    by = {n: [float(r[n]) for r in rows] for n in ("mr-bright", "mr-dark", "mr-red")}
    z = {n: zscores(v, higher_is_better=n != "mr-dark") for n, v in by.items()}
    # bright and dark cancel (the same score, opposite directions): what is left is red's z / 3.
    expected = [sum(z[n][i] for n in z) / 3 for i in range(len(rows))]
    assert [float(r["score"]) for r in rows] == pytest.approx(expected)
    assert expected == pytest.approx([v / 3 for v in z["mr-red"]])
    assert names(rows) == ["d.png", "a.png", "c.png", "b.png"]
    assert [float(r["mr-red rank"]) for r in rows] == [1.0, 2.0, 3.0, 4.0]


def test_contact_sheet_with_every_scorer(capsys, mocks, folder, tmp_path, monkeypatch):
    from prefcli import sheet as sheet_mod

    captions = []
    real = sheet_mod.contact_sheet

    def spy(items, path, **kw):
        captions.extend(c for _, c in items)
        captions.append(kw.get("title"))
        return real(items, path, **kw)

    monkeypatch.setattr(sheet_mod, "contact_sheet", spy)
    out_sheet = tmp_path / "sheet.png"
    code, out, err = run(
        capsys, "rank", folder, "-s", "mr-bright", "-s", "mr-red", "--sheet", out_sheet, "--no-progress"
    )
    assert code == 0, err
    assert Image.open(out_sheet).size[0] > 0
    first = captions[0].split("\n")
    assert (
        first[0].startswith("#1")
        and first[1].startswith("mr-bright ")
        and first[2].startswith("mr-red ")
        and first[3] == "d.png"
    )
    assert "mean-rank of mr-bright" in captions[-1]


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["-s", "mr-bright", "-s", "mr-bright"], ["--scorer mr-bright", "given twice"]),
        (["-s", "mr-bright", "-s", "mr-red=heavy"], ["--scorer", "not a number"]),
        (["-s", "mr-bright", "-s", "mr-red", "--combine", "median"], ["--combine median", "mean-rank, z-mean"]),
        (
            ["-s", "mr-bright", "-s", "mr-red", "-o", "clip.batch_size", "2"],
            ["-o clip.batch_size", "mr-bright, mr-red"],
        ),
        (["-s", "mr-bright", "-s", "mr-red", "--weights", "nosuch=tiny"], ["nosuch", "not one of the scorers"]),
        (["-s", "mr-bright", "-s", "mr-red", "--sheet", "x.gif"], [".gif"]),
    ],
)
def test_bad_several_scorer_input_is_one_line(capsys, mocks, folder, argv, needles):
    code, out, err = run(capsys, "rank", folder, *argv, "--no-progress")
    one_error_line(code, err, *needles)


def test_api_takes_a_list(mocks, folder):
    import prefcli

    result = prefcli.rank(folder, scorer=["mr-bright", "mr-red=3"])
    assert [Path(r.path).name for r in result.ranked] == ["d.png", "a.png", "c.png", "b.png"]
    assert result.scorers == ["mr-bright", "mr-red"] and result.weights == {"mr-bright": 1.0, "mr-red": 3.0}
    assert result.ranked[0].scores["mr-bright"] == result.results["mr-bright"].ranked[0].score
    one = prefcli.rank(folder, scorer="mr-bright")  # a single name: the single result, as before
    assert type(one).__name__ == "RankResult"


def test_a_personalized_scorer_beside_a_general_one(capsys, mocks, folder, tmp_path, monkeypatch):
    from prefcli import sheet as sheet_mod

    likes, dislikes = tmp_path / "liked", tmp_path / "disliked"
    for i in range(2):
        Image.new("RGB", (8, 8), (240, 10, 10)).save((likes.mkdir(exist_ok=True) or likes) / f"{i}.png")
        Image.new("RGB", (8, 8), (10, 10, 240 - i)).save((dislikes.mkdir(exist_ok=True) or dislikes) / f"{i}.png")
    strips = []
    real = sheet_mod.contact_sheet
    monkeypatch.setattr(
        sheet_mod,
        "contact_sheet",
        lambda items, path, **kw: strips.append(kw.get("history")) or real(items, path, **kw),
    )
    code, out, err = run(
        capsys,
        "rank",
        folder,
        "-s",
        "mr-likes-red",
        "-s",
        "mr-bright",
        "--likes",
        likes,
        "--dislikes",
        dislikes,
        "--sheet",
        tmp_path / "s.png",
        "--sheet-history",
        "--format",
        "json",
        "--no-progress",
    )
    assert code == 0, err
    doc = validate_text(out, "rank")
    assert doc["results"]["history_pairs"] == 2
    assert err.count("mr-bright uses no history") == 1
    # likes-red (liked red 240): d (250) 1, a (200) 2, c 3, b 4; bright: d 1, c 2, a 3, b 4 -> d 1, a 2.5 = c 2.5, b 4.
    assert names(doc["results"]["ranking"]) == ["d.png", "a.png", "c.png", "b.png"]
    assert len(strips) == 1 and len(strips[0]) == 4  # the history strip: 2 liked and 2 disliked images
