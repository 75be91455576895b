"""``yh-server``: ingest, import, cluster, label, export, report and serve.

Logging is configured here and only here. Expected errors become one-line
``click.ClickException`` messages; scikit-learn, matplotlib and pyarrow are imported lazily.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import sys
import threading
from pathlib import Path

import click

from edge.kit.cli import Group, json_option, setup_logging, verbosity_options
from edge.kit.config import to_toml
from edge.kit.version import __version__

from .config import ServerConfig, load_server_config
from .errors import ServerError, StorageCorruptError
from .storage import Storage, display_address, open_storage

log = logging.getLogger(__name__)


def _echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


@click.group(cls=Group, expected=(ServerError,), context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="yh-server")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              envvar="YH_SERVER_CONFIG", default=None, help="Server config (TOML); also $YH_SERVER_CONFIG.")  # fmt: skip
@click.option("--db", "db_path", type=str, envvar="YH_SERVER_DB", default=None,
              help="Server database: a SQLite file or a postgresql://user@host:port/db URL (overrides storage.db; "
              "default yh-server.sqlite); also $YH_SERVER_DB.")  # fmt: skip
@verbosity_options
@click.pass_context
def main(
    ctx: click.Context, config_path: Path | None, db_path: str | None, verbose: int, quiet: bool
) -> None:
    """Yellowhammer dialect monitor: the server side (ingest, clustering, researcher access)."""
    setup_logging(verbose, quiet)
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    ctx.obj["db"] = db_path


def _config(ctx: click.Context) -> ServerConfig:
    if "config" not in ctx.obj:
        cfg = load_server_config(ctx.obj["config_path"])
        if ctx.obj["db"] is not None:
            cfg = dataclasses.replace(cfg, storage=dataclasses.replace(cfg.storage, db=str(ctx.obj["db"])))
        ctx.obj["config"] = cfg
    return ctx.obj["config"]


def _db(ctx: click.Context) -> str:
    return _config(ctx).storage.db


def _storage(ctx: click.Context, readonly: bool = False) -> Storage:
    return open_storage(_db(ctx), readonly=readonly)


@main.group("config")
def config_group() -> None:
    """Check and show the server configuration."""


@config_group.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def config_validate(file: Path) -> None:
    """Check FILE (with environment overrides) and report the first problem."""
    load_server_config(file)
    click.echo(f"{file}: OK")


@config_group.command("show")
@json_option
@click.pass_context
def config_show(ctx, as_json: bool) -> None:
    """Print the effective configuration (file + environment + defaults + --db)."""
    cfg = _config(ctx)
    click.echo(json.dumps(dataclasses.asdict(cfg), indent=2) if as_json else to_toml(cfg))


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
    from .ingest import Ingestor

    cfg = _config(ctx)
    given = {k: v for k, v in overrides.items() if v is not None}
    if "prefix" in given:
        given["prefix"] = given["prefix"].strip("/")
    settings = dataclasses.replace(cfg.mqtt, **given)
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
def status(ctx, as_json: bool, show_q: int) -> None:
    """Counts: detections, duplicates received, quarantine reasons, encoders, devices, runs."""
    storage = _storage(ctx, readonly=True)
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
        _echo_json(c)
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
    from .storage.recover import recover

    r = recover(damaged, new)
    if as_json:
        _echo_json(r)
        return
    lost = {k: v for k, v in r["skipped"].items() if v}
    click.echo(f"{new}: {r['tables'].get('detections', 0)} detections and "
               f"{sum(r['tables'].values())} rows in all copied; unreadable stretches skipped: {lost or 'none'}")  # fmt: skip


def _progress(msg: str) -> None:
    click.echo(f"... {msg}", err=True)


@main.command("cluster")
@click.option(
    "--encoder",
    "encoder_version",
    default=None,
    help="Encoder version to cluster (default: the one with most detections). Versions are never mixed.",
)
@click.option("--all-encoders", is_flag=True, help="Run once per encoder version.")
@click.option("--min-cluster-size", type=int, default=15, show_default=True)
@click.option(
    "--min-samples", type=int, default=None, help="HDBSCAN min_samples (default min(min-cluster-size, 10))."
)
@click.option(
    "--reduce-dim", type=int, default=12, show_default=True, help="PCA components before HDBSCAN (0 = none)."
)
@click.option("--selection", type=click.Choice(["eom", "leaf"]), default="eom", show_default=True)
@click.option(
    "--max-fit",
    type=int,
    default=20000,
    show_default=True,
    help="Fit HDBSCAN on at most this many points (the rest are assigned to the nearest).",
)
@click.option(
    "--map",
    "map_method",
    type=click.Choice(["auto", "pca", "tsne", "umap"]),
    default=None,
    help="2-D/3-D map coordinates (default: cluster.map of the server config, 'auto': a t-SNE 2-D map up to "
    "cluster.tsne_max songs, PCA above; 'umap' needs umap-learn).",
)
@click.option(
    "--include-truncated", is_flag=True, help="Quality filter: fit songs cut off at a stream boundary too."
)
@click.option(
    "--include-overlap", is_flag=True, help="Quality filter: fit songs cut out of overlapping songs too."
)
@click.option(
    "--include-unrefined",
    is_flag=True,
    help="Quality filter: fit songs placed by the detector windows alone too.",
)
@click.option(
    "--include-incomplete",
    is_flag=True,
    help="Fit and assign songs the device marks incomplete (complete probability < 0.5) too; by default "
    "they are kept out and shown as 'incomplete', never as a dialect cluster (--no-quality-filter keeps that).",
)
@click.option("--min-duration", type=float, default=1.2, show_default=True,
              help="Quality filter: fit only songs at least this long (s).")  # fmt: skip
@click.option("--max-duration", type=float, default=60.0, show_default=True,
              help="Quality filter: fit only songs at most this long (s).")  # fmt: skip
@click.option("--no-quality-filter", is_flag=True, help="Fit every song (overrides the options above).")
@click.option(
    "--excluded",
    type=click.Choice(["assign", "outlier"]),
    default="assign",
    show_default=True,
    help="Songs the quality filter kept out: join the cluster of their nearest fitted songs (flagged "
    "fitted=0), or stay unclustered (-1). Their reason is stored either way.",
)
@click.option("--method", type=click.Choice(["sample", "prototypes"]), default="sample", show_default=True,
              help="'prototypes' for large runs (100k+ songs): HDBSCAN on k-means prototypes of each device-day, "
              "songs by their nearest prototype; keeps a model for `yh-server assign`.")  # fmt: skip
@click.option("--per-prototype", type=int, default=40, show_default=True,
              help="--method prototypes: songs per prototype inside a device-day.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the run summary (metrics, novelty) as JSON.")
@click.pass_context
def cluster(
    ctx,
    encoder_version,
    all_encoders,
    min_cluster_size,
    min_samples,
    reduce_dim,
    selection,
    max_fit,
    map_method,
    include_truncated,
    include_overlap,
    include_unrefined,
    include_incomplete,
    min_duration,
    max_duration,
    no_quality_filter,
    excluded,
    method,
    per_prototype,
    seed,
    as_json,
) -> None:
    """HDBSCAN dialect clusters of one encoder version; stores the run, prints metrics and novelty.

    A quality filter decides which songs HDBSCAN is fitted on: by default songs cut off at a
    stream boundary (truncated), cut out of overlapping songs (overlap) or placed by the detector
    windows alone (unrefined) are kept out and then assigned to the nearest cluster (--excluded).
    Songs the device's encoder marks incomplete (no terminal phrase) are kept out and never
    assigned: they are listed as "incomplete" (cluster -2), never as a dialect cluster.
    """
    from .clustering import ClusterError, ClusterParams, format_report, run_clustering

    if no_quality_filter:
        include_truncated = include_overlap = include_unrefined = True
        min_duration, max_duration = 0.0, 60.0
    try:
        ccfg = _config(ctx).cluster
        params = ClusterParams(
            min_cluster_size=min_cluster_size,
            min_samples=min_samples,
            reduce_dim=reduce_dim,
            selection=selection,
            max_fit=max_fit,
            map_method=map_method or ccfg.map,
            tsne_max=ccfg.tsne_max,
            include_truncated=include_truncated,
            include_overlap=include_overlap,
            include_unrefined=include_unrefined,
            include_incomplete=include_incomplete,
            min_duration_s=min_duration,
            max_duration_s=max_duration,
            excluded=excluded,
            method=method,
            per_prototype=per_prototype,
            seed=seed,
        )
        storage = _storage(ctx)
        try:
            versions = (
                [e["encoder_version"] for e in storage.encoder_summary()]
                if all_encoders
                else [encoder_version]
            )
            summaries = [run_clustering(storage, v, params, None if as_json else _progress) for v in versions]
        finally:
            storage.close()
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        _echo_json(summaries if all_encoders else summaries[0])
    else:
        click.echo("\n\n".join(format_report(s) for s in summaries))


@main.command("assign")
@click.option("--run", "run_id", default=None, help="Prototype run (default: the latest one).")
@click.option(
    "--encoder", "encoder_version", default=None, help="Latest prototype run of this encoder version."
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def assign_cmd(ctx, run_id, encoder_version, as_json) -> None:
    """Assign songs that arrived since the latest `cluster --method prototypes` run to its clusters
    (nearest prototype, the run's outlier rule); cheap, for a timer between full runs."""
    from .clustering import ClusterError, assign_new

    storage = _storage(ctx)
    try:
        out = assign_new(storage, run_id, encoder_version)
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        storage.close()
    if as_json:
        _echo_json(out)
    else:
        click.echo(f"run {out['run_id']}: {out['songs']} new songs, {out['assigned']} assigned to clusters, "
                   f"{out['outliers']} outliers")  # fmt: skip


@main.command("novelty")
@click.option("--run", "run_id", default=None, help="Cluster run id (default: the latest).")
@click.option("--encoder", "encoder_version", default=None, help="Latest run of this encoder version.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def novelty(ctx, run_id, encoder_version, as_json) -> None:
    """Candidate new dialects (clusters without labelled songs) and changes since the previous run."""
    from .clustering import ClusterError, format_report, novelty_report

    storage = _storage(ctx, readonly=True)
    try:
        rep = novelty_report(storage, run_id, encoder_version)
    except ClusterError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        storage.close()
    click.echo(json.dumps(rep, indent=2, default=str) if as_json else format_report(rep))


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
    from .labels import import_labels

    storage = _storage(ctx)
    try:
        res = import_labels(storage, csv_path, tolerance, by)
    finally:
        storage.close()
    if as_json:
        _echo_json(res)
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
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "geojson", "all", "both"]), default="all",
              show_default=True, help="'all': CSV, Parquet and GeoJSON ('both' is the same, kept for scripts).")  # fmt: skip
