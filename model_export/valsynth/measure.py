"""Measurements on a rendered song's spectrogram (never on the generator's parameters).

:func:`measure_song` finds the sound in 2-10 kHz (frames within 30 dB of the loudest and 10 dB
over the noise floor; gaps under 10 ms bridged), cuts it into elements at silences and at jumps
of the dominant frequency (> 1.1 kHz between neighbouring 10-ms medians, e.g. where an X runs
straight into its B), and reports:

- the song's extent and length;
- the last ``n_terminal`` elements (the terminal phrase): duration, start/end/median pitch
  (medians of the dominant frequency over the first and last fifths);
- the syllable period of the initial phrase (autocorrelation of the band envelope before the
  terminal phrase, 0.06-0.22 s).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter
from scipy.signal import stft

BAND_HZ = (2000.0, 10000.0)
HOP_S = 0.002


def spectrogram(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frequencies (Hz), frame times (s, centres) and power (freq x time) with 8-ms windows."""
    nper = int(round(0.008 * sample_rate))
    hop = int(round(HOP_S * sample_rate))
    f, t, Z = stft(
        np.asarray(x, float), sample_rate, nperseg=nper, noverlap=nper - hop, boundary=None, padded=False
    )
    return f, t, np.abs(Z) ** 2


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def active_frames(f, P, top_db: float = 30.0, floor_db: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Frames with sound in the band, and the band level (dB) per frame."""
    band = (f >= BAND_HZ[0]) & (f <= min(BAND_HZ[1], f[-1] * 0.95))
    e = 10 * np.log10(P[band].sum(axis=0) + 1e-20)
    floor = np.percentile(e, 10)
    thr = max(e.max() - top_db, floor + floor_db)
    return e > thr, e


def segments(f, t, P, bridge_s: float = 0.010, min_s: float = 0.006, jump_hz: float = 1100.0) -> list[dict]:
    """Elements: runs of active frames split at dominant-frequency jumps."""
    act, e = active_frames(f, P)
    band = (f >= BAND_HZ[0]) & (f <= min(BAND_HZ[1], f[-1] * 0.95))
    fb = f[band]
    pf = fb[np.argmax(P[band], axis=0)]
    pf = median_filter(pf, size=3, mode="nearest")
    gap = int(round(bridge_s / HOP_S))
    # bridge short gaps
    runs = _runs(act)
    merged: list[list[int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] <= gap:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    out = []
    w = max(2, int(round(0.010 / HOP_S)))
    for a, b in merged:
        cuts = [a]
        i = a + w
        while i < b - w:
            d = abs(np.median(pf[i : i + w]) - np.median(pf[i - w : i]))
            if d > jump_hz:
                # the sharpest point nearby
                j = i + int(
                    np.argmax(
                        [
                            abs(np.median(pf[k : k + w]) - np.median(pf[k - w : k]))
                            for k in range(i, min(b - w, i + w))
                        ]
                    )
                )
                cuts.append(j)
                i = j + w
            else:
                i += 1
        cuts.append(b)
        for s, z in zip(cuts[:-1], cuts[1:]):
            if (z - s) * HOP_S < min_s:
                continue
            seg_f = pf[s:z]
            fifth = max(1, (z - s) // 5)
            out.append(
                {
                    "onset_s": float(t[s] - HOP_S / 2),
                    "offset_s": float(t[z - 1] + HOP_S / 2),
                    "dur_s": float((z - s) * HOP_S),
                    "f_start_hz": float(np.median(seg_f[:fifth])),
                    "f_end_hz": float(np.median(seg_f[-fifth:])),
                    "f_median_hz": float(np.median(seg_f)),
                    "level_db": float(np.max(e[s:z])),
                }
            )
    return out


def syllable_period(t, P, f, t0: float, t1: float) -> float:
    """Dominant repetition period (s) of the band envelope between ``t0`` and ``t1`` (nan if none)."""
    band = (f >= BAND_HZ[0]) & (f <= min(BAND_HZ[1], f[-1] * 0.95))
    m = (t >= t0) & (t <= t1)
    env = P[band][:, m].sum(axis=0)
    if env.size < int(0.5 / HOP_S):
        return float("nan")
    env = np.sqrt(env)
    env = env - env.mean()
    ac = np.correlate(env, env, "full")[env.size - 1 :]
    lo, hi = int(0.06 / HOP_S), min(int(0.22 / HOP_S), env.size - 1)
    if hi <= lo:
        return float("nan")
    k = lo + int(np.argmax(ac[lo:hi]))
    return k * HOP_S


def measure_song(audio: np.ndarray, sample_rate: int, n_terminal: int | None = None) -> dict | None:
    """Measurements of one song (see the module docstring); None when nothing is found."""
    f, t, P = spectrogram(audio, sample_rate)
    segs = segments(f, t, P)
    if not segs:
        return None
    onset, offset = segs[0]["onset_s"], segs[-1]["offset_s"]
    term = segs[-n_terminal:] if n_terminal else []
    t_end = term[0]["onset_s"] - 0.01 if term else offset
    period = syllable_period(t, P, f, onset, t_end)
    return {
        "onset_s": onset,
        "offset_s": offset,
        "song_length_s": offset - onset,
        "terminal": term,
        "terminal_onset_s": term[0]["onset_s"] if term else None,
        "syllable_period_s": period,
        "syllable_rate_hz": 1.0 / period if period == period and period > 0 else float("nan"),
        "segments": segs,
    }
