"""Hostile input, second pass (issue 24, part A): roots, overwrites, reuse, locks and JSON files.

Each case is tried the way an attacker or a careless user would: a link in a
source's images/ that leads out of it, a `..` name, JSON nested 100,000 deep,
rows of the wrong type, a second importer into the same --out. Every case ends
in exactly one `prefcli: error:` line (exit 2, no traceback) or in the right
result, reads nothing outside its root, and leaves the planted files byte-identical.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_runner import one_error_line, run_cli
from prefcli.errors import DataError

pytestmark = pytest.mark.skipif(os.name != "posix", reason="symlinks as POSIX has them")

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture(autouse=True)
def _quiet(monkeypatch, tmp_path):
    monkeypatch.setenv("PREFCLI_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("PREFCLI_DEBUG", raising=False)


def _png(seed: int, size: int = 12) -> bytes:
    arr = np.random.default_rng(seed).integers(30, 225, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _snapshot(root: Path) -> dict[str, str]:
    """Every planted file's bytes (by hash), links by their target: what must be unchanged afterwards."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[p.relative_to(root).as_posix()] = "-> " + os.readlink(p)
        elif p.is_file():
            out[p.relative_to(root).as_posix()] = _sha(p.read_bytes())
    return out


def _one_error(capsys, *args) -> str:
    code, _, err = run_cli(capsys, *args)
    return one_error_line(code, err)


def _stored_ids(ds: Path) -> set[str]:
    return {p.name for p in (ds / "images").rglob("*") if p.is_file()}


# --------------------------------------------------------------------------- PreferImg sources


def _preferimg_source(root: Path, n: int = 4) -> tuple[Path, list[dict]]:
    """A TEST_PICKAPIC subset in the published layout (see tests/data/test_preferimg.py), `n` good records."""
    sub = root / "data" / "PICKAPIC"
    img = sub / "images"
    img.mkdir(parents=True)
    records = []
    for i in range(n):
        names = {k: f"r{i}_{k}.png" for k in ("A", "B", "p0", "n0")}
        for j, name in enumerate(names.values()):
            (img / name).write_bytes(_png(i * 10 + j))
        records.append(
            {
                "user_id": f"u{i}",
                "imageA": names["A"],
                "imageB": names["B"],
                "prefered_images": [names["p0"]],
                "non_prefered_images": [names["n0"]],
                "conversations": [{"from": "gpt", "value": "Image A"}],
            }
        )
    return sub / "PICKAPIC.json", records


def _write(path: Path, records) -> None:
    path.write_text(json.dumps(records))


def test_preferimg_refuses_links_that_leave_the_image_root(tmp_path, capsys):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "private.png").write_bytes(_png(999))
    (secret / "dir").mkdir()
    (secret / "dir" / "inner.png").write_bytes(_png(998))
    src = tmp_path / "src"
    records_file, records = _preferimg_source(src)
    img = records_file.parent / "images"
    (img / "link.png").symlink_to(secret / "private.png")  # a file link out
    (img / "linked").symlink_to(secret / "dir")  # a linked folder out
    (img / "ok_link.png").symlink_to(img / "r0_A.png")  # a link that stays inside: followed
    records[0]["imageB"] = "link.png"
    records[1]["imageA"] = "linked/inner.png"
    records[2]["prefered_images"] = ["link.png", "r2_p0.png"]
    records[3]["imageB"] = "ok_link.png"
    _write(records_file, records)
    before = _snapshot(tmp_path)
    code, _, err = run_cli(capsys, "data", "preferimg", "--source", src, "--out", tmp_path / "ds", "--no-progress")
    assert code == 0 and "Traceback" not in err, err
    ds = tmp_path / "ds"
    stored = _stored_ids(ds)
    assert _sha(_png(999)) not in stored and _sha(_png(998)) not in stored  # read outside: none
    problems = {p["record"]: p["reason"] for p in json.loads((ds / "dataset.json").read_text())["problems"]}
    assert "imageB path 'link.png' is a link that leads outside the image root" in problems[0]
    assert "imageA path 'linked/inner.png' is a link that leads outside" in problems[1]
    assert "history image left out: prefered_images path 'link.png'" in problems[2]
    assert 3 not in problems  # the inside link was followed
    assert _snapshot(tmp_path / "src") == {k.removeprefix("src/"): v for k, v in before.items() if k.startswith("src/")}
    assert _snapshot(secret) == {k.removeprefix("secret/"): v for k, v in before.items() if k.startswith("secret/")}


