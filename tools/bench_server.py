#!/usr/bin/env python3
"""Benchmark the server: MQTT ingest throughput and clustering time.

Ingest: a real mosquitto on a free loopback port; ``--devices`` simulated devices (one paho client
each, client id = device id, QoS 1, at most 20 in flight, as the edge publisher) publish
``--messages`` schema-1 detections each. Measured in the same run:

- reference: a plain QoS 1 subscriber that only counts (broker + paho cost, no validation, no DB);
- ingest: ``server.ingest.Ingestor`` (persistent subscription as deployed, validation, SQLite upsert, PUBACK after
  commit) until every detection is stored;
- workers (``--workers 1,2,4``): ``yh-server ingest`` *processes* in one shared-subscription group
  (``--share-group``), on SQLite (one file, its write lock shared) and on PostgreSQL (a server
  started for the run, ``tests/postgres.py``), each configuration with a fresh broker and database,
  timed from the first publish until every detection is stored.

Clustering: ``server.clustering.cluster_embeddings`` (PCA -> HDBSCAN, PCA maps) on synthetic
dialect blobs of 10k and 100k embeddings (64-d, 8 dialects), with the ARI against the blobs.

Clustering at volume (``--volume-sizes``): ``method="prototypes"`` on a synthetic survey
(``tests.factories.dialect_mixture``: 64-d, 10 dialects x 3 song types, 200 recorders with a home
dialect, 30 days, 2 % outliers), timed, with the ARI against the truth and, up to ``--full-max``
songs, against the full HDBSCAN (``max_fit`` = every song) on the same songs.

    python tools/bench_server.py [--devices 50] [--messages 200] [--workers 1,2,4] [--sizes 10000,100000]
                                 [--volume-sizes 100000,1000000] [--full-max 50000] [--json]
"""

from __future__ import annotations

# isort: off
import edge  # noqa: F401  (first: single-threaded BLAS, as in production)
# isort: on

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import click
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.clustering import ClusterParams, cluster_embeddings  # noqa: E402
from server.config import MqttConfig
from server.ingest import Ingestor  # noqa: E402
from server.storage.sqlite import SqliteStorage  # noqa: E402
from tests.broker import MosquittoBroker, mosquitto_binary  # noqa: E402
from tests.sync.helpers import make_detection  # noqa: E402
from tools.bench_workers import bench_workers  # noqa: E402


def _payloads(devices: int, messages: int, dim: int) -> dict[str, list[bytes]]:
    rng = np.random.default_rng(0)
    out = {}
    for d in range(devices):
        dev = f"bench-{d:03d}"
        out[dev] = [
            make_detection(dev, d * messages + i, dim=dim, rng=rng).to_payload() for i in range(messages)
        ]
    return out


