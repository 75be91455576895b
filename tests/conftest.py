"""Shared fixtures: paths to the recorded fixtures and a real mosquitto broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.broker import MosquittoBroker, mosquitto_binary

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture()
def mqtt_broker(tmp_path):
    """A fresh mosquitto on a free loopback port; skipped only where mosquitto is not installed
    (CI installs it, so there the MQTT tests always run)."""
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed")
    broker = MosquittoBroker(tmp_path / "mosquitto").start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL started for this test session (``tests/postgres.py``: initdb + pg_ctl on a
    free loopback port in a temporary directory); skipped, with the reason, where it cannot run."""
    from tests.postgres import PostgresServer, unavailable

    why = unavailable()
    if why:
        pytest.skip(why)
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture()
def pg_url(pg_server):
    """A fresh, empty database on the session's PostgreSQL (its URL)."""
    return pg_server.fresh_db()
