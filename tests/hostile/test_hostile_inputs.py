"""Hostile files, part 3: hostile images and weights end in one clear line, never a traceback.

Every hostile input is built at test time in tmp_path (nothing is shipped).
A CLI case asserts the exit code, exactly one `prefcli: error:` line (or the
"skipped NAME: reason" lines with the rest ranked) and no "Traceback"
anywhere. Costs are bounded by checks, and the tests assert the check that
fired (the reason), never a timing: the 1x100,000 PNG is refused from its
header (decoding it would fail the test), the FIFO is never opened (an alarm
fails the test instead of hanging it), the 3 GB file is sparse and refused
by its size before a byte is read.

Tally: every test id here is one hostile input (see the closing note of
issue 10, `hostimg`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from cli_runner import one_error_line
from cli_runner import run_cli as run
from picture_factory import structured_images
from prefcli import images
from prefcli.errors import ImageError

pytestmark = pytest.mark.skipif(os.name != "posix", reason="FIFOs, devices and symlinks as POSIX has them")


# --- helpers ------------------------------------------------------------------


@contextlib.contextmanager
def deadline(seconds: int = 60):
    """Fail (not hang) if the body blocks, e.g. on opening a FIFO for reading."""

    def boom(signum, frame):
        raise TimeoutError(f"blocked for {seconds} s (a FIFO opened for reading?)")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def tall_png(path: Path) -> Path:
    """The issue's input: a 1x100,000 PNG of under 500 bytes (it decodes to 100,000 pixels only)."""
    Image.new("RGB", (1, 100_000), (200, 120, 40)).save(path, optimize=True)
    assert path.stat().st_size < 1000
    return path


def good_images(folder: Path, n: int = 3, seed: int = 0) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i, im in enumerate(structured_images([(40, 32)] * n, seed=seed)):
        im.save(folder / f"good{i}.png")
        names.append(f"good{i}.png")
    return names


def hostile_entries(folder: Path) -> dict[str, str]:
    """Plant every non-file and oversized entry the issue lists; {name: expected reason start}."""
    folder.mkdir(parents=True, exist_ok=True)
    os.mkfifo(folder / "pipe.png")
    (folder / "zero.png").symlink_to("/dev/zero")
    (folder / "loop1.png").symlink_to("loop2.png")
    (folder / "loop2.png").symlink_to("loop1.png")
    (folder / "dangling.png").symlink_to("nowhere.png")
    with open(folder / "huge.png", "wb") as f:  # sparse: 3 GB that cost no disk
        f.write(b"\x89PNG\r\n\x1a\n")
        f.truncate(3 * 1024**3)
    (folder / "text.png").write_text("these are words, not pixels\n" * 10)
    tall_png(folder / "tall.png")
    return {
        "pipe.png": "not a regular file (a FIFO",
        "zero.png": "not a regular file (a character device)",
        "loop1.png": "symlink loop",
        "loop2.png": "symlink loop",
        "dangling.png": "dangling symlink (its target nowhere.png does not exist)",
        "huge.png": "file too large: 3,221,225,472 bytes exceeds the limit",
        "text.png": "not an image",
        "tall.png": "extreme aspect ratio: 1×100000",
    }


def a_person(tmp_path: Path, candidates_seed: int = 0) -> tuple[Path, Path, Path]:
    """Two candidates in c/, two liked images in l/ and two disliked in d/ (each folder its own pictures)."""
    c, likes, dislikes = tmp_path / "c", tmp_path / "l", tmp_path / "d"
    good_images(c, 2, seed=candidates_seed)
    good_images(likes, 2, seed=1)
    good_images(dislikes, 2, seed=2)
    return c, likes, dislikes


#: A prompt-reading scorer's tiny weights and the prompt every candidate gets.
TINY_FOX = ("--weights", "tiny", "--prompt", "a fox")


def rank_cpu(capsys, folder, scorer: str, *args):
    """`prefcli rank FOLDER --scorer SCORER ARGS --device cpu` in this process: (exit code, stdout, stderr)."""
    return run(capsys, "rank", folder, "--scorer", scorer, *args, "--device", "cpu")


def skipped_lines(err: str) -> dict[str, str]:
    out = {}
    for ln in err.splitlines():
        if ln.startswith("skipped "):
            path, _, reason = ln[len("skipped ") :].partition(": ")
            out[os.path.relpath(path, os.getcwd()) if os.path.isabs(path) else path] = reason
    return out


