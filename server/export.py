"""Export for researchers: CSV, Parquet and GeoJSON with full provenance.

One row per detection with every field the device sent (times, clock state, scores, model
versions, source, position), how it reached the server (``origin``, ``received_at``,
``receive_count``, payload ``schema``), the researcher label with who set it and when, whether
the server holds the song's audio (``has_clip``), its deployment (``deployment_id``, ``site``),
and the assignment from the latest cluster run of its encoder version (run id, cluster,
membership strength, whether it was fitted or assigned and why the quality filter kept it out,
2-D/3-D map).

Types: times are ISO 8601 UTC in CSV (``2025-05-03T05:12:03.250Z``) and ``timestamp[ms, UTC]`` in
Parquet; flags are ``true``/``false`` in CSV and booleans in Parquet. Embeddings: Parquet keeps
them as ``list<float32>``, CSV as space-separated numbers (``--no-embeddings`` drops them).
Spectrograms (``--spectrograms``, Parquet only): a struct per song with the quantised cells as
bytes (see the manifest's notes). ``deployments.csv`` and ``devices.geojson`` (one point per
deployment with its cluster mix) come with every export. A ``manifest.json`` beside the files
records the export time, software, database, columns and runs.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from edge.contract import FIELDS, ContractError, Spectrogram
from edge.kit.version import __version__

from .places import DeploymentIndex, geojson, in_range, iso
from .storage import DETECTION_COLUMNS, Storage

log = logging.getLogger(__name__)

CLUSTER_COLUMNS = ["cluster_run", "cluster", "cluster_probability", "cluster_fitted", "cluster_excluded",
                   "x2", "y2", "x3", "y3", "z3"]  # fmt: skip
LABEL_COLUMNS = ["label", "labeled_by", "labeled_at"]
PLACE_COLUMNS = ["deployment_id", "site"]
COLUMNS = [*DETECTION_COLUMNS, *LABEL_COLUMNS, "has_clip", *PLACE_COLUMNS, *CLUSTER_COLUMNS]
TIME_COLUMNS = {f.name for f in FIELDS if f.kind == "time"} | {
    "received_at",
    "last_received_at",
    "labeled_at",
}
BOOL_COLUMNS = {f.name for f in FIELDS if f.kind == "bool"} | {"has_clip", "cluster_fitted"}
INT_COLUMNS = {"schema", "receive_count", "embedding_dim", "cluster", "deployment_id"}
FLOAT_COLUMNS = {f.name for f in FIELDS if f.kind in ("prob", "seconds", "db", "degrees")} | {
    "cluster_probability", "x2", "y2", "x3", "y3", "z3"}  # fmt: skip
DEPLOYMENT_COLUMNS = ["deployment_id", "device_id", "latitude", "longitude", "elevation_m", "site", "microphone",
                      "start", "end", "first_seen", "last_seen", "current", "detections_seen"]  # fmt: skip
FORMATS = ("csv", "parquet", "geojson")  # 'all': the Darwin Core Archive ("dwc") is asked for by name


def as_bools(row: dict) -> dict:
    """``row`` with its flags (:data:`BOOL_COLUMNS`; SQL stores 0/1) as true/false, in place;
    an unknown one (None) stays None. The export, the API and the Darwin Core Archive use it."""
    for c in BOOL_COLUMNS & row.keys():
        if row[c] is not None:
            row[c] = bool(row[c])
    return row


def _rows(storage: Storage, embeddings: bool, spectrograms: bool, places: DeploymentIndex):
    for row in storage.iter_detections(with_embedding=embeddings, with_spectrogram=spectrograms):
        out = {c: row.get(c) for c in COLUMNS}
        dep = places.find(row)
        out["deployment_id"] = dep["deployment_id"] if dep else None
        out["site"] = dep.get("site") if dep else None
        as_bools(out)
        if embeddings:
            out["embedding"] = row["embedding"]
        if spectrograms:
            out["spectrogram"] = row.get("spectrogram")
        yield out


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.name + ".part")
    write(tmp)
    os.replace(tmp, path)  # nothing half-written under the final name


#: a text cell starting with one of these is a formula to a spreadsheet (CSV injection):
#: ``=HYPERLINK(...)`` in a site name, ``@SUM(...)`` in a label
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_text(v):
    """A CSV cell: text that a spreadsheet would run as a formula gets a leading ``'`` (OWASP's
    advice), so it shows as the text it is; numbers (negative ones too) stay numbers."""
    return "'" + v if isinstance(v, str) and v.startswith(FORMULA_START) else v


def _csv_value(col: str, v):
    if v is None:
        return ""
    if col in TIME_COLUMNS:
        return iso(v)
    if col in BOOL_COLUMNS:
        return "true" if v else "false"
    return csv_text(v)


def _spectrogram_struct(wire: str | None) -> dict | None:
    if not wire:
        return None
    s = Spectrogram.from_wire(json.loads(wire))
    return {"frames": s.frames, "mels": s.mels, "fps": s.fps, "t0": s.t0, "fmin": s.fmin, "fmax": s.fmax,
            "db_max": s.db_max, "db_step": s.db_step, "cells": s.cells.tobytes()}  # fmt: skip


def _read_spectrograms(rows: list[dict], warnings: list[str]) -> None:
    """Each row's stored spectrogram (wire JSON) as its Parquet struct; a damaged one (not UTF-8,
    not JSON, nested too deeply, wrong fields, cells that do not inflate) is exported as null, and
    one warning gives their count and the first."""
    bad: list[tuple[str, str]] = []
    for r in rows:
        try:
            r["spectrogram"] = _spectrogram_struct(r["spectrogram"])
        except (ContractError, ValueError, TypeError, RecursionError) as exc:
            r["spectrogram"] = None
            bad.append((r["id"], "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]))
    if bad:
        msg = (f"export: {len(bad)} stored spectrograms unreadable, exported as null (first: song {bad[0][0]}: "
               f"{bad[0][1]})")  # fmt: skip
        log.warning("%s", msg)
        warnings.append(msg)


def _parquet(path: Path, rows: list[dict], embeddings: bool, spectrograms: bool) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def typ(c):
        if c in TIME_COLUMNS:
            return pa.timestamp("ms", tz="UTC")
        if c in BOOL_COLUMNS:
            return pa.bool_()
        if c in INT_COLUMNS:
            return pa.int64()
        if c in FLOAT_COLUMNS:
            return pa.float64()
        return pa.string()  # typed even when every song leaves it empty (never Arrow's null type)

    arrays, names = [], []
    for c in COLUMNS:
        vals = [r[c] for r in rows]
        t = typ(c)
        if c in TIME_COLUMNS:
            vals = [int(round(v * 1000)) if in_range(v) else None for v in vals]  # out of range: null
        arrays.append(pa.array(vals, type=t))
        names.append(c)
    if embeddings:
        arrays.append(pa.array([r["embedding"].tolist() for r in rows], type=pa.list_(pa.float32())))
        names.append("embedding")
    if spectrograms:
        st = pa.struct([("frames", pa.int32()), ("mels", pa.int32()), ("fps", pa.float32()), ("t0", pa.float32()),
                        ("fmin", pa.float32()), ("fmax", pa.float32()), ("db_max", pa.float32()),
                        ("db_step", pa.float32()), ("cells", pa.binary())])  # fmt: skip
        arrays.append(pa.array([r["spectrogram"] for r in rows], type=st))  # _read_spectrograms
        names.append("spectrogram")
    table = pa.Table.from_arrays(arrays, names=names)
    table = table.replace_schema_metadata({"yellowhammer": json.dumps({"software": __version__})})
    pq.write_table(table, path)


def export(storage: Storage, out_dir: str | Path, formats: tuple[str, ...] = FORMATS, embeddings: bool = True,
           db_name: str = "", spectrograms: bool = False, media_base: str = "", creator: str = "") -> dict:  # fmt: skip
    """Write the chosen formats (``dwc``: the Darwin Core Archive, :mod:`.export_dwc`, with clips
    linked under ``media_base`` and ``creator`` in its metadata) and a ``manifest.json`` into
    ``out_dir``, each file atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    deployments = storage.deployments()
    places = DeploymentIndex(deployments)
    files, n, warnings = [], 0, []
    if "csv" in formats:
        n = _write_csv(storage, out / "detections.csv", embeddings, places)
        files.append("detections.csv")
    if "parquet" in formats:
        rows = list(_rows(storage, embeddings, spectrograms, places))
        n = len(rows)
        if spectrograms:
            _read_spectrograms(rows, warnings)
        _atomic(out / "detections.parquet", lambda tmp: _parquet(tmp, rows, embeddings, spectrograms))
        files.append("detections.parquet")
    dwca = None
    if "dwc" in formats:
        from .export_dwc import DWCA_NAME, write_dwca

        dwca = write_dwca(storage, out / DWCA_NAME, places, media_base, creator)
        n = dwca["occurrences"]
        files.append(DWCA_NAME)
    if "geojson" in formats or deployments:
        files += _write_places(storage, out, deployments)
    manifest = _manifest(storage, db_name, n, files, embeddings, spectrograms)
    if dwca is not None:
        manifest["dwca"] = {"file": dwca["file"], "core": "occurrence.txt", "terms": dwca["terms"]}
    _atomic(out / "manifest.json", lambda tmp: tmp.write_text(json.dumps(manifest, indent=2, default=str)))
    return {"dir": str(out), "files": [*files, "manifest.json"], "detections": n, "warnings": warnings}


