"""What the training and evaluation commands share: a progress bar on stderr, the real
recordings folder (``--real``), JSON of results with numpy values, and the command line that
reproduces a run (written into each manifest).
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path

import click
import numpy as np

from model_export.labels import default_root

log = logging.getLogger("model_export.train_cli")  # the logger these messages always had


def progress_bar(total: int, desc: str):
    """A tqdm bar on stderr (gone when done)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="it", leave=False, file=sys.stderr, dynamic_ncols=True)


def real_folder(real: str | None) -> Path | None:
    """The folder of real recordings ``--real`` names (``None``: ``$YH_REALAUDIO`` or
    ``../shared/realaudio`` if present; ``"none"``: synthetic only)."""
    if real == "none":
        return None
    p = Path(real) if real else default_root()
    if not (p / "manifest.csv").exists():
        if real:
            raise click.ClickException(f"{p}: no manifest.csv (expected a realaudio-style folder)")
        log.warning("no real recordings at %s: training on synthetic backgrounds only", p)
        return None
    return p


def labels_option(ctx, param, value):
    """Click callback of every ``--labels`` option: the CSV checked before training starts
    (:func:`model_export.labelled.check_labels`), a one-line error otherwise."""
    if value is None:
        return None
    from model_export.labelled import check_labels

    try:
        return check_labels(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def dumps(obj) -> str:
    """JSON with numpy scalars and arrays converted."""

    def conv(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    return json.dumps(obj, indent=2, default=conv)


def reproduce_command() -> str:
    """The ``yh-model`` command line of this run."""
    return "yh-model " + " ".join(shlex.quote(a) for a in sys.argv[1:])
