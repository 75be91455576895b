"""The daemon's read-only status page (issue 16, item 16) in a real headless browser: truthful
status, the live input meter, the last songs with spectrograms drawn in the browser from the
detections' log-mel field; read-only, bound to localhost by default."""

from __future__ import annotations

import json
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from edge.app.compose import build_pipeline
from edge.app.config import load_config
from edge.app.daemon import Daemon
from edge.core.config import WebConfig
from tests.browser import SCREENSHOTS, browser, skip_without_browser
from tests.edge.helpers import make_song_stream, write_config
from tests.factories import wait_for

SCRATCH = Path("/work/scratch/relE")


@pytest.fixture()
def running_daemon(tmp_path, models):
    wav = tmp_path / "songs.wav"
    truth = make_song_stream(wav, ["song_XlB.wav", "song_BC.wav", "song_BhBl.wav"], gap_s=2.0)
    cfg = load_config(
        write_config(tmp_path / "edge.toml", tmp_path / "data", replay=str(wav))
    )  # [web] port 0
    det, enc = models
    d = Daemon(cfg, components=build_pipeline(cfg, detector=det, encoder=enc))  # idles after the replay
    t = threading.Thread(target=d.run, daemon=True)
    t.start()
    wait_for(lambda: d.web is not None and d.state == "finished", timeout=90, what="the replay to finish")
    yield d, truth
    d.stop.set()
    t.join(30)


def test_the_page_is_local_by_default_and_read_only(running_daemon):
    d, truth = running_daemon
    assert WebConfig().host == "127.0.0.1" and d.web.httpd.server_address[0] == "127.0.0.1"
    st = json.loads(urllib.request.urlopen(d.web.url + "api/status", timeout=10).read())
    assert st["device_id"] == "test-device" and st["pipeline"]["songs"] == len(truth)
    assert st["backlog"] == len(truth) and "free_bytes" in st["disk"] and "synchronised" in st["clock"]
    rows = json.loads(urllib.request.urlopen(d.web.url + "api/detections?limit=2", timeout=10).read())
    assert len(rows) == 2 and rows[0]["start_time"] > rows[1]["start_time"] and rows[0]["spectrogram"]["b64"]
    for method in ("POST", "PUT", "DELETE"):
        req = urllib.request.Request(d.web.url + "api/status", data=b"{}", method=method)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code == 405


@skip_without_browser
def test_the_status_page_in_a_real_browser(running_daemon):
    d, truth = running_daemon
    from playwright.sync_api import expect

    with browser() as b:
        page = b.new_page(viewport={"width": 1100, "height": 900})
        page.goto(d.web.url)
        # locator waits, not wait_for_function: the page's CSP forbids the eval Playwright's
        # polling of a string predicate needs (it failed whenever the first check was too early)
        expect(page.locator('canvas.spec[data-drawn="1"]')).to_have_count(len(truth), timeout=30_000)
        expect(page.locator("#device")).to_have_text("test-device")
        assert page.text_content("#state").startswith("finished")
        assert page.text_content("#songs") == str(len(truth))
        assert page.text_content("#backlog") == str(len(truth))
        assert "sync off" in page.text_content("#broker")
        assert "MB" in page.text_content("#disk") or "GB" in page.text_content("#disk")
        assert page.text_content("#database") == str(d.config.db_path)
        assert "dBFS" in page.text_content("#level-now")
        rms = d.components.pipeline.level.snapshot()["now"]["rms_dbfs"]
        assert float(page.eval_on_selector("#meter-rms", "e => e.dataset.rms")) == rms
        assert float(page.eval_on_selector("#meter-rms", "e => parseFloat(e.style.width)")) == pytest.approx(
            -rms, abs=0.2
        )
        # each spectrogram is the song's log-mel field, drawn by the browser: its size and a real image
        specs = {r["id"]: r["spectrogram"] for r in d.components.store.rows()}
        sizes = page.eval_on_selector_all("canvas.spec", "cs => cs.map(c => [c.width, c.height])")
        assert sorted(map(tuple, sizes)) == sorted((s["frames"], s["mels"]) for s in specs.values())
        spread = page.eval_on_selector(
            "canvas.spec",
            "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let lo = 255, hi = 0;"
            " for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i + 1]); hi = Math.max(hi, d[i + 1]); }"
            " return hi - lo; }",
        )
        assert spread > 100  # a song, not a blank box
        assert page.is_hidden("#problems")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = SCREENSHOTS / "edge_status_page.png"
        page.screenshot(path=str(shot), full_page=True)
        if SCRATCH.is_dir():
            shutil.copy(shot, SCRATCH / "edge_status_page.png")
