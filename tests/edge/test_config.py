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


# every numeric setting with a value outside its sensible range: negative sizes, zero/negative
# periods, thresholds above 1, ports outside 1-65535
OUT_OF_RANGE = [
    ("audio", "capture_rate", "-48000"), ("audio", "capture_rate", "100"), ("audio", "chunk_seconds", "0"),
    ("models", "threshold", "1.5"), ("models", "support_threshold", "2"), ("models", "num_threads", "0"),
    ("segmenter", "min_song_s", "0"), ("segmenter", "min_song_s", "-1"), ("segmenter", "max_song_s", "0.1"),
    ("segmenter", "merge_gap_s", "-0.1"), ("segmenter", "energy_gate_db", "-3"),
    ("store", "retention_days", "-1"), ("store", "min_free_mb", "-1"), ("store", "clip_quota_mb", "-5"),
    ("spectrogram", "margin_s", "-1"), ("spectrogram", "max_seconds", "0"), ("spectrogram", "db_step", "0"),
    ("clips", "per_hour", "-1"), ("clips", "daily_mb", "0"), ("clips", "chunk_kb", "0"),
    ("mqtt", "port", "0"), ("mqtt", "port", "65536"), ("mqtt", "port", "-1883"), ("mqtt", "keepalive", "0"),
    ("mqtt", "keepalive", "70000"), ("mqtt", "max_backoff_s", "0"), ("mqtt", "batch_size", "0"),
    ("mqtt", "max_inflight", "0"), ("mqtt", "max_rate_per_s", "-1"), ("mqtt", "stats_interval_s", "0"),
    ("mqtt", "stats_interval_s", "-300"), ("mqtt", "digest_interval_s", "-1"), ("mqtt", "digest_window_s", "0"),
    ("health", "log_interval_s", "0"), ("health", "stall_seconds", "-60"), ("health", "maintenance_interval_s", "0"),
    ("web", "port", "-1"), ("web", "port", "65536"),
    ("device", "latitude", "91"), ("device", "longitude", "-181"),
]  # fmt: skip


@pytest.mark.parametrize(("section", "key", "value"), OUT_OF_RANGE)
def test_every_number_out_of_range_is_refused_in_one_line_naming_it(tmp_path, section, key, value):
    from click.testing import CliRunner

    from edge.app.cli import main

    extra = "latitude = 10.0\nlongitude = 10.0\n" if section == "device" else ""
    body = f"[{section}]\n{extra}{key} = {value}\n"
    if key in ("latitude", "longitude"):
        body = "[device]\nlatitude = 10.0\nlongitude = 10.0\n".replace(f"{key} = 10.0", f"{key} = {value}")
    path = _write(tmp_path, body)
    r = CliRunner().invoke(main, ["config", "validate", str(path)])
    assert r.exit_code != 0
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and f"{section}.{key}" in lines[0] and str(path) in lines[0], r.output
    # the same through an environment override
    env = {f"YH_{section.upper()}__{key.upper()}": value}
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, extra and f"[device]\n{extra}"), env=env)
    assert f"{section}.{key}" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("key", ["latitude", "longitude", "elevation_m"])
def test_the_position_ranges_of_the_config_are_the_contracts(key):
    # one definition (edge.contract.POSITION_RANGES): a recorder must not accept a position the
    # server's contract refuses, nor refuse one it accepts
    import dataclasses

    from edge.contract import POSITION_RANGES, ContractError, Deployment
    from edge.core.config import DeviceConfig

    lo, hi = POSITION_RANGES[key]
    placed = {"latitude": 10.0, "longitude": 10.0}
    for value in (lo, hi):  # the bounds are in
        body = {**placed, key: value}
        dataclasses.replace(DeviceConfig(), **body)
        Deployment.from_dict(body)
    for value in (lo - 0.001, hi + 0.001):  # just beyond is out, in both
        body = {**placed, key: value}
        with pytest.raises(ValueError, match=f"device.{key} = .*between {lo:g} and {hi:g}"):
            dataclasses.replace(DeviceConfig(), **body)
        with pytest.raises(ContractError, match=f"deployment.{key}"):
            Deployment.from_dict(body)


@pytest.mark.parametrize(
    "text",
    [
        "[store]\nretention_days = 0\nmin_free_mb = 0\nclip_quota_mb = 0\n",  # 0 = keep / no reserve / no clips
        "[web]\nport = 0\n",  # any free port
        "[mqtt]\nport = 65535\nmax_rate_per_s = 0\ndigest_interval_s = 0\nkeepalive = 65535\n",
        "[clips]\nper_hour = 0\n",
        "[models]\nthreshold = -1\nsupport_threshold = 0\n",
        "[segmenter]\nenergy_gate_db = 0\nmerge_gap_s = 0\n",
        "[audio]\ncapture_rate = 0\n",
        "[audio]\ncapture_rate = 44100\n",
    ],
)
def test_the_edges_of_the_ranges_are_accepted(tmp_path, text):
    load_config(_write(tmp_path, text), env={})


def test_relative_secret_files_follow_the_credentials_directory_of_the_env_given(tmp_path, monkeypatch):
    # load_config(path, env) reads the overrides from ``env``: whether systemd hands the secrets
    # over ($CREDENTIALS_DIRECTORY) must come from the same mapping, not from the process
    path = _write(tmp_path, '[mqtt]\npassword_file = "mqtt-password"\n')
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    cfg = load_config(path, env={"CREDENTIALS_DIRECTORY": "/run/credentials/yellowhammer-edge.service"})
    assert cfg.mqtt.password_file == "mqtt-password"  # resolved there by the client, at connect time
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/yellowhammer-edge.service")
    cfg = load_config(path, env={})
    assert cfg.mqtt.password_file == str(
        tmp_path.resolve() / "mqtt-password"
    )  # run by hand: beside the config
    cfg = load_config(path)  # no env given: the process environment, as for the overrides
    assert cfg.mqtt.password_file == "mqtt-password"
