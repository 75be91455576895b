"""The server's systemd units configure the server through variables it reads: every ``YH_*``
``Environment=`` of a server unit is a server config key (``YH_SERVER_<SECTION>__<KEY>``) or the
``--db`` variable, and a unit that loads the ``mqtt-password`` credential points
``mqtt.password_file`` at it. The units once set ``YH_MQTT_PASSWORD_FILE``, which nothing reads:
the ingest could not log in to a broker that asks for a password."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.config import load_server_config

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
SERVER_UNITS = sorted(p.name for p in SYSTEMD.glob("yellowhammer-*") if "edge" not in p.name)
INGEST_UNITS = [u for u in SERVER_UNITS if "yh-server ingest" in (SYSTEMD / u).read_text()]


def _environment(unit: str) -> dict[str, str]:
    env = {}
    for line in (SYSTEMD / unit).read_text().splitlines():
        m = re.match(r"Environment=(YH_\w+)=(.*)$", line.strip())
        if m:
            env[m.group(1)] = m.group(2)
    return env


@pytest.mark.parametrize("unit", SERVER_UNITS)
def test_every_yh_variable_of_a_server_unit_is_read_by_the_server(unit):
    env = _environment(unit)
    for name in env:
        assert name == "YH_SERVER_DB" or re.fullmatch(r"YH_SERVER_[A-Z]+__[A-Z_]+", name), f"{unit}: {name}"
    config_env = {k: v for k, v in env.items() if k != "YH_SERVER_DB"}
    load_server_config(env=config_env)  # an unknown key is an error


def test_the_ingest_units_are_found():
    assert INGEST_UNITS == ["yellowhammer-ingest@.service", "yellowhammer-server.service"]


@pytest.mark.parametrize("unit", INGEST_UNITS)
def test_an_ingest_unit_reads_its_mqtt_password_from_the_credential(unit, tmp_path, monkeypatch):
    text = (SYSTEMD / unit).read_text()
    m = re.search(r"^LoadCredential=(mqtt-password):", text, re.M)
    assert m, f"{unit} does not load the mqtt-password credential"
    from edge.kit.mqtt import read_password

    (tmp_path / m.group(1)).write_text("s3cret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    cfg = load_server_config(env={k: v for k, v in _environment(unit).items() if k != "YH_SERVER_DB"})
    assert cfg.mqtt.password_file, f"{unit} loads {m.group(1)} but mqtt.password_file is not set"
    assert read_password(cfg.mqtt.password_file) == "s3cret"
