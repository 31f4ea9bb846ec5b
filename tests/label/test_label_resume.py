"""Kill the labelling server between two labels (SIGKILL), restart it: nothing lost, no pair repeated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="prefcli[label] is not installed")
httpx = pytest.importorskip("httpx")

from label_fixtures import make_pool  # noqa: E402

pytestmark = pytest.mark.slow  # end to end: `make test-fast` leaves it out, `make test` (CI) runs it

HELPER = Path(__file__).resolve().parents[1] / "label_fixtures.py"


def _start(pool, out):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HELPER.parent.parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), str(pool), str(out)], stdout=subprocess.PIPE, text=True, env=env
    )
    url = proc.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:"), url
    base, token = url.split("/?token=")
    client = httpx.Client(base_url=base, headers={"X-Prefcli-Token": token}, timeout=30)
    for _ in range(200):  # the socket listens before uvicorn serves: wait for the first answer
        try:
            client.get("/api/state")
            break
        except httpx.TransportError:
            import time

            time.sleep(0.05)
    return proc, client


def _answer(client, choice):
    v = client.get("/api/state").json()
    if v["done"]:
        return None
    r = client.post("/api/answer", json={"pair": v["pair"]["token"], "choice": choice})
    assert r.status_code == 200
    return v["pair"]


def test_sigkill_between_two_labels_loses_nothing_and_repeats_no_pair(tmp_path):
    pool = make_pool(tmp_path / "pool", prompts=2, per_prompt=4)
    out = tmp_path / "bob"
    proc, client = _start(pool, out)
    try:
        first = [_answer(client, c) for c in ("left", "right", "tie")]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        client.close()
    recs = [json.loads(ln) for ln in (out / "labels.jsonl").read_text().splitlines()]
    assert [(r["left"]["id"], r["right"]["id"], r["choice"]) for r in recs] == [
        (p["left"], p["right"], c) for p, c in zip(first, ("left", "right", "tie"))
    ]
    assert len(os.listdir(out / "liked")) == 2

    proc, client = _start(pool, out)
    try:
        assert client.get("/api/state").json()["progress"]["answered"] == 3
        while _answer(client, "left") is not None:
            pass
        final = client.get("/api/state").json()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
        client.close()
    recs = [json.loads(ln) for ln in (out / "labels.jsonl").read_text().splitlines()]
    pairs = [frozenset((r["left"]["id"], r["right"]["id"])) for r in recs]
    assert len(pairs) == len(set(pairs)) == 12  # every same-prompt pair of 2 x 4 images, each once
    assert final["exhausted"]
    assert len(os.listdir(out / "liked")) == len(os.listdir(out / "disliked")) == 11  # all but the tie