def test_preferimg_where_every_record_fails_writes_nothing_and_says_where_it_looked(tmp_path, capsys):
    src = tmp_path / "src"
    records_file, records = _preferimg_source(src, n=3)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(records_file.parent / "images"), elsewhere)
    (records_file.parent / "images").mkdir()
    # The same missing file is imageA of one record and imageB of the next: each must name its own field.
    records[1]["imageB"] = records[0]["imageA"]
    _write(records_file, records)
    line = _one_error(capsys, "data", "preferimg", "--source", src, "--out", tmp_path / "ds", "--no-progress")
    assert "none of its 3 records could be imported" in line and str(records_file.parent / "images") in line, line
    assert "--image-root" in line
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds.partial").exists()
    # The rerun with the right --image-root builds (not "already built").
    code, _, err = run_cli(
        capsys,
        "data",
        "preferimg",
        "--source",
        src,
        "--out",
        tmp_path / "ds",
        "--image-root",
        elsewhere,
        "--no-progress",
    )
    assert code == 0 and "already built" not in err, err
    assert json.loads((tmp_path / "ds" / "dataset.json").read_text())["source_stats"]["records_kept"] == 3


def test_preferimg_reasons_name_the_field_of_their_own_record(tmp_path):
    from prefcli.data import preferimg

    src = tmp_path / "src"
    records_file, records = _preferimg_source(src, n=4)
    records[2]["imageA"] = "liked_7.png"  # missing
    records[3]["imageB"] = "liked_7.png"  # the same missing file, met again as imageB
    _write(records_file, records)
    res = preferimg.build(str(src), tmp_path / "ds", progress=False)
    reasons = {p["record"]: p["reason"] for p in res.problems}
    assert reasons[2].startswith("imageA liked_7.png") and reasons[3].startswith("imageB liked_7.png"), reasons


# --------------------------------------------------------------------------- PAMELA sources


def _pamela_source(root: Path, rows_extra: list[dict]) -> Path:
    (root / "images").mkdir(parents=True)
    rows = []
    for u in range(2):
        for i in range(6):
            name = f"im{u}_{i}.png"
            (root / "images" / name).write_bytes(_png(u * 100 + i, 10))
            rows.append({"participant_id": f"p{u}", "file_name": name, "score": 1 + (i + u) % 5})
    with open(root / "pamela_test_unseen.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["participant_id", "file_name", "score"])
        w.writeheader()
        w.writerows(rows + rows_extra)
    return root


def test_pamela_refuses_links_dotdot_and_absolute_names(tmp_path):
    from prefcli.data import pamela

    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "private.png").write_bytes(_png(777, 10))
    (secret / "d").mkdir()
    (secret / "d" / "inner.png").write_bytes(_png(778, 10))
    src = tmp_path / "src"
    evil = [
        {"participant_id": "p0", "file_name": n, "score": 3}
        for n in (
            "link.png",
            "linked/inner.png",
            "../secret/private.png",
            str(secret / "private.png"),
            "images/../../secret/private.png",
        )
    ]
    _pamela_source(src, evil)
    (src / "images" / "link.png").symlink_to(secret / "private.png")
    (src / "images" / "linked").symlink_to(secret / "d")
    before = _snapshot(tmp_path)
    res = pamela.build(str(src), tmp_path / "ds", pamela.PamelaParams(n_ref=2, pairs_per_user=1), progress=False)
    stored = _stored_ids(tmp_path / "ds")
    assert _sha(_png(777, 10)) not in stored and _sha(_png(778, 10)) not in stored
    reasons = {p["where"]: p["reason"] for p in res.problems}
    for row in range(12, 17):
        r = reasons[f"pamela_test_unseen.csv row {row}"]
        assert "leads outside the dataset folder" in r or "leaves the dataset folder" in r, (row, r)
    after = _snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k.split("/")[0] in ("src", "secret")} == before


