"""The input pipeline (issue 23): bounded memory, --workers on eval and bench, the run's image cache, the throughput report."""

from __future__ import annotations

import gc
import json
import threading
import weakref
from collections import Counter
from pathlib import Path

import pytest

from cli_runner import run_cli, tiny_eval
from picture_factory import structured_images
from prefcli import images


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> dict[str, Path]:
    """40 candidates and a 2 + 2 history."""
    root = tmp_path_factory.mktemp("many")
    pics = structured_images([(40, 32)] * 44, seed=3)
    out = {}
    for sub, idx in (("cands", range(0, 40)), ("liked", range(40, 42)), ("disliked", range(42, 44))):
        d = root / sub
        d.mkdir()
        for i in idx:
            pics[i].save(d / f"{sub[0]}{i:02d}.png")
        out[sub] = d
    return out


# --------------------------------------------------------------------------- bounded memory


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("scorer", ["viper", "clip-probe", "aesthetic"])
def test_a_ranking_holds_a_few_batches_of_decoded_images_not_the_folder(monkeypatch, many, scorer, workers):
    """40 candidates in batches of 4: at no decode are more than 3 batches (+ the history) alive.

    Before: one history's candidates were released only after the last batch (viper), and a
    probe decoded every candidate up front to find the unreadable ones (clip-probe): 40 alive.
    """
    import prefcli

    bound = 3 * 4 + 4
    alive: list[weakref.ref] = []  # PIL images are unhashable: no WeakSet
    peak = [0]
    lock = threading.Lock()
    real = images.decode_image

    def count() -> int:
        return sum(r() is not None for r in alive)

    def tracking(data, name="<bytes>", **kw):
        im = real(data, name, **kw)
        with lock:
            alive.append(weakref.ref(im))
            n = count()
            # CPython frees an image when its last reference goes, so the count without a collection is
            # already exact unless a reference cycle holds one. A full gc.collect() costs ~0.5 s with torch
            # loaded; it can only lower the count, so it runs only when the count is over the bound: the
            # assertion passes or fails exactly as with a collection at every decode.
            if n > bound:
                gc.collect()
                n = count()
            peak[0] = max(peak[0], n)
        return im

    monkeypatch.setattr(images, "decode_image", tracking)
    kw = dict(likes=many["liked"], dislikes=many["disliked"]) if scorer != "aesthetic" else {}
    res = prefcli.rank(
        many["cands"],
        scorer=scorer,
        weights="tiny",
        device="cpu",
        batch_size=4,
        workers=workers,
        image_cache_mb=0,
        **kw,
    )
    assert res.total == 40
    assert peak[0] <= bound, peak[0]


def test_the_image_cache_keeps_its_bound_in_bytes_and_least_recently_used_first():
    from PIL import Image

    from prefcli.image_cache import ImageCache

    cache = ImageCache(max_mb=3 * 100 * 100 * 3 / 2**20)  # room for three 100x100 RGB images
    loads = Counter()

    def loader(i):
        def load():
            loads[i] += 1
            return Image.new("RGB", (100, 100), (i, 0, 0))

        return load

    for i in range(4):
        cache.load(str(i), loader(i))
    assert len(cache) == 3 and cache.bytes == 3 * 30_000
    cache.load("1", loader(1))  # a hit: 1 becomes the most recent
    cache.load("4", loader(4))  # evicts 2, the least recently used
    cache.load("1", loader(1))
    cache.load("2", loader(2))
    assert loads == Counter({0: 1, 1: 1, 2: 2, 3: 1, 4: 1})
    assert cache.bytes <= cache.max_bytes
    big = ImageCache(max_mb=0.01)
    assert big.load("x", lambda: Image.new("RGB", (100, 100))).size == (100, 100) and len(big) == 0  # too large to keep


def test_the_image_cache_decodes_once_for_threads_asking_together_and_remembers_a_bad_file():
    from PIL import Image

    from prefcli.errors import ImageError
    from prefcli.image_cache import ImageCache

    cache = ImageCache(10)
    calls = Counter()
    gate = threading.Event()

    def slow():
        calls["ok"] += 1
        gate.wait(5)
        return Image.new("RGB", (8, 8))

    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.load("k", slow))) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(5)
    assert calls["ok"] == 1 and len(got) == 4 and all(g is got[0] for g in got)

    def bad():
        calls["bad"] += 1
        raise ImageError("x.png: truncated or corrupt image data")

    for _ in range(3):
        with pytest.raises(ImageError, match="x.png: truncated"):
            cache.load("b", bad)
    assert calls["bad"] == 1


