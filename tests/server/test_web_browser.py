"""The web app in a real headless browser (Debian's Chromium through playwright): pages load, a
spectrogram renders, the map shows every device, a label submitted in the form is stored.
Screenshots of the devices map, a cluster page and the labelling form go to
``artifacts/screenshots/`` (git-ignored; CI keeps them)."""

from __future__ import annotations

import pytest

from tests.browser import SCREENSHOTS, browser, screenshot, skip_without_browser
from tests.server.conftest import WEB_TOKEN as TOKEN

pytestmark = [pytest.mark.slow, skip_without_browser]


@pytest.fixture()
def app_url(live_web):
    server, storage, info = live_web
    return server.url, storage, info


def _images_loaded(page, selector: str) -> list[int]:
    """naturalWidth of every image matched (0: not rendered)."""
    page.wait_for_function(
        f"[...document.querySelectorAll('{selector}')].every(i => i.complete)", timeout=20_000
    )
    return page.eval_on_selector_all(selector, "els => els.map(e => e.naturalWidth)")


def test_researcher_walkthrough_in_a_real_browser(app_url):
    base, storage, info = app_url
    errors: list[str] = []
    with browser() as b:
        page = b.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda e: errors.append(str(e)))

        # devices: every device on the map, coloured, in the table
        assert page.goto(base + "/devices").status == 200
        markers = page.locator("svg.devmap g.device-marker:not(.past)")
        assert sorted(markers.evaluate_all("els => els.map(e => e.dataset.device)")) == sorted(
            info["devices"]
        )
        assert page.locator("svg.devmap g.device-marker.past").count() == 1  # the device that moved
        for dev in info["devices"]:
            assert page.locator(f"table.devices tr[data-device='{dev}']").count() == 1
        shot_map = screenshot(page, "devices_map")

        # clusters: the table links to a cluster page with spectrograms and players
        assert page.goto(base + "/clusters").status == 200
        assert page.locator("table.clusters tr").count() == info["n_clusters"] + 1
        assert page.locator("svg.scatter circle.pt").count() == len(info["songs"])
        clip_song = info["clips"][0]
        cluster = storage.detection(clip_song)["cluster"]
        assert page.goto(f"{base}/clusters/{info['run_id']}/{cluster}").status == 200
        widths = _images_loaded(page, "img.spec")
        assert widths and all(w > 0 for w in widths)  # every spectrogram rendered
        player = page.locator(f"figure.song[data-id='{clip_song}'] audio.player").first
        assert player.count() == 1
        duration = player.evaluate("a => new Promise(ok => { if (a.readyState >= 1) ok(a.duration);"
                                   " a.preload = 'metadata'; a.onloadedmetadata = () => ok(a.duration); a.load(); })")  # fmt: skip
        assert duration > 0.5  # the browser decoded the uploaded clip's header
        shot_cluster = screenshot(page, "cluster_page")

        # labelling: log in, correct a song's label in the form, it is stored with who and when
        page.goto(f"{base}/login?next=/songs/{clip_song}")
        page.fill("input[name=token]", TOKEN)
        page.fill("input[name=name]", "Jana Nováková")
        page.click("form.login-form button")
        page.wait_for_url(f"**/songs/{clip_song}")
        form = page.locator("form.label-form.big")
        form.locator("input[name=label]").fill("BE")
        shot_form = screenshot(page, "labelling_form")
        form.locator("button").click()
        page.wait_for_load_state()
        row = storage.label_rows([clip_song])[0]
        assert (row["label"], row["labeled_by"]) == ("BE", "Jana Nováková")
        assert "BE" in page.locator("table.kv").inner_text()

        # novelty and the report load too
        assert page.goto(base + "/novelty").status == 200
        assert page.goto(base + "/report/").status == 200
        assert all(w > 0 for w in _images_loaded(page, "img"))
    assert not errors, errors
    for shot in (shot_map, shot_cluster, shot_form):
        assert shot.stat().st_size > 10_000 and shot.read_bytes()[:4] == b"\x89PNG"
    assert SCREENSHOTS.is_dir()
