"""What `prefcli rank` prints and writes: digits that show the order, ties marked, the scorer named everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from cli_runner import run_cli as run
from prefcli import plugins
from prefcli.hookspecs import hookimpl
from prefcli.output import separating_digits
from prefcli.scorer import Scorer, ScorerSpec

#: Seven scores that all print as 0.4932 at four decimals, in an order that is not the file names' order.
CLOSE = {
    "a.png": 0.49321013,
    "b.png": 0.49321271,
    "c.png": 0.49320398,
    "d.png": 0.49321120,
    "e.png": 0.49320911,
    "f.png": 0.49321402,
    "g.png": 0.49320777,
}


class CloseScorer(Scorer):
    def score(self, candidates, state=None):
        return [CLOSE[Path(c.path).name] for c in candidates]


class HalfTieScorer(Scorer):
    """a and b tie at the top; c is alone below them."""

    def score(self, candidates, state=None):
        return [{"a.png": 2.0, "b.png": 2.0}.get(Path(c.path).name, 1.5) for c in candidates]


class Mocks:
    @hookimpl
    def register_scorers(self, register):
        register(ScorerSpec(name="out-close", factory=f"{__name__}:CloseScorer", default_weights="tiny:7"))
        register(ScorerSpec(name="out-tie", factory=f"{__name__}:HalfTieScorer"))


@pytest.fixture
def mocks():
    plugin = Mocks()
    plugins.register_plugin(plugin, name="rank-output-mocks")
    yield
    plugins.unregister_plugin(plugin)


@pytest.fixture
def folder(tmp_path) -> Path:
    d = tmp_path / "cands"
    d.mkdir()
    for i, name in enumerate(CLOSE):
        Image.new("RGB", (16, 16), (30 * i, 90, 200 - 20 * i)).save(d / name)
    return d


def _table_scores(text: str) -> list[str]:
    rows = [line for line in text.splitlines() if line.startswith("|")][2:]
    return [r.split("|")[2].strip() for r in rows]


def test_separating_digits():
    assert separating_digits([0.49321402, 0.49321271, 0.49321120]) == 6
    assert separating_digits([3.0, 2.0, 1.0]) == 4  # never fewer than four
    assert separating_digits([0.5, 0.5, 0.5]) == 4  # equal values are ties, not a reason for more digits
    assert separating_digits([1.0, float("nan"), 1.0 + 1e-12]) == 12


def test_close_scores_print_with_the_digits_that_decide_the_order(capsys, mocks, folder):
    """Before: seven rows of 0.4932 in an order the rounding hid."""
    code, out, err = run(capsys, "rank", folder, "--scorer", "out-close", "--format", "markdown")
    assert code == 0, err
    shown = _table_scores(out)
    assert len(shown) == 7 and len(set(shown)) == 7, out
    assert [float(s) for s in shown] == sorted((float(s) for s in shown), reverse=True)
    assert len({len(s) for s in shown}) == 1  # one format for the whole column
    code, table, err = run(capsys, "rank", folder, "--scorer", "out-close")
    assert code == 0 and "0.493214" in table and "0.493213" in table, table


def test_ties_are_marked_in_every_format(capsys, mocks, folder):
    code, out, err = run(capsys, "rank", folder, "--scorer", "out-tie", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)["results"]["ranking"]
    assert [(Path(r["path"]).name, r["tie"]) for r in rows[:3]] == [("a.png", True), ("b.png", True), ("c.png", True)]
    assert json.loads(out)["results"]["ties"] == 7  # a=b at the top, the five others equal below
    assert "tie with a neighbour" in err
    code, md, _ = run(capsys, "rank", folder, "--scorer", "out-tie", "--format", "markdown")
    ranks = [line.split("|")[1].strip() for line in [x for x in md.splitlines() if x.startswith("|")][2:]]
    assert ranks[:2] == ["1=", "2="]


def test_no_tie_mark_without_a_tie(capsys, mocks, folder):
    code, out, err = run(capsys, "rank", folder, "--scorer", "out-close", "--format", "json")
    assert code == 0, err
    assert not any(r["tie"] for r in json.loads(out)["results"]["ranking"]) and "tie with a neighbour" not in err


def test_json_names_the_scorer_identity_and_provenance(capsys, mocks, folder):
    """Before: a bare list; a saved ranking could not say what produced it."""
    code, out, err = run(
        capsys, "rank", folder, "--scorer", "out-close", "--top", "3", "--device", "cpu", "--format", "json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["command"] == "rank" and doc["scorer"] == "out-close"
    assert doc["weights"] == "tiny:7" and doc["revision"] == "tiny:7"
    assert doc["options"]["device"] == "cpu" and "dtype" in doc["options"] and doc["options"]["top"] == 3
    assert doc["provenance"]["scorer_identity"]["scorer"] == "out-close"
    assert doc["provenance"]["versions"]["prefcli"] and doc["provenance"]["created"]
    assert len(doc["results"]["ranking"]) == 3 and doc["results"]["total"] == 7


def test_sheet_names_scorer_and_weights_and_uses_one_number_format(capsys, mocks, folder, tmp_path, monkeypatch):
    """Before: a sheet made with random weights looked authoritative; 0.401 sat beside 0.001526."""
    import prefcli.sheet

    seen = {}
    real = prefcli.sheet.contact_sheet

    def spy(items, path, **kw):
        seen["title"], seen["captions"] = kw.get("title"), [c for _, c in items]
        return real(items, path, **kw)

    monkeypatch.setattr(prefcli.sheet, "contact_sheet", spy)
    code, _, err = run(capsys, "rank", folder, "--scorer", "out-close", "--sheet", tmp_path / "s.png")
    assert code == 0, err
    assert "out-close" in seen["title"] and "weights tiny:7" in seen["title"]
    numbers = [c.split("\n")[0].split()[1] for c in seen["captions"]]
    assert len(set(numbers)) == 7 and len({len(n) for n in numbers}) == 1, numbers


def test_a_content_hash_in_a_sheet_title_is_cut_to_12_hex_digits():
    """The demo's sheet title lost its scorer to a 64-digit fingerprint cut in the middle; the JSON keeps it whole."""
    from prefcli.ranking import short_id

    digest = "9f564102f2ae9c728d681ae8578d29c47a77783303aa11bb22cc33dd44ee55ff"
    assert short_id(f"sha256:{digest}") == "sha256:9f564102f2ae…"
    assert short_id("tiny:7") == "tiny:7" and short_id("") == ""
