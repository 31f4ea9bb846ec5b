"""`blend`'s population w as a file (issue 21): fitted by `prefcli eval --fit-blend` on validation users,
read by `blend -o population_weight FILE`, part of the blend's identity, refused for other parts."""

from __future__ import annotations

import json

import pytest

from cli_runner import one_error_line, run_cli
from prefcli import plugins
from prefcli.errors import OptionError
from prefcli_blend import population, weighting


def _record(user: str, zg: tuple[float, float], zp: tuple[float, float], liked: int = 0) -> dict:
    return {
        "user_id": user,
        "liked_index": liked,
        "scores": [0.0, 0.0],
        "extras": [{"z_general": zg[i], "z_personal": zp[i]} for i in range(2)],
    }


def test_the_fit_is_the_best_fixed_w_of_the_grid_smallest_of_equals():
    # Task a: the general part orders it right by 1, the personal part wrong by 1 → right while w < 1.
    # Task b: general wrong by 1, personal right by 0.25 → right while w > 4. Both: nothing. So the best
    # fixed w is any w < 1 (one task of two) or w > 4 (the other) — a tie at ½; the smallest w wins.
    recs = [_record("u1", (1.0, 0.0), (0.0, 1.0)), _record("u2", (0.0, 1.0), (0.25, 0.0))]
    top1 = population.top1_by_weight(recs)
    assert top1[0.0] == 0.5 and top1[2.0] == 0.0 and top1[8.0] == 0.5
    assert population.best_weight(top1) == 0.0
    # Add two tasks only a large w orders right: the fit moves there.
    recs += [_record("u3", (0.0, 1.0), (0.25, 0.0)), _record("u4", (0.0, 0.5), (1.0, 0.0))]
    top1 = population.top1_by_weight(recs)
    assert population.best_weight(top1) == 8.0 and top1[8.0] == 0.75
    assert set(top1) == set(weighting.GRID)


def _write(tmp_path, w=0.75, g=("mock-free", "g-w"), p=("spy", "p-w"), **over):
    doc = {
        "format": population.FORMAT,
        "version": population.VERSION,
        "population_weight": w,
        "general": {"scorer": g[0], "weights": g[1]},
        "personal": {"scorer": p[0], "weights": p[1]},
        "fitted_on": {"split": "val", "n_ref": 4},
        **over,
    }
    path = tmp_path / "w0.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"format": "something"}, "not a population-w file"),
        ({"version": 7}, "version 7"),
        ({"population_weight": -1}, "not a number in"),
        ({"population_weight": "0.5"}, "not a number in"),
        ({"population_weight": 1e9}, "not a number in"),
        ({"personal": None}, "no personal part"),
    ],
)
def test_the_reader_refuses_what_is_not_a_fit(tmp_path, change, reason):
    p = _write(tmp_path, **change)
    with pytest.raises(OptionError, match=reason) as e:
        plugins.get_scorer_spec("blend").parse_options({"population_weight": str(p)})
    assert str(p) in str(e.value)


def test_the_reader_is_bounded_and_names_the_file(tmp_path):
    p = tmp_path / "big.json"
    p.write_text("[" * 100 + "]" * 100)
    with pytest.raises(OptionError, match="nested"):
        plugins.get_scorer_spec("blend").parse_options({"population_weight": str(p)})
    p.write_text(" " * (population.MAX_BYTES + 1))
    with pytest.raises(OptionError, match="more than"):
        plugins.get_scorer_spec("blend").parse_options({"population_weight": str(p)})
    with pytest.raises(OptionError, match="file not found"):
        plugins.get_scorer_spec("blend").parse_options({"population_weight": str(tmp_path / "nope.json")})
    assert plugins.get_scorer_spec("blend").parse_options({"population_weight": "0.50"}).population_weight == "0.5"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from prefcli.train.loop import synthetic_dataset

    w = {"preset": "default", "n_users": 14, "pairs_per_user": 12, "image_size": 32, "world_seed": 0, "user_seed": 9}
    build = {"n_ref": 2, "val_users": 4, "test_users": 4, "seen_frac": 0.0, "hold_out": "user", "seed": 0}
    return synthetic_dataset(w, build, root=tmp_path_factory.mktemp("w0world"))


def _eval(capsys, ds, *extra):
    return run_cli(
        capsys,
        "eval",
        ds,
        "--scorer",
        "blend",
        "--weights",
        "tiny",
        "-o",
        "general",
        "aesthetic",
        "--no-cache",
        "--no-progress",
        "--no-world",
        "--bootstrap",
        "0",
        "--format",
        "json",
        *extra,
    )


