"""The song band of the log-mel frames: which mel bands it spans (:data:`SONG_BAND_HZ`,
:func:`band_mask`) and the per-frame level of their mean power (:func:`band_envelope`), which
the segmenter and the energy gate run on every frame. Re-exported by :mod:`edge.core.segmenter`.
"""

from __future__ import annotations

import math

import numpy as np

from edge.core.frontend import FrontendConfig, mel_frequencies

SONG_BAND_HZ = (2800.0, 9500.0)
"""Band of the energy envelope: the song's initial syllables and terminal whistles (3-7.5 kHz)
with the brief excursions and the X note, which real birds often sing near 8 kHz and up to about
9 kHz (issue 14: an 8.5-kHz edge cut high X notes off the song's end), but not the wind below."""


def band_mask(cfg: FrontendConfig, band_hz: tuple[float, float] = SONG_BAND_HZ) -> np.ndarray:
    """Boolean ``(n_mels,)``: the mel bands whose centre lies in ``band_hz``."""
    f = mel_frequencies(cfg)
    mask = (f >= band_hz[0]) & (f <= band_hz[1])
    if not mask.any():
        raise ValueError(f"no mel band of this frontend lies in {band_hz} Hz")
    return mask


_NEPER_PER_DB = math.log(10.0) / 10.0


def band_envelope(frames: np.ndarray, mask: np.ndarray | slice) -> np.ndarray:
    """Per-frame level (dB) of the mean power of the masked bands; ``(k, n_mels)`` -> ``(k,)``.

    ``mask``: boolean per band, or the equivalent slice (cheaper). Power is ``exp(dB * ln10/10)``
    in float64: several times cheaper than ``10 ** (dB/10)`` (this runs on every frame, always
    on), and the same float32 envelope (no value differed over an hour of benchmark audio).
    """
    if frames.shape[0] == 0:
        return np.zeros(0, dtype=np.float32)
    x = frames[:, mask].astype(np.float64)
    x *= _NEPER_PER_DB
    np.exp(x, out=x)
    p = np.add.reduce(x, axis=1)  # x.mean(axis=1) without its Python overhead, same values
    p /= x.shape[1]
    np.maximum(p, 1e-30, out=p)
    np.log10(p, out=p)
    p *= 10.0
    return p.astype(np.float32)


def _as_slice(mask: np.ndarray) -> np.ndarray | slice:
    """A contiguous boolean mask as a slice (a view instead of a gather), else the mask."""
    idx = np.flatnonzero(mask)
    if idx.size and idx[-1] - idx[0] + 1 == idx.size:
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return mask


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of every run of True."""
    if mask.size == 0:
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))
