"""The daemon's lifecycle: SIGTERM and SIGKILL on a real subprocess, sd_notify, restarts, MQTT.

No test asserts on wall-clock durations: waits have generous timeouts and only guard against a
hang; what is asserted is what ends up in the store, the exit status and the notifications.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge.adapters.audio.replay import ReplaySource
from edge.app.compose import build_pipeline
from edge.app.config import load_config
from edge.app.daemon import Daemon, SystemdNotifier
from edge.app.health import read_health
from edge.core.errors import AudioDeviceError
from tests.edge.helpers import ALL_SONGS, SR, make_song_stream, write_config

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 90.0  # a guard against hangs only


class Notifications:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def poll(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, BlockingIOError):
                return
            self.messages += data.decode().split("\n")

    def wait_for(self, line: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while line not in self.messages:
            assert time.monotonic() < deadline, f"no {line!r} from the daemon: {self.messages}"
            self.poll()

    def close(self) -> None:
        self.sock.close()


def start_daemon(cfg: Path, tmp_path: Path, notify: Path | None = None, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YH_")}
    env["PYTHONPATH"] = str(ROOT)
    if notify is not None:
        env["NOTIFY_SOCKET"] = str(notify)
        env["WATCHDOG_USEC"] = "3000000"
    return subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "-c", str(cfg), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "daemon.log", "ab"),  # noqa: SIM115 - closed with the process
        cwd=tmp_path,
    )


def wait_health(data_dir: Path, pred, proc: subprocess.Popen, timeout: float = TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        h = read_health(data_dir)
        if h and pred(h):
            return h
        assert proc.poll() is None, f"daemon exited early: {proc.returncode}"
        assert time.monotonic() < deadline, f"daemon never reached the state; last health: {h}"
        time.sleep(0.05)


def stored(db: Path) -> list[tuple]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(
            "SELECT id, start_time, end_time, truncated, onset_s, offset_s "
            "FROM detections ORDER BY start_time"
        ).fetchall()
    finally:
        con.close()


def assert_all_found(rows, truth, tol=0.05):
    for t in truth:
        assert any(abs(r[4] - t.onset_s) < tol and abs(r[5] - t.offset_s) < tol for r in rows), (t, rows)


@pytest.fixture(scope="module")
def song_wav(tmp_path_factory):
    d = tmp_path_factory.mktemp("replay")
    truth = make_song_stream(d / "songs.wav", ALL_SONGS[:6], gap_s=1.5)
    return d / "songs.wav", truth


@pytest.mark.slow
def test_run_subprocess_sigterm_finds_every_song(tmp_path, song_wav):
    wav, truth = song_wav
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "edge.toml", data, replay=str(wav))
    notes = Notifications(tmp_path / "notify.sock")
    proc = start_daemon(cfg, tmp_path, notes.path)
    try:
        notes.wait_for("READY=1")
        wait_health(data, lambda h: h["state"] == "finished", proc)
        notes.wait_for("WATCHDOG=1")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0, (tmp_path / "daemon.log").read_text()
        notes.poll()
        assert "STOPPING=1" in notes.messages
        assert any(m.startswith("STATUS=") for m in notes.messages)
    finally:
        if proc.poll() is None:
            proc.kill()
        notes.close()
    rows = stored(data / "detections.sqlite")
    assert len(rows) == len(truth)
    assert_all_found(rows, truth)
    h = read_health(data)
    assert h["state"] == "stopped" and not h["running"]


@pytest.mark.slow
def test_sigterm_in_the_middle_flushes_the_song_in_flight(tmp_path, song_wav):
    wav, truth = song_wav
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "edge.toml", data, replay=str(wav), extra="")
    text = cfg.read_text().replace('replay_path = "', 'replay_realtime = true\nreplay_path = "')
    cfg.write_text(text)
    proc = start_daemon(cfg, tmp_path)
    try:
        # stop somewhere inside the second song (where exactly does not matter for the checks)
        mid = (truth[1].onset_s + truth[1].offset_s) / 2
        wait_health(data, lambda h: h["pipeline"]["audio_seconds"] >= mid, proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0, (tmp_path / "daemon.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    heard = read_health(data)["pipeline"]["audio_seconds"]
    rows = stored(data / "detections.sqlite")
    for t in truth:
        if t.onset_s + 0.8 >= heard:
            continue  # not heard enough of it to be a song yet
        match = [r for r in rows if abs(r[4] - t.onset_s) < 0.05]
        assert match, (t, heard, rows)
        if t.offset_s > heard + 0.05:  # was in flight: stored, cut off at the stop
            assert match[0][3] == 1 and match[0][5] <= heard + 0.01
        else:
            assert abs(match[0][5] - t.offset_s) < 0.05


@pytest.mark.slow
def test_repeated_sigkill_loses_and_duplicates_nothing(tmp_path):
    wav = tmp_path / "long.wav"
    # ~12 min: long enough to interrupt at least three times (the pipeline gets through it in about
    # half a second of CPU, so a shorter stream may be done before the kill lands)
    truth = make_song_stream(wav, ALL_SONGS * 24, gap_s=1.0, seed=11)
    data = tmp_path / "data"
    cfg = write_config(tmp_path / "edge.toml", data, replay=str(wav))
    db = data / "detections.sqlite"
    rng = np.random.default_rng(5)
    seen: set[str] = set()
    kills = 0
    rounds = []
    for _ in range(6):
        before = len(seen)
        proc = start_daemon(cfg, tmp_path)
        try:
            deadline = time.monotonic() + TIMEOUT
            # kill while it is writing: as soon as this run has added a row, after a random pause
            while True:
                assert time.monotonic() < deadline, "no progress"
                if proc.poll() is not None:
                    break
                try:
                    n = len(stored(db)) if db.exists() else 0
                except sqlite3.OperationalError:
                    n = 0
                if n > before:
                    time.sleep(float(rng.uniform(0.0, 0.05)))
                    break
                if n == len(truth):
                    break
                time.sleep(0.01)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(TIMEOUT)
        ids = {r[0] for r in stored(db)}
        assert seen <= ids, "a stored detection disappeared after SIGKILL"
        seen = ids
        rounds.append(len(ids))
        if len(seen) == len(truth):
            break
    assert kills >= 3, rounds
    # a last, clean run to the end
    proc = start_daemon(cfg, tmp_path, None, "--once")
    assert proc.wait(TIMEOUT) == 0
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = con.execute("SELECT id, start_time FROM detections").fetchall()
    outbox = con.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    con.close()
    assert len(rows) == len(truth) == outbox
    assert len({r[1] for r in rows}) == len(rows)  # no song stored twice under two ids
    assert seen <= {r[0] for r in rows}
    assert_all_found(stored(db), truth)


# -- in-process ---------------------------------------------------------------------------
class RecordingNotifier(SystemdNotifier):
    def __init__(self):
        super().__init__(env={})
        self.messages: list[str] = []
        self.watchdog_s = 0.3

    def notify(self, *lines):
        self.messages += lines


def test_notifier_speaks_the_datagram_protocol(tmp_path):
    notes = Notifications(tmp_path / "n.sock")
    n = SystemdNotifier(env={"NOTIFY_SOCKET": str(notes.path), "WATCHDOG_USEC": "4000000"})
    assert n.enabled and n.watchdog_s == 4.0
    n.notify("READY=1", "STATUS=hello")
    notes.wait_for("STATUS=hello", timeout=5)
    assert "READY=1" in notes.messages
    assert not SystemdNotifier(env={}).enabled
    SystemdNotifier(env={}).notify("READY=1")  # a no-op without systemd
    assert SystemdNotifier(env={"WATCHDOG_USEC": "5", "WATCHDOG_PID": "1"}).watchdog_s is None
    notes.close()


def test_daemon_once_in_process_with_health_and_flush(tmp_path, song_wav, models):
    wav, truth = song_wav
    cfg = load_config(write_config(tmp_path / "edge.toml", tmp_path / "data", replay=str(wav)))
    det, enc = models
    comp = build_pipeline(cfg, detector=det, encoder=enc)
    notifier = RecordingNotifier()
    d = Daemon(cfg, once=True, notifier=notifier, components=comp)
    assert d.run() == 0
    assert notifier.messages[0] == "READY=1" and "STOPPING=1" in notifier.messages
    snap = json.loads((tmp_path / "data" / "health.json").read_text())
    assert snap["state"] == "stopped" and snap["pipeline"]["songs"] == len(truth)
    for key in ("disk", "cpu_temp_c", "rss_bytes", "backlog", "audio_overflows", "processing_lag_s"):
        assert key in snap


class FailingSource:
    """Fails like a lost device on its first use, then replays."""

    def __init__(self, inner, fail: bool):
        self.inner, self.fail, self.name = inner, fail, "flaky"

    def chunks(self, stop):
        if self.fail:
            raise AudioDeviceError("device vanished")
        yield from self.inner.chunks(stop)

    def stats(self):
        return self.inner.stats()


def test_capture_is_restarted_after_a_failure(tmp_path, song_wav, models):
    wav, truth = song_wav
    cfg = load_config(write_config(tmp_path / "edge.toml", tmp_path / "data", replay=str(wav)))
    det, enc = models
    comp = build_pipeline(cfg, detector=det, encoder=enc)
    made = []

    def factory():
        made.append(1)
        return FailingSource(ReplaySource([wav], SR), fail=len(made) == 1)

    d = Daemon(cfg, once=True, notifier=RecordingNotifier(), components=comp, source_factory=factory)
    assert d.run() == 0
    assert len(made) == 2 and read_health(cfg.device.data_dir)["pipeline_restarts"] == 1
    assert len(stored(cfg.db_path)) == len(truth)


def test_stalled_pipeline_stops_the_watchdog(tmp_path, models):
    write_config(tmp_path / "edge.toml", tmp_path / "data", replay=str(tmp_path))
    cfg = load_config(tmp_path / "edge.toml", env={"YH_HEALTH__STALL_SECONDS": "0.3"})
    det, enc = models
    release = threading.Event()

    class Hanging:
        name = "hanging"

        def chunks(self, stop):
            from edge.core.records import AudioChunk

            yield AudioChunk(np.zeros(SR // 2, np.float32), SR, 0, time.time(), source="x", stream_start=True)
            release.wait(TIMEOUT)  # a stage that never returns

        def stats(self):
            return {"state": "capturing"}

    notifier = RecordingNotifier()
    comp = build_pipeline(cfg, detector=det, encoder=enc)
    d = Daemon(cfg, notifier=notifier, components=comp, source_factory=Hanging)
    t = threading.Thread(target=d.run)
    t.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while "WATCHDOG=1" not in notifier.messages:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # once stalled, the pings stop: wait until a stretch of ticks passes without one
        while True:
            n = len(notifier.messages)
            time.sleep(1.0)
            if notifier.messages[n:].count("WATCHDOG=1") == 0:
                break
            assert time.monotonic() < deadline, "the watchdog kept being pinged"
    finally:
        d.stop.set()
        release.set()
        t.join(TIMEOUT)


def test_daemon_starts_the_mqtt_publisher_and_syncs(tmp_path, song_wav, models, mqtt_broker):
    wav, truth = song_wav
    extra = f'\n[mqtt]\nenabled = true\nhost = "{mqtt_broker.host}"\nport = {mqtt_broker.port}\n'
    cfg = load_config(write_config(tmp_path / "edge.toml", tmp_path / "data", replay=str(wav), extra=extra))
    det, enc = models
    comp = build_pipeline(cfg, detector=det, encoder=enc)
    d = Daemon(cfg, notifier=RecordingNotifier(), components=comp)
    t = threading.Thread(target=d.run)
    t.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            c = comp.store.counts()
            if c["detections"] == len(truth) and c["unsynced"] == 0:
                break
            assert time.monotonic() < deadline, f"not synced: {c}"
            time.sleep(0.1)
        assert d.health()["publisher"]
    finally:
        d.stop.set()
        t.join(TIMEOUT)
    assert not t.is_alive()
