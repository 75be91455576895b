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
