"""The Python API (prefcli.load_scorer, prefcli.rank) and docs/api.md, whose examples must run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import prefcli
from picture_factory import structured_images

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / "api.md").read_text(), re.S)


def test_the_docs_have_examples():
    assert len(_blocks()) >= 3


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_every_example_in_docs_api_runs(index, capsys):
    code = _blocks()[index]
    exec(compile(code, f"docs/api.md[{index}]", "exec"), {"__name__": "__docs__"})
    assert capsys.readouterr().out.strip()  # each example shows something


def test_rank_accepts_paths_folders_and_pil_images_alike(tmp_path):
    imgs = structured_images([(32, 32)] * 5, seed=11)
    (tmp_path / "c").mkdir()
    for i, im in enumerate(imgs[:3]):
        im.save(tmp_path / "c" / f"{i}.png")
    (tmp_path / "c" / "broken.png").write_bytes(b"not an image")
    by_folder = prefcli.rank(tmp_path / "c", scorer="clip", weights="tiny", prompt="a fox", device="cpu")
    files = sorted(str(p) for p in (tmp_path / "c").glob("[0-9].png"))
    by_files = prefcli.rank(
        files + [str(tmp_path / "c" / "broken.png")], scorer="clip", weights="tiny", prompt="a fox", device="cpu"
    )
    by_pil = prefcli.rank(imgs[:3], scorer="clip", weights="tiny", prompt="a fox", device="cpu")
    score = lambda res: sorted(round(r.score, 5) for r in res.ranked)  # noqa: E731
    assert score(by_folder) == score(by_files) == score(by_pil)
    assert [Path(p).name for p, _ in by_folder.skipped] == ["broken.png"] and len(by_files.skipped) == 1
    assert by_pil.ranked[0].path.startswith("<images image")


def test_rank_with_a_history_of_lists_and_of_folders(tmp_path):
    imgs = structured_images([(32, 32)] * 7, seed=12)
    for sub, part in (("liked", imgs[:2]), ("disliked", imgs[2:4])):
        (tmp_path / sub).mkdir()
        for i, im in enumerate(part):
            im.save(tmp_path / sub / f"{i}.png")
    lists = prefcli.rank(imgs[4:], likes=imgs[:2], dislikes=imgs[2:4], weights="tiny", device="cpu")
    folders = prefcli.rank(
        imgs[4:], likes=tmp_path / "liked", dislikes=tmp_path / "disliked", weights="tiny", device="cpu"
    )
    # The default with a history is blend (issue 21); these images have no prompt, so its general part is aesthetic.
    assert lists.scorer == "blend" and lists.history_pairs == 2
    assert any("blend of aesthetic" in n for n in lists.notes)
    assert [round(r.score, 5) for r in lists.ranked] == [round(r.score, 5) for r in folders.ranked]
    with pytest.raises(prefcli.errors.HistoryError):
        prefcli.rank(imgs[4:], likes=imgs[:2], dislikes=imgs[2:3], weights="tiny", device="cpu")


def test_load_scorer_validates_options_and_devices():
    from prefcli.errors import DeviceError, OptionError

    with pytest.raises(OptionError, match="unknown option 'percnt'"):
        prefcli.load_scorer("hpsv2", weights="tiny", percnt=True)
    with pytest.raises(DeviceError, match="not a device"):
        prefcli.load_scorer("clip", weights="tiny", device="gpu0")


def test_version_flag():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "prefcli", "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == f"prefcli {prefcli.__version__}"
