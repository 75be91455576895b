"""The web app against hostile input (Flask's test client on the real web test database): redirect
targets after a login or a form post stay on the site, the write API answers malformed text with
400 (not 500), and naming a cluster of an unknown run is a 404."""

from __future__ import annotations

import pytest

from tests.server.conftest import WEB_TOKEN as TOKEN

pytestmark = pytest.mark.slow  # the session's web database takes ~10 s to build


AUTH = {"Authorization": f"Bearer {TOKEN}"}
OFFSITE = [
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "/\x00/evil.example",
    "/\\evil.example",
    "/\\/evil.example",
    "//evil.example",
    "///evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    " //evil.example",
    "/\u3000/evil.example",
    "/\u3000/[::1",  # a host Python's URL parser refuses (it raised: a 500)
]


@pytest.mark.parametrize("nxt", OFFSITE)
def test_login_never_redirects_off_the_site(client, nxt):
    c, _, _ = client
    r = c.post("/login", data={"token": TOKEN, "next": nxt})
    assert r.status_code == 302 and r.headers["Location"] == "/"
    r = c.get("/login", query_string={"token": TOKEN, "next": nxt})
    assert r.status_code == 302 and r.headers["Location"] == "/"
    page = c.get("/login", query_string={"next": nxt}).get_data(as_text=True)
    assert 'name="next" value="/"' in page and "evil.example" not in page


@pytest.mark.parametrize("nxt", OFFSITE)
def test_form_posts_never_redirect_off_the_site(client, nxt):
    c, storage, info = client
    det = info["songs"][0][0]
    r = c.post("/label", data={"detection_id": det, "label": "BD", "next": nxt}, headers=AUTH)
    assert r.status_code == 303 and r.headers["Location"] == f"/songs/{det}"
    assert storage.label_rows([det])[0]["label"] == "BD"
    r = c.post(f"/clusters/{info['run_id']}/0/name", data={"name": "BC", "next": nxt}, headers=AUTH)
    assert r.status_code == 303 and r.headers["Location"] == f"/clusters/{info['run_id']}/0"


def test_local_redirect_targets_are_kept(client):
    c, _, info = client
    r = c.post("/login", data={"token": TOKEN, "next": "/clusters?run=x#top"})
    assert r.headers["Location"] == "/clusters?run=x#top"
    det = info["songs"][0][0]
    r = c.post("/label", data={"detection_id": det, "label": "BD", "next": "/devices"}, headers=AUTH)
    assert r.headers["Location"] == "/devices"


def _post_raw(c, url: str, raw: bytes):
    return c.post(url, data=raw, headers={**AUTH, "Content-Type": "application/json"})


def test_write_api_answers_lone_surrogates_with_400(client):
    c, storage, info = client
    det = info["songs"][0][0]
    before = storage.label_rows([det])
    run = info["run_id"]
    cases = [
        ("/api/labels", b'[{"detection_id": "%s", "label": "a\\ud800b"}]' % det.encode()),
        ("/api/labels", b'[{"detection_id": "n3\\ud800", "label": "ok"}]'),
        ("/api/labels", b'[{"detection_id": "%s", "label": "ok", "by": "\\udc00"}]' % det.encode()),
        (f"/api/clusters/{run}/0/name", b'{"name": "x\\udfff"}'),
        ("/api/clip-requests", b'{"ids": ["n1\\ud800"]}'),
        ("/api/clip-requests", b'{"ids": [], "why": "\\ud800"}'),
    ]
    for url, raw in cases:
        r = _post_raw(c, url, raw)
        assert r.status_code == 400, (url, raw, r.status_code)
        assert "surrogate" in r.json["error"]
    assert storage.label_rows([det]) == before
    assert c.get("/api/clusters").json["clusters"][0]["name"] != "x\udfff"
    # a surrogate pair is one real character and is stored
    r = _post_raw(c, "/api/labels", b'[{"detection_id": "%s", "label": "\\ud83d\\udc26"}]' % det.encode())
    assert r.status_code == 200 and storage.label_rows([det])[0]["label"] == "\U0001f426"


