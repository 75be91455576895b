"""The detection store's errors: what a failed write or open means for the recorder."""

from __future__ import annotations

from edge.core.errors import StoreError
from edge.kit.sqlite import DatabaseCorruptError, DatabaseError, DatabaseFullError, DatabaseReadOnlyError


class StoreFullError(StoreError):
    """A write failed because the file system is full."""


class StoreReadOnlyError(StoreError):
    """A write failed because the database or its directory is read-only."""


class StoreCorruptError(StoreError):
    """The database file is damaged: nothing is written into it until it is recovered."""


def store_error(exc: DatabaseError) -> StoreError:
    """The store error for a database error."""
    if isinstance(exc, DatabaseFullError):
        return StoreFullError(str(exc))
    if isinstance(exc, DatabaseReadOnlyError):
        return StoreReadOnlyError(str(exc))
    if isinstance(exc, DatabaseCorruptError):
        return StoreCorruptError(str(exc))
    return StoreError(str(exc))
