"""Syllable shapes measured from songs: the ``library`` family of the wide variety and the
syllable distribution check (``yh-model synth syllable-check``).

:func:`measure_syllables` finds the syllables of an initial phrase by their energy in
2.5-9 kHz (1-ms frames, hysteresis between a high and a low threshold over the noise floor) and
measures each: duration, period (onset to the next onset), the peak-frequency contour and the
amplitude envelope at 8 points, the peak frequency of its spectrum, the 5-95 % bandwidth
(noise spectrum subtracted), the slope of the contour and the 2nd-harmonic ratio ``h2``.

:func:`load_library` measures the hand-marked songs (``model_export/labels/real_songs.csv``) of the
**train-split** files only (``real_files.csv``; a test file is never read) and keeps the numbers in a
JSON cache (never in the repository: the recordings' licences forbid redistributing cut-outs).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
SR = 24000
BAND = (2500.0, 9000.0)
N_POINTS = 8
_VERSION = 1
FEATURES = ("duration_s", "period_s", "f_start_hz", "f_peak_hz", "f_end_hz", "bandwidth_hz", "slope_khz_s")


def _spectrogram(x: np.ndarray, sr: int, n_fft: int = 256, hop: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Power spectrogram (frames, bins) and the bin frequencies."""
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    fr = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), n_fft)[::hop]
    p = np.abs(np.fft.rfft(fr * np.hanning(n_fft), axis=1)) ** 2
    return p, np.fft.rfftfreq(n_fft, 1.0 / sr)


def _segments(e_db: np.ndarray, hi: float, lo: float, min_frames: int) -> list[tuple[int, int]]:
    """Runs above ``hi``, extended while above ``lo`` (not into a neighbour), at least
    ``min_frames`` long; gaps under 6 frames are merged."""
    above = e_db > hi
    runs, i, n = [], 0, len(e_db)
    while i < n:
        if above[i]:
            j = i
            while j < n and above[j]:
                j += 1
            runs.append([i, j])
            i = j
        else:
            i += 1
    merged: list[list[int]] = []
    for r in runs:
        if merged and r[0] - merged[-1][1] < 6:
            merged[-1][1] = r[1]
        else:
            merged.append(r)
    out = []
    for k, (a, b) in enumerate(merged):
        left = merged[k - 1][1] if k else 0
        right = merged[k + 1][0] if k + 1 < len(merged) else n
        while a > left and e_db[a - 1] > lo:
            a -= 1
        while b < right and e_db[b] > lo:
            b += 1
        if b - a >= min_frames:
            out.append((a, b))
    return out


def _points(v: np.ndarray, n: int = N_POINTS) -> np.ndarray:
    """``n`` medians of ``v`` over equal parts."""
    return np.array([np.median(c) for c in np.array_split(v, n) if len(c)] or [np.nan])


def _one(p: np.ndarray, freqs: np.ndarray, noise: np.ndarray, band: np.ndarray, dt: float) -> dict:
    """Features of one syllable from its spectrogram frames ``p``."""
    pb = np.clip(p[:, band] - noise[band], 0.0, None)
    fb = freqs[band]
    peak_f = fb[np.argmax(pb, axis=1)]
    if len(peak_f) >= 5:
        from scipy.signal import medfilt

        peak_f = medfilt(peak_f, 5)
    contour = _points(peak_f)
    amp = np.sqrt(pb.sum(axis=1))
    env = _points(amp)
    env = env / (env.max() + 1e-12)
    spec = pb.sum(axis=0)
    c = np.cumsum(spec) / (spec.sum() + 1e-12)
    bw = float(fb[np.searchsorted(c, 0.95)] - fb[np.searchsorted(c, 0.05)])
    dur = len(p) * dt
    tt = np.linspace(0.0, dur, len(contour))
    slope = float(np.polyfit(tt, contour / 1000.0, 1)[0]) if len(contour) > 1 else 0.0
    h1 = h2 = 0.0
    for row, f in zip(p, peak_f):
        k1 = np.abs(freqs - f) <= 300.0
        k2 = np.abs(freqs - 2 * f) <= 300.0
        if 2 * f < freqs[-1] - 300.0:
            h1, h2 = h1 + row[k1].sum(), h2 + row[k2].sum()
    return {"duration_s": dur, "f_start_hz": float(contour[0]), "f_end_hz": float(contour[-1]),
            "f_peak_hz": float(fb[np.argmax(spec)]), "bandwidth_hz": bw, "slope_khz_s": slope,
            "h2": float(np.sqrt(h2 / h1)) if h1 > 0 else float("nan"),
            "contour_hz": [float(f) for f in contour], "envelope": [float(a) for a in env]}  # fmt: skip


