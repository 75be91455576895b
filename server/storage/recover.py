"""``yh-server recover``: what is readable of a damaged server database, copied into a new file
(the copy itself is :mod:`edge.kit.sqlite_recover`, shared with ``yh-edge db recover``)."""

from __future__ import annotations

from pathlib import Path

from edge.kit.sqlite import DatabaseCorruptError, DatabaseError
from edge.kit.sqlite_recover import recover as _recover
from server.errors import StorageCorruptError, StorageError

HINT = ("stop the ingest, keep the file, and copy what is readable into a new one: "
        "`yh-server recover DAMAGED.sqlite NEW.sqlite`, then use the new file")  # fmt: skip


def recover(damaged: str | Path, out: str | Path) -> dict:
    """See :func:`edge.kit.sqlite_recover.recover`; errors as the server's storage errors."""
    try:
        return _recover(damaged, out)
    except DatabaseCorruptError as exc:
        raise StorageCorruptError(str(exc)) from None
    except DatabaseError as exc:
        raise StorageError(str(exc)) from None
