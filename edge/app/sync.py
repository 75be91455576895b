"""``yh-edge sync``: drain the outbox to the broker once, or run the publisher loop alone.

Also runnable stand-alone as ``python -m edge.app.sync`` (it does not import the whole CLI).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import signal
import socket
import threading
import time
from pathlib import Path

import click

from edge.app.cli_options import config_option
from edge.app.config import Config, load_config
from edge.core.errors import YellowhammerError
from edge.kit.cli import json_option, one_line, setup_logging


def build_config(config_path, db, host, port, device_id, max_rate, batch_size) -> Config:
    """The config with the command line's overrides applied."""
    cfg = load_config(config_path)
    mq = {k: v for k, v in (("host", host), ("port", port), ("max_rate_per_s", max_rate),
                            ("batch_size", batch_size)) if v is not None}  # fmt: skip
    kw = {"mqtt": dataclasses.replace(cfg.mqtt, **mq)}
    if db is not None:
        kw["store"] = dataclasses.replace(cfg.store, path=str(db))
    if device_id is not None:
        kw["device"] = dataclasses.replace(cfg.device, id=device_id)
    return dataclasses.replace(cfg, **kw)


def format_summary(result: dict) -> str:
    by = f"sent by the running recorder (pid {result['daemon_pid']}): " if "daemon_pid" in result else ""
    return (
        f"{result['device_id']} -> {result['broker']}: {by}{result['acked']} acknowledged, "
        f"{result['remaining']} still unsynced"
        + (f", {result['skipped']} unsendable (see log)" if result["skipped"] else "")
        + (
            f"; it is not connected: {result['last_error'] or 'no connection yet'}"
            if by and not result["connected"]
            else ""
        )  # fmt: skip
    )


def running_publisher(cfg: Config) -> dict | None:
    """The health of the recorder daemon of this data directory when it runs and sends to the same
    broker, else None. A second connection of this device (the one-shot sync's) would throw it
    off: a broker that forces the username as client id (deploy/mosquitto) gives both one id."""
    from edge.app.health import read_health

    return _sending(
        cfg, read_health(cfg.device.data_dir, cfg.health.log_interval_s, cfg.health.stall_seconds)
    )


def _sending(cfg: Config, h: dict | None) -> dict | None:
    """``h`` when it is the health of a running daemon that sends to this config's broker."""
    pub = (h or {}).get("publisher")
    if not h or not h.get("running") or not isinstance(pub, dict):
        return None
    return h if same_broker(str(pub.get("broker")), f"{cfg.mqtt.host}:{cfg.mqtt.port}") else None


def same_broker(a: str, b: str) -> bool:
    """Whether two ``host:port`` brokers are one: equal ports and hosts resolving to a common
    address (``localhost`` and ``127.0.0.1``); hosts that do not resolve are compared as written."""
    if a == b:
        return True
    (ha, _, pa), (hb, _, pb) = a.rpartition(":"), b.rpartition(":")
    if not (pa.isdigit() and pb.isdigit()) or int(pa) != int(pb):
        return False
    ra, rb = _addresses(ha.strip("[]")), _addresses(hb.strip("[]"))
    if ra is None or rb is None:  # resolution failed: compare as written
        return ha.strip("[]").lower() == hb.strip("[]").lower()
    return bool(ra & rb)


