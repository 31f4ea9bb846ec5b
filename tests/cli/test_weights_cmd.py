"""`prefcli weights ls|pull|rm`, offline: a hub-layout cache, a loopback https file server, a loopback fake hub."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cli_runner import run_cli as run
from json_schemas import validate_text
from prefcli import weights, weights_used
from tests.core.test_weights import http_root  # noqa: F401 - the loopback https server fixture

COMMIT = "c" * 40


@pytest.fixture
def caches(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("PREFCLI_CACHE", str(tmp_path / "prefcli"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def _hub_repo(root, repo_id: str, files: dict[str, bytes], commit: str = COMMIT):
    """A repository laid out exactly as huggingface_hub caches it: blobs, a snapshot of links, refs/main."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for name, body in files.items():
        blob = repo / "blobs" / hashlib.sha256(body).hexdigest()
        blob.write_bytes(body)
        (snap / name).symlink_to(blob)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return repo


def _rows(out: str) -> dict[str, dict]:
    return {r["spec"]: r for r in json.loads(out)["results"]["rows"]}


def test_ls_lists_defaults_cached_repos_and_used_specs(capsys, caches):
    code, out, err = run(capsys, "weights", "ls", "--format", "json")
    assert code == 0, err
    rows = _rows(validate_text(out, "weights ls") and out)
    clip = rows["hf-hub:openai/clip-vit-large-patch14"]
    assert (
        clip["scorers"] == ["clip"]
        and clip["state"] == "download"
        and clip["present"] is False
        and clip["size_bytes"] is None
    )
    assert (
        "viper (-o base)" in rows["hf-hub:HuggingFaceM4/idefics2-8b"]["scorers"]
    )  # an option naming weights counts too

    _hub_repo(caches / "hf", "openai/clip-vit-large-patch14", {"config.json": b"{}", "model.safetensors": b"x" * 1000})
    local = caches / "mine.safetensors"
    local.write_bytes(b"y" * 10)
    weights.resolve_file(str(local))  # a scorer loading a local file records it
    rows = _rows(run(capsys, "weights", "ls", "--format", "json")[1])
    clip = rows["hf-hub:openai/clip-vit-large-patch14"]
    assert (clip["state"], clip["present"], clip["size_bytes"], clip["revision"]) == ("cached", True, 1002, COMMIT)
    mine = rows[str(local)]
    assert mine["state"] == "local" and mine["size_bytes"] == 10 and mine["scorers"] == [] and mine["last_used"]
    # `prefcli scorers` reads the same facts
    code, out, _ = run(capsys, "scorers", "--format", "json")
    srows = {r["name"]: r for r in json.loads(out)["results"]["rows"]}
    assert srows["clip"]["weights_here"] == "cached" and srows["clip"]["weights_where"] == clip["where"]


def test_the_used_record_is_bounded_and_a_bad_file_reads_as_empty(caches, monkeypatch):
    monkeypatch.setattr(weights_used, "MAX_ENTRIES", 10)
    for i in range(15):
        weights.record_used(f"hf-hub:org/m{i}")
    weights.record_used("hf-hub:org/m3")  # used again: first, and once
    got = [e["spec"] for e in weights_used.read()]
    assert len(got) == 10 and got[0] == "hf-hub:org/m3" and got.count("hf-hub:org/m3") == 1
    assert "hf-hub:org/m0" not in got and "hf-hub:org/m4" not in got  # the least recently used went first
    weights.record_used("tiny:3")
    assert all(e["spec"] != "tiny:3" for e in weights_used.read())  # nothing to list for built-in weights
    path = weights_used.record_file()
    path.write_text("[" * 10000)
    assert weights_used.read() == []
    path.write_bytes(b"{" + b" " * (weights_used.MAX_FILE_BYTES + 10) + b"}")
    assert weights_used.read() == []
    path.write_text(
        json.dumps({"format": 1, "specs": [{"spec": 3}, {"spec": "hf-hub:a/b", "kind": "hub", "last_used": "t"}]})
    )
    assert weights_used.read() == [{"spec": "hf-hub:a/b", "kind": "hub", "last_used": "t"}]


