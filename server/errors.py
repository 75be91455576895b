"""The server's exception hierarchy: every expected, user-facing error derives from
:class:`ServerError`, which the CLI turns into a one-line message."""

from __future__ import annotations


class ServerError(Exception):
    """Base class of every expected server error."""


class StorageError(ServerError):
    """The server database cannot be opened, read or written."""


class StorageCorruptError(StorageError):
    """The server database file is damaged: nothing more is written into it (the message says
    how to recover what is readable into a new file)."""


class ServerConfigError(ServerError):
    """The server configuration file or an environment override is malformed."""


class ClusterError(ServerError, ValueError):
    """Clustering cannot run (too few points, unknown encoder version, bad parameters)."""


class LabelError(StorageError):
    """A label file cannot be read or applied."""


class BadRequest(ServerError, ValueError):
    """An HTTP request with unknown or malformed parameters (answered with 400)."""
