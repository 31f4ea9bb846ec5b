"""`prefcli bench images DIR`: a folder of generated images scored on a benchmark, a table per scorer.

Layouts and scores checked against the benchmarks' own code: hpsv2's `evaluate_benchmark`
(tgxs002/HPSv2, hpsv2/evaluation.py lines 116-151, run here as the oracle) and ImageReward's
test-benchmark.py (THUDM/ImageReward, lines 83, 91, 108: DIR/<id>_<k>.png, the mean of prompt means).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from cli_runner import one_error_line
from cli_runner import run_cli as run
from json_schemas import validate_text
from prefcli import plugins
from prefcli.hookspecs import hookimpl
from prefcli.scorer import Scorer, ScorerSpec


def grey_level(image) -> float:
    """The mean grey of an image in [0, 1]: the one number both the oracle's model and the mock scorer see."""
    from PIL import ImageStat

    return ImageStat.Stat(image.convert("L")).mean[0] / 255.0


class Grey(Scorer):
    calls = 0

    def score(self, candidates, state=None):
        type(self).calls += len(candidates)
        return [100.0 * grey_level(c.image) for c in candidates]


class LikesRed(Scorer):
    """Personalized: minus the distance of the image's mean red to the liked images' mean red."""

    min_history = 1

    def condition(self, history):
        super().condition(history)
        from PIL import ImageStat

        return sum(ImageStat.Stat(p.liked.image).mean[0] for p in history.pairs) / len(history.pairs)

    def score(self, candidates, state=None):
        from PIL import ImageStat

        return [-abs(ImageStat.Stat(c.image).mean[0] - state) for c in candidates]


class Mocks:
    @hookimpl
    def register_scorers(self, register):
        register(ScorerSpec(name="bi-grey", factory=f"{__name__}:Grey"))
        register(ScorerSpec(name="bi-red", factory=f"{__name__}:LikesRed", needs=frozenset({"image", "history"})))


