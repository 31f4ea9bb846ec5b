"""Validate once: from a command to a score, the spec is looked up, the options parsed and the device
resolved exactly once (by the ScorerHandle, prefcli/harness/handle.py), and nothing later does it again."""

from __future__ import annotations

from collections import Counter

import pytest

from cli_runner import run_cli
from picture_factory import structured_images
from prefcli import devices, plugins
from prefcli.options import Options


@pytest.fixture
def counted(monkeypatch):
    """Counts of spec lookups (by name), option parses (by Options class) and device resolutions."""
    counts = {"lookups": Counter(), "parses": Counter(), "resolves": 0}
    real_get, real_parse, real_resolve = plugins.get_scorer_spec, Options.parse.__func__, devices.resolve_device

    def get(name):
        counts["lookups"][name] += 1
        return real_get(name)

    def parse(cls, values=None, *, scorer=""):
        counts["parses"][cls.__name__] += 1
        return real_parse(cls, values, scorer=scorer)

    def resolve(name="auto"):
        counts["resolves"] += 1
        return real_resolve(name)

    def torch_device(name="auto"):
        import torch

        # A scorer turning the device it was given into a torch.device checks that device, it does not choose
        # one: not counted (the real torch_device resolves through the module's resolve_device).
        return name if isinstance(name, torch.device) else torch.device(real_resolve(name))

    monkeypatch.setattr(plugins, "get_scorer_spec", get)
    monkeypatch.setattr(Options, "parse", classmethod(parse))
    monkeypatch.setattr(devices, "resolve_device", resolve)
    monkeypatch.setattr(devices, "torch_device", torch_device)
    return counts


@pytest.fixture
def folders(tmp_path):
    imgs = structured_images([(32, 32)] * 7, seed=11)
    for sub, idx in (("cands", range(3)), ("liked", (3, 4)), ("disliked", (5, 6))):
        (tmp_path / sub).mkdir()
        for i in idx:
            imgs[i].save(tmp_path / sub / f"{i:02d}.png")
    return tmp_path


def test_rank_resolves_a_probe_once(capsys, counted, folders):
    # A probe: the spec of its base scorer comes with it, the base is built from the same resolved values.
    code, out, err = run_cli(
        capsys,
        "rank",
        folders / "cands",
        "--likes",
        folders / "liked",
        "--dislikes",
        folders / "disliked",
        "--scorer",
        "clip-probe",
        "--weights",
        "tiny",
        "--device",
        "cpu",
        "-o",
        "C",
        "0.5",
        "--format",
        "json",
        "--no-progress",
    )
    assert code == 0, err
    assert counted["lookups"] == Counter({"clip-probe": 1})
    assert sum(counted["parses"].values()) == 1
    assert counted["resolves"] == 1


def test_rank_folder_and_the_python_api_resolve_once(counted, folders):
    import prefcli
    from prefcli.harness.handle import ScorerHandle
    from prefcli.ranking import rank_folder

    handle = ScorerHandle("clip", "tiny", device="cpu", options={"batch_size": "2"})
    assert (counted["lookups"]["clip"], sum(counted["parses"].values()), counted["resolves"]) == (1, 1, 1)
    result = rank_folder(folders / "cands", scorer=handle, prompt="a picture")
    assert len(result.ranked) == 3 and handle.loaded and handle.scorer.batch_size == 2
    assert (counted["lookups"]["clip"], sum(counted["parses"].values()), counted["resolves"]) == (1, 1, 1)

    before = (sum(counted["lookups"].values()), sum(counted["parses"].values()), counted["resolves"])
    prefcli.rank(folders / "cands", scorer="clip", weights="tiny", device="cpu", prompt="a picture", batch_size=2)
    after = (sum(counted["lookups"].values()), sum(counted["parses"].values()), counted["resolves"])
    assert tuple(b - a for a, b in zip(before, after)) == (1, 1, 1)


def test_blend_default_general_part_is_set_without_parsing_again(counted, folders):
    """rank's default blend chooses its general part from the images: a new option value, not a second parse."""
    from prefcli.harness.handle import ScorerHandle
    from prefcli.ranking import rank_folder

    handle = ScorerHandle("blend", "tiny", device="cpu")
    result = rank_folder(folders / "cands", scorer=handle, likes=folders / "liked", dislikes=folders / "disliked")
    assert any("blend of aesthetic (general: not every candidate" in n for n in result.notes)
    assert counted["lookups"]["blend"] == 1 and counted["parses"]["BlendOptions"] == 1
    # Each part is its own scorer, resolved once, by the blend (pickscore is only asked whether it is installed).
    assert counted["lookups"]["aesthetic"] == counted["lookups"]["clip-probe"] == 1
    assert counted["parses"]["AestheticOptions"] == counted["parses"]["OptionsWithProbe"] == 1
    assert handle.options.general == "pickscore"  # the caller's handle is left as it was


def test_library_errors_name_parameters_and_the_cli_names_flags(capsys, folders):
    from cli_runner import one_error_line
    from prefcli.errors import DeviceError
    from prefcli.harness.handle import ScorerHandle

    with pytest.raises(DeviceError) as e:
        ScorerHandle("clip", "tiny", device="gpu0")
    assert str(e.value).startswith("device='gpu0'")
    code, _, err = run_cli(
        capsys, "rank", folders / "cands", "--scorer", "clip", "--weights", "tiny", "--device", "gpu0"
    )
    one_error_line(code, err, "--device gpu0")