@functools.lru_cache(maxsize=16)
def _addresses(host: str) -> frozenset[str] | None:
    """The addresses ``host`` resolves to (once per process: the wait asks twice a second)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        return None
    return frozenset(str(i[4][0]) for i in infos) or None


def _sendable(store, remaining: int, dtype: str, first: bool = False) -> int:
    """How many of the ``remaining`` unsynced detections can be sent (``first``: 1 at the first);
    read here, not taken from the daemon's health: its count of unsendable ones is as old as the
    file and stays when such rows are deleted (a disk emergency), so it could call a backlog of
    sendable detections drained."""
    n = 0
    for d in store.unsynced(remaining) if remaining else []:  # undecodable rows are left out
        try:
            d.to_message(dtype)
        except (TypeError, ValueError):  # never sendable: the daemon skips it too
            continue
        n += 1
        if first:
            break
    return n


def wait_for_daemon(cfg: Config, health: dict, timeout: float) -> dict | None:
    """Leave the sending to the running daemon and wait (reading the database) until it has sent
    every sendable detection, or ``timeout``; None if the daemon stopped meanwhile (the caller then
    sends itself, in what is left of the timeout). ``acked``: the detections acknowledged since
    the wait began (the backlog's net drop misses songs recorded meanwhile). A daemon restarted meanwhile (a new pid) or a health file unreadable for a
    moment is still one that sends: connecting beside it would throw it off. Its database must be
    this one: any other is refused (the daemon holds the connection)."""
    from edge.adapters.store.sqlite import SqliteStore
    from edge.app.health import read_health

    pid = health.get("pid")
    if Path(str(health.get("database"))).resolve() != cfg.db_path.resolve():
        raise click.ClickException(
            f"the recorder (pid {pid}) is running and sending {health.get('database')} to "
            f"{cfg.mqtt.host}:{cfg.mqtt.port} as this device; a second connection would throw it off the "
            f"broker: stop it first (systemctl stop yellowhammer-edge) to send {cfg.db_path}"
        )
    store = SqliteStore(cfg.db_path, readonly=True)
    try:
        started = time.time()  # the daemon stamps synced_at with the wall clock
        deadline = time.monotonic() + timeout
        while True:
            pub = health.get("publisher") or {}
            remaining = store.counts()["unsynced"]
            drained = not _sendable(store, remaining, cfg.mqtt.embedding_dtype, first=True)
            if drained or time.monotonic() > deadline:
                break
            time.sleep(0.5)
            h = read_health(cfg.device.data_dir, cfg.health.log_interval_s, cfg.health.stall_seconds)
            if h is None:  # met half written (or unreadable) for a moment: the daemon still sends
                continue
            if _sending(cfg, h) is None:
                return None  # it stopped (or no longer sends there): the caller sends itself
            health, pid = h, h.get("pid")  # restarted (systemd): the new daemon sends; wait for it
        skipped = remaining - _sendable(store, remaining, cfg.mqtt.embedding_dtype)
        acked = store.synced_since(started)  # not the backlog's net drop: songs recorded meanwhile
    finally:
        store.close()
    return {"device_id": cfg.device_id, "broker": f"{cfg.mqtt.host}:{cfg.mqtt.port}", "daemon_pid": pid,
            "published": None, "acked": acked, "skipped": skipped, "remaining": remaining,
            "drained": drained, "connected": bool(pub.get("connected")), "last_error": pub.get("last_error", "")}  # fmt: skip


@click.command("sync")
@config_option
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Detection database (default: from the config).")  # fmt: skip
@click.option("--host", default=None, help="Broker host (overrides mqtt.host).")
@click.option("--port", type=int, default=None, help="Broker port (overrides mqtt.port).")
@click.option("--device-id", default=None, help="Device id (overrides device.id).")
@click.option("--timeout", type=float, default=120.0, show_default=True,
              help="One-shot: give up after this many seconds.")  # fmt: skip
@click.option("--follow", is_flag=True, help="Keep publishing until SIGTERM/SIGINT (the daemon's loop).")
@click.option("--max-rate", type=float, default=None, help="Messages per second at most (0 = no cap).")
@click.option("--batch-size", type=int, default=None, help="Outbox rows per round.")
@json_option
def sync_command(config_path, db, host, port, device_id, timeout, follow, max_rate, batch_size, as_json):
    """Send the unsynced detections to the MQTT broker (acknowledged ones are marked synced).

    Without --follow: drain the outbox once and exit (status 1 if the broker was unreachable
    or detections remain). Works whether or not mqtt.enabled is set. While the recorder daemon
    runs and sends to the same broker, it is left to send them (a second connection of this
    device would throw it off the broker) and this waits for it; --follow is refused then.
    """
    from edge.adapters.mqtt.publisher import MqttPublisher
    from edge.adapters.store.sqlite import SqliteStore

    started = time.monotonic()  # the whole one-shot (waiting, then sending itself) ends at --timeout
    try:
        cfg = build_config(config_path, db, host, port, device_id, max_rate, batch_size)
        daemon = running_publisher(cfg)
        if daemon is not None and follow:
            raise click.ClickException(
                f"the recorder (pid {daemon.get('pid')}) is running and already sending to "
                f"{cfg.mqtt.host}:{cfg.mqtt.port}; --follow would throw it off the broker (stop it first)"
            )
        result = wait_for_daemon(cfg, daemon, timeout) if daemon is not None else None
        if result is not None:
            click.echo(json.dumps(result) if as_json else format_summary(result))
            raise SystemExit(0 if result["drained"] else 1)
        left = timeout - (time.monotonic() - started)
        if daemon is not None and left <= 0:  # a send without time would fail as "cannot reach broker"
            raise click.ClickException(
                f"the recorder (pid {daemon.get('pid')}) stopped while this waited for it to send, and "
                f"--timeout ({timeout:g} s) is used up: nothing sent by this sync; run it again"
            )
        store = SqliteStore(cfg.db_path)
        try:
            # one-shot: under a client id of its own (where the broker lets it keep one, a daemon
            # that is hung or sends elsewhere keeps its connection); --follow is the daemon's loop
            pub = MqttPublisher(cfg, store, client_id=None if follow else f"{cfg.device_id}-sync")
            if follow:
                stop = threading.Event()
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, lambda *_: stop.set())
                pub.run(stop)
                result = pub.summary()
            else:
                result = pub.publish_pending(max(0.0, left))
        finally:
            store.close()
    except YellowhammerError as exc:
        raise click.ClickException(one_line(exc)) from None
    click.echo(json.dumps(result) if as_json else format_summary(result))
    if not follow and not result["drained"]:
        raise SystemExit(1)


if __name__ == "__main__":  # pragma: no cover - exercised by the subprocess tests
    setup_logging()
    sync_command(prog_name="python -m edge.app.sync")