def _blast(broker, payloads: dict[str, list[bytes]]) -> None:
    """Every simulated device publishes its messages (QoS 1, 20 in flight) and waits for the PUBACKs."""

    def device(dev: str, msgs: list[bytes]) -> None:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=dev, clean_session=False)
        c.max_inflight_messages_set(20)
        c.connect(broker.host, broker.port)
        c.loop_start()
        infos = [c.publish(f"yh/v1/{dev}/detections", m, qos=1) for m in msgs]
        for i in infos:
            i.wait_for_publish(120)
        c.disconnect()
        c.loop_stop()

    threads = [threading.Thread(target=device, args=item) for item in payloads.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _wait(pred, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


def bench_ingest(devices: int, messages: int, dim: int) -> dict:
    total = devices * messages
    payloads = _payloads(devices, messages, dim)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        broker = MosquittoBroker(tmp / "mosq").start()
        try:
            # reference: count only
            got = [0]
            sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-ref")
            sub.on_message = lambda c, u, m: got.__setitem__(0, got[0] + 1)
            sub.connect(broker.host, broker.port)
            sub.subscribe("yh/v1/+/detections", 1)
            sub.loop_start()
            time.sleep(0.3)
            t0 = time.perf_counter()
            _blast(broker, payloads)
            _wait(lambda: got[0] >= total, 300)
            ref_s = time.perf_counter() - t0
            sub.disconnect()
            sub.loop_stop()
            # the ingest
            storage = SqliteStorage(tmp / "server.sqlite")
            ing = Ingestor(storage, MqttConfig(host=broker.host, port=broker.port, client_id="bench-ingest"))
            stop = threading.Event()
            th = threading.Thread(target=ing.run, args=(stop,))
            th.start()
            _wait(ing.connected.is_set, 20)
            time.sleep(0.3)
            t0 = time.perf_counter()
            _blast(broker, payloads)
            _wait(lambda: ing.handler.totals.new + ing.handler.totals.duplicate >= total, 600)
            ing_s = time.perf_counter() - t0
            stop.set()
            th.join(30)
            stored = storage.counts()["detections"]
            storage.close()
        finally:
            broker.stop()
    return {
        "devices": devices,
        "messages": total,
        "payload_bytes": len(next(iter(payloads.values()))[0]),
        "reference_msgs_per_s": round(total / ref_s),
        "ingest_msgs_per_s": round(total / ing_s),
        "ingest_vs_reference": round(ref_s / ing_s, 3),
        "stored": stored,
    }


def bench_cluster(n: int, dim: int = 64, k: int = 8) -> dict:
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(1)
    centres = rng.standard_normal((k, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth = rng.integers(0, k, n)
    x = (centres[truth] + 0.35 * rng.standard_normal((n, dim)) / np.sqrt(dim) * 3).astype(np.float32)
    params = ClusterParams(min_cluster_size=max(15, n // 400))
    t0 = time.perf_counter()
    res = cluster_embeddings(x, params)
    secs = time.perf_counter() - t0
    clustered = res.labels >= 0
    return {
        "embeddings": n,
        "dim": dim,
        "seconds": round(secs, 2),
        "fitted_points": res.fitted,
        "clusters": int(len(set(res.labels.tolist()) - {-1})),
        "outlier_fraction": round(float(1 - clustered.mean()), 4),
        "ari_clustered": round(float(adjusted_rand_score(truth[clustered], res.labels[clustered])), 4),
    }


@click.command()
@click.option("--devices", default=50, show_default=True)
@click.option("--messages", default=200, show_default=True, help="Per device.")
@click.option("--dim", default=64, show_default=True, help="Embedding dimension.")
@click.option("--sizes", default="10000,100000", show_default=True, help="Clustering sizes.")
@click.option("--workers", default="1,2,4", show_default=True, help="Worker counts (empty: skip).")
@click.option("--volume-sizes", default="", help="Prototype clustering sizes, e.g. 100000,1000000.")
@click.option(
    "--full-max", default=50000, show_default=True, help="Largest size also clustered by full HDBSCAN."
)
@click.option("--json", "as_json", is_flag=True)
def main(devices: int, messages: int, dim: int, sizes: str, workers: str, volume_sizes: str, full_max: int,
         as_json: bool) -> None:  # fmt: skip
    """Ingest msgs/s over loopback and clustering time; prints figures."""
    out: dict = {}
    if mosquitto_binary() and workers:
        counts = [int(w) for w in workers.split(",") if w]
        out["workers"] = bench_workers(
            _payloads(devices, messages, dim), _blast, counts, say=lambda m: click.echo(m, err=True)
        )
        if not as_json:
            click.echo(_workers_table(out["workers"]))
    if volume_sizes:
        from tools.bench_workers import bench_volume

        out["volume"] = [bench_volume(int(n), full_max, say=lambda m: click.echo(m, err=True))
                         for n in volume_sizes.split(",") if n]  # fmt: skip
        if not as_json:
            for v in out["volume"]:
                click.echo(f"prototypes {v['songs']} songs: {v['seconds']} s ({v['prototypes']} prototypes), "
                           f"{v['clusters']} clusters, outliers {100 * v['outlier_fraction']:.1f} %, ARI vs truth "
                           f"{v['ari_truth']}" + (f"; full HDBSCAN {v['full_seconds']} s, ARI vs truth "
                           f"{v['full_ari_truth']}, ARI prototypes vs full {v['ari_vs_full']}" if "full_seconds" in v else ""))  # fmt: skip
    if mosquitto_binary():
        out["ingest"] = bench_ingest(devices, messages, dim)
        if not as_json:
            i = out["ingest"]
            click.echo(f"ingest: {i['messages']} msgs from {i['devices']} devices ({i['payload_bytes']} B each): "
                       f"{i['ingest_msgs_per_s']} msgs/s stored; reference (count only) {i['reference_msgs_per_s']} "
                       f"msgs/s; ratio {i['ingest_vs_reference']}; rows stored {i['stored']}")  # fmt: skip
    else:
        click.echo("mosquitto not installed: ingest benchmark skipped", err=True)
    out["cluster"] = []
    for n in (int(s) for s in sizes.split(",") if s):
        r = bench_cluster(n, dim)
        out["cluster"].append(r)
        if not as_json:
            click.echo(f"cluster {r['embeddings']} x {r['dim']}-d: {r['seconds']} s (HDBSCAN fitted on "
                       f"{r['fitted_points']}), {r['clusters']} clusters, outliers {100 * r['outlier_fraction']:.1f} %, "
                       f"ARI (clustered) {r['ari_clustered']}")  # fmt: skip
    if as_json:
        click.echo(json.dumps(out, indent=2))


def _workers_table(rows: list[dict]) -> str:
    lines = ["backend     workers  msgs/s  stored  (messages from devices over loopback, QoS 1)"]
    for r in rows:
        lines.append(f"{r['backend']:<11} {r['workers']:>7} {r['msgs_per_s']:>7} {r['stored']:>7}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
