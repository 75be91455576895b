"""Deployment files: systemd units verify, the install script parses, the bundled config loads."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.app.cli import main
from edge.app.config import load_config

ROOT = Path(__file__).resolve().parents[2]
UNITS = ["yellowhammer-edge.service", "yellowhammer-server.service"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not available")
@pytest.mark.parametrize("unit", UNITS)
def test_units_pass_systemd_analyze_verify(tmp_path, unit):
    # the binaries live in /opt/yellowhammer/venv on a Pi; point them at this venv to verify
    text = (
        (ROOT / "systemd" / unit)
        .read_text()
        .replace("/opt/yellowhammer/venv/bin/", str(Path(sys.executable).parent) + "/")
    )
    (tmp_path / unit).write_text(text)
    r = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / unit)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr


def test_edge_unit_has_the_required_hardening():
    text = (ROOT / "systemd" / "yellowhammer-edge.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "User=yellowhammer",
        "StateDirectory=yellowhammer",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "SupplementaryGroups=audio",
        "LoadCredential=mqtt-password:",
        "Restart=on-failure",
    ):
        assert line in text, line


def test_install_script_parses():
    r = subprocess.run(["bash", "-n", str(ROOT / "tools" / "install_pi.sh")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_bundled_default_config_is_valid_and_shown(tmp_path):
    r = CliRunner().invoke(main, ["config", "default"])
    assert r.exit_code == 0
    (tmp_path / "edge.toml").write_text(r.stdout)
    cfg = load_config(tmp_path / "edge.toml", env={})
    assert cfg.audio.source == "mic" and cfg.store.save_clips is False and cfg.mqtt.enabled is False


@pytest.mark.parametrize("script", ["install_pi.sh", "arm64_check.sh"])
def test_deploy_scripts_parse_and_document_their_options(script):
    path = ROOT / "tools" / script
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
    r = subprocess.run(["bash", str(path), "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    wanted = (
        ["--check", "--rollback", "--no-start"]
        if script == "install_pi.sh"
        else ["--cache", "--keep", "--cpu"]
    )
    for option in wanted:
        assert option in r.stdout, option
    bad = subprocess.run(["bash", str(path), "--no-such-option"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "unknown option" in bad.stderr


def _unit_settings(unit: str) -> dict[str, str]:
    out = {}
    for line in (ROOT / "systemd" / unit).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    num = value.rstrip("abcdefghijklmnopqrstuvwxyz")
    return float(num) * units.get(value[len(num) :] or "s", 1)


def test_the_recorder_service_never_gives_up_restarting():
    # a volunteer's recorder is not looked after: a crash or watchdog loop that lasts a few minutes
    # (a flaky USB hub, a card busy for a while) must not leave it stopped until someone reboots it.
    # systemd gives up once StartLimitBurst starts fall within StartLimitIntervalSec (0 = never)
    s = _unit_settings("yellowhammer-edge.service")
    assert s["Restart"] in ("on-failure", "always")
    interval = _seconds(s.get("StartLimitIntervalSec", "10s"))
    burst = int(s.get("StartLimitBurst", "5"))
    restart = _seconds(s.get("RestartSec", "100ms"))
    assert interval == 0 or (burst - 1) * restart > interval, (interval, burst, restart)
    assert restart >= 10  # but not a tight loop that floods the journal on the SD card


_APT_INSTALL = r"\bapt(-get)?\s+install\b"


def _apt_installs(markdown: str) -> list[str]:
    """The pieces of code of a markdown text that install with apt: fenced blocks (whatever their
    language, or none) and inline code spans (which may wrap over lines)."""
    import re

    fence = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n(.*?)^[ \t]*\1", flags=re.M | re.S)
    blocks = [m.group(2) for m in fence.finditer(markdown)]
    spans = re.findall(r"`([^`]+)`", fence.sub("", markdown))
    return [code for code in blocks + spans if re.search(_APT_INSTALL, code)]


def test_the_install_commands_refresh_the_package_lists_before_installing():
    # a freshly written Raspberry Pi OS image has no package lists: `apt install git` alone ends in
    # "Unable to locate package git", the first thing a volunteer would see; that holds for a
    # command in the text (`sudo apt install ...`) or in a block of any language as for a sh block
    import re

    sample = (
        "Run `sudo apt install\n  git`.\n\n```bash\napt-get install -y x\n```\n\n```\napt install y\n```\n"
    )
    assert _apt_installs(sample) == ["apt-get install -y x\n", "apt install y\n", "sudo apt install\n  git"]
    installing = _apt_installs((ROOT / "docs" / "deploy.md").read_text())
    assert installing, "no install command found in docs/deploy.md"
    for code in installing:
        first_install = re.search(_APT_INSTALL, code).start()
        assert re.search(r"\bapt(-get)?\s+update\b", code[:first_install]), code


def test_the_broker_readme_gives_the_device_password_file_the_installers_mode():
    # with 0600 root:root (the README's old advice) the yellowhammer user cannot read its own
    # password: doctor and sync run by hand could not log in, though the service (systemd
    # credential) still could
    import re

    installer = (ROOT / "tools" / "install_pi.sh").read_text()
    m = re.search(r'install -m (0\d{3}) -o root -g "\$USER_NAME" /dev/null "\$ETC/mqtt-password"', installer)
    assert m, "install_pi.sh no longer creates /etc/yellowhammer/mqtt-password as expected"
    readme = (ROOT / "deploy" / "mosquitto" / "README.md").read_text()
    paragraphs = [p for p in re.split(r"\n\s*\n", readme) if "/etc/yellowhammer/mqtt-password" in p]
    modes = [mode for p in paragraphs for mode in re.findall(r"mode (0\d{3})", p)]
    assert modes, "the README no longer says which mode the device's password file has"
    assert set(modes) == {m.group(1)}, modes
    assert any("yellowhammer" in p.replace("/etc/yellowhammer", "") for p in paragraphs)


def test_the_default_config_shows_every_key_with_its_default():
    # docs/config.md: `yh-edge config default` prints "a commented file with all of them"; a key
    # missing there is a setting a volunteer never learns of (and its value here must be the real one)
    import dataclasses
    import re

    import tomllib

    from edge.core.config import Config

    text = (ROOT / "edge" / "data" / "edge.toml").read_text()
    parsed = tomllib.loads(text)
    sections = dict(re.findall(r"^\[(\w+)\]\n(.*?)(?=^\[|\Z)", text, flags=re.M | re.S))
    missing, wrong = [], []
    for section in dataclasses.fields(Config):
        defaults = section.default_factory()
        for f in dataclasses.fields(defaults):
            want = getattr(defaults, f.name)
            if f.name in parsed.get(section.name, {}):
                if parsed[section.name][f.name] != want:
                    wrong.append(
                        f"{section.name}.{f.name} = {parsed[section.name][f.name]!r}, default {want!r}"
                    )
            elif want is not None or not re.search(rf"^# {f.name} = ", sections.get(section.name, ""), re.M):
                missing.append(f"{section.name}.{f.name}")  # only unset keys may stay commented out
    assert not missing and not wrong, (missing, wrong)
    assert load_config(ROOT / "edge" / "data" / "edge.toml", env={}) == load_config(None, env={})


def _doc_value(text: str):
    """A default as docs/config.md writes it (`"mic"`, `3.0`, `false`, `/var/lib/...`, unset)."""
    import tomllib

    text = text.strip().strip("`")
    if text == "unset":
        return None
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def test_the_config_reference_gives_every_key_its_real_default():
    import dataclasses
    import re

    from edge.core.config import Config

    doc = (ROOT / "docs" / "config.md").read_text()
    sections = dict(re.findall(r"^## `\[(\w+)\]`\n(.*?)(?=^## |\Z)", doc, flags=re.M | re.S))
    problems = []
    for section in dataclasses.fields(Config):
        defaults = section.default_factory()
        rows = {}
        for line in sections.get(section.name, "").splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) >= 3 and cells[0].startswith("`"):
                for key in re.findall(r"`(\w+)`", cells[0]):
                    rows[key] = cells[2]
        for f in dataclasses.fields(defaults):
            want = getattr(defaults, f.name)
            if f.name not in rows:
                problems.append(f"{section.name}.{f.name}: no row")
            elif _doc_value(rows[f.name]) != want:
                problems.append(f"{section.name}.{f.name}: documented {rows[f.name]}, default {want!r}")
    assert not problems, problems


def test_the_docs_name_the_settings_the_code_reads():
    import re

    config_md = (ROOT / "docs" / "config.md").read_text()
    assert "(default 10)" not in config_md  # the encoder margin falls back to 0.1 s = 5 frames
    assert re.search(r"`OPENBLAS_NUM_THREADS`.*edge/app/runtime\.py", config_md, flags=re.S)
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    server_env = (ROOT / "tools" / "install_server.sh").read_text() + (
        ROOT / "systemd" / "yellowhammer-server.service"
    ).read_text()
    server_section = deploy[deploy.index("## 7.") :]
    names = set(re.findall(r"`(YH_[A-Z_]+)", server_section))
    assert "YH_SERVER_MQTT__PASSWORD_FILE" in names
    assert names and all(n in server_env for n in names), names - {n for n in names if n in server_env}
    assert "a WAV of every song" not in deploy