def ranked_files(out: str) -> list[str]:
    return [Path(r["path"]).name for r in json.loads(out)["results"]["ranking"]]


# --- images: bounded before any pixel is decoded ---------------------------------


def test_tall_png_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch):
    path = tall_png(tmp_path / "tall.png")

    def no_decode(self, *a, **k):
        raise AssertionError("the pixels were decoded: the bound must be checked from the header")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    with pytest.raises(
        ImageError, match=r"tall\.png: extreme aspect ratio: 1×100000 is 100,000:1, over the limit of 50:1"
    ):
        images.load_image(path)
    with pytest.raises(ImageError, match="extreme aspect ratio"):
        images.decode_image(path.read_bytes(), name="tall.png", keep_mode=True)


def test_aspect_limit_is_a_named_bound_with_an_override(tmp_path, monkeypatch):
    im = Image.new("RGB", (500, 10), (10, 200, 90))  # exactly 50:1: allowed
    im.save(tmp_path / "wide.png")
    assert images.load_image(tmp_path / "wide.png").size == (500, 10)
    Image.new("RGB", (510, 10), (10, 200, 90)).save(tmp_path / "wider.png")  # 51:1
    with pytest.raises(ImageError, match="extreme aspect ratio: 510×10 is 51:1"):
        images.load_image(tmp_path / "wider.png")
    monkeypatch.setenv("PREFCLI_MAX_IMAGE_ASPECT", "60")
    assert images.load_image(tmp_path / "wider.png").size == (510, 10)
    monkeypatch.setenv("PREFCLI_MAX_IMAGE_ASPECT", "wide")
    with pytest.raises(ImageError, match="PREFCLI_MAX_IMAGE_ASPECT: not a number"):
        images.load_image(tmp_path / "wide.png")


def test_crafted_header_with_a_zero_side_is_refused():
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 1, 2_000_000_000, 8, 2, 0, 0, 0)  # 1 x 2e9: both bounds
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")
    with pytest.raises(ImageError, match="image too large|extreme aspect ratio"):
        images.decode_image(data, name="crafted.png")


