"""``yh-edge sync``: drain the outbox to the broker once, or run the publisher loop alone.

Also runnable stand-alone as ``python -m edge.app.sync`` (it does not import the whole CLI).
"""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
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
    return (
        f"{result['device_id']} -> {result['broker']}: {result['acked']} acknowledged, "
        f"{result['remaining']} still unsynced"
        + (f", {result['skipped']} unsendable (see log)" if result["skipped"] else "")
    )


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
    or detections remain). Works whether or not mqtt.enabled is set.
    """
    from edge.adapters.mqtt.publisher import MqttPublisher
    from edge.adapters.store.sqlite import SqliteStore

    try:
        cfg = build_config(config_path, db, host, port, device_id, max_rate, batch_size)
        store = SqliteStore(cfg.db_path)
        try:
            # one-shot: beside a running daemon, under a client id of its own (the same one would
            # throw the daemon's connection off the broker); --follow replaces the daemon's loop
            pub = MqttPublisher(cfg, store, client_id=None if follow else f"{cfg.device_id}-sync")
            if follow:
                stop = threading.Event()
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, lambda *_: stop.set())
                pub.run(stop)
                result = pub.summary()
            else:
                result = pub.publish_pending(timeout)
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
