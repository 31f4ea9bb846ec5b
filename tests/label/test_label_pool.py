"""The labelling pool: prompts from a prompts file or subfolders, bad and outside files skipped and reported."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from label_fixtures import make_pool
from prefcli.errors import ImageError
from prefcli.label.pool import load_pool


def test_subfolders_are_prompts_and_bad_files_are_skipped_and_reported(tmp_path):
    root = make_pool(tmp_path / "pool", prompts=2, per_prompt=3)
    (root / "a circle" / "empty.png").write_bytes(b"")
    shutil.copy(root / "a circle" / "00.png", root / "a circle" / "copy.png")
    outside = tmp_path / "secret.png"
    shutil.copy(root / "a square" / "00.png", outside)
    with open(outside, "ab") as f:
        f.write(b"\0")  # other bytes: another image id
    os.symlink(outside, root / "a square" / "link.png")
    pool = load_pool(root)
    assert sorted(pool.prompts) == ["a circle", "a square"]
    assert [len(g) for g in pool.groups()] == [3, 3]
    reasons = {os.path.basename(p): why for p, why in pool.skipped}
    assert set(reasons) == {"empty.png", "copy.png", "link.png"}
    assert "same image as" in reasons["copy.png"] and "outside the pool" in reasons["link.png"]
    assert all(str(outside) != im.path for im in pool.images)


def test_a_prompts_file_groups_a_flat_folder(tmp_path):
    root = make_pool(tmp_path / "src", prompts=1, per_prompt=4) / "a circle"
    flat = tmp_path / "flat"
    shutil.copytree(root, flat)
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"00.png": "red", "01.png": "red", "02.png": "blue"}))
    pool = load_pool(flat, prompts)
    assert sorted(pool.prompts) == ["blue", "red"]
    assert any("03.png" in p and "no prompt" in why for p, why in pool.skipped)
    csv = tmp_path / "prompts.csv"
    csv.write_text("file,prompt\n00.png,x\n01.png,x\n")
    assert load_pool(flat, csv).prompts == ["x"]


def test_a_pool_without_a_pair_is_one_clear_error(tmp_path):
    root = make_pool(tmp_path / "pool", prompts=2, per_prompt=1)
    with pytest.raises(ImageError, match="no prompt has two images"):
        load_pool(root)