@pytest.fixture
def mocks(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFCLI_CACHE", str(tmp_path / "cache"))
    plugin = Mocks()
    plugins.register_plugin(plugin, name="bench-images-mocks")
    Grey.calls = 0
    yield
    plugins.unregister_plugin(plugin)


def grey_jpg(path: Path, level: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (level, level, level)).save(path, quality=95)
    return path


def hpsv2_folder(tmp_path: Path) -> tuple[Path, Path]:
    """anime: 85 images, 80 dark then 5 bright (so the chunk mean is far from the plain mean); photo: 4 prompts,
    index 2 without an image."""
    prompts, images = tmp_path / "prompts", tmp_path / "gen" / "model-x"
    prompts.mkdir(parents=True)
    (prompts / "anime.json").write_text(json.dumps([f"an anime fox {i}" for i in range(85)]))
    (prompts / "photo.json").write_text(json.dumps([f"a photo of a fox {i}" for i in range(4)]))
    for i in range(85):
        grey_jpg(images / "anime" / f"{i:05d}.jpg", 20 + (i % 7) if i < 80 else 230)
    for i in (0, 1, 3):
        grey_jpg(images / "photo" / f"{i:05d}.jpg", 60 + 40 * i)
    return prompts, images


def rows_of(doc) -> dict:
    return {(r["scorer"], r["group"]): r for r in doc["results"]["rows"]}


# --- the benchmarks' own code -----------------------------------------------------------


@pytest.mark.slow  # imports hpsv2's open_clip fork: tens of seconds on two cores
def test_hpsv2_layout_and_scores_are_hpsv2s_evaluate(capsys, mocks, tmp_path):
    """The oracle is hpsv2/evaluation.py's evaluate_benchmark (lines 116-151), run on the same folder with a model whose
    score per image is 100 · the grey level, the mock scorer's: the same styles (line 118), images (line 33 names,
    line 34 skips a prompt without its image), per-style chunk means (line 148) and average (line 151)."""
    import torch

    from reference import hpsv2_official

    if not hpsv2_official.available():
        pytest.skip("the hpsv2 package (the oracle) is not installed")
    prompts, images = hpsv2_folder(tmp_path)

    class GreyModel(torch.nn.Module):
        def forward(self, images, texts):
            return {"image_features": images, "text_features": torch.ones_like(images)}

    evaluation = hpsv2_official.evaluation()
    capsys.readouterr()
    evaluation.evaluate_benchmark(
        str(prompts),
        str(images),
        GreyModel(),
        16,
        lambda im: torch.tensor([grey_level(im)], dtype=torch.float64),
        lambda text: torch.zeros(1, 1),
        "cpu",
    )
    printed = capsys.readouterr().out
    theirs = {m.group(1): float(m.group(2)) for m in re.finditer(r"model-x (\S+)\s+(-?[0-9.]+)", printed)}
    assert set(theirs) == {"anime", "photo", "Average"}, printed

    code, out, err = run(
        capsys,
        "bench",
        "images",
        images,
        "--prompts",
        prompts,
        "--scorers",
        "bi-grey",
        "--format",
        "json",
        "--no-progress",
    )
    assert code == 0, err
    ours = rows_of(validate_text(out, "bench images"))
    for group, label in (("anime", "anime"), ("photo", "photo"), ("average", "Average")):
        assert ours["bi-grey", group]["value"] == pytest.approx(theirs[label], abs=0.005001), group
    assert (
        ours["bi-grey", "anime"]["n"] == 85
        and ours["bi-grey", "photo"]["n"] == 3
        and ours["bi-grey", "photo"]["missing"] == 1
    )
    plain = (sum(100 * (20 + i % 7) / 255 for i in range(80)) + 5 * 100 * 230 / 255) / 85
    assert abs(ours["bi-grey", "anime"]["value"] - plain) > 10  # the chunk mean is what was checked, not the plain mean
    assert "1 prompt(s) of style photo have no image" in err


def test_imagereward_layout_is_the_mean_of_prompt_means(capsys, mocks, tmp_path):
    """test-benchmark.py line 83: DIR/<prompt_id>_<x>.png; line 91: a prompt's mean; line 108: their mean."""
    d = tmp_path / "ir"
    (tmp_path / "benchmark-prompts.json").write_text(
        json.dumps(
            [{"id": "001", "prompt": "a cat"}, {"id": "002", "prompt": "a dog"}, {"id": "../../etc", "prompt": "out"}]
        )
    )
    grey_jpg(d / "001_0.png", 0)
    grey_jpg(d / "001_1.png", 255)
    grey_jpg(d / "002_0.png", 255)
    code, out, err = run(
        capsys,
        "bench",
        "images",
        d,
        "--prompts",
        tmp_path / "benchmark-prompts.json",
        "--scorers",
        "bi-grey",
        "--format",
        "json",
        "--no-progress",
    )
    assert code == 0, err
    doc = validate_text(out, "bench images")
    row = rows_of(doc)["bi-grey", "all"]
    assert doc["results"]["layout"] == "imagereward" and row["n"] == 3
    assert row["value"] == pytest.approx(((0 + 100) / 2 + 100) / 2, abs=1e-6)  # not (0 + 100 + 100) / 3
    assert any("'../../etc_0.png'" in s["reason"] and "leaves" in s["reason"] for s in doc["skipped"])


# --- bench generate's table ----------------------------------------------------------------


@pytest.mark.slow  # two tiny models, each loaded twice: about 20 s on two cores
def test_bench_images_reproduces_bench_generate_table(capsys, tmp_path, monkeypatch):
    """`bench images OUT/guided` prints the guided column of `bench generate`'s table 4 on the same images (tiny HPSv2
    and a judge), because both score through prefcli.harness.image_scores and aggregate alike."""
    from picture_factory import structured_images
    from prefcli.generate import bench

    monkeypatch.setenv("PREFCLI_CACHE", str(tmp_path / "cache"))
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    for style in ("anime", "photo"):
        (prompts / f"{style}.json").write_text(json.dumps([f"a {style} fox, number {i}" for i in range(3)]))
    out = tmp_path / "bench-generate"
    pics = iter(structured_images([(40, 32)] * 12, seed=3))
    for arm in ("unguided", "guided"):
        for style in ("anime", "photo"):
            for i in range(3):
                (out / arm / style).mkdir(parents=True, exist_ok=True)
                next(pics).save(out / arm / style / f"{i:05d}.jpg")
    cfg = bench.BenchGenerateConfig(
        prompts=str(prompts), styles=["anime", "photo"], judges=["aesthetic"], weights={"*": "tiny"}, device="cpu"
    )
    data = bench.score(cfg, bench._prompts(cfg), out)
    table4 = {(r["metric"], r["style"]): r for r in bench.long_rows(data) if r["arm"] == "guided"}

    code, text, err = run(
        capsys,
        "bench",
        "images",
        out / "guided",
        "--prompts",
        prompts,
        "--scorers",
        "hpsv2,aesthetic",
        "--weights",
        "tiny",
        "--device",
        "cpu",
        "--format",
        "json",
        "--no-progress",
    )
    assert code == 0, err
    ours = rows_of(validate_text(text, "bench images"))
    assert len(table4) == 6
    for (metric, style), r in table4.items():
        mine = ours[metric, style]
        # The same images through the same code; only the batches differ (bench generate scores both arms at once),
        # which moves float32 matmuls in the last bits.
        assert (
            mine["n"] == r["n"]
            and mine["value"] == pytest.approx(r["value"], rel=1e-5)
            and mine["se"] == pytest.approx(r["se"], rel=1e-3)
        )
        assert f"{mine['value']:.2f}" == f"{r['value']:.2f}"  # what the tables print


# --- prompts files, hostile input, outputs -------------------------------------------------


@pytest.fixture
def flat(tmp_path) -> tuple[Path, Path]:
    d = tmp_path / "flat"
    grey_jpg(d / "a.jpg", 0)
    grey_jpg(d / "sub" / "b.jpg", 255)
    (d / "broken.jpg").write_bytes(b"not an image")
    secret = grey_jpg(tmp_path / "secret.jpg", 128)
    (d / "link.jpg").symlink_to(secret)
    prompts = tmp_path / "prompts.json"
    prompts.write_text(
        json.dumps(
            {
                "a.jpg": "a",
                "sub/b.jpg": "b",
                "broken.jpg": "c",
                "../secret.jpg": "d",
                str(secret): "e",
                "link.jpg": "f",
                "gone.jpg": "g",
            }
        )
    )
    return d, prompts


def test_a_prompts_file_names_files_inside_dir_and_bad_ones_are_skipped(capsys, mocks, flat):
    d, prompts = flat
    code, out, err = run(
        capsys, "bench", "images", d, "--prompts", prompts, "--scorers", "bi-grey", "--format", "json", "--no-progress"
    )
    assert code == 0 and "Traceback" not in err, err
    doc = validate_text(out, "bench images")
    row = rows_of(doc)["bi-grey", "all"]
    assert row["n"] == 2 and row["value"] == pytest.approx(50.0, abs=0.2)  # a.jpg and sub/b.jpg only
    reasons = {Path(s["item"]).name: s["reason"] for s in doc["skipped"]}
    assert "leaves the image folder" in reasons["secret.jpg"]  # both the '..' and the absolute name
    assert "link that leads outside" in reasons["link.jpg"]
    assert reasons["gone.jpg"] == "missing"
    assert "broken.jpg" in reasons
    assert [Path(i["path"]).name for i in doc["results"]["images"] if i["scores"]["bi-grey"] is not None] == [
        "a.jpg",
        "b.jpg",
    ]
    assert err.count("skipped ") == 5


@pytest.mark.parametrize(
    "case, needle",
    [
        ("deep", "nested"),
        ("not_utf8", "UTF-8"),
        ("list_of_strings", '{"id", "prompt"}'),
        ("number", "mapping file names"),
    ],
)
def test_a_bad_prompts_file_is_one_line_naming_it(capsys, mocks, tmp_path, case, needle):
    d = tmp_path / "imgs"
    grey_jpg(d / "a.jpg", 9)
    f = tmp_path / "p.json"
    content = {
        "deep": "[" * 100000 + "]" * 100000,
        "not_utf8": b'{"a.jpg": "\xff"}',
        "list_of_strings": '["a"]',
        "number": "3",
    }[case]
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    code, out, err = run(capsys, "bench", "images", d, "--prompts", f, "--scorers", "bi-grey", "--no-progress")
    line = one_error_line(code, err, str(f))
    assert needle in line, line


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["--prompts", "nosuch.json", "--scorers", "bi-grey"], ["nosuch.json", "no such prompts file"]),
        (["--prompts", "P", "--scorers", "bi-red"], ["bi-red is personalized", "--history"]),
        (["--prompts", "P", "--scorers", "nosuch-scorer"], ["nosuch-scorer"]),
        (["--prompts", "P", "--scorers", "bi-grey", "--styles", "anime"], ["--styles"]),
        (["--prompts", "P", "--scorers", "bi-grey", "--history", "H"], ["liked/ and disliked/"]),
    ],
)
def test_bad_arguments_are_one_line(capsys, mocks, flat, tmp_path, argv, needles):
    d, prompts = flat
    argv = [str(prompts) if a == "P" else str(tmp_path) if a == "H" else a for a in argv]
    code, out, err = run(capsys, "bench", "images", d, *argv, "--no-progress")
    one_error_line(code, err, *needles)


