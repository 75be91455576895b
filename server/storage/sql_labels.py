"""Labels and cluster runs: the shared storage methods (:class:`LabelsSql`, a part of
:class:`.sql.SqlStorage`) for researchers' labels (with their history), stored cluster runs,
their models and the names given to clusters.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

import numpy as np

from server.errors import StorageError
from server.storage import in_parts


class LabelsSql:
    """Labels, cluster runs and cluster names (uses the backend's ``db``, ``_lock``, ``_tx()``,
    ``_rows()`` and ``_embedding_out()``)."""

    def save_cluster_model(self, run_id: str, model: bytes) -> None:
        with self._tx():
            self.db.execute(
                "INSERT INTO cluster_models(run_id, model, created_at) VALUES (?, ?, ?) ON CONFLICT(run_id) "
                "DO UPDATE SET model = excluded.model, created_at = excluded.created_at", [run_id, model, time.time()])  # fmt: skip

    def cluster_model(self, run_id: str) -> bytes | None:
        rows = self._rows("SELECT model FROM cluster_models WHERE run_id = ?", [run_id])
        return bytes(rows[0]["model"]) if rows else None

    def unassigned_points(self, run_id: str, encoder_version: str) -> tuple[list[str], np.ndarray]:
        """Songs of an encoder version that are not members of ``run_id`` (arrived after it):
        ids and float32 embeddings, by start time."""
        rows = self._rows(
            "SELECT d.id, d.embedding FROM detections d WHERE d.encoder_version = ? AND NOT EXISTS "
            "(SELECT 1 FROM cluster_members m WHERE m.run_id = ? AND m.detection_id = d.id) ORDER BY d.start_time, d.id",
            [encoder_version, run_id])  # fmt: skip
        if not rows:
            return [], np.zeros((0, 0), np.float32)
        return [r["id"] for r in rows], np.stack([self._embedding_out(r["embedding"]) for r in rows]).astype(
            np.float32
        )

    def cluster_runs(self, encoder_version: str | None = None) -> list[dict]:
        sql, args = "SELECT * FROM cluster_runs", []
        if encoder_version is not None:
            sql += " WHERE encoder_version = ?"
            args.append(encoder_version)
        rows = self._rows(sql + " ORDER BY created_at", args)
        for r in rows:
            r["params"] = json.loads(r["params"] or "{}")
            r["metrics"] = json.loads(r["metrics"] or "{}")
        return rows

    def run_members(self, run_id: str) -> list[dict]:
        return self._rows("SELECT * FROM cluster_members WHERE run_id = ? ORDER BY detection_id", [run_id])

    def put_labels(self, rows: list[dict]) -> dict:
        """Store labels (``detection_id``, ``label``, ``origin`` and optionally ``labeled_by``,
        ``labeled_at``); every change is kept in ``label_log``. Returns how many were ``new``,
        ``replaced`` (the detection had another label) and ``unchanged``; ``stored`` = new + replaced."""
        out = {"new": 0, "replaced": 0, "unchanged": 0}
        now = time.time()
        with self._tx():
            for r in rows:
                who = r.get("labeled_by") or r.get("origin") or ""
                at = r.get("labeled_at") or r.get("imported_at") or now
                prev = self.db.execute(
                    "SELECT label FROM labels WHERE detection_id = ?", [r["detection_id"]]
                ).fetchone()
                if prev is not None and prev[0] == r["label"]:
                    out["unchanged"] += 1
                    continue
                out["replaced" if prev is not None else "new"] += 1
                self.db.execute(
                    "INSERT INTO labels(detection_id, label, origin, imported_at, labeled_by, labeled_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(detection_id) DO UPDATE SET label = excluded.label, "
                    "origin = excluded.origin, imported_at = excluded.imported_at, labeled_by = excluded.labeled_by, "
                    "labeled_at = excluded.labeled_at",
                    [r["detection_id"], r["label"], r.get("origin", ""), r.get("imported_at", at), who, at],
                )
                self.db.execute(
                    "INSERT INTO label_log(detection_id, label, previous, labeled_by, labeled_at, origin) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [r["detection_id"], r["label"], prev[0] if prev else None, who, at, r.get("origin", "")],
                )
        out["stored"] = out["new"] + out["replaced"]
        return out

    def delete_labels(self, detection_ids: Iterable[str]) -> int:
        ids = list(detection_ids)
        with self._tx():
            n = 0
            for part in in_parts(ids):
                n += self.db.execute(
                    f"DELETE FROM labels WHERE detection_id IN ({','.join('?' * len(part))})", part
                ).rowcount
        return n

    def labels(self) -> dict[str, str]:
        with self._lock:
            return dict(self.db.execute("SELECT detection_id, label FROM labels").fetchall())

    def label_rows(self, detection_ids: Iterable[str] | None = None) -> list[dict]:
        """Labels with who set them and when (all, or of these detections)."""
        sql = "SELECT detection_id, label, origin, labeled_by, labeled_at FROM labels"
        if detection_ids is None:
            return self._rows(sql + " ORDER BY labeled_at")
        ids, out = list(detection_ids), []
        for part in in_parts(ids):
            out += self._rows(sql + f" WHERE detection_id IN ({','.join('?' * len(part))})", part)
        return out

    def label_history(self, detection_id: str) -> list[dict]:
        return self._rows("SELECT * FROM label_log WHERE detection_id = ? ORDER BY id", [detection_id])

    # -- cluster names ---------------------------------------------------------------------------
    def has_cluster(self, run_id: str, cluster: int) -> bool:
        """Whether run ``run_id`` has a member in ``cluster`` (False for a number no column holds)."""
        if not -(2**63) <= cluster < 2**63:
            return False
        return bool(self._rows(
            "SELECT 1 AS x FROM cluster_members WHERE run_id = ? AND cluster = ? LIMIT 1", [run_id, int(cluster)]))  # fmt: skip

    def set_cluster_name(self, run_id: str, cluster: int, name: str, named_by: str) -> None:
        """Name (an empty ``name``: unname) a cluster of a stored run; a run or cluster that does
        not exist raises :class:`StorageError` and nothing is stored."""
        with self._tx():
            if not self.db.execute("SELECT 1 FROM cluster_runs WHERE run_id = ?", [run_id]).fetchone():
                raise StorageError(f"no cluster run {run_id!r}")
            if not self.has_cluster(run_id, cluster):
                raise StorageError(f"run {run_id} has no cluster {cluster}")
            if name:
                self.db.execute(
                    "INSERT INTO cluster_names(run_id, cluster, name, named_by, named_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(run_id, cluster) DO UPDATE SET name = excluded.name, named_by = excluded.named_by, "
                    "named_at = excluded.named_at",
                    [run_id, int(cluster), name, named_by, time.time()],
                )
            else:
                self.db.execute(
                    "DELETE FROM cluster_names WHERE run_id = ? AND cluster = ?", [run_id, int(cluster)]
                )

    def cluster_names(self, run_id: str) -> dict[int, dict]:
        """Researchers' names of a run's clusters: cluster -> ``{name, named_by, named_at}``."""
        return {r.pop("cluster"): r for r in self._rows(
            "SELECT cluster, name, named_by, named_at FROM cluster_names WHERE run_id = ?", [run_id])}  # fmt: skip
