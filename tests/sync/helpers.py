"""Shared by the sync and server tests: detections, edge stores, an ingest worker, polling."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from pathlib import Path

import numpy as np

from edge.adapters.store.sqlite import SqliteStore
from edge.contract import Detection
from edge.core.config import Config, DeviceConfig, MqttConfig, StoreConfig, WebConfig
from server.config import MqttConfig as IngestConfig
from server.ingest import Ingestor
from server.storage.sqlite import SqliteStorage
from tests.factories import ENCODER, T0, make_detection, wait_for  # noqa: F401  (shared factories)


def fill_store(path: Path, device: str, n: int, start: int = 0, **kw) -> list[str]:
    store = SqliteStore(path)
    ids = []
    try:
        for i in range(start, start + n):
            d = make_detection(device, i, **kw)
            store.add(d)
            ids.append(d.id)
    finally:
        store.close()
    return ids


def edge_config(broker, device: str, db: Path, **mqtt) -> Config:
    mq = {"enabled": True, "host": broker.host, "port": broker.port, "max_backoff_s": 2.0, **mqtt}
    return Config(device=DeviceConfig(id=device, data_dir=str(db.parent)), store=StoreConfig(path=str(db)),
                  mqtt=MqttConfig(**mq), web=WebConfig(port=0))  # fmt: skip


def unsynced_count(db: Path) -> int:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]


def server_rows(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    c = sqlite3.connect(db, timeout=30)
    try:
        return c.execute("SELECT id, device_id, receive_count FROM detections").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        c.close()


def quarantine_reasons(db: Path) -> list[str]:
    c = sqlite3.connect(db, timeout=30)
    try:
        return [r[0] for r in c.execute("SELECT reason FROM quarantine ORDER BY id")]
    finally:
        c.close()


class IngestThread:
    """An in-process ingest worker against the test broker."""

    def __init__(self, broker, db: Path, client_id: str = "ingest-test", **settings) -> None:
        self.storage = SqliteStorage(db)
        s = IngestConfig(host=broker.host, port=broker.port, client_id=client_id, max_backoff_s=2, **settings)
        self.ingestor = Ingestor(self.storage, s)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.ingestor.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> IngestThread:
        self.thread.start()
        wait_for(self.ingestor.subscribed.is_set, 20, what="ingest subscription")
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(15)
        self.storage.close()


def with_mqtt(cfg: Config, **kw) -> Config:
    return dataclasses.replace(cfg, mqtt=dataclasses.replace(cfg.mqtt, **kw))


def blob_detections(k: int = 6, n_per: int = 50, dim: int = 32, spread: float = 0.12, seed: int = 0,
                    devices: tuple[str, ...] = ("dev-1", "dev-2", "dev-3"), encoder: str = ENCODER,
                    start: int = 0) -> list[tuple[Detection, str]]:  # fmt: skip
    """Synthetic dialects: Gaussian blobs around ``k`` random unit centres, with their labels."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = []
    i = start
    for c in range(k):
        for _ in range(n_per):
            e = centres[c] + spread * rng.standard_normal(dim) / np.sqrt(dim) * 3
            d = make_detection(
                devices[i % len(devices)], i, dim=dim, encoder=encoder, embedding=e.astype(np.float32)
            )
            out.append((d, f"D{c}"))
            i += 1
    return out


def write_labels(path, pairs, skip: frozenset[str] | set[str] = frozenset()) -> None:
    """A ``detection_id,label`` CSV of ``(detection, label)`` pairs, leaving out labels in ``skip``."""
    import csv

    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["detection_id", "label"])
        for d, lab in pairs:
            if lab not in skip:
                w.writerow([d.id, lab])


def load_into_server(storage, detections) -> None:
    """Feed detections through the ingest's validation path (no broker needed)."""
    from server.ingest import Message, MessageHandler

    h = MessageHandler(storage)
    msgs = [Message(f"yh/v1/{d.device_id}/detections", d.to_payload()) for d in detections]
    for i in range(0, len(msgs), 500):
        h.handle(msgs[i : i + 500])