def test_file_size_is_capped_before_reading(tmp_path, monkeypatch):
    huge = tmp_path / "huge.png"
    with open(huge, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.truncate(3 * 1024**3)  # sparse

    for fn in (images.load_image, images.content_id_of_file, images.read_image_file):
        with pytest.raises(
            ImageError,
            match=r"huge\.png: file too large: 3,221,225,472 bytes exceeds the limit of 536,870,912 \(set PREFCLI_MAX_IMAGE_BYTES",
        ):
            fn(huge)
    # The limit is the one named: a small real image over a lowered limit is refused too.
    good_images(tmp_path / "g", 1)
    monkeypatch.setenv("PREFCLI_MAX_IMAGE_BYTES", "100")
    with pytest.raises(ImageError, match="file too large"):
        images.load_image(tmp_path / "g" / "good0.png")


def test_signature_is_checked_before_the_file_is_read(tmp_path, monkeypatch):
    # A 200 MB file named .jpg that is no image: refused after its first 16 bytes.
    fake = tmp_path / "movie.jpg"
    with open(fake, "wb") as f:
        f.write(b"\x00\x00\x00\x18ftypmp42")
        f.truncate(200 * 1024**2)
    reads: list[int] = []
    real_fdopen = os.fdopen

    class Counting:
        def __init__(self, f):
            self.f = f

        def read(self, n=-1):
            reads.append(n)
            return self.f.read(n)

        def seek(self, *a):
            return self.f.seek(*a)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def counting_fdopen(*a, **k):
        return Counting(real_fdopen(*a, **k))

    monkeypatch.setattr(images.os, "fdopen", counting_fdopen)
    with pytest.raises(ImageError, match=r"movie\.jpg: not an image \(cannot identify image format"):
        images.load_image(fake)
    assert reads == [16]


def test_pil_image_given_to_the_api_has_the_same_bounds():
    import prefcli

    r = prefcli.rank(
        [Image.new("RGB", (1, 100_000), (9, 99, 9)), *structured_images([(40, 32)] * 2, seed=3)],
        scorer="clip",
        weights="tiny",
        prompt="a fox",
        device="cpu",
    )
    assert len(r.ranked) == 2
    assert [(p, why.split(":")[0]) for p, why in r.skipped] == [("<images image 0>", "extreme aspect ratio")]


@pytest.mark.parametrize("scorer", ["clip", "imagereward", "hpsv2", "pickscore", "aesthetic"])
def test_tall_png_among_good_ones_is_skipped_by_every_scorer(capsys, tmp_path, scorer):
    """Before: MemoryError in imagereward, a zero-size resize in hpsv2, a 15 GB allocation at 224 px for CLIP."""
    c = tmp_path / "c"
    names = good_images(c)
    tall_png(c / "tall.png")
    code, out, err = rank_cpu(capsys, c, scorer, *TINY_FOX, "--format", "json")
    assert code == 0 and "Traceback" not in err, err
    assert f"skipped {c / 'tall.png'}: extreme aspect ratio: 1×100000 is 100,000:1" in err
    assert sorted(ranked_files(out)) == names


# --- folders: only regular files are candidates; the rest is reported ------------


@pytest.mark.parametrize("recursive", [False, True], ids=["flat", "recursive"])
def test_hostile_folder_entries_are_skipped_with_a_message(capsys, tmp_path, monkeypatch, recursive):
    c = tmp_path / "c"
    names = good_images(c)
    want = hostile_entries(c)
    (c / "dir.png").mkdir()
    good_images(c / "dir.png", 1, seed=5)
    (c / "sub").mkdir()
    good_images(c / "sub", 1, seed=6)
    (c / "sublink").symlink_to("sub")
    if recursive:
        want["sublink"] = "symlink to a folder, not followed"
        names += ["good0.png", "good0.png"]  # dir.png/ and sub/ are walked
    else:
        want["dir.png"] = "is a folder, not an image file (its images are included with --recursive)"
    monkeypatch.chdir(tmp_path)
    with deadline():
        code, out, err = rank_cpu(
            capsys, "c", "clip", *(["--recursive"] if recursive else []), *TINY_FOX, "--format", "json"
        )
    assert code == 0 and "Traceback" not in err, err
    got = skipped_lines(err)
    assert set(got) == {f"c/{n}" for n in want}, err
    for name, reason in want.items():
        assert got[f"c/{name}"].startswith(reason), (name, got[f"c/{name}"])
    assert sorted(ranked_files(out)) == sorted(names)


def test_a_folder_of_only_hostile_entries_is_one_line(capsys, tmp_path):
    c = tmp_path / "c"
    hostile_entries(c)
    with deadline():
        code, out, err = rank_cpu(capsys, c, "clip", "--recursive", *TINY_FOX)
    one_error_line(code, err, str(c), "no readable image", "8 file(s) could not be read")
    assert out == ""


def test_hostile_entries_in_history_folders_and_pairs_files(capsys, tmp_path):
    c, likes, dislikes = a_person(tmp_path, candidates_seed=3)
    os.mkfifo(likes / "pipe.png")
    (dislikes / "zero.png").symlink_to("/dev/zero")
    history = ("--likes", likes, "--dislikes", dislikes, "--weights", "tiny", "--format", "json")
    with deadline():
        code, out, err = rank_cpu(capsys, c, "clip-probe", *history)
    assert code == 0 and "Traceback" not in err, err
    assert f"skipped {likes / 'pipe.png'}: not a regular file (a FIFO" in err
    assert f"skipped {dislikes / 'zero.png'}: not a regular file (a character device)" in err
    assert "history of 2 pair(s)" in err and len(json.loads(out)["results"]["ranking"]) == 2
    # A pairs file naming the FIFO and the device: those pairs are skipped, never opened.
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("liked,disliked\npipe.png,good0.png\ngood0.png,zero.png\ngood1.png,good1.png\n")
    with deadline():
        code, out, err = rank_cpu(capsys, c, "clip-probe", *history, "--pairs", pairs)
    assert code == 0 and "Traceback" not in err, err
    assert "history of 1 pair(s)" in err
    assert f"skipped {likes / 'pipe.png'}: not a regular file" in err


# --- weights: model folders, checkpoints, specs, devices ---------------------------


def _tiny_clip_folder(path: Path, seed: int = 0) -> Path:
    from prefcli import clip_common

    clip_common.tiny_clip_model(seed).save_pretrained(path)
    clip_common.offline_clip_tokenizer().save_pretrained(path)
    clip_common.tiny_image_processor(32, pil=True).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory) -> Path:
    return _tiny_clip_folder(tmp_path_factory.mktemp("clip") / "model")


