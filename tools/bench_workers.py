"""Parts of ``tools/bench_server.py``: ingest throughput of 1..N worker processes on SQLite and
PostgreSQL, and prototype clustering at volume (timing and ARI)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run_config(address: str, n_workers: int, payloads: dict, blast: Callable, tmp: Path) -> dict:
    from server.storage import open_storage
    from tests.broker import MosquittoBroker

    open_storage(address).close()  # the schema, before the workers race to create it
    watch = open_storage(address, readonly=True)

    def stored() -> int:
        return int(watch.db.execute("SELECT COUNT(*) FROM detections").fetchone()[0])

    broker = MosquittoBroker(tmp / f"mosq-{n_workers}-{abs(hash(address))}").start()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    logs = [tmp / f"w{n_workers}-{i}-{abs(hash(address))}.log" for i in range(n_workers)]
    procs = [subprocess.Popen([sys.executable, "-m", "server.cli", "--db", address, "ingest", "--host", broker.host,
                               "--port", str(broker.port), "--client-id", f"bench-w{i}", "--share-group", "bench"],
                              env=env, stderr=logs[i].open("w")) for i in range(n_workers)]  # fmt: skip
    total = sum(len(v) for v in payloads.values())
    try:
        _until(lambda: all(p.exists() and "connected to" in p.read_text() for p in logs), 60)
        time.sleep(1.0)  # SUBACKs
        t0 = time.perf_counter()
        blast(broker, payloads)
        _until(lambda: stored() >= total, 900, interval=0.05)
        secs = time.perf_counter() - t0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        broker.stop()
    n = stored()
    watch.close()
    return {"workers": n_workers, "messages": total, "seconds": round(secs, 2), "msgs_per_s": round(total / secs),
            "stored": n}  # fmt: skip


def _until(pred, timeout: float, interval: float = 0.1) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(interval)
    raise RuntimeError("benchmark: timed out")


def bench_workers(
    payloads: dict, blast: Callable, counts: list[int], say: Callable[[str], None]
) -> list[dict]:
    """msgs/s stored for each backend and worker count (fresh broker and database each)."""
    from tests.postgres import PostgresServer, unavailable

    out = []
    why = unavailable()
    pg = None if why else PostgresServer().start()
    if why:
        say(f"PostgreSQL part skipped: {why}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            for backend in ["sqlite"] + (["postgresql"] if pg else []):
                for n in counts:
                    address = pg.fresh_db() if backend == "postgresql" else str(tmp / f"server-{n}.sqlite")
                    r = {"backend": backend, **_run_config(address, n, payloads, blast, tmp)}
                    say(
                        f"{backend} x{n}: {r['msgs_per_s']} msgs/s ({r['stored']} stored in {r['seconds']} s)"
                    )
                    out.append(r)
    finally:
        if pg:
            pg.stop()
    return out


def bench_volume(n: int, full_max: int, say: Callable[[str], None]) -> dict:
    """Prototype clustering of ``n`` synthetic survey songs; full HDBSCAN too up to ``full_max``."""
    from sklearn.metrics import adjusted_rand_score as ari

    from server.clustering import ClusterParams, cluster_embeddings
    from server.clustering.prototypes import device_days
    from tests.factories import dialect_mixture

    m = dialect_mixture(n)
    groups = device_days(m["device"], m["start_time"])
    mcs = max(15, n // 400)
    t0 = time.perf_counter()
    res = cluster_embeddings(m["x"], ClusterParams(min_cluster_size=mcs, method="prototypes"),
                             lambda s: say(f"  [{n}] {time.perf_counter() - t0:.1f} s: {s}"), groups=groups)  # fmt: skip
    secs = time.perf_counter() - t0
    real = m["truth"] >= 0
    out = {"songs": n, "dim": m["x"].shape[1], "seconds": round(secs, 1), "device_days": int(groups.max()) + 1,
           "prototypes": len(res.model.centres), "clusters": int(res.labels.max()) + 1,
           "outlier_fraction": round(float((res.labels < 0).mean()), 4),
           "ari_truth": round(float(ari(m["truth"][real], res.labels[real])), 4)}  # fmt: skip
    if n <= full_max:
        t0 = time.perf_counter()
        full = cluster_embeddings(m["x"], ClusterParams(min_cluster_size=mcs, max_fit=n))
        out["full_seconds"] = round(time.perf_counter() - t0, 1)
        out["full_ari_truth"] = round(float(ari(m["truth"][real], full.labels[real])), 4)
        out["ari_vs_full"] = round(float(ari(full.labels, res.labels)), 4)
        out["full_clusters"] = int(full.labels.max()) + 1
        out["full_outlier_fraction"] = round(float((full.labels < 0).mean()), 4)
    say(f"volume {n}: {out}")
    return out


__all__ = ["bench_volume", "bench_workers"]
