"""What the recorder's commands print: detection tables (CSV, JSON, Raven selection tables) and
human-readable sizes and durations."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edge.contract import table_fields
from edge.core.errors import YellowhammerError
from edge.kit.files import atomic_write
from edge.kit.units import format_bytes, format_duration  # noqa: F401  (re-exported for the CLI)

#: analyze's table: where the song is (file, seconds into it, UTC), then the contract's other fields
CSV_COLUMNS = ("file", "onset_s", "offset_s", "duration_s", "start_utc", "end_utc", *(
    f for f in table_fields() if f not in {"source", "onset_s", "offset_s", "duration_s", "start_time", "end_time",
                                           "device_id", "created_at"}))  # fmt: skip
RAVEN_COLUMNS = (
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Begin Path",
    "File Offset (s)",
    "Score",
    "SNR (dB)",
    "Truncated",
    "Id",
)
RAVEN_BAND_HZ = (2500.0, 9000.0)


def utc(t: float) -> str:
    """ISO 8601 UTC of epoch seconds; a time no date can hold (year 10000, NaN: a damaged
    database or a recorder with a wild clock) is shown as the raw number instead."""
    from datetime import datetime, timezone

    try:
        return (
            datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )
    except (ValueError, OverflowError, OSError, TypeError):
        return str(t)


def detection_rows(detections) -> list[dict]:
    """Flat rows (the CSV/JSON columns, :data:`CSV_COLUMNS`) of detections made by ``analyze``."""
    rows = []
    for d in detections:
        row = {"file": d.source, "start_utc": utc(d.start_time), "end_utc": utc(d.end_time)}
        row.update({name: getattr(d, name) for name in CSV_COLUMNS if name not in row})
        rows.append(row)
    return rows


WINDOW_COLUMNS = ("file", "start_s", "end_s", "probability", "gated")
"""Columns of ``yh-edge analyze --windows``: every detector window (times from the file's start)."""


def write_csv(rows: list[dict], fh, columns=CSV_COLUMNS) -> None:
    import csv

    w = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (str(v).lower() if isinstance(v, bool) else v) for k, v in r.items()})


def write_raven(rows: list[dict], fh, file_offsets: dict[str, float] | None = None) -> None:
    """A Raven selection table; Begin Time counts across the files in order (Raven's file
    sequence), ``File Offset (s)`` within each file."""
    offsets = file_offsets or {}
    fh.write("\t".join(RAVEN_COLUMNS) + "\n")
    for i, r in enumerate(rows, 1):
        base = offsets.get(r["file"], 0.0)
        fh.write(
            "\t".join(
                str(v)
                for v in (
                    i,
                    "Spectrogram 1",
                    1,
                    f"{base + r['onset_s']:.3f}",
                    f"{base + r['offset_s']:.3f}",
                    f"{RAVEN_BAND_HZ[0]:.1f}",
                    f"{RAVEN_BAND_HZ[1]:.1f}",
                    r["file"],
                    f"{r['onset_s']:.3f}",
                    f"{r['score']:.4f}",
                    f"{r['snr_db']:.1f}",
                    "yes" if r["truncated"] else "no",
                    r["id"],
                )
            )
            + "\n"
        )


def write_output(
    rows: list[dict], fmt: str, output: Path | None, durations: dict[str, float], columns=CSV_COLUMNS
) -> list[Path]:
    """Write rows to stdout, a file, or (Raven, given a folder) one table per input file."""
    import io

    written = []
    if fmt == "raven" and output is not None and output.is_dir():
        for f in durations:
            part = [r for r in rows if r["file"] == f]
            target = output / (Path(f).stem + ".yellowhammer.selections.txt")
            buf = io.StringIO()
            write_raven(part, buf)
            atomic_write_text(target, buf.getvalue())
            written.append(target)
        return written
    buf = io.StringIO()
    if fmt == "csv":
        write_csv(rows, buf, columns)
    elif fmt == "json":
        buf.write(json.dumps(rows, indent=1) + "\n")
    else:
        offsets, t = {}, 0.0
        for f, dur in durations.items():
            offsets[f] = t
            t += dur
        write_raven(rows, buf, offsets)
    if output is None:
        click.echo(buf.getvalue(), nl=False)
    else:
        atomic_write_text(output, buf.getvalue())
        written.append(output)
    return written


def atomic_write_text(path: Path, text: str) -> None:
    try:
        atomic_write(path, text, fsync=False)
    except OSError as exc:
        raise YellowhammerError(f"{path}: cannot write output ({exc.strerror or exc})") from None