def test_resumes_through_the_score_cache(capsys, mocks, tmp_path):
    prompts, images = hpsv2_folder(tmp_path)
    args = [
        "bench",
        "images",
        images,
        "--prompts",
        prompts,
        "--scorers",
        "bi-grey",
        "--format",
        "json",
        "--no-progress",
        "--cache-dir",
        tmp_path / "scores",
    ]
    code, first, err = run(capsys, *args)
    assert code == 0, err
    assert Grey.calls == 8 + 3  # the runner scores each distinct image once: 8 grey levels in anime, 3 in photo
    code, second, err = run(capsys, *args)
    assert code == 0, err
    assert Grey.calls == 11  # nothing scored again
    assert json.loads(second)["results"]["rows"] == json.loads(first)["results"]["rows"]
    code, third, err = run(capsys, *args, "--no-cache")
    assert code == 0 and Grey.calls == 22, err


def test_history_joins_personalized_scorers(capsys, mocks, flat, tmp_path):
    d, prompts = flat
    person = tmp_path / "person"
    for i, (liked, disliked) in enumerate([((250, 0, 0), (0, 0, 250)), ((230, 10, 10), (10, 10, 230))]):
        Image.new("RGB", (8, 8), liked).save(
            (person / "liked").mkdir(parents=True, exist_ok=True) or person / "liked" / f"{i}.png"
        )
        Image.new("RGB", (8, 8), disliked).save(
            (person / "disliked").mkdir(parents=True, exist_ok=True) or person / "disliked" / f"{i}.png"
        )
    code, out, err = run(
        capsys,
        "bench",
        "images",
        d,
        "--prompts",
        prompts,
        "--scorers",
        "bi-grey,bi-red",
        "--history",
        person,
        "--format",
        "json",
        "--no-progress",
    )
    assert code == 0, err
    doc = validate_text(out, "bench images")
    assert set(doc["scorers"]) == {"bi-grey", "bi-red"} and doc["results"]["history_pairs"] == 2
    # Liked mean red is 240: a black image is 240 away, a white one 15.
    assert rows_of(doc)["bi-red", "all"]["value"] == pytest.approx((-240 - 15) / 2, abs=0.5)


