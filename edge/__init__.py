"""Yellowhammer dialect monitor: the edge (Raspberry Pi) runtime.

Layout (docs/architecture.md): ``contract/`` the wire contract shared with the server,
``core/`` records, ports and the pure pipeline (no I/O), ``adapters/`` audio, models, store,
MQTT and system code, ``app/`` configuration, composition, daemon and command line.

Importing this package has no side effects: the server imports ``edge.contract`` and must not
inherit the recorder's single-threaded BLAS setting (set in :mod:`edge.app.runtime`).
"""

from edge.kit.version import __version__

__all__ = ["__version__"]
