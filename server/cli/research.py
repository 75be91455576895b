"""``yh-server`` commands for researchers: ``label import``, ``export``, ``report`` and
``serve`` (the web app).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import threading
from pathlib import Path

import click

from ..storage import display_address
from .app import db_address, echo_json, main, open_db, server_config

log = logging.getLogger(__package__)  # "server.cli", as before the commands had modules


@main.group("label")
def label_group() -> None:
    """Researcher labels of detections."""


@label_group.command("import")
@click.argument("csv_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--tolerance",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds between a device_id,start_time row and the detection it labels.",
)
@click.option("--by", default="", help="Who labelled (stored with each label; default: the file name).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def label_import(ctx, csv_path: Path, tolerance: float, by: str, as_json: bool) -> None:
    """Attach labels from CSV_PATH (detection_id,label or device_id,start_time,label).

    Reports how many labels are new, replaced another label of the same detection, or were
    unchanged, and the rows overridden by a later row of the same file for the same detection."""
    from ..labels import import_labels

    storage = open_db(ctx)
    try:
        res = import_labels(storage, csv_path, tolerance, by)
    finally:
        storage.close()
    if as_json:
        echo_json(res)
        return
    click.echo(
        f"{csv_path}: {res['rows']} rows, {res['imported']} labels stored ({res['new']} new, {res['replaced']} "
        f"replaced an earlier label), {res['unchanged']} unchanged, {res['overridden_in_file']} rows overridden by "
        f"a later row for the same detection, {len(res['unresolved'])} unresolved, {len(res['errors'])} bad rows"
    )
    for line in (res["errors"] + res["unresolved"] + res["overridden"])[:20]:
        click.echo(f"  {line}", err=True)


@main.command("export")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "geojson", "dwc", "all", "both"]), default="all",
              show_default=True, help="'all': CSV, Parquet and GeoJSON ('both' is the same, kept for scripts); "
              "'dwc': a Darwin Core Archive for GBIF (yellowhammer-dwca.zip), only when asked for by name.")  # fmt: skip
@click.option("--no-embeddings", is_flag=True, help="Leave the embedding column out.")
@click.option(
    "--spectrograms", is_flag=True, help="Parquet: add each song's spectrogram (a struct with the cells)."
)
@click.option(
    "--creator",
    default="",
    help="dwc: the dataset's creator in eml.xml (default: Yellowhammer dialect monitor).",
)
@click.option("--base-url", default=None,
              help="dwc: address of the web app clips are linked under (default serve.public_url; empty: no links).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def export_cmd(ctx, out_dir: Path, fmt: str, no_embeddings: bool, spectrograms: bool, creator: str,
               base_url: str | None, as_json: bool) -> None:  # fmt: skip
    """Write detections with provenance, labels, places and latest clusters to OUT_DIR (CSV, Parquet,
    devices.geojson, deployments.csv, manifest.json; or with --format dwc a Darwin Core Archive,
    clips linked under serve.public_url when it is set)."""
    from ..export import FORMATS, export

    public_url = base_url if base_url is not None else server_config(ctx).serve.public_url
    storage = open_db(ctx, readonly=True)
    try:
        res = export(storage, out_dir, FORMATS if fmt in ("all", "both") else (fmt,), not no_embeddings,
                     db_name=display_address(db_address(ctx)), spectrograms=spectrograms, media_base=public_url,
                     creator=creator)  # fmt: skip
    finally:
        storage.close()
    click.echo(
        json.dumps(res)
        if as_json
        else f"{res['detections']} detections -> {res['dir']}: " + ", ".join(res["files"])
    )


@main.command("report")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--base-url", default=None,
              help="Address of the web app (default serve.public_url): the report links to its pages.")  # fmt: skip
@click.pass_context
def report_cmd(ctx, out_dir: Path, base_url: str | None) -> None:
    """Write an HTML page with PNG plots (dialect maps, songs per device/day, clusters per device) and cluster tables."""
    from ..report import write_report

    storage = open_db(ctx, readonly=True)
    try:
        res = write_report(
            storage, out_dir, base_url if base_url is not None else server_config(ctx).serve.public_url
        )
    finally:
        storage.close()
    click.echo(f"{Path(res['dir']) / res['html']} ({len(res['images'])} plots)")


@main.command("serve")
@click.option(
    "--host", default=None, help="Bind address (default serve.host, 127.0.0.1; keep it local behind a proxy)."
)
@click.option("--port", type=int, default=None, help="Port (default serve.port, 8080).")
@click.option(
    "--read-only", is_flag=True, default=None, help="Refuse every write (labels, names, clip requests)."
)
@click.pass_context
def serve(ctx, host: str | None, port: int | None, read_only: bool | None) -> None:
    """The web app for researchers: devices map, clusters, spectrograms, players, labelling, JSON API.

    Writes need the token from serve.token_file (or the login link printed at start)."""
    from ..serve import WebServer, read_token

    cfg = server_config(ctx).serve
    given = {k: v for k, v in {"host": host, "port": port, "read_only": read_only}.items() if v is not None}
    settings = dataclasses.replace(cfg, **given)
    token, generated = read_token(settings)
    storage = open_db(ctx, readonly=settings.read_only)
    try:
        server = WebServer(storage, settings, token)
    except OSError as exc:
        storage.close()
        raise click.ClickException(f"cannot listen on {settings.host}:{settings.port}: {exc}") from None
    log.info("serve: %s/ (%s)", server.url, "read-only" if settings.read_only else "writes need the token")
    if generated:
        log.warning("serve: no serve.token_file; log in to label with %s/login?token=%s", server.url, token)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        storage.close()