def test_stage_seconds_are_exclusive_of_the_stages_inside_them(monkeypatch):
    from types import SimpleNamespace

    from prefcli import stage_times
    from prefcli.stage_times import Stage, timed

    # A clock the test moves: real sleeps overslept on a loaded machine (0.02 s asleep read as 0.07 s).
    now = [100.0]
    monkeypatch.setattr(stage_times, "time", SimpleNamespace(perf_counter=lambda: now[0]))

    def sleep(seconds: float) -> None:
        now[0] += seconds

    outer, inner = Stage("outer"), Stage("inner")
    with timed(outer):
        sleep(0.02)
        with timed(inner):
            sleep(0.05)
    assert inner.seconds == pytest.approx(0.05)
    assert outer.seconds == pytest.approx(0.02)  # the inner 0.05 s is not counted twice
    assert outer.count == inner.count == 1


# --------------------------------------------------------------------------- decode once per run


# viper (a history model over every protocol and N_ref, ~5 CPU-s) in the full suite only; clip in the fast tier too.
@pytest.mark.parametrize("scorer", [pytest.param("viper", marks=pytest.mark.slow), "clip"])
def test_bench_decodes_each_dataset_image_once_over_every_protocol_and_n_ref(
    decodes, small_dataset, tmp_path, capsys, scorer
):
    """Protocols and N_ref values meet the same images again; the run's image cache decodes each once.
    With --image-cache-mb 0 (every use decodes) the same bench decodes images again."""
    args = [
        "bench",
        small_dataset,
        "--scorers",
        scorer,
        "--weights",
        "tiny",
        "--device",
        "cpu",
        "--no-cache",
        "--no-progress",
        "--bootstrap",
        "10",
        "--protocols",
        "1v1,1v3",
        "--n-ref",
        "1,2,4",
        "--workers",
        "2",
    ]
    code, _, err = run_cli(capsys, *args, "--out", tmp_path / "a")
    assert code == 0, err
    assert decodes and set(decodes.values()) == {1}, Counter(decodes.values())
    decodes.clear()
    code, _, err = run_cli(capsys, *args, "--out", tmp_path / "b", "--image-cache-mb", "0")
    assert code == 0, err
    assert max(decodes.values()) > 1


# --------------------------------------------------------------------------- --workers: the same numbers


def _task_scores(path: Path) -> list:
    doc = json.loads(path.read_text())
    return [(t["task_id"], t["scores"]) for t in doc["results"]["tasks"]]


@pytest.mark.parametrize("scorer", ["viper", "clip-probe", "clip"])
def test_eval_gives_identical_scores_with_workers_0_and_2(small_dataset, tmp_path, capsys, scorer):
    outs = {}
    for w in (0, 2):
        out = tmp_path / f"w{w}.json"
        code, _, err = run_cli(
            capsys,
            *tiny_eval(small_dataset, scorer, "--no-cache"),
            "--bootstrap",
            "10",
            "--workers",
            str(w),
            "--out",
            out,
            "--format",
            "json",
        )
        assert code == 0, err
        outs[w] = _task_scores(out)
        assert json.loads(out.read_text())["results"]["stats"]["workers"] == w
    assert outs[0] == outs[2] and len(outs[0]) > 5  # the same tasks, the same floats


def test_eval_with_workers_stops_on_a_corrupt_dataset_image_in_one_line(small_dataset, tmp_path, capsys):
    import shutil

    from prefcli.data.dataset import Dataset, image_relpath

    ds = tmp_path / "ds"
    shutil.copytree(small_dataset, ds)
    cand = Dataset.open(ds).tasks("test", "1v3")[2].candidates[1]
    p = ds / image_relpath(cand.image_id)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    code, out, err = run_cli(
        capsys,
        *tiny_eval(ds, "viper", "--no-cache"),
        "--workers",
        "2",
    )
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("prefcli: error:") and p.name in lines[0], err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- the throughput report