def test_pamela_split_file_linked_from_outside_is_refused(tmp_path, capsys):
    other = _pamela_source(tmp_path / "other", [])
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "pamela_test_unseen.csv").symlink_to(other / "pamela_test_unseen.csv")
    line = _one_error(capsys, "data", "pamela", "--source", src, "--out", tmp_path / "ds", "--no-progress")
    assert "pamela_test_unseen.csv: a link that leads outside" in line


@pytest.mark.parametrize("case", ["list_rows", "int_rows", "deep", "not_utf8", "string"])
def test_pamela_json_of_the_wrong_shape_is_one_line(case, tmp_path, capsys):
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    f = src / "pamela_test_unseen.json"
    content = {
        "list_rows": json.dumps([["p0", "a.png", 3]]),
        "int_rows": "[1, 2, 3]",
        "deep": DEEP,
        "not_utf8": b'[{"participant_id": "\xff"}]',
        "string": '"rows"',
    }[case]
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    reason = {
        "list_rows": "row 0 is a JSON list, not a JSON object",
        "int_rows": "row 0 is an integer",
        "deep": "nested 100000 levels deep",
        "not_utf8": "not UTF-8",
        "string": "expected a JSON list of rating rows",
    }[case]
    before = _snapshot(src)
    line = _one_error(capsys, "data", "pamela", "--source", src, "--out", tmp_path / "ds", "--no-progress")
    assert str(f) in line and reason in line, line
    assert _snapshot(src) == before and not (tmp_path / "ds").exists()


# --------------------------------------------------------------------------- locks


def test_a_second_importer_into_the_same_out_is_refused_while_the_first_runs(tmp_path, capsys):
    from prefcli.lock import lock_path

    src = tmp_path / "src"
    records_file, records = _preferimg_source(src, n=2)
    _write(records_file, records)
    out = tmp_path / "ds"
    # The first importer: a live process on this host holds the lock (our parent stands in for it).
    holder = {
        "pid": os.getppid(),
        "host": __import__("socket").gethostname(),
        "started": "now",
        "command": "prefcli data preferimg",
    }
    lock_path(out).write_text(json.dumps(holder))
    for cmd in (
        ["data", "preferimg", "--source", src],
        ["data", "pamela", "--source", _pamela_source(tmp_path / "pam", [])],
    ):
        line = _one_error(capsys, *cmd, "--out", out, "--no-progress")
        assert f"{out}: another prefcli is writing it" in line, line
        assert not out.exists() and not out.with_name("ds.partial").exists()
    lock_path(out).unlink()
    code, _, err = run_cli(capsys, "data", "preferimg", "--source", src, "--out", out, "--no-progress")
    assert code == 0, err
    assert not lock_path(out).exists()


# --------------------------------------------------------------------------- dataset readers


def test_eval_never_scores_an_image_linked_out_of_the_dataset(tmp_path):
    """Candidates and history images of a dataset whose images/<id> is a link out: refused on load."""
    from prefcli.data import preferimg
    from prefcli.data.dataset import Dataset, image_relpath
    from prefcli.errors import ImageError

    src = tmp_path / "src"
    records_file, records = _preferimg_source(src, n=2)
    _write(records_file, records)
    preferimg.build(str(src), tmp_path / "ds", progress=False)
    ds = Dataset.open(tmp_path / "ds")
    task = ds.tasks("test", "1v1")[0]
    secret = tmp_path / "secret.png"
    secret.write_bytes(_png(4242))
    for cand in (task.candidates[0], task.history.liked[0]):
        p = tmp_path / "ds" / image_relpath(cand.image_id)
        p.unlink()
        p.symlink_to(secret)
    ds = Dataset.open(tmp_path / "ds")
    task = ds.tasks("test", "1v1")[0]
    for cand in (task.candidates[0], task.history.liked[0]):
        with pytest.raises(ImageError, match="links outside the dataset's image store"):
            _ = cand.image
    assert task.candidates[1].image.size == (12, 12)  # the others still load
    assert secret.read_bytes() == _png(4242)


def _pixel_mean_class():
    from prefcli.scorer import Scorer

    class PixelMean(Scorer):
        """Reads every candidate's pixels (as a real scorer does) without loading a model."""

        def score(self, candidates, state=None):
            return [float(np.asarray(c.image).mean()) for c in candidates]

    return PixelMean