def _bin_folder(src: Path, dst: Path, payload) -> Path:
    """The CLIP folder with its weights as a pickled pytorch_model.bin only (no safetensors)."""
    import shutil

    import torch

    shutil.copytree(src, dst)
    (dst / "model.safetensors").unlink()
    if isinstance(payload, bytes):
        (dst / "pytorch_model.bin").write_bytes(payload)
    else:
        torch.save(payload, dst / "pytorch_model.bin")
    return dst


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


CLIP_FOLDER_SCORERS = [
    ("clip", []),
    ("pickscore", []),
    ("clip-probe", ["--likes", "LIKES", "--dislikes", "DISLIKES"]),
    ("aesthetic", ["-o", "clip_weights", "WEIGHTS", "--weights", "tiny"]),
]


def _rank_with(capsys, tmp_path, scorer: str, extra: list[str], weights: Path):
    c = tmp_path / "c"
    if not c.is_dir():
        good_images(c, 2)
        good_images(tmp_path / "l", 1, seed=1)
        good_images(tmp_path / "d", 1, seed=2)
    subst = {"LIKES": str(tmp_path / "l"), "DISLIKES": str(tmp_path / "d"), "WEIGHTS": str(weights)}
    args = [subst.get(a, a) for a in extra]
    if "--weights" not in args:
        args += ["--weights", str(weights)]
    return rank_cpu(capsys, c, scorer, *args, "--prompt", "a fox", "--format", "json")


def test_plain_pytorch_model_bin_loads_through_the_restricted_loader(capsys, tmp_path, clip_folder, monkeypatch):
    """A state-dict .bin (what older transformers wrote) gives the same scores as the safetensors folder,
    and transformers' own torch.load is never called: prefcli's restricted loader reads it."""
    from safetensors.torch import load_file

    from prefcli import safe_load

    bin_dir = _bin_folder(clip_folder, tmp_path / "bin", load_file(str(clip_folder / "model.safetensors")))
    calls: list[str] = []
    real = safe_load.torch_load
    monkeypatch.setattr(safe_load, "torch_load", lambda p, **k: (calls.append(Path(p).name), real(p, **k))[1])
    code, out_bin, err = _rank_with(capsys, tmp_path, "clip", [], bin_dir)
    assert code == 0 and "Traceback" not in err, err
    assert calls == ["pytorch_model.bin"]
    code, out_st, err = _rank_with(capsys, tmp_path, "clip", [], clip_folder)
    assert code == 0, err
    assert [r["score"] for r in json.loads(out_bin)["results"]["ranking"]] == pytest.approx(
        [r["score"] for r in json.loads(out_st)["results"]["ranking"]], rel=1e-5
    )


@pytest.mark.parametrize("scorer,extra", CLIP_FOLDER_SCORERS, ids=[s for s, _ in CLIP_FOLDER_SCORERS])
def test_code_calling_pytorch_model_bin_in_a_model_folder_is_one_line(capsys, tmp_path, clip_folder, scorer, extra):
    marker = tmp_path / "PWNED"
    bad = _bin_folder(clip_folder, tmp_path / "evil", {"x": _Exploit(marker)})
    code, out, err = _rank_with(capsys, tmp_path, scorer, extra, bad)
    one_error_line(code, err, str(bad / "pytorch_model.bin"), "system")
    assert not marker.exists()


@pytest.mark.parametrize("scorer,extra", CLIP_FOLDER_SCORERS, ids=[s for s, _ in CLIP_FOLDER_SCORERS])
def test_garbage_pytorch_model_bin_in_a_model_folder_is_one_line(capsys, tmp_path, clip_folder, scorer, extra):
    bad = _bin_folder(clip_folder, tmp_path / "junk", b"not a pickle at all, just bytes" * 10)
    code, out, err = _rank_with(capsys, tmp_path, scorer, extra, bad)
    one_error_line(code, err, str(bad / "pytorch_model.bin"), "not a readable PyTorch file")


