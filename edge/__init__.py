"""Yellowhammer dialect monitor: the edge (Raspberry Pi) runtime.

Layout (docs/architecture.md): ``contract/`` the wire contract shared with the server,
``core/`` records, ports and the pure pipeline (no I/O), ``adapters/`` audio, models, store,
MQTT and system code, ``app/`` configuration, composition, daemon and command line.

Importing this package has no side effects: the server imports ``edge.contract`` and must not
inherit the recorder's single-threaded BLAS setting (set in :mod:`edge.app.runtime`).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("yellowhammer")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
