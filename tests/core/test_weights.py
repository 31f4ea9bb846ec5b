"""Weights specs, resolution (local, loopback URL, offline hub) and safe loading."""

from __future__ import annotations

import collections
import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import torch

from prefcli import weights
from prefcli.errors import WeightsError


class NotATensor:
    """A custom class: torch.save pickles it; loading must never run its code."""

    def __init__(self):
        self.payload = [1, 2, 3]

    def __reduce__(self):
        # Unpickling would call this. weights_only=True must refuse before it runs.
        return (_explode, ())


def _explode():  # pragma: no cover - reaching it is the failure
    raise AssertionError("pickled code was executed")


# --------------------------------------------------------------------------- specs


def test_env_helpers(monkeypatch, tmp_path):
    monkeypatch.setenv("PREFCLI_CACHE", str(tmp_path / "c"))
    assert weights.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("PREFCLI_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert weights.cache_dir() == Path.home() / ".cache" / "prefcli"

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("PREFCLI_OFFLINE", raising=False)
    assert weights.is_offline() is False
    monkeypatch.setenv("PREFCLI_OFFLINE", "yes")
    assert weights.is_offline() is True
    assert weights.is_offline(False) is False  # the explicit flag wins
    monkeypatch.setenv("PREFCLI_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert weights.is_offline() is True


def test_tiny():
    assert weights.is_tiny("tiny") and weights.is_tiny("tiny:7")
    assert not weights.is_tiny(None) and not weights.is_tiny("tinyllama/x") and not weights.is_tiny("tiny:x")
    assert weights.tiny_seed("tiny") == 0 and weights.tiny_seed("tiny:42") == 42
    src = weights.parse("tiny:3")
    assert src.kind == "tiny" and src.spec == "tiny:3"
    with pytest.raises(ValueError):
        weights.resolve_file("tiny")


def test_parse_hub_forms(tmp_path, monkeypatch):
    s = weights.parse("hf-hub:EPFL-VILAB/Metric-ViPer")
    assert (s.kind, s.repo_id, s.revision) == ("hub", "EPFL-VILAB/Metric-ViPer", None)
    s = weights.parse("hf-hub:xswu/HPSv2@v2.1")
    assert (s.kind, s.repo_id, s.revision) == ("hub", "xswu/HPSv2", "v2.1")
    s = weights.parse("hf-hub:gpt2")
    assert (s.kind, s.repo_id) == ("hub", "gpt2")
    monkeypatch.chdir(tmp_path)
    s = weights.parse("openai/clip-vit-large-patch14")  # bare org/name, no such folder here
    assert (s.kind, s.repo_id, s.revision) == ("hub", "openai/clip-vit-large-patch14", None)
    s = weights.parse("org/name@abc123")
    assert (s.kind, s.repo_id, s.revision) == ("hub", "org/name", "abc123")
    # An existing local folder of the same shape is a path, not a hub id.
    (tmp_path / "org" / "name").mkdir(parents=True)
    s = weights.parse("org/name")
    assert s.kind == "local" and s.path == (tmp_path / "org" / "name").resolve()
    with pytest.raises(WeightsError, match="hf-hub:a/b/c"):
        weights.parse("hf-hub:a/b/c")


def test_parse_url_forms():
    s = weights.parse("https://example.org/w/model.pth")
    assert (s.kind, s.url, s.sha256) == ("url", "https://example.org/w/model.pth", None)
    h = "ab" * 32
    s = weights.parse(f"https://example.org/w/model.pth#sha256={h.upper()}")
    assert (s.kind, s.url, s.sha256) == ("url", "https://example.org/w/model.pth", h)
    with pytest.raises(WeightsError, match="sha256"):
        weights.parse("https://example.org/w/model.pth#sha256=1234")


def test_parse_local_forms(tmp_path, monkeypatch):
    f = tmp_path / "w.safetensors"
    f.write_bytes(b"x")
    assert weights.parse(str(f)) == weights.WeightsSource(kind="local", spec=str(f), path=f.resolve())
    monkeypatch.setenv("HOME", str(tmp_path))
    s = weights.parse("~/w.safetensors")
    assert s.kind == "local" and s.path == f.resolve()
    for missing in ("./nope.pt", str(tmp_path / "nope.pt"), "~/nope.pt", "a/b/c.pt"):
        with pytest.raises(WeightsError, match=r"nope\.pt|c\.pt"):
            weights.parse(missing)
    with pytest.raises(WeightsError, match="empty"):
        weights.parse("  ")


# --------------------------------------------------------------------------- local


def test_resolve_local_file_and_dir(tmp_path):
    d = tmp_path / "ckpt"
    d.mkdir()
    f = d / "model.safetensors"
    f.write_bytes(b"weights!")
    assert weights.resolve_file(str(f)) == f.resolve()
    assert weights.resolve_file(str(f), "other-name.pt") == f.resolve()  # a file given directly wins
    assert weights.resolve_file(str(d), "model.safetensors") == (d / "model.safetensors").resolve()
    with pytest.raises(WeightsError, match="has no missing.bin"):
        weights.resolve_file(str(d), "missing.bin")
    with pytest.raises(WeightsError, match="folder"):
        weights.resolve_file(str(d))
    good = hashlib.sha256(b"weights!").hexdigest()
    assert weights.resolve_file(str(f), sha256=good) == f.resolve()
    with pytest.raises(WeightsError, match=f"expected {'0' * 64}, got {good}"):
        weights.resolve_file(str(f), sha256="0" * 64)
    assert weights.resolve_dir(str(d)) == d.resolve()
    with pytest.raises(WeightsError, match="is a file"):
        weights.resolve_dir(str(f))
    assert weights.sha256_file(f) == good


# --------------------------------------------------------------------------- URLs (loopback only)


def _self_signed_cert(d):
    """A throwaway certificate for 127.0.0.1 (prefcli downloads over https only)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl not found: cannot make a test certificate for the https server")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def http_root(tmp_path, monkeypatch):
    """A static https file server on 127.0.0.1 serving a temporary folder (its certificate trusted via SSL_CERT_FILE)."""
    import ssl

    root = tmp_path / "www"
    root.mkdir()
    cert, key = _self_signed_cert(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PREFCLI_CACHE", str(tmp_path / "cache"))
    try:
        yield root, f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_url_download_and_cache(http_root, tmp_path):
    root, base = http_root
    body = b"\x00\x01weights" * 1000
    (root / "aesthetic.pth").write_bytes(body)
    sha = hashlib.sha256(body).hexdigest()

    # Offline and not cached: a clear refusal, no download.
    with pytest.raises(WeightsError, match="offline mode is on"):
        weights.resolve_file(f"{base}/aesthetic.pth#sha256={sha}", offline=True)

    p = weights.resolve_file(f"{base}/aesthetic.pth#sha256={sha}", offline=False)
    assert p == tmp_path / "cache" / "urls" / sha / "aesthetic.pth"
    assert p.read_bytes() == body
    assert [x.name for x in p.parent.iterdir()] == ["aesthetic.pth"]  # no temporary left

    # Cached now: works offline, even after the server lost the file.
    (root / "aesthetic.pth").unlink()
    assert weights.resolve_file(f"{base}/aesthetic.pth", sha256=sha, offline=True) == p


def test_url_without_hash_is_cached_by_url(http_root, tmp_path):
    root, base = http_root
    (root / "m.bin").write_bytes(b"abc")
    p = weights.resolve_file(f"{base}/m.bin", offline=False)
    assert p.read_bytes() == b"abc" and p.name == "m.bin"
    assert p.parent.parent == tmp_path / "cache" / "urls"
    assert weights.resolve_file(f"{base}/m.bin", offline=True) == p


def test_url_sha_mismatch_is_discarded(http_root, tmp_path):
    root, base = http_root
    (root / "evil.pth").write_bytes(b"not what you expected")
    wrong = "1" * 64
    actual = hashlib.sha256(b"not what you expected").hexdigest()
    with pytest.raises(WeightsError, match=f"expected {wrong}, got {actual}"):
        weights.resolve_file(f"{base}/evil.pth#sha256={wrong}", offline=False)
    target_dir = tmp_path / "cache" / "urls" / wrong
    assert not target_dir.exists() or not any(target_dir.iterdir())
    with pytest.raises(WeightsError, match="offline mode"):  # nothing was kept
        weights.resolve_file(f"{base}/evil.pth#sha256={wrong}", offline=True)


def test_url_errors_are_weights_errors(http_root):
    _, base = http_root
    with pytest.raises(WeightsError, match="HTTP 404"):
        weights.resolve_file(f"{base}/missing.pth", offline=False)
    with pytest.raises(WeightsError, match="download failed"):
        weights.resolve_file("https://127.0.0.1:1/nothing-listens-here.pth", offline=False)
    with pytest.raises(WeightsError, match="https only"):
        weights.resolve_file(base.replace("https://", "http://") + "/x.pth", offline=False)
    with pytest.raises(WeightsError, match="folder"):
        weights.resolve_dir(f"{base}/x.pth")


# --------------------------------------------------------------------------- hub, offline


@pytest.fixture
def empty_hf_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    return tmp_path / "hf"


def test_offline_hub_miss_is_explained(empty_hf_home):
    with pytest.raises(WeightsError) as e:
        weights.resolve_file("hf-hub:xswu/HPSv2", "HPS_v2_compressed.pt", offline=True)
    msg = str(e.value)
    assert "hf-hub:xswu/HPSv2 (HPS_v2_compressed.pt) are not in the local Hugging Face cache" in msg
    assert "offline mode is on" in msg
    assert "`hf download xswu/HPSv2 HPS_v2_compressed.pt --local-dir DIR` and pass --weights DIR" in msg
    assert "HF_HOME" in msg and str(empty_hf_home / "hub") in msg

    with pytest.raises(
        WeightsError,
        match=r"hf-hub:EPFL-VILAB/Metric-ViPer@main are not in the local Hugging Face cache.*hf download EPFL-VILAB/Metric-ViPer --revision main",
    ):
        weights.resolve_dir("EPFL-VILAB/Metric-ViPer@main", allow_patterns=["*.safetensors"], offline=True)


def test_hub_cache_hit_offline(empty_hf_home):
    # Lay out one file exactly as huggingface_hub caches it, then resolve offline.
    repo = empty_hf_home / "hub" / "models--org--tiny-weights"
    commit = "a" * 40
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / "w.safetensors").write_bytes(b"cached")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    p = weights.resolve_file("hf-hub:org/tiny-weights", "w.safetensors", offline=True)
    assert p.read_bytes() == b"cached"
    assert weights.resolve_dir("org/tiny-weights", offline=True) == snap


# --------------------------------------------------------------------------- loading


def _sd() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "layers.0.weight": torch.randn(4, 3, generator=g),
        "layers.0.bias": torch.randn(4, generator=g),
        "step": torch.tensor(7),
    }


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_safetensors_round_trip(tmp_path):
    sd = _sd()
    p = tmp_path / "sub" / "m.safetensors"
    weights.save_state_dict(sd, p, metadata={"format": "pt"})
    assert [x.name for x in p.parent.iterdir()] == ["m.safetensors"]
    assert _same(weights.load_state_dict(p), sd)


def test_save_handles_tied_and_noncontiguous(tmp_path):
    w = torch.randn(3, 5)
    sd = {"a": w, "tied": w, "t": w.t()}
    p = tmp_path / "tied.safetensors"
    weights.save_state_dict(sd, p)
    out = weights.load_state_dict(p)
    assert torch.equal(out["a"], w) and torch.equal(out["tied"], w) and torch.equal(out["t"], w.t())
    with pytest.raises(WeightsError, match="not a tensor"):
        weights.save_state_dict({"x": 1}, tmp_path / "bad.safetensors")


def test_torch_save_plain_state_dict(tmp_path):
    sd = collections.OrderedDict(_sd())
    p = tmp_path / "m.pth"
    torch.save(sd, p)
    assert _same(weights.load_state_dict(p), dict(sd))


def test_state_dict_key_descent(tmp_path):
    sd = _sd()
    p = tmp_path / "ckpt.pt"
    torch.save({"state_dict": sd, "epoch": 3}, p)
    assert _same(weights.load_state_dict(p, key="state_dict"), sd)
    with pytest.raises(WeightsError, match=r"'state_dict'.*key='state_dict'"):
        weights.load_state_dict(p)
    # A file without the key is taken as it is.
    q = tmp_path / "plain.pt"
    torch.save(sd, q)
    assert _same(weights.load_state_dict(q, key="state_dict"), sd)


def test_pickled_objects_are_refused_not_executed(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(2), "obj": NotATensor()}, p)
    with pytest.raises(WeightsError, match="pickled Python objects.*will not execute.*conversion"):
        weights.load_state_dict(p)


def test_bad_files(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        weights.load_state_dict(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\xff" * 100)
    with pytest.raises(WeightsError, match="not a valid safetensors"):
        weights.load_state_dict(junk)
    junk2 = tmp_path / "junk.pt"
    junk2.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pt"):
        weights.load_state_dict(junk2)
    lst = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], lst)
    with pytest.raises(WeightsError, match="expected a dict of tensors, found list"):
        weights.load_state_dict(lst)


def test_no_heavy_imports_at_module_level():
    import subprocess
    import sys

    code = "import sys, prefcli.weights, prefcli.images; print(sorted(m for m in ('torch', 'huggingface_hub', 'safetensors') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
