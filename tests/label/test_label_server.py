"""The labelling server: the token, the id-only image route, answers and undo (Starlette's test client)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("starlette", reason="prefcli[label] is not installed")
pytest.importorskip("httpx", reason="Starlette's test client needs httpx")

from starlette.testclient import TestClient  # noqa: E402

from label_fixtures import make_pool, make_session  # noqa: E402
from prefcli.label.server import bind, is_loopback, make_app, url_of  # noqa: E402

TOKEN = "ab" * 24


@pytest.fixture
def client(tmp_path):
    session = make_session(make_pool(tmp_path / "pool"), tmp_path / "p")
    return TestClient(make_app(session, TOKEN)), session


def test_every_route_refuses_a_missing_or_wrong_token(client):
    c, session = client
    image = session.pool.images[0].image_id
    for path in ("/", "/page.js", "/page.css", "/api/state", f"/image/{image}"):
        assert c.get(path).status_code == 403
        assert c.get(path, params={"token": "ab" * 23}).status_code == 403
        assert c.get(path, params={"token": TOKEN}).status_code == 200
    for path in ("/api/answer", "/api/undo"):
        assert c.post(path, json={}).status_code == 403
        assert c.post(path, json={}, headers={"X-Prefcli-Token": TOKEN[:-1] + "c"}).status_code == 403
    assert session.store.counts()["answered"] == 0


def test_the_page_carries_the_token_and_safe_headers(client):
    c, _ = client
    r = c.get("/", params={"token": TOKEN})
    assert f"page.js?token={TOKEN}" in r.text and "{{token}}" not in r.text
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "script-src 'self'" in r.headers["content-security-policy"]


def test_images_only_by_pool_id(client, tmp_path):
    c, session = client
    secret = tmp_path / "secret.png"
    secret.write_bytes((tmp_path / "pool" / "a circle" / "00.png").read_bytes())
    im = session.pool.images[3]
    r = c.get(f"/image/{im.image_id}", params={"token": TOKEN})
    assert r.status_code == 200 and r.content == open(im.path, "rb").read() and r.headers["content-type"] == "image/png"
    for bad in (
        "../secret.png",
        "..%2Fsecret.png",
        "..%2F..%2Fetc%2Fpasswd",
        str(secret),
        "0" * 64,
        im.image_id.upper(),
        im.image_id[:-1],
        "a circle%2F00.png",
    ):
        r = c.get(f"/image/{bad}", params={"token": TOKEN})
        assert r.status_code == 404, bad
        assert r.content != secret.read_bytes()


def test_answers_undo_and_a_stale_pair_through_the_api(client):
    c, session = client
    h = {"X-Prefcli-Token": TOKEN}
    v = c.get("/api/state", headers=h).json()
    first = v["pair"]
    r = c.post(
        "/api/answer", headers=h, json={"pair": first["token"], "choice": "right", "comment": "brighter", "rt_ms": 1500}
    )
    assert r.status_code == 200 and r.json()["progress"]["answered"] == 1
    again = c.post("/api/answer", headers=h, json={"pair": first["token"], "choice": "left"})
    assert again.status_code == 409  # a repeated key press cannot label the next pair
    assert (
        c.post("/api/answer", headers=h, json={"pair": r.json()["pair"]["token"], "choice": "maybe"}).status_code == 400
    )
    assert c.post("/api/answer", headers=h, content=b"not json").status_code == 400
    u = c.post("/api/undo", headers=h).json()
    assert u["pair"]["left"] == first["left"] and u["progress"]["answered"] == 0
    lines = [json.loads(ln) for ln in session.store.log_path.read_text().splitlines()]
    assert [rec["event"] for rec in lines] == ["label", "undo"] and lines[0]["comment"] == "brighter"


def test_loopback_by_default_and_a_free_port():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    sock = bind("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        assert port > 0 and url_of(sock, "127.0.0.1", TOKEN) == f"http://127.0.0.1:{port}/?token={TOKEN}"
    finally:
        sock.close()
