"""The web app's request-size limit: a body above it is a 413 (JSON on the API) before any of it
is read into memory, through Flask's test client and through the real waitress server; the
largest label list the API accepts still fits."""

from __future__ import annotations

import http.client
import json

import pytest

from server.serve import WebServer
from server.web.app import MAX_BODY_BYTES
from tests.server.conftest import WEB_TOKEN as TOKEN

pytestmark = pytest.mark.slow  # the session's web database takes ~10 s to build

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_a_body_above_the_limit_is_a_json_413_on_the_api(client):
    c, storage, info = client
    det = info["songs"][0][0]
    before = storage.label_rows([det])
    big = b"[" + b" " * MAX_BODY_BYTES + b"]"  # valid JSON (an empty list), one byte too many
    r = c.post("/api/labels", data=big, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 413 and r.is_json and "too large" in r.json["error"].lower()
    r = c.post("/api/clip-requests", data=big, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 413 and r.is_json
    # a form post above the limit: a 413 page, nothing stored
    r = c.post("/label", data={"detection_id": det, "label": "BC", "pad": "x" * MAX_BODY_BYTES}, headers=AUTH)
    assert r.status_code == 413 and r.mimetype == "text/html"
    assert storage.label_rows([det]) == before


def test_the_largest_label_list_the_api_takes_fits_the_limit(client):
    """10,000 items (the most the API takes) with 128-character ids, 100-character labels and
    60-character names, non-ASCII ones written as ``\\u`` escapes (as Python's json.dumps does)."""
    c, storage, _ = client
    body = [{"detection_id": f"{i:06d}".ljust(128, "x"), "label": "č" * 99 + str(i % 10), "by": "ř" * 60}
            for i in range(10_000)]  # fmt: skip
    raw = json.dumps(body).encode()
    assert len(raw) > 10_000_000
    r = c.post("/api/labels", data=raw, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 200, r.get_data(as_text=True)[:200]
    assert r.json["new"] == 10_000
    assert storage.label_rows([body[-1]["detection_id"]])[0]["label"] == "č" * 99 + "9"


def test_a_label_list_of_astral_characters_within_the_api_limits_fits_too(client):
    """Characters outside the BMP (a bird emoji) count as one toward the 100/60-character limits
    but are written as a surrogate pair of ``\\u`` escapes: 12 bytes each, about 21 MB for the
    largest list the API takes (a limit of 16 MiB refused it with a 413)."""
    c, storage, _ = client
    body = [{"detection_id": f"{i:06d}".ljust(128, "x"), "label": "\U0001f426" * 99 + str(i % 10),
             "by": "\U0001f426" * 60} for i in range(10_000)]  # fmt: skip
    raw = json.dumps(body).encode()
    assert len(raw) > 20_000_000
    r = c.post("/api/labels", data=raw, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 200, r.get_data(as_text=True)[:200]
    assert r.json["new"] == 10_000


@pytest.fixture()
def server(live_web):
    return live_web[0]


def _post(srv: WebServer, body: bytes, headers: dict) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        conn.request(
            "POST",
            "/api/labels",
            body=body,
            headers={**AUTH, "Content-Type": "application/json", **headers},
            encode_chunked="Transfer-Encoding" in headers,
        )
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type", ""), r.read()
    finally:
        conn.close()


def test_waitress_answers_a_body_above_the_limit_with_a_json_413(server):
    big = b"[" + b" " * MAX_BODY_BYTES + b"]"
    status, ctype, body = _post(server, big, {})
    assert status == 413 and ctype.startswith("application/json") and "error" in json.loads(body)

    def chunks():  # no Content-Length: the limit holds for a chunked body too
        for _ in range(MAX_BODY_BYTES // (1 << 20) + 2):
            yield b" " * (1 << 20)

    status, ctype, body = _post(server, chunks(), {"Transfer-Encoding": "chunked"})
    assert status == 413 and ctype.startswith("application/json"), (status, body[:200])
    status, _, body = _post(server, b'[{"detection_id": "a1", "label": "BC"}]', {})
    assert status == 200 and json.loads(body)["new"] == 1


def test_waitress_refuses_a_huge_body_before_receiving_it(server):
    """Waitress receives a whole body (spooled to a temporary file) before the app sees it; far
    above the app's limit it refuses the body itself, at once, so no one fills the disk."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest("POST", "/api/labels")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(256 << 20))  # announced, never sent
        conn.endheaders()
        r = conn.getresponse()
        assert r.status == 413
    finally:
        conn.close()
