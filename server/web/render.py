"""PNG pictures of songs: spectrogram thumbnails rendered on demand (Pillow, no display)."""

from __future__ import annotations

import io
import json
from functools import lru_cache

import numpy as np

from edge.contract import ContractError, Spectrogram

#: the levels shown: this many dB below the loudest cell of the song (quieter is black)
DISPLAY_RANGE_DB = 60.0
MAX_SIDE = 2000


@lru_cache(maxsize=1)
def _lut() -> np.ndarray:
    """256 RGB colours of matplotlib's ``magma`` (perceptually uniform, dark = quiet)."""
    from matplotlib import colormaps

    return (colormaps["magma"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)


def read_spectrogram(wire: str | bytes | dict) -> Spectrogram:
    """A stored spectrogram (its wire JSON, or the object), checked as the ingest checks it;
    ``ValueError("stored spectrogram unreadable: <reason>")`` for anything it cannot read (text
    that is not JSON or not UTF-8, nesting beyond the recursion limit, missing or wrong fields,
    cells that do not inflate)."""
    try:
        return Spectrogram.from_wire(json.loads(wire) if isinstance(wire, (str, bytes)) else wire)
    except (ContractError, ValueError, TypeError, RecursionError) as exc:
        reason = str(exc)[:200] if not isinstance(exc, RecursionError) else "nested too deeply"
        raise ValueError(f"stored spectrogram unreadable: {reason}") from None


def read_stored_json(value, what: str, obj: bool = False) -> tuple[object, str | None]:
    """A stored JSON text (``extra``, ``stats``) read: ``(value, None)``, or ``(None, "stored
    <what> unreadable: <reason>")`` when it is damaged (not UTF-8, not JSON, nested too deeply,
    or, with ``obj``, not a JSON object); None or empty stays None."""
    if not value:
        return None, None
    try:
        out = json.loads(value)
    except (ValueError, TypeError, RecursionError) as exc:
        reason = str(exc)[:200] if not isinstance(exc, RecursionError) else "nested too deeply"
        return None, f"stored {what} unreadable: {reason}"
    if obj and not isinstance(out, dict):
        return None, f"stored {what} unreadable: a JSON {type(out).__name__}, not an object"
    return out, None


def spectrogram_png(wire: str | bytes | dict, width: int | None = None, height: int | None = None,
                    range_db: float = DISPLAY_RANGE_DB) -> bytes:  # fmt: skip
    """A PNG of a stored spectrogram (its wire JSON): time left to right, frequency bottom to top.

    Default size: 3 pixels per frame, 2 per mel band; ``width``/``height`` resize (bounded)."""
    from PIL import Image

    spec = read_spectrogram(wire)
    db = spec.db()
    lo = spec.db_max - range_db
    level = np.clip((db - lo) / range_db, 0.0, 1.0)
    idx = (level * 255).round().astype(np.uint8).T[::-1]  # (mels, frames), high bands on top
    img = Image.fromarray(_lut()[idx], "RGB")
    w = int(width or spec.frames * 3)
    h = int(height or spec.mels * 2)
    w, h = max(8, min(w, MAX_SIDE)), max(8, min(h, MAX_SIDE))
    img = img.resize((w, h), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=False)
    return buf.getvalue()