def test_rank_verbose_and_json_report_decodes_and_where_the_seconds_went(many, capsys):
    import json_schemas

    code, out, err = run_cli(
        capsys,
        "rank",
        many["cands"],
        "--likes",
        many["liked"],
        "--dislikes",
        many["disliked"],
        "--scorer",
        "viper",
        "--weights",
        "tiny",
        "--device",
        "cpu",
        "--format",
        "json",
        "--verbose",
        "--workers",
        "2",
        "--no-progress",
    )
    assert code == 0, err
    doc = json_schemas.validate_text(out, "rank")
    stats = doc["results"]["stats"]
    assert stats["images_decoded"] == 40  # the candidates; the history was decoded when its folders were read
    assert stats["workers"] == 2
    assert stats["model_seconds"] > 0 and stats["preprocess_seconds"] > 0 and stats["decode_seconds"] > 0
    line = next(ln for ln in err.splitlines() if ln.startswith("throughput:"))
    assert "40 image(s) decoded" in line and "the model" in line and "preprocessing" in line and "most time in" in line


def test_eval_and_bench_verbose_print_the_throughput(small_dataset, tmp_path, capsys):
    code, _, err = run_cli(
        capsys,
        "eval",
        small_dataset,
        "--scorer",
        "clip",
        "--weights",
        "tiny",
        "--device",
        "cpu",
        "--no-cache",
        "--no-progress",
        "--bootstrap",
        "10",
        "-v",
    )
    assert code == 0, err
    assert any(ln.startswith("throughput of clip:") and "image(s) decoded" in ln for ln in err.splitlines()), err
    code, _, err = run_cli(
        capsys,
        "bench",
        small_dataset,
        "--scorers",
        "clip,aesthetic",
        "--weights",
        "tiny",
        "--device",
        "cpu",
        "--no-cache",
        "--no-progress",
        "--bootstrap",
        "10",
        "--protocols",
        "1v1",
        "--out",
        tmp_path / "b",
        "--verbose",
    )
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if "image(s) decoded" in ln]
    assert [ln.split(":")[0] for ln in lines] == ["clip 1v1", "aesthetic 1v1"], err
    assert lines[1].startswith("aesthetic 1v1: 0 image(s) decoded")  # the bench's image cache already held them


def test_workers_default_to_the_cores(monkeypatch):
    from prefcli.cli.options import workers_count

    assert workers_count(0) == 0 and workers_count(3) == 3
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 5}, raising=False)
    assert workers_count(None) == 3


@pytest.mark.parametrize("scorer", ["viper", "preftoken"])
def test_decode_threads_also_preprocess_for_the_vlms_with_the_same_scores(monkeypatch, many, scorer):
    """With --workers the IDEFICS2 family's preprocessing runs in the decode threads too; not one float changes."""
    import prefcli
    from prefcli.vlm.model import PrefVLM

    ahead = Counter()
    real = PrefVLM.prepare_pixels

    def counting(self, imgs):
        ahead[threading.current_thread() is threading.main_thread()] += len(imgs)
        return real(self, imgs)

    monkeypatch.setattr(PrefVLM, "prepare_pixels", counting)
    runs = {}
    for w in (0, 2):
        res = prefcli.rank(
            many["cands"],
            likes=many["liked"],
            dislikes=many["disliked"],
            scorer=scorer,
            weights="tiny",
            device="cpu",
            batch_size=4,
            workers=w,
        )
        runs[w] = [(r.path, r.score) for r in res.ranked]
    assert ahead == Counter({False: 40}), ahead  # every candidate, in a decode thread, only with workers
    assert runs[0] == runs[2]


@pytest.mark.parametrize("scorer", ["viper", "clip"])
def test_a_cached_candidate_is_never_decoded_even_with_workers(decodes, small_dataset, tmp_path, capsys, scorer):
    args = [
        *tiny_eval(small_dataset, scorer),
        "--bootstrap",
        "10",
        "--cache-dir",
        tmp_path / "cache",
        "--workers",
        "2",
        "--format",
        "json",
    ]
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    assert decodes
    decodes.clear()
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert not decodes, decodes
    assert json.loads(out)["results"]["stats"]["images_decoded"] == 0