PixelMean = _pixel_mean_class()


class _PixelPlugin:
    from prefcli.hookspecs import hookimpl

    @hookimpl
    def register_scorers(self, register):
        from prefcli.scorer import ScorerSpec

        register(
            ScorerSpec(
                name="pixel-mean", factory=f"{__name__}:PixelMean", needs=frozenset({"image"}), default_weights="none"
            )
        )


@pytest.fixture
def pixel_scorer():
    from prefcli import plugins

    plugins.register_plugin(_PixelPlugin(), name="hostio-pixel")
    yield "pixel-mean"
    plugins.unregister_plugin(name="hostio-pixel")


def test_cli_eval_on_a_dataset_with_a_link_out_is_one_line(tmp_path, capsys, pixel_scorer):
    from prefcli.data import preferimg
    from prefcli.data.dataset import Dataset, image_relpath

    src = tmp_path / "src"
    records_file, records = _preferimg_source(src, n=2)
    _write(records_file, records)
    preferimg.build(str(src), tmp_path / "ds", progress=False)
    code, _, err = run_cli(capsys, "eval", tmp_path / "ds", "--scorer", pixel_scorer, "--no-progress", "--no-cache")
    assert code == 0, err  # the scorer reads pixels: it works on the intact dataset
    cand = Dataset.open(tmp_path / "ds").tasks("test", "1v1")[0].candidates[1]
    p = tmp_path / "ds" / image_relpath(cand.image_id)
    p.unlink()
    (tmp_path / "secret.png").write_bytes(_png(4243))
    p.symlink_to(tmp_path / "secret.png")
    line = _one_error(capsys, "eval", tmp_path / "ds", "--scorer", pixel_scorer, "--no-progress", "--no-cache")
    assert f"{p}: links outside the dataset's image store" in line, line


# --------------------------------------------------------------------------- the bounded JSON reader


def test_the_json_reader_bounds_depth_size_kind_and_encoding(tmp_path, monkeypatch):
    from prefcli import jsonio

    cases = {
        "deep.json": (DEEP, "nested 100000 levels deep"),
        "bad.json": ("{not json", "unreadable, invalid JSON"),
        "latin1.json": (b'["caf\xe9"]', "not UTF-8 text (byte 0xe9 at offset 5)"),
    }
    for name, (content, reason) in cases.items():
        p = tmp_path / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(DataError, match=f"^{p}: .*{reason}".replace("(", r"\(").replace(")", r"\)")):
            jsonio.read_json(p)
    (tmp_path / "ok.json").write_text('{"a": "[[[[x"}')
    assert jsonio.read_json(tmp_path / "ok.json") == {"a": "[[[[x"}  # brackets inside strings do not count
    # Escapes: an escaped quote does not end a string, an escaped backslash does not escape the quote after it.
    assert jsonio.nesting_depth(r'["a\"[[[", 2]') == 1 and jsonio.nesting_depth(r'["\\", [[1]]]') == 3
    assert jsonio.nesting_depth('"[[["') == 0 and jsonio.nesting_depth('{"é": [{}]}') == 3
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf[1]")
    assert jsonio.read_json(tmp_path / "bom.json") == [1]
    monkeypatch.setenv(jsonio.MAX_BYTES_ENV, "10")
    with pytest.raises(DataError, match="more than the 10 bytes a JSON file may have"):
        jsonio.read_json(tmp_path / "ok.json")
    monkeypatch.delenv(jsonio.MAX_BYTES_ENV)
    os.mkfifo(tmp_path / "fifo.json")
    with pytest.raises(DataError, match="not a regular file"):
        jsonio.read_json(tmp_path / "fifo.json")  # never opened: would block forever
    with pytest.raises(DataError, match="not a regular file"):
        jsonio.read_json("/dev/zero")
    # Above the scan limit the parser's own recursion guard is caught: still one error.
    monkeypatch.setattr(jsonio, "SCAN_LIMIT", 10)
    with pytest.raises(DataError, match="nested too deeply"):
        jsonio.read_json(tmp_path / "deep.json")