def measure_syllables(audio: np.ndarray, sr: int, t0: float, t1: float) -> list[dict]:
    """Syllables of the initial phrase between ``t0`` and ``t1`` s of ``audio`` (any rate >= 16
    kHz, resampled to 24 kHz); each a dict of :data:`FEATURES`, ``h2``, ``contour_hz`` and
    ``envelope`` (8 points each). Periods > 0.25 s (a missed syllable) are NaN, as is the last."""
    from .audio_io import resample

    x = resample(np.asarray(audio, np.float32), sr, SR) if sr != SR else np.asarray(audio, np.float32)
    x = x[max(0, int(t0 * SR)) : int(t1 * SR)]
    p, freqs = _spectrogram(x, SR)
    dt = 24 / SR
    band = (freqs >= BAND[0]) & (freqs <= BAND[1])
    e = p[:, band].sum(axis=1)
    e_db = 10 * np.log10(np.convolve(e, np.ones(5) / 5, mode="same") + 1e-20)
    floor, top = np.percentile(e_db, 15), np.percentile(e_db, 99)
    if top - floor < 8.0:
        return []
    hi, lo = max(floor + 6.0, top - 18.0), max(floor + 3.0, top - 30.0)
    quiet = e_db < floor + 3.0
    noise = np.median(p[quiet], axis=0) if quiet.sum() > 10 else np.zeros(p.shape[1])
    segs = [s for s in _segments(e_db, hi, lo, 15) if (s[1] - s[0]) * dt <= 0.2]
    out = []
    for k, (a, b) in enumerate(segs):
        d = _one(p[a:b], freqs, noise, band, dt)
        per = (segs[k + 1][0] - a) * dt if k + 1 < len(segs) else float("nan")
        d["period_s"] = per if per <= 0.25 else float("nan")
        out.append(d)
    return out


def _phrase_end(s) -> float:
    """End of a marked song's initial phrase: its first terminal element's start, else its end."""
    starts = [v for v in (s.x_start_s, s.b_start_s) if v is not None]
    return min(starts) - 0.01 if starts else s.offset_s


def train_songs(root=None) -> list:
    """Hand-marked songs of train-split files only (test files are not even listed)."""
    from model_export.labels import real_files, real_songs

    train = {f.file for f in real_files(root) if f.split == "train"}
    return [s for s in real_songs(root) if s.file in train]


def measure_library(root=None) -> list[dict]:
    """Every syllable of every train-split song's initial phrase (with its song's file name)."""
    from .audio_io import load_audio

    out, cache = [], {}
    for s in train_songs(root):
        if _phrase_end(s) - s.onset_s < 0.25:
            continue
        if s.file not in cache:
            cache.clear()
            cache[s.file] = load_audio(s.path, SR)
        for d in measure_syllables(cache[s.file], SR, s.onset_s - 0.03, _phrase_end(s)):
            if 0.02 <= d["duration_s"] <= 0.16 and min(d["contour_hz"]) >= 2000.0:
                out.append({**d, "file": s.file})
    return out


def load_library(cache_dir, root=None) -> list[dict]:
    """The measured train-split library, from ``cache_dir`` when measured before."""
    songs = train_songs(root)
    key = repr((_VERSION, [(s.file, s.onset_s, s.offset_s) for s in songs]))
    path = Path(cache_dir) / f"syllable_library-{hashlib.sha1(key.encode()).hexdigest()[:10]}.json"
    if path.exists():
        return json.loads(path.read_text())
    lib = measure_library(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(lib))
    tmp.replace(path)
    log.warning("syllable library: %d syllables from %d train songs -> %s", len(lib), len(songs), path)
    return lib


def use_variety(variety: str, cache_dir, root=None) -> None:
    """Make ``variety`` the default of every ``make_bird`` call of this process and of the processes
    forked from it (:func:`model_export.synth.variety.set_variety`); ``wide`` draws its ``library``
    syllables from the train-split library of :func:`load_library` (cached in ``cache_dir``)."""
    from .variety import set_variety

    set_variety(variety, load_library(cache_dir, root) if variety != "base" else None)


def synth_cache(cache, variety: str = "base", root=None) -> Path:
    """The cache of the synthetic sets of ``variety`` (created): ``cache`` itself for ``base`` (the
    sets of before), ``cache/variety-<variety>`` otherwise, after :func:`use_variety` made it the
    process's variety (inherited by the forked set builders; the syllable library is measured from
    the train split of ``root`` and cached in ``cache``). Call it before any set is built."""
    cache = Path(cache)
    if variety != "base":
        use_variety(variety, cache, root)
    vcache = cache / f"variety-{variety}" if variety != "base" else cache
    vcache.mkdir(parents=True, exist_ok=True)
    return vcache
