"""``yh-edge sync`` beside a running daemon (``edge.app.sync.wait_for_daemon``) without a broker:
the daemon is a health file and a live pid, its sending is marking rows synced in the database."""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time
from pathlib import Path

import pytest

from edge.adapters.store.sqlite import SqliteStore
from edge.app.health import HEALTH_FILE, read_health, write_health
from edge.app.sync import wait_for_daemon

from .helpers import edge_config, fill_store


class _Broker:
    host, port = "127.0.0.1", 1883


@pytest.fixture()
def sleepers():
    procs = [subprocess.Popen(["sleep", "120"]) for _ in range(2)]
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def _health(cfg, pid: int) -> None:
    write_health(cfg.device.data_dir, {
        "pid": pid, "state": "running", "updated": time.time(), "health_interval_s": 5.0,
        "database": str(cfg.db_path),
        "publisher": {"broker": f"{cfg.mqtt.host}:{cfg.mqtt.port}", "connected": True, "skipped": 0},
    })  # fmt: skip


def _waiting(cfg, timeout: float) -> tuple[threading.Thread, list]:
    out: list = []
    t = threading.Thread(
        target=lambda: out.append(wait_for_daemon(cfg, read_health(cfg.device.data_dir), timeout))
    )
    t.start()
    return t, out


def test_a_restarted_or_briefly_unreadable_daemon_is_still_left_to_send(tmp_path: Path, sleepers):
    # systemd restarts the recorder (a new pid) or the health file is met half written: the daemon
    # still sends, so the sync must go on waiting; returning None made it connect beside the daemon
    # (and, on a broker forcing client id = username, throw it off)
    db = tmp_path / "detections.sqlite"
    cfg = edge_config(_Broker, "dev-a", db)
    ids = fill_store(db, "dev-a", 3)
    first, second = sleepers
    _health(cfg, first.pid)
    t, out = _waiting(cfg, 20.0)
    time.sleep(1.0)
    (Path(cfg.device.data_dir) / HEALTH_FILE).write_text('{"pid": ')  # half written, for a while
    time.sleep(1.0)
    _health(cfg, second.pid)  # the restarted daemon
    time.sleep(1.0)
    store = SqliteStore(db)
    store.mark_synced(ids)  # ... which sends the backlog
    store.close()
    t.join(30)
    assert out and out[0] is not None, "the sync gave up waiting beside a running daemon"
    assert out[0]["daemon_pid"] == second.pid and out[0]["drained"] and out[0]["remaining"] == 0
    assert out[0]["acked"] == 3


def test_a_daemon_that_stops_is_no_longer_waited_for(tmp_path: Path, sleepers):
    db = tmp_path / "detections.sqlite"
    cfg = edge_config(_Broker, "dev-a", db)
    fill_store(db, "dev-a", 2)
    _health(cfg, sleepers[0].pid)
    t, out = _waiting(cfg, 20.0)
    time.sleep(1.0)
    sleepers[0].kill()
    sleepers[0].wait()
    t.join(10)
    assert out == [None]  # the caller sends itself


def _health_skipped(cfg, pid: int, skipped: int) -> None:
    _health(cfg, pid)
    h = read_health(cfg.device.data_dir)
    h["publisher"]["skipped"] = skipped
    write_health(cfg.device.data_dir, h)


def test_nothing_sent_is_never_reported_drained_on_the_daemons_old_count_of_unsendable_rows(
    tmp_path: Path, sleepers
):
    # the daemon's health counts 2 unsendable detections it skipped, since deleted (a disk
    # emergency deletes the oldest unsynced rows): 2 sendable ones, not sent, were called drained
    db = tmp_path / "detections.sqlite"
    cfg = edge_config(_Broker, "dev-a", db)
    fill_store(db, "dev-a", 2)
    _health_skipped(cfg, sleepers[0].pid, 2)
    r = wait_for_daemon(cfg, read_health(cfg.device.data_dir), 1.5)
    assert r is not None and not r["drained"] and r["remaining"] == 2 and r["skipped"] == 0
    assert r["acked"] == 0


def test_a_backlog_of_only_unsendable_rows_is_drained_whatever_the_health_file_says(tmp_path: Path, sleepers):
    import sqlite3

    db = tmp_path / "detections.sqlite"
    cfg = edge_config(_Broker, "dev-a", db)
    ids = fill_store(db, "dev-a", 3)
    store = SqliteStore(db)
    store.mark_synced(ids[1:])
    store.close()
    with sqlite3.connect(db) as c:  # the one left cannot be decoded: the daemon skips it
        c.execute("UPDATE detections SET spectrogram = 'damaged' WHERE id = ?", [ids[0]])
    c.close()
    _health_skipped(cfg, sleepers[0].pid, 0)  # written before the daemon met it
    t0 = time.monotonic()
    r = wait_for_daemon(cfg, read_health(cfg.device.data_dir), 20.0)
    assert r["drained"] and r["remaining"] == 1 and r["skipped"] == 1 and time.monotonic() - t0 < 5


