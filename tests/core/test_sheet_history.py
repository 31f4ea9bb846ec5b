"""Contact sheet options: thumbnail size, columns, the history strip (liked / disliked) and the prompt."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from picture_factory import structured_images
from prefcli.cli import app


def _folders(tmp_path):
    for name, n, seed in (("cands", 5, 1), ("liked", 3, 2), ("disliked", 3, 3)):
        (tmp_path / name).mkdir()
        for j, im in enumerate(structured_images([(40, 40)] * n, seed)):
            im.save(tmp_path / name / f"{j}.png")


def _rank(tmp_path, sheet, *extra):
    res = CliRunner().invoke(
        app,
        [
            "rank",
            str(tmp_path / "cands"),
            "--likes",
            str(tmp_path / "liked"),
            "--dislikes",
            str(tmp_path / "disliked"),
            "--scorer",
            "clip-probe",
            "--weights",
            "tiny",
            "--prompt",
            "a red fox",
            "--sheet",
            str(sheet),
            *extra,
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    from PIL import Image

    return Image.open(sheet).convert("RGB")


def _has_colour(img, rgb, tol=8) -> int:
    a = np.asarray(img).astype(int)
    return int((np.abs(a - np.asarray(rgb)).max(-1) <= tol).sum())


def test_thumb_size_and_columns_shape_the_grid(tmp_path):
    _folders(tmp_path)
    small = _rank(tmp_path, tmp_path / "a.png", "--sheet-thumb", "64", "--sheet-columns", "5")
    big = _rank(tmp_path, tmp_path / "b.png", "--sheet-thumb", "128", "--sheet-columns", "1")
    assert small.width > small.height  # one row of five
    assert big.height > 4 * big.width  # one column of five
    assert _has_colour(small, (0, 158, 115)) == 0  # no history strip unless asked


def test_history_strip_and_prompt_are_shown_when_asked(tmp_path):
    from prefcli.sheet import _DISLIKED, _LIKED

    _folders(tmp_path)
    plain = _rank(tmp_path, tmp_path / "p.png", "--sheet-thumb", "64", "--sheet-columns", "5")
    full = _rank(
        tmp_path, tmp_path / "h.png", "--sheet-thumb", "64", "--sheet-columns", "5", "--sheet-history", "--sheet-prompt"
    )
    assert full.height > plain.height + 32  # a strip of half-size thumbnails and a prompt line
    assert _has_colour(full, _LIKED) > 50 and _has_colour(full, _DISLIKED) > 50  # framed liked and disliked images
