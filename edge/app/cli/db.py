"""``yh-edge db``: database maintenance (check, vacuum, prune, export)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edge.app.cli import main
from edge.app.cli_options import config_option
from edge.app.config import load_config
from edge.app.output import atomic_write_text


# -- db ----------------------------------------------------------------------------------
@main.group("db")
def db_group() -> None:
    """Database maintenance: check, vacuum, export, prune."""


def _open_store(config_path: Path | None, db: Path | None, readonly: bool = False):
    from edge.adapters.store.sqlite import SqliteStore

    cfg = load_config(config_path)
    return cfg, SqliteStore(db or cfg.db_path, readonly=readonly)


db_option = click.option("--db", type=click.Path(dir_okay=False, path_type=Path), help="Database file.")


@db_group.command("check")
@config_option
@db_option
def db_check(config_path: Path | None, db: Path | None) -> None:
    """Run SQLite's integrity check and print the counts; exit 1 unless ok (a damaged file gets
    one line on how to recover it)."""
    from edge.kit.sqlite import recover_hint

    _, store = _open_store(config_path, db, readonly=True)
    try:
        result = store.integrity_check()
        counts = store.counts() if result == "ok" else None
    finally:
        store.close()
    click.echo(f"database: {store.path}")
    if counts is None:
        click.echo(f"integrity: DAMAGED ({result.splitlines()[0][:200]})")
        click.echo(f"what to do: {recover_hint(store.path)}")
        sys.exit(1)
    click.echo("integrity: ok")
    click.echo(
        f"detections: {counts['detections']}, unsynced: {counts['unsynced']}, "
        f"counters: {json.dumps(counts['counters'])}"
    )


@db_group.command("recover")
@click.argument("damaged", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
def db_recover(damaged: Path, new: Path) -> None:
    """Copy what is readable of a DAMAGED database into a NEW file (DAMAGED is only read).

    Stop the service first; then move NEW in the place of the damaged file (keep that one)."""
    from edge.kit.sqlite import DatabaseError
    from edge.kit.sqlite_recover import recover

    try:
        r = recover(damaged, new)
    except DatabaseError as exc:
        raise click.ClickException(str(exc)) from None
    lost = {k: v for k, v in r["skipped"].items() if v}
    click.echo(f"{new}: {r['tables'].get('detections', 0)} detections and {sum(r['tables'].values())} rows "
               f"in all copied; unreadable stretches skipped: {lost or 'none'}")  # fmt: skip
    if r.get("unsynced") is not None:  # the recorder's database: its outbox was made whole again
        click.echo(
            f"re-queued {r['requeued']} unsynced detections into the outbox ({r['unsynced']} unsynced in all)"
        )


@db_group.command("vacuum")
@config_option
@db_option
def db_vacuum(config_path: Path | None, db: Path | None) -> None:
    """Give the space of deleted rows back to the file system (stop the daemon first)."""
    from edge.app.output import format_bytes

    _, store = _open_store(config_path, db)
    try:
        before, after = store.vacuum()
    finally:
        store.close()
    click.echo(f"{format_bytes(before)} -> {format_bytes(after)}")


@db_group.command("prune")
@config_option
@db_option
@click.option("--older-than", "days", type=float, default=None, help="Days (default: store.retention_days).")
def db_prune(config_path: Path | None, db: Path | None, days: float | None) -> None:
    """Delete synced detections older than the retention age (unsynced ones are never touched)."""
    cfg, store = _open_store(config_path, db)
    try:
        n = store.prune_synced((cfg.store.retention_days if days is None else days) * 86400.0)
        store.checkpoint()
    finally:
        store.close()
    click.echo(f"pruned {n} synced detections")


@db_group.command("export")
@config_option
@db_option
@click.option("--format", "fmt", type=click.Choice(("csv", "json")), default="csv", show_default=True)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File (default: stdout)."
)
@click.option("--embeddings/--no-embeddings", default=True, show_default=True, help="Include the embeddings.")
@click.option("--unsynced", is_flag=True, help="Only detections not yet acknowledged by the broker.")
def db_export(
    config_path: Path | None, db: Path | None, fmt: str, output: Path | None, embeddings: bool, unsynced: bool
) -> None:
    """Export the stored detections (e.g. to carry them home on a USB stick)."""
    import csv
    import io

    _, store = _open_store(config_path, db, readonly=True)
    try:
        rows = store.rows()
    finally:
        store.close()
    if unsynced:
        rows = [r for r in rows if r["synced_at"] is None]
    for r in rows:
        if not embeddings:
            r.pop("embedding")
        r.pop("extra", None)
    buf = io.StringIO()
    if fmt == "json":
        buf.write(json.dumps(rows) + "\n")
    else:
        cols = list(rows[0]) if rows else ["id"]
        w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        for r in rows:
            if "embedding" in r:
                r["embedding"] = " ".join(f"{v:.6g}" for v in r["embedding"])
            if isinstance(r.get("spectrogram"), dict):  # the wire form, as one JSON cell
                r["spectrogram"] = json.dumps(r["spectrogram"], separators=(",", ":"))
            w.writerow(r)
    if output is None:
        click.echo(buf.getvalue(), nl=False)
    else:
        atomic_write_text(output, buf.getvalue())
        click.echo(f"wrote {len(rows)} detections to {output}", err=True)