def test_fit_blend_writes_a_w_that_blend_then_uses(capsys, tmp_path, world):
    out = tmp_path / "w0.json"
    code, _, err = _eval(capsys, world, "--split", "val", "--fit-blend", out)
    assert code == 0, err
    doc = json.loads(out.read_text())
    assert "written to" in err and str(out) in err
    w0 = doc["population_weight"]
    assert w0 in weighting.GRID and doc["top1_by_weight"][repr(w0)] == max(doc["top1_by_weight"].values())
    assert doc["general"]["scorer"] == "aesthetic" and doc["personal"]["scorer"] == "clip-probe"
    assert doc["general"]["weights"] and doc["personal"]["weights"]
    assert doc["fitted_on"]["split"] == "val" and doc["fitted_on"]["n_ref"] == 2 and doc["fitted_on"]["users"] == 4
    assert doc["provenance"]["command"] == "eval" and doc["provenance"]["config"]["scorer"] == "blend"
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically: nothing left beside it

    code, stdout, err = _eval(capsys, world, "-o", "population_weight", out)
    assert code == 0, err
    ident = json.loads(stdout)["results"]["identity"]
    assert ident["options"]["population_weight"] == w0  # the w, not the path, is what scores depend on
    assert ident["population_weight_file"]["path"] == str(out)
    assert ident["general"]["scorer"] == "aesthetic" and ident["personal"]["scorer"] == "clip-probe"

    # Fitted for aesthetic + clip-probe: a blend of other parts refuses it, in one line naming the file.
    code, _, err = run_cli(
        capsys,
        "eval",
        world,
        "--scorer",
        "blend",
        "--weights",
        "tiny",
        "-o",
        "general",
        "clip",
        "-o",
        "population_weight",
        out,
        "--no-cache",
        "--no-progress",
        "--no-world",
        "--bootstrap",
        "0",
    )
    one_error_line(code, err, str(out), "fitted for the general part aesthetic", "clip")


def test_identity_changes_with_the_population_w_from_a_file(tmp_path):
    import harness_fakes as fakes

    plugins.register_plugin(fakes.MockPlugin(), name="harness-mocks")
    try:
        a = plugins.load_scorer("blend", device="cpu", general="mock-free", personal="mock-hist")
        ident = a.identity
        gw, pw = ident["general"]["weights"], ident["personal"]["weights"]
        b = plugins.load_scorer(
            "blend",
            device="cpu",
            general="mock-free",
            personal="mock-hist",
            population_weight=str(_write(tmp_path, 2.0, ("mock-free", gw), ("mock-hist", pw))),
        )
        assert b.population_weight == 2.0 and b.identity["options"]["population_weight"] == 2.0
        assert a.cache_key != b.cache_key
        typed = plugins.load_scorer(
            "blend", device="cpu", general="mock-free", personal="mock-hist", population_weight=2.0
        )
        assert typed.identity["options"] == b.identity["options"]
    finally:
        plugins.unregister_plugin(name="harness-mocks")


@pytest.mark.parametrize(
    "args, needle",
    [
        (("--scorer", "clip", "--split", "val"), "no population w to fit"),
        (("--scorer", "blend", "--split", "test"), "--split val"),
        (("--scorer", "blend", "--split", "val", "--protocol", "rating"), "ranked tasks"),
    ],
)
def test_fit_blend_refuses_before_any_work(capsys, tmp_path, args, needle):
    code, _, err = run_cli(capsys, "eval", tmp_path / "no-dataset-read", *args, "--fit-blend", tmp_path / "w.json")
    one_error_line(code, err, needle)
    assert not (tmp_path / "w.json").exists()


def test_the_grid_lets_a_sure_personal_part_overrule_a_general_part_that_knows_nothing():
    # The personal part orders every pair right by a small margin; the general part is noise, large.
    # With the grid ending at 8 (before) pair 2 stayed wrong and pair 4 a tie: a population model that knows
    # nothing kept an eighth of the say (1.6 points below the toy recipe alone on `opposed`).
    dg, dp = [3.0, -3.0, 2.5, -2.0], [0.2, 0.1, 0.3, 0.25]
    ev = weighting.choose_weight(dg, dp, population_weight=0.5, shrinkage=0.0)
    assert ev.loo_best == 64.0 and ev.loo_blend == 1.0 and ev.loo_personal == 1.0 and ev.loo_general == 0.5