def test_rank_errors_name_parameters_in_python_and_flags_on_the_command_line(capsys, folders):
    from cli_runner import one_error_line
    from prefcli.errors import HistoryError, PrefcliError
    from prefcli.harness.handle import ScorerHandle
    from prefcli.ranking import rank_folder

    probe = ScorerHandle("clip-probe", "tiny", device="cpu")
    with pytest.raises(PrefcliError) as e:
        rank_folder(folders / "cands", scorer=probe, top=0)
    assert str(e.value) == "top=0: must be at least 1"
    with pytest.raises(HistoryError, match=r"give likes= and dislikes="):
        rank_folder(folders / "cands", scorer=probe)
    with pytest.raises(PrefcliError, match=r"give prompt= or prompts="):
        rank_folder(folders / "cands", scorer=ScorerHandle("clip", "tiny", device="cpu"))

    args = ("rank", folders / "cands", "--weights", "tiny", "--device", "cpu")  # (the CLI's own parser checks --top)
    one_error_line(*run_cli(capsys, *args, "--scorer", "clip-probe")[::2], "give --likes DIR and --dislikes DIR")
    one_error_line(*run_cli(capsys, *args, "--scorer", "clip")[::2], "give --prompt TEXT or --prompts FILE")


def test_eval_resolves_once(counted, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    import harness_fakes as fakes
    from prefcli.cli import app

    monkeypatch.setenv("PREFCLI_CACHE", str(tmp_path / "default-cache"))
    with fakes.serving(monkeypatch):
        res = CliRunner().invoke(
            app,
            [
                "eval",
                str(tmp_path),
                "--scorer",
                "mock-hist",
                "--n-ref",
                "2",
                "--device",
                "cpu",
                "-o",
                "batch_size",
                "4",
                "--no-cache",
                "--no-progress",
                "--format",
                "json",
            ],
            catch_exceptions=False,
        )
        assert res.exit_code == 0, res.output
    assert counted["lookups"]["mock-hist"] == 1
    assert sum(counted["parses"].values()) == 1 and counted["resolves"] == 1


def test_bench_resolves_the_device_once_for_all_its_scorers(capsys, counted, monkeypatch, tmp_path):
    import harness_fakes as fakes

    with fakes.serving(monkeypatch):
        code, out, err = run_cli(
            capsys,
            "bench", tmp_path, "--scorers", "mock-free,mock-hist", "--n-ref", "2,4", "--device", "cpu",
            "-o", "mock-hist.batch_size", "4", "--out", tmp_path / "out", "--no-cache", "--no-progress",
            "--format", "json",
        )  # fmt: skip
    assert code == 0, err
    assert counted["lookups"] == Counter({"mock-free": 1, "mock-hist": 1})
    assert sum(counted["parses"].values()) == 2 and counted["resolves"] == 1
    import json

    assert json.loads(out)["provenance"]["config"]["device"] == "cpu"  # the device as resolved, as before


def test_bench_images_resolves_the_device_once_for_all_its_scorers(capsys, counted, tmp_path):
    import json

    imgs = structured_images([(32, 32)] * 3, seed=5)
    folder = tmp_path / "made"
    folder.mkdir()
    for i, im in enumerate(imgs):
        im.save(folder / f"{i}.png")
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({f"{i}.png": f"picture {i}" for i in range(3)}))
    code, out, err = run_cli(
        capsys,
        "bench", "images", folder, "--prompts", prompts, "--scorers", "clip,aesthetic", "--weights", "tiny",
        "--device", "cpu", "-o", "clip.batch_size", "2", "--no-cache", "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    assert sum(counted["parses"].values()) == 2 and counted["resolves"] == 1
    assert json.loads(out)["options"]["device"] == "cpu"


def test_generate_resolves_the_device_once_for_its_generator_rewards_and_judges(capsys, counted, tmp_path):
    import generate_fakes

    plugins.register_plugin(generate_fakes.ColourPlugin(), name="colour-scorers")
    try:
        code, out, err = run_cli(
            capsys,
            "generate", "a red fox", "--model", "tiny", "--reward", "red=50", "--judge", "green", "--steps", "1",
            "--device", "cpu", "--out", tmp_path / "out", "--format", "json",
        )  # fmt: skip
    finally:
        plugins.unregister_plugin(name="colour-scorers")
        generate_fakes.CALLS.clear()
    assert code == 0, err
    assert counted["lookups"]["red"] == counted["lookups"]["green"] == 1
    assert sum(counted["parses"].values()) == 2 and counted["resolves"] == 1


@pytest.mark.slow  # tiny generators and hpsv2 end to end: `make test` runs it, `make test-fast` leaves it out
def test_bench_generate_resolves_the_device_once(capsys, counted, tmp_path):
    """Its generators, its reward and the scoring half (hpsv2 and the judge, as `bench images`) share one device."""
    pytest.importorskip("diffusers")
    import json

    import generate_fakes

    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "photo.json").write_text(json.dumps(["a photo of a fox"]))
    plugins.register_plugin(generate_fakes.ColourPlugin(), name="colour-scorers")
    try:
        code, out, err = run_cli(
            capsys,
            "bench", "generate", "--prompts", prompts, "--styles", "photo", "--limit", "1", "--out", tmp_path / "b",
            "--model", "tiny", "--liked-model", "tiny:1", "--reward", "red=50", "--judges", "green", "--weights",
            "tiny", "--steps", "1", "--device", "cpu", "--no-progress", "--format", "json",
        )  # fmt: skip
    finally:
        plugins.unregister_plugin(name="colour-scorers")
        generate_fakes.CALLS.clear()
    assert code == 0, err
    assert counted["resolves"] == 1
    assert counted["parses"] == Counter({"Options": 2, "HPSv2Options": 1})  # red and green, hpsv2