def _write_csv(storage: Storage, path: Path, embeddings: bool, places: DeploymentIndex) -> int:
    n = 0

    def write(tmp: Path) -> None:
        nonlocal n
        n = 0
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(COLUMNS + (["embedding"] if embeddings else []))
            for r in _rows(storage, embeddings, False, places):
                vals = [_csv_value(c, r[c]) for c in COLUMNS]
                if embeddings:
                    vals.append(" ".join(f"{v:.6g}" for v in r["embedding"]))
                w.writerow(vals)
                n += 1

    _atomic(path, write)
    return n


def _write_places(storage: Storage, out: Path, deployments: list[dict]) -> list[str]:
    """``devices.geojson`` and ``deployments.csv``."""
    body = geojson(storage)
    _atomic(out / "devices.geojson", lambda tmp: tmp.write_text(json.dumps(body, indent=1), encoding="utf-8"))

    def write_deployments(tmp: Path) -> None:
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(DEPLOYMENT_COLUMNS)
            for d in deployments:
                w.writerow([iso(d[c]) if c in ("start", "end", "first_seen", "last_seen") and d[c] is not None
                            else ("true" if d[c] else "false") if c == "current" else ("" if d[c] is None else csv_text(d[c]))
                            for c in DEPLOYMENT_COLUMNS])  # fmt: skip

    _atomic(out / "deployments.csv", write_deployments)
    return ["devices.geojson", "deployments.csv"]


