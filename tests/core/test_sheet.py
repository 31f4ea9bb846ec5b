"""Contact sheets: grid layout, aspect kept, captions drawn, formats, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from prefcli.errors import PrefcliError
from prefcli.sheet import contact_sheet


def items(n, size=(60, 40)):
    colours = [(200, 30, 30), (30, 160, 40), (30, 40, 200), (220, 200, 30), (120, 30, 160)]
    return [
        (Image.new("RGB", size, colours[i % len(colours)]), f"#{i + 1}  0.{9 - i}\nimage_{i}.png") for i in range(n)
    ]


@pytest.mark.parametrize("suffix, fmt", [(".png", "PNG"), (".jpg", "JPEG"), (".webp", "WEBP")])
def test_writes_a_file_that_opens(tmp_path, suffix, fmt):
    out = contact_sheet(items(5), tmp_path / f"s{suffix}", thumb=64)
    with Image.open(out) as im:
        im.load()
        assert im.format == fmt and im.mode == "RGB"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"s{suffix}"]  # no temporary left behind


def test_grid_shape_and_title(tmp_path):
    plain = contact_sheet(items(5), tmp_path / "a.png", thumb=64, columns=2)
    titled = contact_sheet(items(5), tmp_path / "b.png", thumb=64, columns=2, title="a title")
    wide = contact_sheet(items(5), tmp_path / "c.png", thumb=64, columns=5)
    with Image.open(plain) as a, Image.open(titled) as b, Image.open(wide) as c:
        assert a.width == b.width and b.height > a.height  # the title bar adds height only
        assert c.width > a.width and c.height < a.height  # 5x1 vs 2x3


def test_aspect_is_kept_and_caption_is_drawn(tmp_path):
    tall = Image.new("RGB", (20, 80), (200, 30, 30))
    out = contact_sheet([(tall, "#1  0.5\ntall.png")], tmp_path / "t.png", thumb=80)
    a = np.asarray(Image.open(out).convert("RGB")).astype(int)
    red = (a[..., 0] > 150) & (a[..., 1] < 80) & (a[..., 2] < 80)
    ys, xs = np.nonzero(red)
    w, h = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    assert h == 80 and 18 <= w <= 22  # scaled into the tile with its 1:4 shape
    below = a[ys.max() + 2 :]
    assert (below.sum(-1) < 200).any()  # dark caption text under the thumbnail


def test_errors(tmp_path):
    with pytest.raises(PrefcliError, match="suffix '.gif'"):
        contact_sheet(items(1), tmp_path / "s.gif")
    with pytest.raises(PrefcliError, match="nothing to put"):
        contact_sheet([], tmp_path / "s.png")
    assert list(tmp_path.iterdir()) == []


def test_long_names_are_shortened_not_overflowing(tmp_path):
    long = [(Image.new("RGB", (30, 30), (90, 90, 200)), "#1  1\n" + "a_very_long_file_name_" * 6 + ".png")]
    short = [(Image.new("RGB", (30, 30), (90, 90, 200)), "#1  1\nx.png")]
    a = contact_sheet(long, tmp_path / "a.png", thumb=64)
    b = contact_sheet(short, tmp_path / "b.png", thumb=64)
    assert Image.open(a).size == Image.open(b).size
