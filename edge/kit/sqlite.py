"""SQLite plumbing shared by the edge store and the server database.

- :class:`Database`: one connection (thread-safe through a lock) opened with the house pragmas:
  WAL, ``busy_timeout``, foreign keys; read-only opens never write (``mode=ro``).
- Versioned migrations: numbered functions tracked in ``PRAGMA user_version``, applied at open,
  each in its own transaction; a database newer than the software is refused.
- :func:`ensure_columns`: every column a table should have is added if missing (new fields of
  :data:`edge.contract.FIELDS` reach both databases this way, nullable).
- :meth:`Database.transaction`: ``BEGIN IMMEDIATE`` ... ``COMMIT``/``ROLLBACK``.
- Classification of failures: full disk, read-only file, corrupt file.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import sqlite_utils

log = logging.getLogger(__name__)

Migration = Callable[[sqlite_utils.Database], None]


class DatabaseError(Exception):
    """A database cannot be opened, read or written; ``str()`` is a one-line reason."""


class DatabaseFullError(DatabaseError):
    """A write failed because the file system is full."""


class DatabaseReadOnlyError(DatabaseError):
    """A write failed because the database or its directory is read-only."""


class DatabaseCorruptError(DatabaseError):
    """The file is damaged (failed ``quick_check``/``integrity_check``) or not a database."""


def is_disk_full(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return "disk is full" in msg or "no space" in msg or getattr(exc, "sqlite_errorcode", None) == 13


def is_read_only(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return "readonly" in msg or "read-only" in msg or getattr(exc, "sqlite_errorcode", None) == 8


def is_corrupt(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return "malformed" in msg or "not a database" in msg or getattr(exc, "sqlite_errorcode", None) in (11, 26)


class Database:
    """An SQLite file opened the house way.

    Parameters
    ----------
    path
        The file; its directory is created for a writable open.
    readonly
        Open with ``mode=ro``: no migrations, no writes, nothing created.
    busy_timeout_ms
        How long a writer waits for another's lock.
    synchronous
        ``FULL`` where a power cut must not lose a commit (the recorder), ``NORMAL`` where a
        process crash is the concern (the server, WAL).
    what
        Names the database in messages ("detection database", "server database").
    auto_vacuum
        ``INCREMENTAL`` or ``FULL`` for a new file (deleted rows can then give their space back
        to the file system, :meth:`reclaim`); an existing file keeps its mode.
    """

    def __init__(
        self,
        path: str | Path,
        readonly: bool = False,
        busy_timeout_ms: int = 10_000,
        synchronous: str = "FULL",
        what: str = "database",
        wal_autocheckpoint: int | None = None,
        journal_size_limit: int | None = None,
        auto_vacuum: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.what = what
        self.lock = threading.RLock()
        try:
            if readonly:
                if not self.path.exists():
                    raise DatabaseError(f"{self.path}: no {what} here")
                conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            conn.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                if auto_vacuum is not None and conn.execute("PRAGMA page_count").fetchone()[0] == 0:
                    conn.execute(f"PRAGMA auto_vacuum = {auto_vacuum}")  # only before the first page
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute(f"PRAGMA synchronous = {synchronous}")
                if wal_autocheckpoint is not None:
                    conn.execute(f"PRAGMA wal_autocheckpoint = {int(wal_autocheckpoint)}")
                if journal_size_limit is not None:
                    conn.execute(f"PRAGMA journal_size_limit = {int(journal_size_limit)}")
            self.conn = conn
            self.db = sqlite_utils.Database(conn)
        except DatabaseError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise self.error(exc, f"cannot open the {what}") from None

    # -- errors ----------------------------------------------------------------------------------
    def error(self, exc: BaseException, doing: str) -> DatabaseError:
        """The domain error for an sqlite/OS failure while ``doing`` something."""
        if is_disk_full(exc):
            return DatabaseFullError(f"{self.path}: disk full, could not {doing.removeprefix('could not ')}")
        if is_read_only(exc):
            return DatabaseReadOnlyError(
                f"{self.path}: read-only, could not {doing.removeprefix('could not ')}"
            )
        if is_corrupt(exc):
            return DatabaseCorruptError(
                f"{self.path}: the {self.what} file is damaged ({exc}); {recover_hint(self.path)}"
            )
        return DatabaseError(f"{self.path}: {doing} ({exc})")

    # -- schema ------------------------------------------------------------------------------------
    @property
    def user_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self, migrations: list[Migration]) -> None:
        """Apply the migrations the file has not had yet (each in its own transaction)."""
        version = self.user_version
        if version > len(migrations):
            raise DatabaseError(
                f"{self.path}: {self.what} schema v{version} is newer than this software (v{len(migrations)})"
            )
        if self.readonly:
            return
        for v in range(version, len(migrations)):
            log.info("%s: migrating %s to schema v%d", self.what, self.path, v + 1)
            with self.transaction(f"migrate to schema v{v + 1}"):
                migrations[v](self.db)
                self.conn.execute(f"PRAGMA user_version = {v + 1}")

    def ensure_columns(self, table: str, columns: dict[str, str]) -> list[str]:
        """Add the columns ``table`` lacks (``name -> SQL type``, nullable); returns those added."""
        have = {r[1] for r in self.conn.execute(f"PRAGMA table_info({table})").fetchall()}
        missing = [c for c in columns if c not in have]
        if missing and not self.readonly:
            with self.transaction(f"add columns to {table}"):
                for c in missing:
                    self.conn.execute(f'ALTER TABLE {table} ADD COLUMN "{c}" {columns[c]}')
            log.info("%s: added column(s) %s to %s", self.what, ", ".join(missing), table)
        return missing

    # -- transactions and reads --------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self, doing: str = "write") -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception); sqlite failures become
        :class:`DatabaseError` subclasses naming what was being done."""
        if self.readonly:
            raise DatabaseReadOnlyError(f"{self.path}: opened read-only, could not {doing}")
        with self.lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self.error(exc, f"could not {doing}") from None
            try:
                yield self.conn
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self.error(exc, f"could not {doing}") from None
                raise
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
                raise self.error(exc, f"could not {doing}") from None

    def rows(self, sql: str, args: Iterable = ()) -> list[dict]:
        """Query results as dicts; sqlite failures become :class:`DatabaseError`."""
        with self.lock:
            try:
                return self.db.execute_returning_dicts(sql, list(args))
            except sqlite3.Error as exc:
                raise self.error(exc, "could not read") from None

    def scalar(self, sql: str, args: Iterable = ()):
        with self.lock:
            try:
                row = self.conn.execute(sql, list(args)).fetchone()
            except sqlite3.Error as exc:
                raise self.error(exc, "could not read") from None
        return None if row is None else row[0]

    def quick_check(self, full: bool = False) -> str:
        """``"ok"`` or the first problem of ``PRAGMA quick_check`` (``integrity_check`` if ``full``)."""
        pragma = "integrity_check" if full else "quick_check"
        with self.lock:
            try:
                rows = self.conn.execute(f"PRAGMA {pragma}(20)").fetchall()
            except sqlite3.Error as exc:
                return str(exc)
        return "ok" if rows == [("ok",)] else "; ".join(str(r[0]) for r in rows)

    def reclaim(self) -> None:
        """Give the free pages back to the file system (``incremental_vacuum`` of a file in
        ``auto_vacuum = INCREMENTAL``; a no-op otherwise), then fold the WAL back."""
        with self.lock:
            try:
                # executescript steps the pragma to the end (execute() frees one page per step)
                self.conn.executescript("PRAGMA incremental_vacuum;")
            except sqlite3.Error as exc:
                raise self.error(exc, "could not give free pages back to the file system") from None
        self.checkpoint()

    def checkpoint(self) -> None:
        """Fold the WAL back into the database file and truncate it."""
        with self.lock:
            try:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.warning("%s: WAL checkpoint failed: %s", self.what, exc)

    def close(self) -> None:
        with self.lock:
            try:
                self.conn.close()
            except sqlite3.Error as exc:
                log.warning("%s: close failed: %s", self.what, exc)


RECOVER_HINT = (
    "stop the service, keep the file, and copy what is readable into a new one: "
    "`yh-edge db recover DAMAGED.sqlite NEW.sqlite`"
)


def recover_hint(path: str | Path) -> str:
    """What to do with a damaged database file, with its name filled in.

    Not the sqlite3 shell's ``.recover``: the shell of Debian 12 / Raspberry Pi OS bookworm
    (3.40.1) fails on it; ``yh-edge db recover`` needs only Python (:mod:`edge.kit.sqlite_recover`)."""
    p = Path(path)
    new = p.with_name(p.stem + ".recovered" + p.suffix)
    return (f"stop the service, keep the file, and copy what is readable into a new one: "
            f"`yh-edge db recover {p} {new}`, then move {new.name} in its place")  # fmt: skip
