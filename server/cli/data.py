"""``yh-server`` commands that get detections in and keep the database: ``ingest`` (MQTT),
``import`` (edge database files), ``status``, ``recover`` and ``snapshot``.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import threading
from pathlib import Path

import click

from edge.kit.cli import json_option

from ..errors import StorageCorruptError
from .app import echo_json, main, open_db, server_config


@main.command("ingest")
@click.option("--host", default=None, help="Broker host (overrides mqtt.host).")
@click.option("--port", type=int, default=None, help="Broker port (overrides mqtt.port).")
@click.option(
    "--prefix", default=None, help="Topic prefix, as the devices' mqtt.topic_prefix (overrides mqtt.prefix)."
)
@click.option("--client-id", default=None,
              help="Stable MQTT client id of this worker (default yh-ingest-<host>); each worker needs its own.")  # fmt: skip
@click.option("--share-group", default=None,
              help="Shared-subscription group, so that several workers split the messages (default: a plain "
              "subscription, one worker). Mosquitto does not keep shared subscriptions over a broker restart; "
              "see docs/mqtt.md.")  # fmt: skip
@click.option("--username", default=None)
@click.option("--password-file", default=None, help="File holding the password.")
@click.option("--tls/--no-tls", default=None, help="Use TLS (implied by --ca-file).")
@click.option("--ca-file", default=None)
@click.option("--cert-file", default=None)
@click.option("--key-file", default=None)
@click.pass_context
def ingest(ctx, **overrides) -> None:
    """Subscribe to the devices' detections, validate, store; runs until SIGTERM/SIGINT."""
    from ..ingest import Ingestor

    cfg = server_config(ctx)
    given = {k: v for k, v in overrides.items() if v is not None}
    if "prefix" in given:
        given["prefix"] = given["prefix"].strip("/")
    settings = dataclasses.replace(cfg.mqtt, **given)
    storage = open_db(ctx)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        Ingestor(storage, settings).run(stop)
    finally:
        storage.close()


@main.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@click.pass_context
def import_cmd(ctx, paths: tuple[Path, ...], as_json: bool) -> None:
    """Load edge database files copied from devices (read-only; known detections are skipped)."""
    from ..ingest import import_edge_db

    storage = open_db(ctx)
    results = []
    try:
        for p in paths:
            with click.progressbar(
                length=_row_count(p), label=f"import {p.name}", file=sys.stderr, show_pos=True
            ) as bar:
                results.append(import_edge_db(storage, p, progress=bar.update))
    finally:
        storage.close()
    if as_json:
        echo_json(results)
    else:
        for r in results:
            click.echo(
                f"{r['file']}: {r['read']} read, {r['new']} new, {r['duplicate']} already known, "
                f"{r['quarantined']} quarantined"
            )


def _row_count(path: Path) -> int:
    import sqlite3

    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM detections").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


@main.command("status")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.option(
    "--quarantine", "show_q", type=int, default=0, help="Also list the last N quarantined messages."
)
@click.pass_context
def status(ctx, as_json: bool, show_q: int) -> None:
    """Counts: detections, duplicates received, quarantine reasons, encoders, devices, runs."""
    storage = open_db(ctx, readonly=True)
    try:
        problem = storage.check()
        if problem != "ok":
            raise StorageCorruptError(problem)
        c = storage.counts()
        c["devices_detail"] = [{k: v for k, v in d.items() if k != "stats"} for d in storage.devices()]
        if show_q:
            c["quarantine_last"] = [
                {**{k: v for k, v in q.items() if k != "payload"},
                 "payload_head": bytes(q["payload"] or b"")[:120].decode("utf-8", "replace")}
                for q in storage.quarantine_rows(show_q)
            ]  # fmt: skip
    finally:
        storage.close()
    if as_json:
        echo_json(c)
        return
    click.echo(f"detections: {c['detections']} ({c['duplicates_received']} duplicate receipts absorbed)")
    for e in c["encoders"]:
        click.echo(f"  encoder {e['encoder_version']}: {e['detections']} detections, {e['embedding_dim']}-d")
    click.echo(f"devices: {c['devices']}; labels: {c['labels']}; cluster runs: {c['cluster_runs']}")
    click.echo(
        f"spectrograms: {c['spectrograms']}; clips: {c['clips']} ({c['clips_arriving']} still arriving)"
    )
    click.echo(f"quarantined: {c['quarantined']}")
    for r in c["quarantine_reasons"]:
        click.echo(f"  {r['n']:6d}  {r['reason']}")
    for q in c.get("quarantine_last", []):
        click.echo(f"  #{q['id']} {q['topic'] or q['origin']}: {q['reason']}")


@main.command("recover")
@click.argument("damaged", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@json_option
def recover_cmd(damaged: Path, new: Path, as_json: bool) -> None:
    """Copy what is readable of a damaged server database into a NEW file (DAMAGED is only read)."""
    from ..storage.recover import recover

    r = recover(damaged, new)
    if as_json:
        echo_json(r)
        return
    lost = {k: v for k, v in r["skipped"].items() if v}
    click.echo(f"{new}: {r['tables'].get('detections', 0)} detections and "
               f"{sum(r['tables'].values())} rows in all copied; unreadable stretches skipped: {lost or 'none'}")  # fmt: skip


@main.command("snapshot")
@click.argument("out_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def snapshot_cmd(ctx, out_file: Path, as_json: bool) -> None:
    """Write a consistent single-file copy of the database (WAL included) to OUT_FILE, e.g. for
    `datasette --immutable OUT_FILE` while ingest keeps writing to the live one."""
    storage = open_db(ctx, readonly=True)
    try:
        res = storage.snapshot(out_file)
    finally:
        storage.close()
    click.echo(
        json.dumps(res) if as_json else f"{res['path']}: {res['detections']} detections, {res['bytes']} bytes"
    )