def _garbage(kind: str, good: bytes) -> bytes:
    if kind == "random":
        return os.urandom(5000)
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "lying-header":  # a header that claims more data than the file has
        header = json.dumps({"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}}).encode()
        return struct.pack("<Q", len(header)) + header + b"\0" * 64
    if kind == "not-json":
        return struct.pack("<Q", 20) + b"{this is not json!!}" + b"\0" * 16
    raise AssertionError(kind)


GARBAGE = ["random", "truncated", "lying-header", "not-json"]


@pytest.mark.parametrize("kind", GARBAGE)
@pytest.mark.parametrize("scorer,extra", CLIP_FOLDER_SCORERS, ids=[s for s, _ in CLIP_FOLDER_SCORERS])
def test_garbage_model_safetensors_in_a_model_folder_is_one_line(capsys, tmp_path, clip_folder, scorer, extra, kind):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(clip_folder, bad)
    (bad / "model.safetensors").write_bytes(_garbage(kind, (clip_folder / "model.safetensors").read_bytes()))
    code, out, err = _rank_with(capsys, tmp_path, scorer, extra, bad)
    one_error_line(code, err, str(bad / "model.safetensors"), "not a valid safetensors file")


@pytest.mark.parametrize("kind", GARBAGE)
def test_garbage_safetensors_weights_file_is_one_line(capsys, tmp_path, clip_folder, kind):
    """Scorers whose weights are one file (hpsv2, an aesthetic head) read it through the same check."""
    bad = tmp_path / "weights.safetensors"
    bad.write_bytes(_garbage(kind, (clip_folder / "model.safetensors").read_bytes()))
    for scorer, extra in (("hpsv2", []), ("aesthetic", ["-o", "clip_weights", "tiny"])):
        code, out, err = _rank_with(capsys, tmp_path, scorer, extra, bad)
        one_error_line(code, err, str(bad), "not a valid safetensors file")


@pytest.fixture(scope="module")
def preftoken_checkpoint(tmp_path_factory) -> Path:
    from prefcli.plugins import load_scorer
    from prefcli.vlm.checkpoint import save_vlm

    run_dir = tmp_path_factory.mktemp("run") / "run"
    s = load_scorer("preftoken", weights="tiny:3", batch_size=3)
    save_vlm(s.vlm, run_dir / "checkpoints" / "step-00000010" / "model", metadata={"n_ref": 2})
    return run_dir


@pytest.mark.parametrize("kind", GARBAGE)
def test_garbage_safetensors_in_a_training_checkpoint_is_one_line(capsys, tmp_path, preftoken_checkpoint, kind):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(preftoken_checkpoint, run_dir)
    model = run_dir / "checkpoints" / "step-00000010" / "model"
    files = sorted(model.rglob("*.safetensors"), key=lambda p: p.stat().st_size)
    target = files[-1]  # the biggest: the model or adapter weights
    target.write_bytes(_garbage(kind, target.read_bytes()))
    c, likes, dislikes = a_person(tmp_path)
    code, out, err = rank_cpu(
        capsys, c, "preftoken", "--weights", run_dir, "--likes", likes, "--dislikes", dislikes, "--prompt", "a fox"
    )
    one_error_line(code, err, str(target), "not a valid safetensors file")


@pytest.mark.parametrize("spec", ["tiny:" + "9" * 40, "tiny:18446744073709551616", "tiny:-" + "1" * 25])
def test_tiny_with_a_huge_seed_is_one_line(capsys, tmp_path, spec):
    c = tmp_path / "c"
    good_images(c, 2)
    code, out, err = rank_cpu(capsys, c, "clip", "--weights", spec, "--prompt", "a fox")
    one_error_line(code, err, "--weights tiny:", "64-bit integer")


@pytest.mark.parametrize(
    "device,needle", [("bogus", "not a device"), ("cuda", "no CUDA device"), ("cuda:7", "CUDA"), ("cpu:1", "no index")]
)
def test_bad_devices_are_one_line(capsys, tmp_path, device, needle):
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    c = tmp_path / "c"
    good_images(c, 2)
    code, out, err = run(
        capsys, "rank", c, "--scorer", "clip", "--weights", "tiny", "--prompt", "a fox", "--device", device
    )
    one_error_line(code, err, f"--device {device}", needle)
    # The same rule in the other commands that take --device, checked before anything is read or written.
    code, out, err = run(
        capsys, "eval", tmp_path / "no-such-dataset", "--scorer", "clip", "--weights", "tiny", "--device", device
    )
    one_error_line(code, err, f"--device {device}", needle)
    code, out, err = run(capsys, "generate", "a fox", "--model", "tiny", "--out", tmp_path / "gen", "--device", device)
    one_error_line(code, err, f"--device {device}", needle)
    assert not (tmp_path / "gen").exists()


@pytest.fixture(scope="module")
def vlm_folders(tmp_path_factory) -> dict[str, Path]:
    """A tiny IDEFICS2 base folder, a LoRA adapter for it (viper), and a tiny vlm-judge folder."""
    from peft import LoraConfig, get_peft_model

    from prefcli.vlm.model import LORA_TARGET_REGEX, tiny_vlm
    from prefcli_vlmjudge import tiny

    root = tmp_path_factory.mktemp("vlm")
    m = tiny_vlm(template="viper", seed=11).eval()
    m.core.save_pretrained(root / "base")
    m.tokenizer.save_pretrained(root / "base")
    get_peft_model(m.core, LoraConfig(r=4, lora_alpha=4, target_modules=LORA_TARGET_REGEX)).save_pretrained(
        root / "adapter"
    )
    tiny.save_tiny(root / "judge", seed=0)
    return {"base": root / "base", "adapter": root / "adapter", "judge": root / "judge"}


VLM_CASES = {
    "idefics": ("base", ["--weights", "{base}"]),
    "viper": ("adapter", ["--weights", "{adapter}", "-o", "base", "{base}"]),
    "vlm-judge": ("judge", ["--weights", "{judge}"]),
}


@pytest.mark.parametrize("kind", ["random", "truncated"])
@pytest.mark.parametrize("scorer", list(VLM_CASES))
def test_garbage_safetensors_in_a_vlm_folder_is_one_line(capsys, tmp_path, vlm_folders, scorer, kind):
    import shutil

    folders = {k: tmp_path / k for k in vlm_folders}
    for k, src in vlm_folders.items():
        shutil.copytree(src, folders[k])
    which, args = VLM_CASES[scorer]
    target = sorted(folders[which].glob("*.safetensors"), key=lambda p: p.stat().st_size)[-1]
    target.write_bytes(_garbage(kind, target.read_bytes()))
    c, likes, dislikes = a_person(tmp_path)
    args = [a.format(**{k: str(v) for k, v in folders.items()}) for a in args]
    code, out, err = rank_cpu(capsys, c, scorer, *args, "--likes", likes, "--dislikes", dislikes)
    one_error_line(code, err, str(target), "not a valid safetensors file")


def test_pickled_only_vlm_folder_is_refused_with_a_safetensors_hint(capsys, tmp_path, vlm_folders):
    import shutil

    import torch
    from safetensors.torch import load_file

    base = tmp_path / "base"
    shutil.copytree(vlm_folders["base"], base)
    for f in base.glob("*.safetensors"):
        torch.save(load_file(str(f)), base / "pytorch_model.bin")
        f.unlink()
    c, likes, dislikes = a_person(tmp_path)
    code, out, err = rank_cpu(capsys, c, "idefics", "--weights", base, "--likes", likes, "--dislikes", dislikes)
    one_error_line(code, err, str(base), "only pickled *.bin weights", "safetensors")


@pytest.mark.parametrize("payload", ["exploit", "junk"])
def test_pickled_weights_files_go_through_the_restricted_loader(capsys, tmp_path, payload):
    """hpsv2 checkpoints and aesthetic heads as .pt/.pth: never unpickled, one line naming the file."""
    import torch

    marker = tmp_path / "PWNED"
    for scorer, name, extra in (
        ("hpsv2", "HPS_v2_compressed.pt", []),
        ("aesthetic", "head.pth", ["-o", "clip_weights", "tiny"]),
    ):
        bad = tmp_path / name
        if payload == "exploit":
            torch.save({"state_dict": {"x": _Exploit(marker)}}, bad)
        else:
            bad.write_bytes(b"PK\x03\x04 not really a zip" * 8)
        code, out, err = _rank_with(capsys, tmp_path, scorer, extra, bad)
        one_error_line(code, err, str(bad))
        assert not marker.exists()
