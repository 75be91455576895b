"""The PostgreSQL backend on a real PostgreSQL (``tests/postgres.py``): the same schema as SQLite,
the SQL dialect rewrite, commands by URL, read-only opens, concurrent writers, snapshots."""

from __future__ import annotations

import sqlite3
import threading

import numpy as np
import pytest
from click.testing import CliRunner

from server.cli import main
from server.errors import StorageError
from server.ingest import Message, MessageHandler
from server.storage import open_storage
from server.storage.dialect import to_postgres
from server.storage.pg_schema import MIGRATIONS, TABLES
from server.storage.postgres import PostgresStorage
from server.storage.sqlite import SqliteStorage
from tests.sync.helpers import make_detection


def _messages(device: str, n: int, start: int = 0, dim: int = 16) -> list[Message]:
    rng = np.random.default_rng(start)
    return [Message(f"yh/v1/{device}/detections", make_detection(device, start + i, dim=dim, rng=rng).to_payload())
            for i in range(n)]  # fmt: skip


def test_dialect_rewrites_the_sqlite_spellings():
    assert to_postgres("SELECT a FROM t WHERE b = ? LIMIT ? OFFSET ?") == (
        "SELECT a FROM t WHERE b = %s LIMIT %s OFFSET %s"
    )
    assert to_postgres("INSERT OR IGNORE INTO e(a, b) VALUES (?, ?)") == (
        "INSERT INTO e(a, b) VALUES (%s, %s) ON CONFLICT DO NOTHING"
    )
    got = to_postgres(
        "INSERT OR REPLACE INTO clip_pieces(detection_id, seq, offset, data) VALUES (?, ?, ?, ?)"
    )
    assert got == ('INSERT INTO clip_pieces(detection_id, seq, "offset", data) VALUES (%s, %s, %s, %s) '
                   'ON CONFLICT (detection_id, seq) DO UPDATE SET "offset" = EXCLUDED."offset", data = EXCLUDED.data')  # fmt: skip
    assert to_postgres("SET f = MIN(d.f, excluded.f), g = MAX(g, excluded.g)") == (
        "SET f = LEAST(d.f, excluded.f), g = GREATEST(g, excluded.g)"
    )
    assert to_postgres("SELECT CAST(start_time / ? AS INTEGER) AS b, COUNT(*)") == (
        "SELECT FLOOR(start_time / %s)::bigint AS b, COUNT(*)"
    )
    assert to_postgres("UPDATE x SET start = ?, end = ?, offset_s = ? WHERE s LIKE 'a%'") == (
        "UPDATE x SET start = %s, \"end\" = %s, offset_s = %s WHERE s LIKE 'a%%'"
    )


def test_same_tables_and_columns_as_sqlite(pg_url, tmp_path):
    pg, lite = PostgresStorage(pg_url), SqliteStorage(tmp_path / "s.sqlite")
    for table in TABLES:
        want = {r[1] for r in lite.db.execute(f"PRAGMA table_info({table})").fetchall()}
        have = {r[0] for r in pg.db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]).fetchall()}  # fmt: skip
        assert have == want, table
    assert pg.db.execute("SELECT version FROM yh_schema").fetchone()[0] == len(MIGRATIONS) == 4
    pg.close()
    PostgresStorage(pg_url).close()  # reopening migrates nothing and keeps the version
    lite.close()


def test_bucket_counts_floor_like_sqlite(storage):
    h = MessageHandler(storage)
    h.handle(_messages("dev-b", 40))
    rows = list(storage.iter_detections(device_id="dev-b"))
    buckets = {int(r["start_time"] // 60) for r in rows}
    want: dict[int, int] = {}
    for r in rows:
        want[int(r["start_time"] // 60)] = want.get(int(r["start_time"] // 60), 0) + 1
    assert storage.bucket_counts("dev-b", 60, buckets) == want


def test_commands_take_a_postgres_url(pg_url, tmp_path):
    s = open_storage(pg_url)
    assert isinstance(s, PostgresStorage)
    MessageHandler(s).handle(_messages("dev-c", 30))
    s.close()
    r = CliRunner().invoke(main, ["--db", pg_url, "status", "--json"])
    assert r.exit_code == 0, r.output
    assert '"detections": 30' in r.output
    r = CliRunner().invoke(main, ["--db", pg_url, "snapshot", str(tmp_path / "copy.sqlite")])
    assert r.exit_code == 0, r.output
    with sqlite3.connect(tmp_path / "copy.sqlite") as c:
        assert c.execute("SELECT COUNT(*) FROM detections").fetchone()[0] == 30
    copy = SqliteStorage(tmp_path / "copy.sqlite", readonly=True)
    pg = PostgresStorage(pg_url, readonly=True)
    a = {r["id"]: r["embedding"] for r in copy.iter_detections(with_embedding=True)}
    b = {r["id"]: r["embedding"] for r in pg.iter_detections(with_embedding=True)}
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(StorageError, match="read-only"):
        pg.put_labels([{"detection_id": next(iter(a)), "label": "x", "origin": "t"}])
    copy.close()
    pg.close()


def test_unreachable_or_empty_database_is_one_clear_line(pg_server):
    r = CliRunner().invoke(main, ["--db", pg_server.url("no_such_db"), "status"])
    assert r.exit_code != 0 and "cannot connect" in r.output and "Traceback" not in r.output
    with_password = pg_server.url("no_such_db").replace("@", ":hunter2@")
    r = CliRunner().invoke(main, ["--db", with_password, "status"])
    assert r.exit_code != 0 and ":***@" in r.output and "hunter2" not in r.output
    empty = pg_server.fresh_db()
    with pytest.raises(StorageError, match="not a yellowhammer server database"):
        PostgresStorage(empty, readonly=True)


def test_concurrent_writers_store_each_detection_once(pg_url):
    PostgresStorage(pg_url).close()
    msgs = _messages("dev-d", 200)
    results, barrier = [], threading.Barrier(3)

    def worker(batch):
        s = PostgresStorage(pg_url)
        h = MessageHandler(s)
        barrier.wait()
        for i in range(0, len(batch), 25):
            h.handle(batch[i : i + 25])
        results.append(h.totals)
        s.close()

    # three writers, overlapping halves of the same stream, at once
    threads = [threading.Thread(target=worker, args=(b,)) for b in (msgs[:150], msgs[50:], msgs[::-1])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    s = PostgresStorage(pg_url)
    c = s.counts()
    print(f"3 writers: {c['detections']} stored, {c['duplicates_received']} duplicates received")
    assert c["detections"] == 200 and sum(r.new for r in results) == 200
    assert c["duplicates_received"] == sum(r.duplicate for r in results) == 150 + 150 + 200 - 200
    s.close()
