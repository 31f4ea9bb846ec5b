"""`prefcli label` in a real browser: headless Chromium presses the keys, then `rank` reads what was written.

Skips where Debian's `chromium` and `chromium-driver` (or selenium) are absent;
CI installs them. Set PREFCLI_LABEL_SCREENSHOT=FILE.png to keep the screenshot
(docs/cli/label.md shows one taken so).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,  # end to end: `make test-fast` leaves it out, `make test` (CI) runs it
    pytest.mark.skipif(
        not (CHROMIUM and DRIVER),
        reason="headless Chromium and chromedriver are not installed "
        "(Debian: apt-get install chromium chromium-driver)",
    ),
]


@pytest.fixture
def browser(tmp_path, monkeypatch):
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager, should anything call it, must not download
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (pip install 'prefcli[test]')"
    )
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,800",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)  # a path: no Selenium Manager
    yield driver
    driver.quit()


@pytest.fixture
def served(tmp_path):
    pytest.importorskip("uvicorn", reason="prefcli[label] is not installed")
    from label_fixtures import make_pool
    from prefcli.label.embed import embed_pool
    from prefcli.label.model import PairModel, reduce
    from prefcli.label.pool import load_pool
    from prefcli.label.server import bind, make_app, server_for, url_of
    from prefcli.label.session import LabelSession
    from prefcli.label.store import LabelStore
    from prefcli.label.strategies import make_strategy

    pool_dir = make_pool(tmp_path / "pool", prompts=2, per_prompt=5, size=96)
    pool = load_pool(pool_dir)
    emb, scorer = embed_pool(pool, "clip-probe", "tiny", "cpu", cache_dir=tmp_path / "cache", progress=False)
    out = tmp_path / "alice"
    session = LabelSession(
        pool,
        LabelStore(out),
        make_strategy("active", PairModel(reduce(emb)), seed=1),
        target=5,
        user="alice",
        scorer=scorer,
        seed=1,
        pool_arg=str(pool_dir),
        out_arg=str(out),
    )
    token = "5eed" * 12
    sock = bind("127.0.0.1", 0)
    server = server_for(make_app(session, token))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield url_of(sock, "127.0.0.1", token), pool_dir, out
    server.should_exit = True
    thread.join(10)
    sock.close()


def _renders(driver) -> int:
    return int(driver.find_element("tag name", "body").get_attribute("data-renders") or 0)


def _press(driver, key) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import WebDriverWait

    before = _renders(driver)
    ActionChains(driver).send_keys(key).perform()
    WebDriverWait(driver, 10).until(lambda d: _renders(d) > before)


def _images_loaded(driver) -> bool:
    return driver.execute_script(
        "return ['left','right'].every(id => {const i = document.getElementById(id);"
        " return i.complete && i.naturalWidth > 0;})"
    )


def test_keys_in_a_real_browser_write_what_rank_reads(browser, served, capsys):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    url, pool_dir, out = served
    browser.get(url)
    WebDriverWait(browser, 20).until(lambda d: _renders(d) >= 1 and _images_loaded(d))
    assert browser.find_element("id", "prompt").text in ("a circle", "a square")
    shot = os.environ.get("PREFCLI_LABEL_SCREENSHOT") or str(out.parent / "label-page.png")
    browser.save_screenshot(shot)
    assert os.path.getsize(shot) > 10_000

    def pair():
        return browser.execute_script(
            "return [document.getElementById('left').src, document.getElementById('right').src]"
        )

    _press(browser, Keys.ARROW_RIGHT)
    _press(browser, Keys.ARROW_LEFT)
    _press(browser, "t")
    skipped = pair()
    _press(browser, "s")
    _press(browser, "u")  # undo the skip: the same pair comes back
    assert pair() == skipped
    browser.find_element("tag name", "body").send_keys("c")
    assert browser.switch_to.active_element.get_attribute("id") == "comment"
    browser.switch_to.active_element.send_keys("more saturated, please")
    browser.switch_to.active_element.send_keys(Keys.ENTER)  # leaves the field; keys label again
    _press(browser, "1")
    _press(browser, "2")
    WebDriverWait(browser, 10).until(lambda d: d.find_element("id", "done").is_displayed())
    done_text = browser.find_element("id", "done").text
    assert "prefcli rank" in done_text and "liked" in done_text

    recs = [json.loads(ln) for ln in (out / "labels.jsonl").read_text().splitlines()]
    assert [r.get("choice", "undo") for r in recs] == ["right", "left", "tie", "skip", "undo", "left", "right"]
    assert recs[5]["comment"] == "more saturated, please" and recs[4]["undoes"] == recs[3]["seq"]
    assert all(r["rt_ms"] is not None and r["rt_ms"] >= 0 for r in recs if r["event"] == "label")
    assert all(r["user"] == "alice" for r in recs) and all(
        r["strategy"] == "active" for r in recs if r["event"] == "label"
    )
    liked, disliked = sorted(os.listdir(out / "liked")), sorted(os.listdir(out / "disliked"))
    assert len(liked) == len(disliked) == 4
    prompts = json.loads((out / "prompts.json").read_text())
    assert set(prompts) == set(liked) | set(disliked)

    from cli_runner import run_cli

    code, stdout, stderr = run_cli(
        capsys,
        "rank",
        pool_dir,
        "--recursive",
        "--likes",
        out / "liked",
        "--dislikes",
        out / "disliked",
        "--scorer",
        "clip-probe",
        "--weights",
        "tiny",
        "--format",
        "json",
    )
    assert code == 0, stderr
    assert "history of 4 pair(s)" in stderr
    assert len(json.loads(stdout)["results"]["ranking"]) == 10
