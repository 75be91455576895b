"""The few SQLite idioms of the shared storage SQL, rewritten for PostgreSQL.

The storage methods are written once (:mod:`.sql`) in SQL that both engines run, except for
these spellings, which :func:`to_postgres` rewrites (and tests pin, ``tests/server/test_postgres.py``):

- ``?`` placeholders -> ``%s`` (psycopg);
- ``INSERT OR IGNORE INTO`` -> ``INSERT INTO ... ON CONFLICT DO NOTHING``;
- ``INSERT OR REPLACE INTO t`` -> ``INSERT INTO t ... ON CONFLICT (<t's key>) DO UPDATE SET`` every column;
- the two-argument scalar ``MIN(a, b)``/``MAX(a, b)`` -> ``LEAST``/``GREATEST``;
- ``CAST(x AS INTEGER)`` (truncates in SQLite, rounds in PostgreSQL) -> ``FLOOR(x)::bigint``
  (the same for the non-negative times it is used on);
- the column names ``offset`` and ``end`` (reserved words in PostgreSQL) are quoted.

SQL keywords in the shared SQL are upper case and column names lower case, which keeps
``LIMIT ? OFFSET ?`` apart from the ``offset`` column.
"""

from __future__ import annotations

import functools
import re

#: the conflict target of the tables written with ``INSERT OR REPLACE``
REPLACE_KEYS = {"clip_pieces": ("detection_id", "seq")}

_INSERT = re.compile(r"^\s*INSERT OR (IGNORE|REPLACE) INTO (\w+)\s*\(([^)]*)\)", re.S)
_MINMAX = re.compile(r"\b(MIN|MAX)\(([\w.]+),\s*([\w.]+)\)")
_CAST_INT = re.compile(r"CAST\(([^()]+?) AS INTEGER\)")
_RESERVED = re.compile(r'(?<!["\w])(offset|end)(?!["\w])')


@functools.lru_cache(maxsize=512)
def to_postgres(sql: str) -> str:
    """The PostgreSQL spelling of one statement of the shared SQL (cached: statements repeat)."""
    out = sql
    m = _INSERT.match(out)
    if m:
        kind, table, cols = m.groups()
        out = out[: m.start()] + f"INSERT INTO {table}({cols})" + out[m.end() :]
        if kind == "IGNORE":
            out += " ON CONFLICT DO NOTHING"
        else:
            key = REPLACE_KEYS[table]
            names = [c.strip() for c in cols.split(",")]
            sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in names if c not in key)
            out += f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"
    out = _MINMAX.sub(lambda m: f"{'LEAST' if m[1] == 'MIN' else 'GREATEST'}({m[2]}, {m[3]})", out)
    out = _CAST_INT.sub(r"FLOOR(\1)::bigint", out)
    out = _RESERVED.sub(r'"\1"', out)
    return out.replace("%", "%%").replace("?", "%s")
