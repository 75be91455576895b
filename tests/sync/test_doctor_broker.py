"""``yh-edge doctor`` against a real broker: the real login (CONNACK), a test publish that must be
acknowledged and, where the account may read it, delivered; a device id that is not the broker
username (issue 16, items 10 and 13)."""

from __future__ import annotations

import dataclasses

import pytest

from edge.app.checks import check_broker

from .helpers import edge_config
from .test_broker_setup import secure_broker  # noqa: F401  (fixture)


def _by_name(checks):
    return {c.name: c for c in checks}


def test_doctor_logs_in_and_reads_its_test_message_back(mqtt_broker, tmp_path):
    checks = _by_name(check_broker(edge_config(mqtt_broker, "dev-a", tmp_path / "e.sqlite")))
    assert checks["broker login"].status == "ok" and "CONNACK Success" in checks["broker login"].detail
    assert checks["test publish"].status == "ok" and "delivered (read back)" in checks["test publish"].detail
    assert not (tmp_path / "e.sqlite").exists()  # a check never creates state


@pytest.mark.slow
def test_doctor_reports_a_wrong_password_and_a_device_id_that_is_not_the_username(secure_broker, tmp_path):  # noqa: F811
    broker, conf_dir, creds, local_port = secure_broker
    ca = str(conf_dir / "certs" / "ca.crt")
    cfg = edge_config(broker, "dev-a", tmp_path / "e.sqlite", ca_file=ca, username="dev-a",
                      password_file=str(creds / "dev-a"))  # fmt: skip
    good = _by_name(check_broker(cfg))
    assert all(c.status == "ok" for c in good.values()), good
    assert "acknowledged (PUBACK)" in good["test publish"].detail
    wrong_pw = dataclasses.replace(
        cfg, mqtt=dataclasses.replace(cfg.mqtt, password_file=str(creds / "dev-b"))
    )
    bad = _by_name(check_broker(wrong_pw))
    assert bad["broker login"].status == "fail" and "CONNACK" in bad["broker login"].detail
    assert "password" in bad["broker login"].cause
    other_id = dataclasses.replace(cfg, device=dataclasses.replace(cfg.device, id="dev-x"))
    ident = _by_name(check_broker(other_id))["device id"]
    assert ident.status == "fail" and "'dev-x'" in ident.detail and "'dev-a'" in ident.detail
