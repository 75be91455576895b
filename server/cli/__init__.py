"""``yh-server``: ingest, import, cluster, label, export, report and serve.

The group and its shared options are in :mod:`.app`; the commands, by what they are for, in
:mod:`.data` (ingest, import, status, recover, snapshot), :mod:`.clusters` (cluster, assign,
novelty) and :mod:`.research` (label, export, report, serve). Importing this package registers
them all on :func:`main`; scikit-learn, matplotlib and pyarrow are imported lazily.
"""

from __future__ import annotations

from . import clusters, data, research  # noqa: F401 - registers the commands on main
from .app import main

__all__ = ["main"]