def test_pull_offline_says_what_it_would_fetch_and_fetches_nothing(capsys, caches, monkeypatch):
    code, out, err = run(capsys, "weights", "pull", "hpsv2", "https://example.org/w.pth#sha256=" + "a" * 64)
    assert code == 2 and out == ""
    line = err.strip()
    assert line.count("\n") == 0 and line.startswith(
        "prefcli: error: offline mode is on (HF_HUB_OFFLINE or PREFCLI_OFFLINE is set)"
    )
    assert "would fetch: hf-hub:xswu/HPSv2; https://example.org/w.pth (sha256 aaaaaaaaaaaa...)" in line
    assert not (caches / "hf").exists() and not (caches / "prefcli" / "urls").exists()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    code, _, err = run(capsys, "weights", "pull", "clip", "--offline")
    assert (
        code == 2
        and "offline mode is on (--offline)" in err
        and "would fetch: hf-hub:openai/clip-vit-large-patch14" in err
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # a scorer's processor option needs the processor's configs and vocabulary, not the CLIP-H weights beside them
    err = run(capsys, "weights", "pull", "pickscore")[2]
    assert "hf-hub:yuvalkirstain/PickScore_v1; hf-hub:laion/CLIP-ViT-H-14-laion2B-s32B-b79K files *.json, *.txt," in err
    # already here: nothing to fetch, so offline is fine
    _hub_repo(caches / "hf", "xswu/HPSv2", {"HPS_v2.1_compressed.pt": b"z"})
    code, out, err = run(capsys, "weights", "pull", "hpsv2", "--format", "json")
    assert code == 0, err
    row = validate_text(out, "weights pull")["results"]["rows"][0]
    assert row["action"] == "already here" and row["revision"] == COMMIT


def test_pull_url_verifies_sha256(capsys, caches, http_root, monkeypatch):  # noqa: F811
    root, base = http_root
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    body = b"head weights" * 100
    (root / "head.pth").write_bytes(body)
    sha = hashlib.sha256(body).hexdigest()
    code, out, err = run(capsys, "weights", "pull", f"{base}/head.pth#sha256={'0' * 64}")
    assert code == 2 and "sha256 mismatch" in err and not any((weights.cache_dir() / "urls").rglob("head.pth"))
    code, out, err = run(capsys, "weights", "pull", f"{base}/head.pth#sha256={sha}", "--format", "json")
    assert code == 0, err
    row = validate_text(out, "weights pull")["results"]["rows"][0]
    assert row["action"] == "fetched" and row["size_bytes"] == len(body) and row["revision"] == sha
    assert (weights.cache_dir() / "urls" / sha / "head.pth").read_bytes() == body
    # fetched without its hash, a scorer that pins the hash finds it offline
    (root / "other.pth").write_bytes(body)
    assert run(capsys, "weights", "pull", f"{base}/other.pth")[0] == 0
    assert weights.resolve_file(f"{base}/other.pth", sha256=sha, offline=True).read_bytes() == body


class FakeHub(BaseHTTPRequestHandler):
    """The two endpoints huggingface_hub uses to pull a model: repository info and file resolution."""

    files: dict[str, bytes] = {}

    def log_message(self, *args):
        pass

    def _file(self):
        prefix = "/org/tiny-model/resolve/"
        if not self.path.startswith(prefix):
            return None
        name = self.path[len(prefix) :].split("/", 1)[1]
        return self.files.get(name)

    def _send_file(self, head: bool):
        body = self._file()
        if body is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def do_HEAD(self):
        self._send_file(head=True)

    def do_GET(self):
        if self.path.startswith("/api/models/org/tiny-model"):
            doc = json.dumps(
                {
                    "id": "org/tiny-model",
                    "sha": COMMIT,
                    "siblings": [{"rfilename": n, "size": len(b)} for n, b in self.files.items()],
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(doc)))
            self.end_headers()
            self.wfile.write(doc)
            return
        self._send_file(head=False)


@pytest.fixture
def fake_hub(caches, monkeypatch):
    from huggingface_hub import constants

    FakeHub.files = {
        "config.json": b"{}",
        "model.safetensors": b"s" * 64,
        "pytorch_model.bin": b"p" * 64,
        "tf_model.h5": b"h" * 64,
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", constants.ENDPOINT + "/{repo_id}/resolve/{revision}/{filename}"
    )
    try:
        yield caches
    finally:
        server.shutdown()
        server.server_close()


def test_pull_hub_fetches_configs_and_safetensors_only(capsys, fake_hub, monkeypatch):
    monkeypatch.setenv("PREFCLI_PROGRESS", "plain")
    code, out, err = run(capsys, "weights", "pull", "hf-hub:org/tiny-model", "--format", "json")
    assert code == 0, err
    row = validate_text(out, "weights pull")["results"]["rows"][0]
    snap = fake_hub / "hf" / "models--org--tiny-model" / "snapshots" / COMMIT
    assert sorted(p.name for p in snap.iterdir()) == ["config.json", "model.safetensors"]  # no pickle, no TF weights
    assert (row["action"], row["files"], row["size_bytes"], row["revision"], row["where"]) == (
        "fetched",
        2,
        66,
        COMMIT,
        str(snap),
    )
    assert (
        "[weights pull 66/66] pulling hf-hub:org/tiny-model · 100.0%" in err
    )  # prefcli.progress's plain line in a log
    assert (snap / "model.safetensors").read_bytes() == b"s" * 64
    from prefcli.weights_here import availability

    assert availability("org/tiny-model").state == "cached"  # what `prefcli scorers` and `weights ls` read
    assert weights.resolve_dir("org/tiny-model", offline=True) == snap  # and what a scorer then loads, offline
    row = json.loads(run(capsys, "weights", "pull", "org/tiny-model", "--format", "json")[1])["results"]["rows"][0]
    assert row["action"] == "already here"
    code, out, err = run(capsys, "weights", "pull", "org/tiny-model", "--include", "*.h5", "--format", "json")
    assert code == 0 and (snap / "tf_model.h5").is_file()
    code, out, err = run(capsys, "weights", "pull", "org/tiny-model", "--include", "*.gguf")
    assert code == 2 and "no file of the repository matches *.gguf" in err and "--include PATTERN" in err


def test_rm_removes_downloads_only_and_asks_first(capsys, caches, monkeypatch):
    repo = _hub_repo(caches / "hf", "xswu/HPSv2", {"HPS_v2.1_compressed.pt": b"z" * 100})
    code, out, err = run(capsys, "weights", "rm", "hpsv2")  # no terminal to ask on: refused, nothing removed
    assert code == 2 and "pass --yes" in err and "hf-hub:xswu/HPSv2 (100 B)" in err and repo.exists()

    mine = caches / "my-weights"
    mine.mkdir()
    (mine / "w.safetensors").write_bytes(b"1")
    code, out, err = run(capsys, "weights", "rm", str(mine), "--yes")
    assert code == 2 and "a local path, not a download" in err and (mine / "w.safetensors").is_file()

    code, out, err = run(capsys, "weights", "rm", "hpsv2", "--yes", "--format", "json")
    assert code == 0, err
    row = validate_text(out, "weights rm")["results"]["rows"][0]
    assert (row["action"], row["size_bytes"]) == ("removed", 100)
    assert not (repo / "snapshots").exists() or not any((repo / "snapshots").iterdir())
    row = json.loads(run(capsys, "weights", "rm", "hpsv2", "--yes", "--format", "json")[1])["results"]["rows"][0]
    assert row["action"] == "not here"


def test_rm_url_download_removes_its_file_only(capsys, caches):
    url = "https://example.org/w/head.pth"
    target = weights.url_target(weights.parse(url), None)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"abc")
    keep = target.parent.parent / "someone-elses.txt"
    keep.write_text("not prefcli's")
    code, out, err = run(capsys, "weights", "rm", url, "--yes")
    assert code == 0, err
    assert not target.exists() and not target.parent.exists() and keep.is_file()


def test_ls_never_walks_a_huge_folder(capsys, caches, monkeypatch):
    from prefcli import weights_here

    big = caches / "home"
    big.mkdir()
    for i in range(5):
        (big / f"f{i}").write_bytes(b"x")
    weights.record_used(str(big))
    assert _rows(run(capsys, "weights", "ls", "--format", "json")[1])[str(big)]["size_bytes"] == 5
    monkeypatch.setattr(weights_here, "MAX_COUNTED_FILES", 3)
    assert _rows(run(capsys, "weights", "ls", "--format", "json")[1])[str(big)]["size_bytes"] is None


def test_pull_refuses_a_hub_file_name_outside_the_repository(capsys, fake_hub):
    FakeHub.files = {"config.json": b"{}", "../../escaped.json": b"{}"}
    code, out, err = run(capsys, "weights", "pull", "org/tiny-model")
    assert code == 2 and "a file name outside the repository ('../../escaped.json'); nothing fetched" in err
    assert (
        not list(fake_hub.rglob("escaped.json"))
        and not (fake_hub / "hf" / "models--org--tiny-model" / "snapshots").exists()
    )
