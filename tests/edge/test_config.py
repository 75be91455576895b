import subprocess
import sys

import pytest

from edge.app.config import Config, load_config, to_toml
from edge.core.errors import ConfigError


def _write(tmp_path, text):
    p = tmp_path / "edge.toml"
    p.write_text(text)
    return p


def test_defaults_roundtrip_through_toml(tmp_path):
    cfg = load_config(_write(tmp_path, to_toml(Config())), env={})
    assert cfg == Config()


def test_env_overrides_are_typed(tmp_path):
    p = _write(tmp_path, "[mqtt]\nhost = 'a'\n")
    cfg = load_config(
        p,
        env={
            "YH_MQTT__HOST": "broker.lan",
            "YH_MQTT__PORT": "8883",
            "YH_MQTT__TLS": "true",
            "YH_DEVICE__ID": "007",
            "OTHER": "x",
        },
    )
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.tls, cfg.device.id) == ("broker.lan", 8883, True, "007")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[mqtt]\nprot = 1\n", "unknown config key 'mqtt.prot'"),
        ("[mqtt]\nport = 'x'\n", "mqtt.port: expected int"),
        ("[mqtt\n", "TOML syntax error"),
        ("[audio]\nsource = 'usb'\n", "audio.source must be"),
        ("typo = 1\n", "unknown config key 'typo'"),
        ("mqtt = 3\n", "mqtt: expected a table"),
        ("[mqtt]\nport = 70000\n", "mqtt.port must be"),
        ("[models]\nsupport_threshold = 1.5\n", "models.support_threshold must be"),
        ("[models]\nsupport_threshold = nan\n", "models.support_threshold must be"),
        ("[models]\nthreshold = nan\n", "models.threshold must be"),
    ],
)
def test_bad_configs_give_one_line_errors(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text), env={})
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_bad_env_override(tmp_path):
    with pytest.raises(ConfigError, match="unknown config section"):
        load_config(None, env={"YH_MQQT__HOST": "x"})
    with pytest.raises(ConfigError, match="mqtt.port: expected int"):
        load_config(None, env={"YH_MQTT__PORT": "abc"})


def test_cli_validate_and_show(tmp_path):
    good = _write(tmp_path, "[device]\nid = 'pi-7'\n")

    def run(*a):
        return subprocess.run([sys.executable, "-m", "edge", *a], capture_output=True, text=True, timeout=60)

    ok = run("config", "validate", str(good))
    assert ok.returncode == 0 and "OK" in ok.stdout
    shown = run("config", "show", "--config", str(good), "--json")
    assert '"id": "pi-7"' in shown.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[device]\nidd = 'x'\n")
    res = run("config", "validate", str(bad))
    assert (
        res.returncode != 0
        and "unknown config key 'device.idd'" in res.stderr
        and "Traceback" not in res.stderr
    )