RUN_KEYS = ("run_id", "encoder_version", "created_at", "params", "n_points", "n_clusters", "n_outliers", "metrics",
            "software")  # fmt: skip


def _manifest(
    storage: Storage, db_name: str, n: int, files: list[str], embeddings: bool, spectrograms: bool
) -> dict:
    runs = list({r["encoder_version"]: r for r in storage.cluster_runs()}.values())  # the latest of each
    return {
        "exported_at": iso(time.time()),
        "software": f"yellowhammer {__version__}",
        "database": db_name,
        "detections": n,
        "files": files,
        "columns": COLUMNS
        + (["embedding"] if embeddings else [])
        + (["spectrogram"] if spectrograms else []),
        "time_columns": sorted(TIME_COLUMNS),
        "bool_columns": sorted(BOOL_COLUMNS),
        "cluster_runs": [{k: r[k] for k in RUN_KEYS} for r in runs],
        "notes": "times: ISO 8601 UTC in CSV, timestamp[ms, UTC] in Parquet (empty/null when a stored time is not "
        "finite or outside the years 1..9999); CSV text cells starting with = + - @ or a tab/CR have a leading ' "
        "(so spreadsheets show them as text, not formulas; numbers are never changed); flags: true/false in CSV, booleans in "
        "Parquet; embeddings are L2-normalised float32 (decoded from the wire dtype); cluster -1 = outlier, -2 = incomplete (the "
        "device's complete probability below 0.5: no terminal phrase, kept out of the fit and never assigned to a "
        "dialect cluster); "
        "cluster columns come from the latest run of each encoder version; overlap/refined/truncated are the "
        "device's segment-quality flags; cluster_fitted false = assigned to the cluster of its nearest fitted "
        "songs, cluster_excluded = why the quality filter kept it out of the fit; deployment_id refers to "
        "deployments.csv (one per device and position); spectrogram (Parquet, --spectrograms): cells = uint8 "
        "frames x mels row-major, level dB = db_max - (255 - cell) * db_step, frame i starts at t0 + i / fps "
        "seconds from start_time, mel bands from fmin to fmax",
    }