def test_acked_counts_what_the_daemon_sent_during_the_wait_not_the_net_drop_of_the_backlog(
    tmp_path: Path, sleepers
):
    # 3 unsynced at the start (and 1 synced before: not sent during the wait); meanwhile 2 songs
    # are recorded and the daemon sends all 5: the backlog dropped by 3, the daemon sent 5
    db = tmp_path / "detections.sqlite"
    cfg = edge_config(_Broker, "dev-a", db)
    ids = fill_store(db, "dev-a", 4)
    store = SqliteStore(db)
    store.mark_synced(ids[:1])
    store.close()
    time.sleep(0.05)
    _health(cfg, sleepers[0].pid)
    t, out = _waiting(cfg, 20.0)
    time.sleep(1.0)
    new = fill_store(db, "dev-a", 2, start=10)  # songs recorded during the wait
    store = SqliteStore(db)
    store.mark_synced(ids[1:] + new)
    store.close()
    t.join(30)
    assert out and out[0] is not None and out[0]["drained"] and out[0]["remaining"] == 0
    assert out[0]["acked"] == 5


def test_brokers_are_compared_by_address_and_port_and_as_written_when_a_name_does_not_resolve():
    from edge.app.sync import same_broker

    assert same_broker("localhost:1883", "127.0.0.1:1883")
    assert not same_broker("localhost:1883", "127.0.0.1:1884")
    assert same_broker("broker.invalid:1883", "BROKER.invalid:1883")  # unresolvable: as written
    assert not same_broker("a.invalid:1883", "b.invalid:1883")
    assert not same_broker("None", "127.0.0.1:1883")  # a health file without a broker


def test_a_daemon_stopping_mid_wait_leaves_the_sync_only_the_rest_of_its_timeout(tmp_path: Path, sleepers):
    # the daemon stops 2.5 s into a 4-s sync, the broker is out of reach: the sync's own send
    # gets what is left of the 4 s (it used to get 4 s more: up to twice the timeout in all)
    from click.testing import CliRunner

    from edge.app.sync import sync_command
    from tests.broker import free_port
    from tests.edge.helpers import write_config

    port = free_port()  # nothing listens there
    cfg_path = write_config(
        tmp_path / "edge.toml", tmp_path, extra=f'\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
    )
    cfg = edge_config(_Broker, "test-device", tmp_path / "detections.sqlite")
    cfg = dataclasses.replace(cfg, mqtt=dataclasses.replace(cfg.mqtt, port=port))
    fill_store(cfg.db_path, "test-device", 2)
    _health(cfg, sleepers[0].pid)
    stopper = threading.Timer(2.5, lambda: (sleepers[0].kill(), sleepers[0].wait()))
    stopper.start()
    t0 = time.monotonic()
    r = CliRunner().invoke(
        sync_command, ["-c", str(cfg_path), "--timeout", "4", "--json"], env={"YH_CONFIG": None}
    )
    took = time.monotonic() - t0
    stopper.join()
    assert r.exit_code == 1, r.output
    assert 2.5 <= took < 4 + 1.5, f"the sync took {took:.1f} s with --timeout 4"


def test_a_daemon_stopping_as_the_timeout_ends_is_reported_as_such_not_as_an_unreachable_broker(
    tmp_path: Path, monkeypatch
):
    # the daemon stops just as the sync's --timeout runs out: nothing is left for its own send; it
    # said "mqtt: sync failed: no connection to <broker>", as if the broker were out of reach
    from click.testing import CliRunner

    import edge.app.sync as sync
    from tests.broker import free_port
    from tests.edge.helpers import write_config

    port = free_port()  # never tried: there is no time left to connect
    cfg_path = write_config(
        tmp_path / "edge.toml", tmp_path, extra=f'\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\n'
    )
    fill_store(tmp_path / "detections.sqlite", "test-device", 2)

    def waited_out(cfg, health, timeout):
        time.sleep(timeout + 0.2)
        return None  # the daemon stopped at the end of the wait

    monkeypatch.setattr(sync, "running_publisher", lambda cfg: {"pid": 4321, "running": True})
    monkeypatch.setattr(sync, "wait_for_daemon", waited_out)
    r = CliRunner().invoke(
        sync.sync_command, ["-c", str(cfg_path), "--timeout", "0.5"], env={"YH_CONFIG": None}
    )
    assert r.exit_code == 1, r.output
    assert "no connection" not in r.output and "cannot reach" not in r.output, r.output
    assert "pid 4321" in r.output and "stopped" in r.output and "--timeout" in r.output, r.output