def test_every_json_read_in_the_package_goes_through_the_bounded_reader():
    """grep: json.load/json.loads only where prefcli reads what it wrote itself, or in jsonio."""
    root = Path(__file__).resolve().parents[2]
    # Files prefcli writes and reads back itself (journals, configs and logs of its own runs), and the two weights readers that helper "hostval" bounds (safetensors header, shard index).
    own = {
        "prefcli/jsonio.py",
        "prefcli/harness/runner.py",
        "prefcli/demo.py",
        "prefcli/train/loop.py",
        "prefcli/train/checkpoint.py",
        "prefcli/cli/data_synthetic.py",
        "prefcli/data/synthetic.py",
        "prefcli/data/pickapic.py",
        "prefcli/data/synthetic_ratings.py",
        "prefcli/vlm/model.py",
        "prefcli/vlm/folders.py",
        "prefcli/weights.py",
        "prefcli/convert.py",
        # The same readers, moved to their homes by the house issue (19): pickapic's journal, runner's handle
        # (its own cache key), weights.py's bounded safetensors/shard-index readers, the trainers' resume record.
        "prefcli/data/importing.py",
        "prefcli/harness/handle.py",
        "prefcli/safe_load.py",
        "prefcli/train/common.py",
    }
    bad = []
    for p in sorted([*(root / "prefcli").rglob("*.py"), *(root / "plugins").rglob("*.py")]):
        rel = p.relative_to(root).as_posix()
        if rel in own:
            continue
        if "json.load(" in p.read_text() or "json.loads(" in p.read_text():
            bad.append(rel)
    assert not bad, f"read JSON without prefcli.jsonio: {bad}"


@pytest.mark.parametrize("case", ["deep", "string", "not_utf8", "empty"])
def test_bench_generate_prompt_files_are_one_line(case, tmp_path, capsys):
    d = tmp_path / "prompts"
    d.mkdir()
    content = {"deep": DEEP, "string": '"a fox"', "not_utf8": b'["\xff"]', "empty": "[]"}[case]
    reason = {
        "deep": "nested 100000 levels deep",
        "string": "expected a JSON list of prompt strings",
        "not_utf8": "not UTF-8",
        "empty": "the prompt list is empty",
    }[case]
    (d / "anime.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    line = _one_error(
        capsys,
        "bench",
        "generate",
        "--prompts",
        d,
        "--styles",
        "anime",
        "--out",
        tmp_path / "out",
        "--model",
        "tiny",
        "--liked-model",
        "tiny:1",
        "--reward",
        "clip=1",
        "--weights",
        "tiny",
        "--device",
        "cpu",
    )
    assert str(d / "anime.json") in line and reason in line, line


@pytest.mark.parametrize("case", ["deep", "list", "not_utf8"])
def test_preferimg_record_files_are_one_line(case, tmp_path, capsys):
    src = tmp_path / "src"
    records_file, _ = _preferimg_source(src, n=1)
    content = {"deep": DEEP, "list": "3", "not_utf8": b'[{"imageA": "\xff"}]'}[case]
    records_file.write_bytes(content if isinstance(content, bytes) else content.encode())
    reason = {"deep": "nested 100000 levels deep", "list": "expected a JSON list of records", "not_utf8": "not UTF-8"}[
        case
    ]
    line = _one_error(capsys, "data", "preferimg", "--source", src, "--out", tmp_path / "ds", "--no-progress")
    assert str(records_file) in line and reason in line, line


def test_dataset_json_nested_deep_is_one_line_in_data_info_and_eval(tmp_path, capsys):
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "dataset.json").write_text(DEEP)
    for args in (
        ["data", "info", ds],
        ["eval", ds, "--scorer", "clip", "--weights", "tiny", "--no-progress", "--no-cache"],
    ):
        line = _one_error(capsys, *args)
        assert str(ds / "dataset.json") in line and "nested 100000 levels deep" in line, line


