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
