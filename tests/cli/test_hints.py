"""Every hint names the command's own flags and the current `hf download REPO FILE... --local-dir DIR` with every file needed;
library errors name parameters, the CLI its flags."""

from __future__ import annotations

import pytest

from cli_runner import run_cli as run
from prefcli.errors import DataError, DeviceError, WeightsError


@pytest.fixture
def offline_empty_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def test_weights_hint_downloads_into_a_folder_and_passes_it(offline_empty_cache):
    from prefcli import weights

    with pytest.raises(WeightsError) as e:
        weights.resolve_file("hf-hub:xswu/HPSv2", "HPS_v2.1_compressed.pt", offline=True)
    assert "`hf download xswu/HPSv2 HPS_v2.1_compressed.pt --local-dir DIR` and pass --weights DIR" in str(e.value)


def test_imagereward_hint_names_every_file_it_needs(offline_empty_cache):
    """Before: `hf download THUDM/ImageReward ImageReward.pt` only, though med_config.json and the BERT vocabulary are needed too."""
    from prefcli.plugins import get_scorer_spec

    with pytest.raises(WeightsError) as e:
        get_scorer_spec("imagereward").load(device="cpu")
    msg = str(e.value)
    assert (
        "`hf download THUDM/ImageReward ImageReward.pt med_config.json --local-dir DIR && "
        "hf download google-bert/bert-base-uncased vocab.txt --local-dir DIR` and pass --weights DIR"
    ) in msg


def test_convert_hint_names_its_argument_not_weights(offline_empty_cache, capsys):
    """Before: "pass a local folder with --weights PATH", a flag `convert learn-user-pref` does not have."""
    code, out, err = run(
        capsys, "convert", "learn-user-pref", "wenyii/learn-user-pref", "--out", offline_empty_cache / "m", "--offline"
    )
    assert code == 2 and err.count("\n") == 1, err
    # The folder's own patterns, so that the command fetches every file the conversion reads and nothing else.
    include = " ".join(f"--include '{p}'" for p in ("*.json", "*.safetensors", "*.bin", "*.pt", "*.md", "*.txt"))
    assert (
        f"hf download wenyii/learn-user-pref {include} --local-dir DIR` and pass DIR as SRC" in err
        and "--weights" not in err
    )


def test_bench_generate_hint_names_prompts_not_source(offline_empty_cache):
    """Before: "pass --source DIR", a flag `bench generate` does not have (its flag is --prompts)."""
    from prefcli.data.prompts import load_hpsv2_prompts
    from prefcli.generate.bench import BenchGenerateConfig, _prompts

    with pytest.raises(DataError) as e:
        _prompts(BenchGenerateConfig(prompts=None, styles=["photo"], limit=1))
    msg = str(e.value)
    assert "--source" not in msg and "and pass --prompts DIR" in msg
    assert (
        "hf download zhwang/HPDv2 benchmark/anime.json benchmark/concept-art.json benchmark/paintings.json "
        "benchmark/photo.json --repo-type dataset --local-dir DIR"
    ) in msg
    with pytest.raises(DataError, match="and pass --source DIR"):
        load_hpsv2_prompts(None, styles=["photo"])  # `data prompts` takes it as --source


@pytest.mark.parametrize(
    "command", [["data", "pamela", "--source", "org/pamela"], ["data", "preferimg", "--source", "org/preferimg"]]
)
def test_dataset_hints_use_hf_download(command, offline_empty_cache, capsys):
    code, out, err = run(capsys, *command, "--out", offline_empty_cache / "ds")
    assert code == 2 and "huggingface-cli" not in err and "hf download org/" in err and "--local-dir DIR" in err, err


def test_device_errors_name_the_parameter_in_python_and_the_flag_on_the_command_line(capsys, tmp_path):
    import prefcli

    with pytest.raises(DeviceError) as e:
        prefcli.load_scorer("clip", weights="tiny", device="gpu0")
    assert str(e.value).startswith("device='gpu0': not a device") and "--device" not in str(e.value)
    assert e.value.cli_message().startswith("--device gpu0: not a device")
    err = DeviceError("cuda", "this machine has no CUDA device", use=("cpu", "auto"))
    assert str(err) == "device='cuda': this machine has no CUDA device; use device='cpu' or device='auto'"
    assert err.cli_message() == "--device cuda: this machine has no CUDA device; use --device cpu or --device auto"
    (tmp_path / "c").mkdir()
    __import__("picture_factory").structured_images([(32, 32)], seed=1)[0].save(tmp_path / "c" / "a.png")
    code, out, err = run(
        capsys, "rank", tmp_path / "c", "--scorer", "clip", "--weights", "tiny", "--prompt", "x", "--device", "gpu0"
    )
    assert code == 2 and err.startswith("prefcli: error: --device gpu0: not a device") and "device='" not in err
