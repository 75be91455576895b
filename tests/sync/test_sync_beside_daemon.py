"""``yh-edge sync`` while the recorder daemon runs, under the deployed broker's rule of one client
id per username (``use_username_as_clientid``, deploy/mosquitto): a second connection would throw
the daemon off the broker, whatever client id it asks for. A real daemon process, a real
mosquitto, real SQLite files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.adapters.audio.wavfile import write_wav
from edge.adapters.store.sqlite import SqliteStore
from edge.app.health import read_health
from tests.broker import MosquittoBroker, mosquitto_binary
from tests.edge.helpers import write_config

from .helpers import make_detection, unsynced_count, wait_for

ROOT = Path(__file__).resolve().parents[2]
TAKEOVER = "already connected, closing old connection"

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="needs mosquitto")


@pytest.fixture()
def forcing_broker(tmp_path):
    """mosquitto with the deployed listener rule: the client id is the username."""
    broker = MosquittoBroker(tmp_path / "mosq", extra_conf="use_username_as_clientid true\n"
                             "log_type notice\nconnection_messages true\n").start()  # fmt: skip
    yield broker
    broker.stop()


def _env() -> dict:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("YH_")}, "PYTHONPATH": str(ROOT)}


def _sync(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.app.sync", "-c", str(cfg), "--timeout", "30", *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=_env())  # fmt: skip


def _add(db: Path, start: int, n: int) -> None:
    store = SqliteStore(db)
    try:
        for i in range(start, start + n):
            store.add(make_detection("test-device", i))
    finally:
        store.close()


def _start_daemon(broker, tmp_path: Path) -> tuple[Path, Path, subprocess.Popen]:
    """A recorder daemon (a quiet meadow, played in a loop as the microphone) sending to
    ``broker``; returns its config file, its database and the process, once connected."""
    noise = tmp_path / "noise.wav"
    write_wav(noise, (0.001 * np.random.default_rng(3).standard_normal(24000 * 4)).astype(np.float32), 24000)
    data = tmp_path / "data"
    extra = (f'\n[mqtt]\nenabled = true\nhost = "{broker.host}"\nport = {broker.port}\n'
             'username = "test-device"\nmax_backoff_s = 2.0\n')  # fmt: skip
    cfg = write_config(tmp_path / "edge.toml", data, replay=str(noise), extra=extra)
    loop = '[audio]\nreplay_realtime = true\nreplay_loop = true\nreplay_timestamps = "now"\n'
    cfg.write_text(cfg.read_text().replace("[audio]\n", loop))
    daemon = subprocess.Popen([sys.executable, "-m", "edge", "run", "-c", str(cfg)], env=_env(), cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "daemon.log", "ab"))  # noqa: SIM115  # fmt: skip
    try:
        wait_for(lambda: ((read_health(data) or {}).get("publisher") or {}).get("connected"), 90,
                 what="the daemon's publisher connected")  # fmt: skip
    except BaseException:
        daemon.kill()
        daemon.wait(60)
        raise
    return cfg, data / "detections.sqlite", daemon


def _assert_daemon_kept_its_connection(broker, tmp_path: Path) -> None:
    """The broker threw no client off, and the daemon connected once and never lost it."""
    assert TAKEOVER not in broker.log_text()
    log = (tmp_path / "daemon.log").read_text()
    assert log.count("mqtt: connected") == 1 and "connection lost" not in log, log[-3000:]


def test_a_one_shot_sync_never_throws_the_running_daemon_off_a_broker_forcing_the_client_id(
    forcing_broker, tmp_path
):
    cfg, db, daemon = _start_daemon(forcing_broker, tmp_path)
    try:
        _add(db, 0, 20)
        r = _sync(cfg, "--json")
        assert r.returncode == 0, r.stdout + r.stderr[-2000:]
        result = json.loads(r.stdout)
        assert result["daemon_pid"] == daemon.pid and result["remaining"] == 0 and result["drained"]
        assert unsynced_count(db) == 0
        # plain text: one line saying who sent them
        _add(db, 100, 5)
        r = _sync(cfg)
        assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == 1, r.stdout + r.stderr[-2000:]
        assert (
            f"sent by the running recorder (pid {daemon.pid})" in r.stdout and "0 still unsynced" in r.stdout
        )
        # --follow would replace the daemon's connection: refused in one line, nothing connects
        r = _sync(cfg, "--follow")
        assert r.returncode == 1 and f"pid {daemon.pid}" in r.stderr and "Traceback" not in r.stderr, r.stderr
        _assert_daemon_kept_its_connection(forcing_broker, tmp_path)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
    # with the daemon stopped, the one-shot sync connects itself
    _add(db, 200, 5)
    r = _sync(cfg, "--json")
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]
    result = json.loads(r.stdout)
    assert result["acked"] == 5 and result["remaining"] == 0 and "daemon_pid" not in result


def test_the_broker_named_otherwise_is_still_the_daemons_and_left_to_it(forcing_broker, tmp_path):
    # the daemon sends to 127.0.0.1, the sync is told "localhost": one broker, so the sync must
    # leave the sending to the daemon (compared as host:port text they differed, and the sync
    # connected beside the daemon, throwing it off the broker forcing client id = username)
    assert forcing_broker.host == "127.0.0.1"
    cfg, db, daemon = _start_daemon(forcing_broker, tmp_path)
    try:
        _add(db, 0, 5)
        r = _sync(cfg, "--json", "--host", "localhost")
        assert r.returncode == 0, r.stdout + r.stderr[-2000:]
        result = json.loads(r.stdout)
        assert result.get("daemon_pid") == daemon.pid and result["remaining"] == 0, result
        _assert_daemon_kept_its_connection(forcing_broker, tmp_path)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
