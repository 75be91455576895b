"""Copy what is readable of a damaged SQLite database (the recorder's or the server's) into a new file.

The sqlite3 shell's ``.recover`` would be the tool, but the shell of Debian 12 / Raspberry Pi OS
bookworm (3.40.1) fails with "SQL logic error" on every database. This copy needs only Python's
sqlite3: the schema from ``sqlite_master``, then each table in rowid order, in chunks; where a
chunk meets a damaged page, it skips ahead (doubling the step) to the next readable rowid. The
damaged file is opened read-only and never changed; the new file gets the damaged one's
``user_version`` (schema version), so the server opens it as it was. In the recorder's database
every unsynced detection gets its outbox row again (one lost on a damaged page would never be sent).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge.kit.sqlite import DatabaseCorruptError, DatabaseError

CHUNK = 500


def recover(damaged: str | Path, out: str | Path) -> dict:
    """Copy every readable row of ``damaged`` into the new file ``out``; returns
    ``{"file", "schema_version", "tables": {name: rows copied}, "skipped": {name: unreadable stretches},
    "requeued": unsynced detections whose outbox row was lost and is made again, "unsynced": unsynced
    detections in all (None for a database that is not the recorder's)}``."""
    damaged, out = Path(damaged), Path(out)
    if out.exists():
        raise DatabaseError(f"{out}: exists already (refusing to overwrite it)")
    if not damaged.exists():
        raise DatabaseError(f"{damaged}: no such file")
    src = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True)
    try:
        schema = src.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
        version = int(src.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        src.close()
        raise DatabaseCorruptError(
            f"{damaged}: even its schema is unreadable ({exc}); restore a backup"
        ) from None
    tmp = out.with_name(out.name + ".part")
    tmp.unlink(missing_ok=True)
    dst = sqlite3.connect(tmp)
    result: dict = {"file": str(out), "schema_version": version, "tables": {}, "skipped": {}}
    try:
        tables = [n for t, n, _ in schema if t == "table" and not n.startswith("sqlite_")]
        for t, n, sql in schema:
            if t == "table" and n in tables:
                dst.execute(sql)
        for name in tables:
            result["tables"][name], result["skipped"][name] = _copy_table(src, dst, name)
        result["requeued"], result["unsynced"] = _requeue_unsynced(dst, tables)
        for t, n, sql in schema:
            if t in ("index", "trigger", "view"):
                try:
                    dst.execute(sql)
                except sqlite3.Error as exc:
                    result["skipped"].setdefault(n, f"not recreated: {exc}")
        dst.execute(f"PRAGMA user_version = {version}")
        dst.commit()
    except (sqlite3.Error, OSError) as exc:
        dst.close()
        tmp.unlink(missing_ok=True)
        raise DatabaseError(f"{out}: recovery failed ({exc})") from None
    finally:
        src.close()
    dst.close()
    tmp.replace(out)
    return result


def _requeue_unsynced(dst: sqlite3.Connection, tables: list[str]) -> tuple[int, int | None]:
    """The recorder's database: every unsynced detection (``synced_at IS NULL``) gets an outbox
    row, so one whose row was on a damaged page is still sent and counted as unsynced; returns
    how many were queued again and how many are unsynced in all. Other databases (the server's)
    are left as they are: ``(0, None)``."""
    if "detections" not in tables or "outbox" not in tables:
        return 0, None
    if "synced_at" not in {r[1] for r in dst.execute('PRAGMA table_info("detections")')}:
        return 0, None
    requeued = dst.execute(
        "INSERT OR IGNORE INTO outbox (detection_id, enqueued_at, attempts, last_attempt) "
        "SELECT id, COALESCE(created_at, CAST(strftime('%s', 'now') AS REAL)), 0, NULL FROM detections "
        "WHERE synced_at IS NULL AND id NOT IN (SELECT detection_id FROM outbox)"
    ).rowcount
    unsynced = dst.execute("SELECT count(*) FROM detections WHERE synced_at IS NULL").fetchone()[0]
    return requeued, int(unsynced)


def _copy_table(src: sqlite3.Connection, dst: sqlite3.Connection, name: str) -> tuple[int, int]:
    """Rows copied and unreadable stretches skipped, reading in rowid order."""
    cols = [r[1] for r in src.execute(f'PRAGMA table_info("{name}")')]
    names = ", ".join(f'"{c}"' for c in cols)
    insert = f'INSERT OR IGNORE INTO "{name}" ({names}) VALUES ({", ".join("?" * len(cols))})'
    try:
        top = src.execute(f'SELECT max(rowid) FROM "{name}"').fetchone()[0]
    except sqlite3.DatabaseError:
        top = 2**62
    if top is None:
        return 0, 0
    try:
        first = src.execute(f'SELECT min(rowid) FROM "{name}"').fetchone()[0]
    except sqlite3.DatabaseError:
        first = 1  # the leftmost page is damaged: rowids of these tables start at 1
    last, copied, skipped = int(first) - 1, 0, 0
    while last < top:
        try:
            rows = src.execute(f'SELECT rowid, {names} FROM "{name}" WHERE rowid > ? ORDER BY rowid LIMIT ?',
                               [last, CHUNK]).fetchall()  # fmt: skip
        except sqlite3.DatabaseError:
            rows = _rows_one_by_one(src, name, names, last, top)
            if not rows:
                last = _skip(src, name, last, top)
                skipped += 1
                continue
        if not rows:
            break
        dst.executemany(insert, [r[1:] for r in rows])
        copied += len(rows)
        last = rows[-1][0]
    return copied, skipped


def _rows_one_by_one(src, name: str, names: str, last: int, top: int) -> list:
    """The readable rows right after ``last``, one at a time, up to the first unreadable one."""
    out = []
    while len(out) < CHUNK and last < top:
        try:
            row = src.execute(f'SELECT rowid, {names} FROM "{name}" WHERE rowid > ? ORDER BY rowid LIMIT 1',
                              [last]).fetchone()  # fmt: skip
        except sqlite3.DatabaseError:
            break
        if row is None:
            break
        out.append(row)
        last = row[0]
    return out


def _skip(src, name: str, last: int, top: int) -> int:
    """Past an unreadable stretch after ``last``: gallop (doubling steps) to a rowid from which
    reading works again, then narrow it down (bisection) so few readable rows are skipped."""

    def readable(after: int) -> bool:
        try:
            src.execute(
                f'SELECT rowid FROM "{name}" WHERE rowid > ? ORDER BY rowid LIMIT 1', [after]
            ).fetchone()
            return True
        except sqlite3.DatabaseError:
            return False

    step = 1
    while last + step < top and not readable(last + step):
        step *= 2
    if last + step >= top:
        return top
    lo, hi = last + step // 2, last + step  # lo unreadable (or ``last``), hi readable
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if readable(mid) else (mid, hi)
    return hi
