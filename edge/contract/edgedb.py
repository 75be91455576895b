"""An edge database file read as detection messages.

A recorder without network keeps its detections in its SQLite store; a researcher can copy the
file (SD card, ``scp``) and hand it to ``yh-server import``. Each row is turned into the exact
payload the recorder would have published (:meth:`Detection.to_payload`), so the server decodes
it through the same checks as an MQTT message. The table layout is the edge store's
(``detections``, columns from :func:`edge.contract.detection.sql_columns`).

A row that cannot become a payload (a column of the wrong type, ``extra`` that is not a JSON
object, a figure that is not a number) is returned as a :class:`ContractError` with a one-line
reason, which the import quarantines; the other rows of its batch are read as usual.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from edge.contract.detection import FIELDS, Detection
from edge.contract.wire import ContractError

log = logging.getLogger(__name__)

TABLE = "detections"


class EdgeDatabaseError(Exception):
    """The file is not a readable edge database."""


def open_readonly(path: str | Path) -> sqlite3.Connection:
    """Open a database file without writing to it (nor to its directory, if that is read-only)."""
    path = Path(path)
    if not path.is_file():
        raise EdgeDatabaseError(f"{path}: no such file")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return conn
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc) or "malformed" in str(exc):
            raise EdgeDatabaseError(f"{path}: not an SQLite database ({exc})") from None
        # a copied file whose directory is read-only cannot get its -shm: read it as immutable
        log.warning("import: %s cannot be opened read-only (%s); reading it as immutable", path, exc)
        try:
            return sqlite3.connect(f"file:{path}?immutable=1", uri=True)
        except sqlite3.Error as exc2:
            raise EdgeDatabaseError(f"{path}: cannot open ({exc2})") from None


def read_messages(path: str | Path, batch: int = 1000) -> Iterator[list[tuple[dict, bytes | ContractError]]]:
    """Batches of ``(row without embedding, payload or the error that stopped encoding it)``,
    in ``start_time`` order."""
    conn = open_readonly(path)
    try:
        try:
            cur = conn.execute(f"SELECT * FROM {TABLE} ORDER BY start_time, id")
        except sqlite3.DatabaseError as exc:
            raise EdgeDatabaseError(f"{path}: not an edge detection database ({exc})") from None
        names = [c[0] for c in cur.description]
        while True:
            try:
                chunk = cur.fetchmany(batch)
            except sqlite3.DatabaseError as exc:
                raise EdgeDatabaseError(f"{path}: read failed ({exc})") from None
            if not chunk:
                return
            out = []
            for values in chunk:
                row = dict(zip(names, values, strict=True))
                shown = {k: v for k, v in row.items() if k != "embedding"}
                out.append((shown, _payload(row)))
            yield out
    finally:
        conn.close()


#: the Python types SQLite returns for the column types of :func:`~edge.contract.detection.sql_columns`
_SQL_TYPES = {"TEXT": (str,), "REAL": (int, float), "INTEGER": (int,), "BLOB": (bytes,)}
_TYPE_NAMES = {str: "text", bytes: "a blob", int: "an integer", float: "a number"}


def _check_columns(row: dict) -> None:
    """Each field's column holds its SQL type (or NULL; required fields may not be NULL)."""
    for f in FIELDS:
        v = row.get(f.name)
        if v is None:
            if f.required:
                raise ContractError(f"edge row has no {f.name!r}")
            continue
        if not isinstance(v, _SQL_TYPES[f.sql]):
            held = _TYPE_NAMES.get(type(v), type(v).__name__)
            raise ContractError(f"edge row: column {f.name!r} holds {held}, not {f.sql.lower()}")


def _payload(row: dict) -> bytes | ContractError:
    emb = row.get("embedding")
    if not isinstance(emb, (bytes, memoryview)) or len(bytes(emb)) % 4:
        return ContractError("edge row has no float32 embedding blob")
    try:
        _check_columns(row)
        d = Detection.from_row(row)
    except ContractError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001  one row the device got wrong never stops an import
        return ContractError(f"edge row cannot be read ({type(exc).__name__}: {str(exc)[:100]})")
    try:
        return d.to_payload(dtype="f32")
    except ContractError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001
        return ContractError(f"edge row cannot be encoded ({type(exc).__name__}: {str(exc)[:100]})")