def test_naming_a_cluster_of_an_unknown_run_is_404(client):
    c, _, _ = client
    r = c.post("/api/clusters/nope/3/name", json={"name": "BC"}, headers=AUTH)
    assert r.status_code == 404 and "nope" in r.json["error"]
    r = c.post("/clusters/nope/3/name", data={"name": "BC"}, headers=AUTH)
    assert r.status_code == 404


def test_naming_a_cluster_the_run_does_not_have_is_404_and_stores_nothing(client):
    c, storage, info = client
    run = info["run_id"]
    missing = info["n_clusters"] + 92  # a cluster number the run does not have
    before = storage.cluster_names(run)
    for k in (missing, 2**63, 10**30):  # beyond SQLite's integers too: a 404, not a 500
        r = c.post(f"/api/clusters/{run}/{k}/name", json={"name": "BC"}, headers=AUTH)
        assert r.status_code == 404 and r.json["error"] == f"run {run} has no cluster {k}"
        r = c.post(f"/clusters/{run}/{k}/name", data={"name": "BC"}, headers=AUTH)
        assert r.status_code == 404 and f"has no cluster {k}" in r.get_data(as_text=True)
    assert storage.cluster_names(run) == before
    r = c.post(f"/api/clusters/{run}/0/name", json={"name": "BC"}, headers=AUTH)
    assert r.status_code == 200 and storage.cluster_names(run)[0]["name"] == "BC"


def test_a_malformed_name_request_is_400_and_keeps_the_name(client):
    """A body that is not ``{"name": text}`` (a list, not JSON, no ``name``) was read as an empty
    name and removed the cluster's name; only an explicit empty name removes it."""
    c, storage, info = client
    run = info["run_id"]
    url = f"/api/clusters/{run}/0/name"
    assert c.post(url, json={"name": "BC"}, headers=AUTH).status_code == 200
    bodies = [["BC"], {}, {"nmae": "BC"}, "BC", None]
    for body in bodies:
        r = c.post(url, json=body, headers=AUTH)
        assert r.status_code == 400 and "name" in r.json["error"], (body, r.status_code)
    r = c.post(url, data=b"name=BC", headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400
    r = c.post(f"/clusters/{run}/0/name", data={"next": "/"}, headers=AUTH)  # the form without its field
    assert r.status_code == 400
    assert storage.cluster_names(run)[0]["name"] == "BC"
    assert c.post(url, json={"name": ""}, headers=AUTH).status_code == 200
    assert 0 not in storage.cluster_names(run)


def test_a_run_that_does_not_exist_is_404_in_the_api_as_on_the_pages(client):
    """``/api/clusters?run=nope`` and ``/api/novelty?run=nope`` answered 400 (a malformed request)
    where the pages answer 404; the run is missing, the request is fine."""
    c, _, info = client
    for url in ("/api/clusters?run=nope", "/api/novelty?run=nope", "/clusters?run=nope", "/novelty?run=nope"):
        r = c.get(url)
        assert r.status_code == 404, (url, r.status_code)
    assert c.get("/api/novelty?run=nope").json == {"error": "no cluster run 'nope'"}
    assert c.get("/api/clusters?run=nope").json == {"error": "no cluster run 'nope'"}
    assert c.get(f"/api/novelty?run={info['run_id']}").status_code == 200
    assert c.get("/api/clusters?run=x&sort=1").status_code == 400  # a malformed request stays a 400


def test_the_label_api_names_the_ids_the_server_does_not_hold(client):
    """A label for an id the server does not hold is kept (it applies once the detection
    arrives, as in ``label import``), but the answer counted it as ``new`` with no hint, so a
    typo in a script's ids went unnoticed; the answer now lists those ids."""
    c, storage, info = client
    det = info["songs"][0][0]
    body = [{"detection_id": det, "label": "BC"}, {"detection_id": "no-such-song", "label": "BC"}]
    r = c.post("/api/labels", json=body, headers=AUTH)
    assert r.status_code == 200 and r.json["not_stored"] == ["no-such-song"] and r.json["stored"] == 2
    assert storage.label_rows(["no-such-song"])[0]["label"] == "BC"
    r = c.post("/api/labels", json=[{"detection_id": det, "label": "BE"}], headers=AUTH)
    assert r.json["not_stored"] == [] and r.json["replaced"] == 1
