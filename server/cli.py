"""``yh-server``: ingest, import, cluster, label, export, report and serve.

Logging is configured here and only here. Expected errors become one-line
``click.ClickException`` messages; scikit-learn, matplotlib and pyarrow are imported lazily.
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
import threading
from pathlib import Path

import click

from edge import __version__
from edge.errors import YellowhammerError

from .storage import SqliteStorage, StorageError

log = logging.getLogger(__name__)


def friendly_errors(fn):
    """Expected errors -> one-line CLI messages (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (StorageError, YellowhammerError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def _echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="yh-server")
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="YH_SERVER_DB",
    default=Path("yh-server.sqlite"),
    show_default=True,
    help="Server database; also $YH_SERVER_DB.",
)
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.pass_context
def main(ctx: click.Context, db_path: Path, verbose: int, quiet: bool) -> None:
    """Yellowhammer dialect monitor: the server side (ingest, clustering, researcher access)."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"db": db_path}


def _storage(ctx: click.Context, readonly: bool = False) -> SqliteStorage:
    return SqliteStorage(ctx.obj["db"], readonly=readonly)


@main.command("ingest")
@click.option("--host", default="localhost", show_default=True, envvar="YH_MQTT_HOST")
@click.option("--port", type=int, default=1883, show_default=True, envvar="YH_MQTT_PORT")
@click.option(
    "--prefix", default="yh/v1", show_default=True, help="Topic prefix (as the devices' mqtt.topic_prefix)."
)
@click.option(
    "--client-id",
    default="",
    help="Stable MQTT client id of this worker (default yh-ingest-<host>); each worker needs its own.",
)
@click.option(
    "--share-group",
    default="yh-ingest",
    show_default=True,
    help="Shared-subscription group; workers in one group split the messages ('' = plain subscription).",
)
@click.option("--username", default="", envvar="YH_MQTT_USERNAME")
@click.option(
    "--password-file", default="", envvar="YH_MQTT_PASSWORD_FILE", help="File holding the password."
)
@click.option("--tls", is_flag=True, help="Use TLS (implied by --ca-file).")
@click.option("--ca-file", default="")
@click.option("--cert-file", default="")
@click.option("--key-file", default="")
@click.pass_context
@friendly_errors
def ingest(
    ctx,
    host,
    port,
    prefix,
    client_id,
    share_group,
    username,
    password_file,
    tls,
    ca_file,
    cert_file,
    key_file,
) -> None:
    """Subscribe to the devices' detections, validate, store; runs until SIGTERM/SIGINT."""
    from .ingest import Ingestor, IngestSettings

    settings = IngestSettings(
        host=host,
        port=port,
        prefix=prefix.strip("/"),
        client_id=client_id,
        share_group=share_group,
        username=username,
        password_file=password_file,
        tls=tls,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
    )
    storage = _storage(ctx)
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
@friendly_errors
def import_cmd(ctx, paths: tuple[Path, ...], as_json: bool) -> None:
    """Load edge database files copied from devices (read-only; known detections are skipped)."""
    from .ingest import import_edge_db

    storage = _storage(ctx)
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
        _echo_json(results)
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
@friendly_errors
def status(ctx, as_json: bool, show_q: int) -> None:
    """Counts: detections, duplicates received, quarantine reasons, encoders, devices, runs."""
    storage = _storage(ctx, readonly=True)
    try:
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
        _echo_json(c)
        return
    click.echo(f"detections: {c['detections']} ({c['duplicates_received']} duplicate receipts absorbed)")
    for e in c["encoders"]:
        click.echo(f"  encoder {e['encoder_version']}: {e['detections']} detections, {e['embedding_dim']}-d")
    click.echo(f"devices: {c['devices']}; labels: {c['labels']}; cluster runs: {c['cluster_runs']}")
    click.echo(f"quarantined: {c['quarantined']}")
    for r in c["quarantine_reasons"]:
        click.echo(f"  {r['n']:6d}  {r['reason']}")
    for q in c.get("quarantine_last", []):
        click.echo(f"  #{q['id']} {q['topic'] or q['origin']}: {q['reason']}")


if __name__ == "__main__":  # pragma: no cover
    main()
