"""Export for researchers: CSV and Parquet with full provenance.

One row per detection with every field the device sent (times, clock state, scores, model
versions, source), how it reached the server (``origin``, ``received_at``, ``receive_count``,
payload ``schema``), the researcher label, and the assignment from the latest cluster run of its
encoder version (run id, cluster, membership strength, whether it was fitted or assigned and why
the quality filter kept it out, 2-D/3-D map). Embeddings: Parquet keeps
them as ``list<float32>``; CSV as space-separated numbers (``--no-embeddings`` drops them).
A ``manifest.json`` beside the files records the export time, software, database and runs.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from edge import __version__

from .storage import DETECTION_COLUMNS, Storage

CLUSTER_COLUMNS = ["cluster_run", "cluster", "cluster_probability", "cluster_fitted", "cluster_excluded",
                   "x2", "y2", "x3", "y3", "z3"]  # fmt: skip
COLUMNS = [*DETECTION_COLUMNS, "label", *CLUSTER_COLUMNS]


def _latest_assignments(storage: Storage) -> tuple[dict[str, dict], list[dict]]:
    runs = storage.cluster_runs()
    latest: dict[str, dict] = {}
    for r in runs:  # ordered by time: the last one per encoder version wins
        latest[r["encoder_version"]] = r
    assign: dict[str, dict] = {}
    for r in latest.values():
        for m in storage.run_members(r["run_id"]):
            assign[m["detection_id"]] = {
                "cluster_run": r["run_id"], "cluster": m["cluster"], "cluster_probability": m["probability"],
                "cluster_fitted": m.get("fitted"), "cluster_excluded": m.get("excluded"),
                "x2": m["x2"], "y2": m["y2"], "x3": m["x3"], "y3": m["y3"], "z3": m["z3"],
            }  # fmt: skip
    return assign, list(latest.values())


def _rows(storage: Storage, embeddings: bool, assign: dict[str, dict]):
    empty = dict.fromkeys(CLUSTER_COLUMNS)
    for row in storage.iter_detections(with_embedding=embeddings):
        out = {c: row.get(c) for c in DETECTION_COLUMNS}
        out["label"] = row.get("label")
        out.update(assign.get(row["id"], empty))
        if embeddings:
            out["embedding"] = row["embedding"]
        yield out


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.name + ".part")
    write(tmp)
    os.replace(tmp, path)  # nothing half-written under the final name


def export(storage: Storage, out_dir: str | Path, formats: tuple[str, ...] = ("csv", "parquet"),
           embeddings: bool = True, db_name: str = "") -> dict:  # fmt: skip
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    assign, runs = _latest_assignments(storage)
    files, n = [], 0
    if "csv" in formats:
        path = out / "detections.csv"

        def write_csv(tmp: Path) -> None:
            nonlocal n
            n = 0
            with tmp.open("w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(COLUMNS + (["embedding"] if embeddings else []))
                for r in _rows(storage, embeddings, assign):
                    vals = [r[c] for c in COLUMNS]
                    if embeddings:
                        vals.append(" ".join(f"{v:.6g}" for v in r["embedding"]))
                    w.writerow(vals)
                    n += 1

        _atomic(path, write_csv)
        files.append(path.name)
    if "parquet" in formats:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = out / "detections.parquet"
        rows = list(_rows(storage, embeddings, assign))
        n = len(rows)
        cols = {c: [r[c] for r in rows] for c in COLUMNS}
        table = pa.table(cols)
        if embeddings:
            emb = pa.array([r["embedding"].tolist() for r in rows], type=pa.list_(pa.float32()))
            table = table.append_column("embedding", emb)
        table = table.replace_schema_metadata({"yellowhammer": json.dumps({"software": __version__})})
        _atomic(path, lambda tmp: pq.write_table(table, tmp))
        files.append(path.name)
    manifest = {
        "exported_at": time.time(),
        "software": f"yellowhammer {__version__}",
        "database": db_name,
        "detections": n,
        "files": files,
        "columns": COLUMNS + (["embedding"] if embeddings else []),
        "cluster_runs": [
            {
                k: r[k]
                for k in (
                    "run_id",
                    "encoder_version",
                    "created_at",
                    "params",
                    "n_points",
                    "n_clusters",
                    "n_outliers",
                    "metrics",
                    "software",
                )
            }
            for r in runs
        ],  # fmt: skip
        "notes": "times are UTC epoch seconds; embeddings are L2-normalised float32 (decoded from the wire dtype); "
        "cluster -1 = outlier; cluster columns come from the latest run of each encoder version; "
        "overlap/refined/truncated are the device's segment-quality flags; cluster_fitted 0 = assigned to the "
        "cluster of its nearest fitted songs, cluster_excluded = why the quality filter kept it out of the fit",
    }
    _atomic(out / "manifest.json", lambda tmp: tmp.write_text(json.dumps(manifest, indent=2, default=str)))
    return {"dir": str(out), "files": [*files, "manifest.json"], "detections": n}