@pytest.mark.parametrize("case", ["deep", "string", "spec_list", "not_utf8"])
def test_vlm_spec_of_the_wrong_shape_is_one_line(case, tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    content = {"deep": DEEP, "string": '"spec"', "spec_list": '{"spec": [1]}', "not_utf8": b'{"spec": "\xff"}'}[case]
    reason = {
        "deep": "nested 100000 levels deep",
        "string": "a model spec must be a JSON object, not a string",
        "spec_list": "its 'spec' must be a JSON object, not a JSON list",
        "not_utf8": "not UTF-8",
    }[case]
    (model / "vlm_spec.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    line = _one_error(capsys, "analyze", "tokens", model, "--out", tmp_path / "a", "--no-progress")
    assert str(model / "vlm_spec.json") in line and reason in line, line


@pytest.mark.parametrize(
    "case", ["deep", "runs_string", "metrics_list", "value_string", "top1_list", "provenance_list"]
)
def test_analysis_result_files_of_the_wrong_shape_are_one_line(case, tmp_path, capsys):
    run = {
        "scorer": "x",
        "protocol": "1v1",
        "n_ref": 2,
        "uses_history": True,
        "n_tasks": 3,
        "metrics": {"all": {"top1": {"value": 0.5, "se": 0.1}}},
    }
    docs = {
        "deep": DEEP,
        "runs_string": {"runs": "many"},
        "metrics_list": {"runs": [{**run, "metrics": [1]}]},
        "value_string": {"runs": [{**run, "metrics": {"all": {"top1": {"value": "high"}}}}]},
        "top1_list": {"runs": [{**run, "metrics": {"seen": {"top1": [0.5]}}}]},
        "provenance_list": {"runs": [run], "provenance": [1]},
    }
    reason = {
        "deep": "nested 100000 levels deep",
        "runs_string": "no 'runs' list",
        "metrics_list": "'metrics' must be a JSON object",
        "value_string": "metrics.all.top1.value must be",
        "top1_list": "metrics.seen.top1 must be a JSON object",
        "provenance_list": "'provenance' must be a JSON object",
    }[case]
    f = tmp_path / "results.json"
    doc = docs[case]
    f.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    line = _one_error(capsys, "analyze", "history", f, "--out", tmp_path / "a")
    assert str(f) in line and reason in line, line


def test_a_corrupt_score_cache_row_is_one_line():
    import tempfile

    from prefcli.errors import CacheError
    from prefcli.harness.cache import ScoreStore

    with tempfile.TemporaryDirectory() as d:
        store = ScoreStore(Path(d) / "s.sqlite", "clip", "w")
        store.put_scores([(("h", "img1", "p"), 0.5)])
        con = sqlite3.connect(Path(d) / "s.sqlite")
        with con:
            con.execute("UPDATE scores SET score = 'not a number'")
            con.execute("INSERT INTO embeddings VALUES ('img2', 4, 'text')")
        con.close()
        with pytest.raises(CacheError, match=r"s.sqlite: corrupt score cache \(the score of image img1 is str"):
            store.get_scores([("h", "img1", "p")])
        with pytest.raises(CacheError, match="corrupt embedding cache"):
            store.get_embeddings(["img2"])
        store.close()


# --------------------------------------------------------------------------- generate / bench generate: files and reuse

GEN = ["--model", "tiny", "--reward", "clip=1", "--weights", "tiny", "--steps", "1", "--device", "cpu"]


def test_generate_never_replaces_a_file_it_did_not_write(tmp_path, capsys):
    pytest.importorskip("diffusers")
    out = tmp_path / "gen"
    out.mkdir()
    (out / "a-fox-seed0.png").write_bytes(_png(5))
    (out / "a-fox-seed1.json").write_text('{"mine": true}')  # a JSON of the user's at a sidecar's name
    before = _snapshot(out)
    line = _one_error(capsys, "generate", "a fox", *GEN, "--out", out)
    assert f"{out / 'a-fox-seed0.png'}: exists and was not written by prefcli" in line and "--overwrite" in line, line
    line = _one_error(capsys, "generate", "a fox", *GEN, "--seed", "1", "--out", out)
    assert f"{out / 'a-fox-seed1.json'}: exists and was not written by prefcli" in line, line
    assert _snapshot(out) == before
    code, _, err = run_cli(capsys, "generate", "a fox", *GEN, "--out", out, "--overwrite")
    assert code == 0, err
    assert (out / "a-fox-seed0.png").read_bytes() != _png(5) and json.loads((out / "a-fox-seed0.json").read_text())[
        "done"
    ]


def test_generate_killed_half_way_resumes_over_its_own_files(tmp_path, capsys, monkeypatch):
    pytest.importorskip("diffusers")
    from prefcli.generate import run as grun

    out = tmp_path / "gen"
    real, calls = grun.save_png, []

    class Killed(BaseException):
        pass

    def dies_after_the_first_image(image, path):
        calls.append(path)
        real(image, path)
        if len(calls) == 1:
            raise Killed  # killed between the unguided and the final image

    monkeypatch.setattr(grun, "save_png", dies_after_the_first_image)
    with pytest.raises(Killed):
        run_cli(capsys, "generate", "a fox", *GEN, "--out", out)
    assert (out / "a-fox-seed0.unguided.png").is_file() and not json.loads((out / "a-fox-seed0.json").read_text())[
        "done"
    ]
    monkeypatch.setattr(grun, "save_png", real)
    code, _, err = run_cli(capsys, "generate", "a fox", *GEN, "--out", out)
    assert code == 0, err


BENCH = [
    "--styles",
    "anime",
    "--limit",
    "1",
    "--model",
    "tiny",
    "--liked-model",
    "tiny:1",
    "--weights",
    "tiny",
    "--reward",
    "clip=0.75",
    "--steps",
    "1",
    "--device",
    "cpu",
]


def _prompts(tmp_path: Path) -> Path:
    d = tmp_path / "prompts"
    d.mkdir(exist_ok=True)
    (d / "anime.json").write_text(json.dumps(["an anime fox", "an anime cat"]))
    return d


def test_bench_generate_never_replaces_a_file_it_did_not_write(tmp_path, capsys):
    pytest.importorskip("diffusers")
    out = tmp_path / "bg"
    for rel in ("guided/anime/00000.jpg", "history/anime/00000/liked-0.jpg", "table4.md"):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(_png(6))
        before = _snapshot(out)
        line = _one_error(capsys, "bench", "generate", "--prompts", _prompts(tmp_path), "--out", out, *BENCH)
        assert f"{out / rel}: exists and was not written by prefcli" in line and "--overwrite" in line, line
        assert _snapshot(out) == before
        (out / rel).unlink()


def test_bench_generate_never_reuses_images_made_under_other_settings(tmp_path, capsys):
    pytest.importorskip("diffusers")
    out, prompts = tmp_path / "bg", _prompts(tmp_path)
    code, _, err = run_cli(capsys, "bench", "generate", "--prompts", prompts, "--out", out, *BENCH, "--format", "json")
    assert code == 0, err
    before = _snapshot(out)
    side = out / "runs" / "anime" / "00000.json"
    for change, what in (
        (["--steps", "2"], "steps 1 there, 2 now"),
        (["--seed", "7"], "seed 0 there, 7 now"),
        (["--reward", "clip=0.5"], 'rewards [["clip", 0.75]] there, [["clip", 0.5]] now'),
        (["--liked-model", "tiny:2"], "liked_model"),
    ):
        args = list(BENCH)
        i = args.index(change[0]) if change[0] in args else None
        if i is not None:
            args[i + 1] = change[1]
        else:
            args += change
        line = _one_error(capsys, "bench", "generate", "--prompts", prompts, "--out", out, *args)
        assert f"{side}: its images were made under other settings ({what}" in line, line
        assert _snapshot(out) == before  # nothing made again, nothing reported
    # Another prompt at the same index is other settings too.
    (prompts / "anime.json").write_text(json.dumps(["a different fox"]))
    line = _one_error(capsys, "bench", "generate", "--prompts", prompts, "--out", out, *BENCH)
    assert "prompt" in line and "a different fox" in line, line
    (prompts / "anime.json").write_text(json.dumps(["an anime fox", "an anime cat"]))
    code, outp, err = run_cli(
        capsys, "bench", "generate", "--prompts", prompts, "--out", out, *BENCH, "--format", "json"
    )
    assert code == 0 and json.loads(outp)["results"]["counts"] == {
        "liked": 0,
        "disliked": 0,
        "optimized": 0,
        "kept": 1,
    }, err


# --------------------------------------------------------------------------- messages name the user's path


def test_out_and_log_samples_naming_the_same_file_or_a_folder_are_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "r.json"
    line = _one_error(
        capsys,
        "eval",
        tmp_path / "no-dataset",
        "--scorer",
        "clip",
        "--weights",
        "tiny",
        "--out",
        out,
        "--log-samples",
        out,
    )
    assert f"{out}: --out and --log-samples name the same file" in line, line
    (tmp_path / "dir").mkdir()
    for opt in ("--out", "--log-samples"):
        line = _one_error(
            capsys, "eval", tmp_path / "no-dataset", "--scorer", "clip", "--weights", "tiny", opt, tmp_path / "dir"
        )
        assert f"{tmp_path / 'dir'}: {opt} is a folder; give a file name" in line, line
    assert not out.exists() and list((tmp_path / "dir").iterdir()) == []


def test_write_errors_name_the_users_path_not_a_temporary_file(tmp_path, capsys, monkeypatch):
    import errno
    import tempfile

    from prefcli import atomic

    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(2):
        (imgs / f"{i}.png").write_bytes(_png(i, 16))
    (tmp_path / "sheet.png").mkdir()
    line = _one_error(
        capsys,
        "rank",
        imgs,
        "--scorer",
        "clip",
        "--weights",
        "tiny",
        "--prompt",
        "x",
        "--sheet",
        tmp_path / "sheet.png",
    )
    assert line == f"prefcli: error: {tmp_path / 'sheet.png'}: is a folder, not a file (give a file name)", line

    def read_only(
        prefix="", suffix="", dir=None
    ):  # what mkstemp raises in a folder we may not write (tests run as root)
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(dir, prefix + "abcd" + suffix))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(PermissionError) as e:
        atomic.write_text(tmp_path / "ro" / "out.json", "{}")
    assert e.value.filename == str(tmp_path / "ro" / "out.json")
    line = _one_error(
        capsys,
        "rank",
        imgs,
        "--scorer",
        "clip",
        "--weights",
        "tiny",
        "--prompt",
        "x",
        "--sheet",
        tmp_path / "ro" / "s.png",
    )
    assert line == f"prefcli: error: {tmp_path / 'ro' / 's.png'}: Permission denied", line


def test_an_out_filled_while_the_import_ran_is_never_replaced(tmp_path, capsys, monkeypatch):
    from prefcli.data import importing

    src = tmp_path / "src"
    records_file, records = _preferimg_source(src, n=2)
    _write(records_file, records)
    out = tmp_path / "ds"

    def someone_writes_into_out(chunk):
        out.mkdir(exist_ok=True)
        (out / "notes.txt").write_text("mine")

    monkeypatch.setattr(importing, "_after_chunk", someone_writes_into_out)
    line = _one_error(capsys, "data", "preferimg", "--source", src, "--out", out, "--no-progress")
    assert f"{out}: --out appeared or was filled while the import ran" in line and "ds.partial" in line, line
    assert (out / "notes.txt").read_text() == "mine" and (tmp_path / "ds.partial" / "tasks.parquet").is_file()
    monkeypatch.setattr(importing, "_after_chunk", None)
    shutil.move(str(out), tmp_path / "moved")
    code, _, err = run_cli(capsys, "data", "preferimg", "--source", src, "--out", out, "--no-progress")
    assert code == 0 and (out / "dataset.json").is_file() and not (tmp_path / "ds.partial").exists(), err


def test_a_planted_lock_or_marker_nested_deep_is_unreadable_not_a_traceback(tmp_path, capsys):
    from prefcli import atomic, lock

    out = tmp_path / "ds"
    lock.lock_path(out).write_text(DEEP)
    os.utime(lock.lock_path(out), (1, 1))  # old: a half-written lock of a killed process, taken over
    src = tmp_path / "src"
    records_file, records = _preferimg_source(src, n=2)
    _write(records_file, records)
    code, _, err = run_cli(capsys, "data", "preferimg", "--source", src, "--out", out, "--no-progress")
    assert code == 0 and "Traceback" not in err, err
    d = tmp_path / "folder"
    d.mkdir()
    (d / atomic.MARKER).write_text(DEEP)
    (d / "theirs.png").write_bytes(_png(1))
    assert atomic.written_by_prefcli(d) is None
    assert atomic.foreign_entries(d) == ["theirs.png"]  # every file there counts as not prefcli's
