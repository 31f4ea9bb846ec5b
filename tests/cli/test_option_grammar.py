"""One grammar for `-o` on rank, eval, bench, generate and bench generate (prefcli/cli/options.py, prefcli/options.py)."""

from __future__ import annotations

import pytest

from cli_runner import run_cli as run
from prefcli.cli.options import join_option_pairs, scorer_options
from prefcli.errors import OptionError

COMMANDS = {
    "rank": ["rank", "cands", "--scorer", "hpsv2"],
    "eval": ["eval", "ds", "--scorer", "hpsv2"],
    "bench": ["bench", "ds", "--scorers", "hpsv2"],
    "generate": ["generate", "a fox", "--model", "tiny"],
    "bench generate": ["bench", "generate", "--model", "tiny"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_key_without_value_is_one_line_naming_it_on_every_command(command, capsys):
    """Before: `-o percent --weights tiny` took `--weights` as the value and failed on "unexpected extra argument (tiny)"."""
    code, out, err = run(capsys, *COMMANDS[command], "-o", "percent", "--weights", "tiny")
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("prefcli: error: -o percent: no value") and "a bool takes true or false" in err
    code, out, err = run(capsys, *COMMANDS[command], "--weights", "tiny", "-o", "percent")
    assert code == 2 and err.startswith("prefcli: error: -o percent: no value"), err


def test_values_may_be_negative_numbers_and_keys_keep_their_order():
    joined = join_option_pairs(["x", "-o", "lr", "-0.5", "--option", "n", "-3", "-w", "tiny"])
    assert scorer_options([a for a in joined if "\x1f" in a]) == {"lr": "-0.5", "n": "-3"}
    assert joined[-2:] == ["-w", "tiny"]
    with pytest.raises(OptionError, match="-o: no KEY VALUE"):
        join_option_pairs(["x", "-o", "--weights", "tiny"])


def test_allowed_values_are_listed_once(capsys, tmp_path):
    """Before: "use one of ['2.0', '2.1']; allowed: 2.0, 2.1"."""
    from prefcli.plugins import get_scorer_spec

    with pytest.raises(OptionError) as e:
        get_scorer_spec("hpsv2").parse_options({"version": "3"})
    assert str(e.value) == "scorer hpsv2: option version = '3' is not allowed; allowed: 2.0, 2.1"
    assert get_scorer_spec("hpsv2").parse_options({"version": "v2", "percent": "true"}).version == "2.0"


def test_a_bool_takes_an_explicit_value():
    from prefcli.plugins import get_scorer_spec

    spec = get_scorer_spec("hpsv2")
    assert (
        spec.parse_options({"percent": "true"}).percent is True
        and spec.parse_options({"percent": "off"}).percent is False
    )
    with pytest.raises(OptionError, match="percent = 'maybe': expected true or false"):
        spec.parse_options({"percent": "maybe"})


def test_bench_and_generate_read_scoped_options_alike():
    """A bare KEY goes to every scorer that has it, SCORER.KEY to one, and an unknown scorer or key is an error, on both."""
    from prefcli.generate.rewards import parse_scorer_options
    from prefcli.harness.bench import scoped_options

    pairs = {"percent": "true", "imagereward.batch_size": "2"}
    assert scoped_options(pairs, ["hpsv2", "imagereward"]) == {
        "hpsv2": {"percent": "true"},
        "imagereward": {"batch_size": "2"},
    }
    # generate keeps values typed for its sidecar; before, a bare KEY was an error here only
    assert parse_scorer_options(list(pairs.items()), ["hpsv2", "imagereward"]) == {
        "hpsv2": {"percent": True},
        "imagereward": {"batch_size": 2},
    }
    for parse in (lambda p, k: scoped_options(dict(p), k), parse_scorer_options):
        with pytest.raises(OptionError, match="'clip' is not one of"):
            parse([("clip.batch_size", "2")], ["hpsv2"])
        with pytest.raises(OptionError, match="-o nosuch: none of"):
            parse([("nosuch", "2")], ["hpsv2"])


def test_bench_and_generate_read_weights_alike():
    """`--weights SPEC` for every scorer, `NAME=SPEC` for one, one default at most: before, generate kept the last default silently."""
    from prefcli.errors import WeightsError
    from prefcli.generate.rewards import parse_weights as generate_weights
    from prefcli.harness.bench import parse_weights as bench_weights

    entries = ["tiny", "preftoken=tiny-opposed-cp", "https://x.org/w.pt?a=b"]
    with pytest.raises(WeightsError, match="given twice without a scorer name"):
        generate_weights(entries)
    with pytest.raises(WeightsError, match="given twice without a scorer name"):
        bench_weights(entries, ["preftoken", "clip"])
    assert generate_weights(entries[:2]) == {"*": "tiny", "preftoken": "tiny-opposed-cp"}
    assert bench_weights(entries[:2], ["preftoken"]) == ("tiny", {"preftoken": "tiny-opposed-cp"})
    with pytest.raises(WeightsError, match="'clip' is not one of the scorers here"):
        bench_weights(["clip=tiny"], ["preftoken"])