@click.option("--no-embeddings", is_flag=True, help="Leave the embedding column out.")
@click.option(
    "--spectrograms", is_flag=True, help="Parquet: add each song's spectrogram (a struct with the cells)."
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def export_cmd(ctx, out_dir: Path, fmt: str, no_embeddings: bool, spectrograms: bool, as_json: bool) -> None:
    """Write detections with provenance, labels, places and latest clusters to OUT_DIR (CSV, Parquet,
    devices.geojson, deployments.csv, manifest.json)."""
    from .export import FORMATS, export

    storage = _storage(ctx, readonly=True)
    try:
        res = export(storage, out_dir, FORMATS if fmt in ("all", "both") else (fmt,), not no_embeddings,
                     db_name=display_address(_db(ctx)), spectrograms=spectrograms)  # fmt: skip
    finally:
        storage.close()
    click.echo(
        json.dumps(res)
        if as_json
        else f"{res['detections']} detections -> {res['dir']}: " + ", ".join(res["files"])
    )


@main.command("snapshot")
@click.argument("out_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def snapshot_cmd(ctx, out_file: Path, as_json: bool) -> None:
    """Write a consistent single-file copy of the database (WAL included) to OUT_FILE, e.g. for
    `datasette --immutable OUT_FILE` while ingest keeps writing to the live one."""
    storage = _storage(ctx, readonly=True)
    try:
        res = storage.snapshot(out_file)
    finally:
        storage.close()
    click.echo(
        json.dumps(res) if as_json else f"{res['path']}: {res['detections']} detections, {res['bytes']} bytes"
    )


@main.command("report")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--base-url", default=None,
              help="Address of the web app (default serve.public_url): the report links to its pages.")  # fmt: skip
@click.pass_context
def report_cmd(ctx, out_dir: Path, base_url: str | None) -> None:
    """Write an HTML page with PNG plots (dialect maps, songs per device/day, clusters per device) and cluster tables."""
    from .report import write_report

    storage = _storage(ctx, readonly=True)
    try:
        res = write_report(
            storage, out_dir, base_url if base_url is not None else _config(ctx).serve.public_url
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
    from .serve import WebServer, read_token

    cfg = _config(ctx).serve
    given = {k: v for k, v in {"host": host, "port": port, "read_only": read_only}.items() if v is not None}
    settings = dataclasses.replace(cfg, **given)
    token, generated = read_token(settings)
    storage = _storage(ctx, readonly=settings.read_only)
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


if __name__ == "__main__":  # pragma: no cover
    main()