def test_out_writes_every_table_and_never_replaces_a_foreign_file(capsys, mocks, tmp_path):
    prompts, images = hpsv2_folder(tmp_path)
    out = tmp_path / "tables"
    args = ["bench", "images", images, "--prompts", prompts, "--scorers", "bi-grey", "--out", out, "--no-progress"]
    code, text, err = run(capsys, *args)
    assert code == 0, err
    assert {p.name for p in out.iterdir()} >= {
        "bi-grey.md",
        "bi-grey.csv",
        "bi-grey.tex",
        "tables.md",
        "tables.tex",
        "results.json",
    }
    validate_text((out / "results.json").read_text(), "bench images")
    assert "Animation" in text and "±" in text
    code, text, err = run(capsys, *args)  # its own files: replaced
    assert code == 0, err
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / "bi-grey.md").write_text("mine")
    code, text, err = run(capsys, *args[:-3], "--out", foreign, "--no-progress")
    one_error_line(code, err, str(foreign))
    assert (foreign / "bi-grey.md").read_text() == "mine" and Grey.calls == 11  # refused before anything was scored


def test_csv_prints_one_table_and_names_the_others(capsys, mocks, tmp_path):
    prompts, images = hpsv2_folder(tmp_path)
    code, out, err = run(
        capsys, "bench", "images", images, "--prompts", prompts, "--scorers", "bi-grey,bi-grey2", "--no-progress"
    )
    one_error_line(code, err, "bi-grey2")
    code, out, err = run(
        capsys,
        "bench",
        "images",
        images,
        "--prompts",
        prompts,
        "--scorers",
        "bi-grey",
        "--format",
        "csv",
        "--no-progress",
    )
    assert code == 0, err
    assert out.splitlines()[0] == "group,n,score,score_se" and out.splitlines()[1].startswith("Animation,85,")


def test_an_interrupted_run_resumes_where_it_stopped(mocks, tmp_path, monkeypatch):
    """Scores reach the cache after every batch: a run stopped in its second batch is finished by the next run,
    which scores only what the first did not."""
    from prefcli.harness import bench_images as B

    prompts, images = hpsv2_folder(tmp_path)
    cfg = B.BenchImagesConfig(
        folder=str(images), prompts=str(prompts), scorers=["bi-grey"], batch_size=4, cache_dir=str(tmp_path / "scores")
    )
    real = Grey.score

    def stop_in_the_second_batch(self, candidates, state=None):
        if Grey.calls >= 4:
            raise KeyboardInterrupt
        return real(self, candidates, state)

    monkeypatch.setattr(Grey, "score", stop_in_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        B.run(cfg)
    assert Grey.calls == 4
    monkeypatch.setattr(Grey, "score", real)
    data = B.run(cfg)
    assert Grey.calls == 11  # the 7 distinct images the first run did not reach, and no more
    assert {r["group"]: r["n"] for r in B.summary_rows(data)} == {"anime": 85, "photo": 3, "average": 88}
