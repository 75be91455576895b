"""Fixtures shared by the server tests."""

from __future__ import annotations

import pytest

from server.storage.sqlite import SqliteStorage


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request, tmp_path):
    """A fresh server database: a SQLite file in the test's temporary directory, and (the same
    test again) a fresh database on the session's real PostgreSQL (``tests/postgres.py``)."""
    if request.param == "postgres":
        from server.storage.postgres import PostgresStorage

        s = PostgresStorage(request.getfixturevalue("pg_url"))
    else:
        s = SqliteStorage(tmp_path / "server.sqlite")
    yield s
    s.close()


@pytest.fixture(scope="session")
def web_db_template(tmp_path_factory):
    """A server database built once per session by :mod:`tests.server.webdata` (generated songs,
    real spectrograms and embeddings, clips, deployments, labels, a cluster run); copy it before
    writing to it (:func:`web_db`)."""
    from tests.server.webdata import build

    db = tmp_path_factory.mktemp("webdb") / "server.sqlite"
    info = build(db)
    return db, info


@pytest.fixture()
def web_db(web_db_template, tmp_path):
    """A private copy of the web test database (``(path, info)``)."""
    import sqlite3

    src, info = web_db_template
    dst = tmp_path / "server.sqlite"
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return dst, info


#: the web app's API token in the web tests
WEB_TOKEN = "test-token-0123456789abcdef"


@pytest.fixture()
def client(web_db):
    """(test client of the web app on a copy of the web database, its storage, the database info)."""
    from server.config import ServeConfig
    from server.web.app import create_app

    db, info = web_db
    storage = SqliteStorage(db)
    app = create_app(storage, ServeConfig(), WEB_TOKEN)
    yield app.test_client(), storage, info
    storage.close()


@pytest.fixture()
def live_web(web_db):
    """(the web app served by the real waitress server on a free loopback port, its storage, the
    database info) on a copy of the web database; token :data:`WEB_TOKEN`."""
    import threading

    from server.config import ServeConfig
    from server.serve import WebServer

    db, info = web_db
    storage = SqliteStorage(db)
    srv = WebServer(storage, ServeConfig(port=0), WEB_TOKEN)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv, storage, info
    srv.shutdown()
    t.join(10)
    storage.close()
