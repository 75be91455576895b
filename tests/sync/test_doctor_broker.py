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


def test_doctor_by_hand_finds_the_password_file_beside_the_config(mqtt_broker, tmp_path, monkeypatch):
    # docs/deploy.md: password_file = "mqtt-password" (systemd hands it over as a credential), the
    # file in /etc/yellowhammer beside edge.toml; doctor and sync are run by hand from anywhere
    from click.testing import CliRunner

    from edge.app.cli import main
    from edge.app.config import load_config

    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "mqtt-password").write_text("s3cret")
    cfg = etc / "edge.toml"
    cfg.write_text(f'[device]\nid = "dev-a"\ndata_dir = "{tmp_path / "data"}"\n[mqtt]\nenabled = true\n'
                   f'host = "{mqtt_broker.host}"\nport = {mqtt_broker.port}\nusername = "dev-a"\n'
                   'password_file = "mqtt-password"\n')  # fmt: skip
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    checks = _by_name(check_broker(load_config(cfg, env={})))
    assert checks["credentials"].status == "ok", checks["credentials"]
    assert checks["broker login"].status == "ok", checks["broker login"]
    r = CliRunner().invoke(main, ["doctor", "-c", str(cfg)], env={"CREDENTIALS_DIRECTORY": None})
    assert "OK    broker login" in r.stdout and "cannot read the password" not in r.stdout, r.stdout
    # under systemd (LoadCredential=) the name still resolves in $CREDENTIALS_DIRECTORY
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("s3cret")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))  # where the client looks at connect time
    (etc / "mqtt-password").unlink()
    systemd = {"CREDENTIALS_DIRECTORY": str(creds)}  # the environment load_config is given
    assert load_config(cfg, env=systemd).mqtt.password_file == "mqtt-password"
    assert load_config(cfg).mqtt.password_file == "mqtt-password"  # none given: the process's
    assert _by_name(check_broker(load_config(cfg, env=systemd)))["broker login"].status == "ok"
