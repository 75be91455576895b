"""Realism and separability measurements of the generator (behind ``yh-model synth ...``).

- ``birdnet_check`` (:mod:`.birdnet_eval`, re-exported with ``ablate`` and ``clip_at_snr``):
  BirdNET V2.4 on generated songs at moderate SNR, per dialect
  (top-1/2/5 rates, pine-bunting rate), and on distractors (yellowhammer top-1 and
  score >= 0.5 rates); optionally on real yellowhammer recordings as a reference.
- ``song_statistics`` / ``compare_real``: syllable rate, song duration, peak
  frequency of initial syllables and of the terminal element, bandwidth, measured
  with one simple energy-based segmenter on generated and real audio alike.
- ``spectrogram_pngs``: one generated song per dialect next to a real song.
- ``baseline``: hand-made terminal-phrase features + logistic regression, trained
  on some birds and tested on others.

Heavy or optional packages (BirdNET's interpreter, scikit-learn, matplotlib,
soundfile) are imported inside the functions that need them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy.signal import stft

from .audio_io import AudioLibrary, list_audio_files, load_audio
from .birdnet_eval import ablate, birdnet_check, clip_at_snr  # noqa: F401 - re-exported
from .song import DIALECTS, make_bird, render_song

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# song statistics with one simple segmenter


_HOP = 0.005


def _spectrogram(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nper = int(0.0107 * sr)
    hop = int(_HOP * sr)
    f, t, z = stft(x, sr, nperseg=nper, noverlap=nper - hop, nfft=2 * nper, boundary=None, padded=False)
    return f, t, (np.abs(z) ** 2).astype(np.float64)


def _segments(mask: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=False))


def find_songs(x: np.ndarray, sr: int, min_syllables: int = 4) -> list[dict]:
    """Segment yellowhammer-like songs: runs of 3-7 kHz elements separated by < 0.3 s.

    Returns per song: onset/offset (s), syllable onsets, terminal segment (or None),
    and spectrogram slices for the statistics. A crude segmenter: good on clean
    close recordings, confused by overlapping birds.
    """
    f, t, p = _spectrogram(x, sr)
    band = (f >= 3000) & (f <= 7500)
    e = 10 * np.log10(p[band].sum(axis=0) + 1e-20)
    floor = np.percentile(e, 20)
    peak = np.percentile(e, 99.5)
    thr = max(floor + 10.0, peak - 30.0)
    on = e > thr
    segs = [(a, b) for a, b in _segments(on) if (b - a) * _HOP >= 0.02]
    songs: list[list[tuple[int, int]]] = []
    for s in segs:
        if songs and (s[0] - songs[-1][-1][1]) * _HOP < 0.3:
            songs[-1].append(s)
        else:
            songs.append([s])
    out = []
    for group in songs:
        durs = np.array([(b - a) * _HOP for a, b in group])
        syl = [g for g, d in zip(group, durs, strict=False) if d < 0.12]
        if len(syl) < min_syllables:
            continue
        last = group[-1]
        terminal = last if (last[1] - last[0]) * _HOP >= 0.2 else None
        out.append(
            {
                "onset_s": float(t[group[0][0]]),
                "offset_s": float(t[group[-1][1] - 1]),
                "syllables": syl,
                "terminal": terminal,
                "f": f,
                "t": t,
                "p": p,
            }
        )
    return out


def _peak_and_bandwidth(spec: np.ndarray, f: np.ndarray) -> tuple[float, float]:
    sel = (f >= 1500) & (f <= 11000)
    s, ff = spec[sel], f[sel]
    pk = float(ff[np.argmax(s)])
    c = np.cumsum(s) / s.sum()
    bw = float(ff[np.searchsorted(c, 0.95)] - ff[np.searchsorted(c, 0.05)])
    return pk, bw


def song_statistics(songs: list[dict]) -> dict[str, list[float]]:
    """Per-song statistics from ``find_songs`` output."""
    st: dict[str, list[float]] = {
        k: []
        for k in (
            "syllable_rate_hz",
            "song_duration_s",
            "initial_peak_khz",
            "initial_bw_khz",
            "terminal_peak_khz",
            "terminal_dur_s",
            "n_syllables",
        )
    }
    for s in songs:
        f, p, syl = s["f"], s["p"], s["syllables"]
        onsets = np.array([a for a, _ in syl]) * _HOP
        st["n_syllables"].append(len(syl))
        st["syllable_rate_hz"].append((len(syl) - 1) / (onsets[-1] - onsets[0]))
        st["song_duration_s"].append(s["offset_s"] - s["onset_s"])
        spec = sum(p[:, a:b].sum(axis=1) for a, b in syl)
        pk, bw = _peak_and_bandwidth(spec, f)
        st["initial_peak_khz"].append(pk / 1000)
        st["initial_bw_khz"].append(bw / 1000)
        if s["terminal"] is not None:
            a, b = s["terminal"]
            pk, _ = _peak_and_bandwidth(p[:, a:b].sum(axis=1), f)
            st["terminal_peak_khz"].append(pk / 1000)
            st["terminal_dur_s"].append((b - a) * _HOP)
    return st


def compare_real(
    real_dir: str,
    n_birds: int = 6,
    songs_per_bird: int = 5,
    dialects: Sequence[str] = ("XlB", "XsB"),
    snr_db: tuple[float, float] = (15.0, 30.0),
    seed: int = 0,
    sample_rate: int = 24000,
) -> dict:
    """Statistics of generated songs vs the real yellowhammer files (``manifest.csv`` label).

    Generated songs default to the UK dialects (XlB/XsB), like the real recordings.
    Returns ``{"real": stats, "generated": stats, "n_real_files": int}``.
    """
    files = list_audio_files(real_dir, exclude_labels=(), include_labels=("yellowhammer",))
    real: list[dict] = []
    for path in files:
        try:
            x = load_audio(path, sample_rate)
        except RuntimeError as exc:
            logger.warning("skipping %s: %s", path, exc)
            continue
        real += find_songs(x, sample_rate)
    rng = np.random.default_rng(seed)
    gen: list[dict] = []
    for d in dialects:
        for b in range(n_birds):
            bird = make_bird(d, rng, bird_id=b)
            for _ in range(songs_per_bird):
                audio, _ev = render_song(bird, rng, sample_rate)
                clip, _ = clip_at_snr(
                    audio, rng, sample_rate, rng.uniform(*snr_db), length_s=4.0, distance_m=15.0
                )
                gen += find_songs(clip, sample_rate)
    return {"real": song_statistics(real), "generated": song_statistics(gen), "n_real_files": len(files)}


# --------------------------------------------------------------------------------------------------
# spectrograms


def spectrogram_pngs(
    out_dir: str, real_dir: str | None = None, seed: int = 0, sample_rate: int = 48000
) -> list[Path]:
    """Write ``song_<dialect>.png``: a generated song (left) next to a real song (right) if ``real_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    real_songs: list[tuple[np.ndarray, str]] = []
    if real_dir:
        for path in list_audio_files(real_dir, exclude_labels=(), include_labels=("yellowhammer",)):
            try:
                x = load_audio(path, sample_rate)
            except RuntimeError:
                continue
            # the clearest complete song of the file: most syllables among those with a terminal
            cands = [s for s in find_songs(x, sample_rate) if s["terminal"] is not None]
            if cands:
                s = max(cands, key=lambda c: len(c["syllables"]))
                a = max(0, int((s["onset_s"] - 0.2) * sample_rate))
                b = int((s["offset_s"] + 0.3) * sample_rate)
                real_songs.append((x[a:b], f"{path.name} @ {s['onset_s']:.1f} s"))
    written = []
    for i, d in enumerate(DIALECTS):
        bird = make_bird(d, rng, bird_id=i)
        audio, _ev = render_song(bird, rng, sample_rate, complete=True)
        clip, _ = clip_at_snr(
            audio, rng, sample_rate, 30.0, length_s=audio.size / sample_rate + 0.5, distance_m=10.0
        )
        panels = [(clip, f"generated {d} (bird {i})")]
        if real_songs:
            panels.append(real_songs[i % len(real_songs)])
        fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4), squeeze=False)
        for ax, (x, title) in zip(axes[0], panels, strict=False):
            f, t, p = _spectrogram(x, sample_rate)
            db = 10 * np.log10(p + 1e-20)
            ax.pcolormesh(t, f / 1000, db, vmin=db.max() - 70, vmax=db.max(), shading="auto", cmap="magma")
            ax.set_ylim(0, 12)
            ax.set_xlabel("s")
            ax.set_ylabel("kHz")
            ax.set_title(title)
        fig.tight_layout()
        path = out / f"song_{d}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    return written


# --------------------------------------------------------------------------------------------------
# separability baseline


def terminal_features(x: np.ndarray, sr: int, offset_s: float, window_s: float = 1.2) -> np.ndarray:
    """Hand-made features of the window ending at the song's offset.

    Coarse log-energy grid (12 time bins x 12 bands of 0.5 kHz over 3-9 kHz,
    normalised to its maximum) plus, for the last two elements longer than 15 ms
    found by an energy threshold: duration, median/start/end peak frequency, and
    the gap between them.
    """
    a = max(0, int((offset_s - window_s) * sr))
    b = int((offset_s + 0.05) * sr)
    seg = x[a:b]
    seg = (
        np.pad(seg, (int((window_s + 0.05) * sr) - seg.size, 0))
        if seg.size < int((window_s + 0.05) * sr)
        else seg
    )
    f, t, p = _spectrogram(seg, sr)
    band = (f >= 3000) & (f < 9000)
    pb, fb = p[band], f[band]
    db = 10 * np.log10(pb + 1e-20)
    grid = np.stack([db[(fb >= 3000 + 500 * k) & (fb < 3500 + 500 * k)].mean(axis=0) for k in range(12)])
    tb = np.array_split(np.arange(grid.shape[1]), 12)
    grid = np.stack([grid[:, ix].mean(axis=1) for ix in tb], axis=1)
    grid = (grid - grid.max()) / 30.0
    e = 10 * np.log10(pb.sum(axis=0) + 1e-20)
    on = e > e.max() - 15.0
    segs = [(s0, s1) for s0, s1 in _segments(on) if (s1 - s0) * _HOP >= 0.015][-2:]
    el = []
    for s0, s1 in segs:
        pk = fb[np.argmax(pb[:, s0:s1], axis=0)] / 1000
        q = max(1, (s1 - s0) // 5)
        el += [(s1 - s0) * _HOP, float(np.median(pk)), float(np.median(pk[:q])), float(np.median(pk[-q:]))]
    while len(el) < 8:
        el = [0.0] * 4 + el
    gap = (segs[-1][0] - segs[-2][1]) * _HOP if len(segs) == 2 else 0.0
    return np.concatenate([grid.ravel(), el, [gap]]).astype(np.float32)


def baseline(
    n_birds: int = 16,
    songs_per_bird: int = 8,
    snr_db: tuple[float, float] = (5.0, 25.0),
    seed: int = 0,
    sample_rate: int = 24000,
    background_dir: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Per-dialect accuracy of logistic regression on ``terminal_features``, split by bird.

    Classes are the 8 dialects plus ``incomplete``; half of each dialect's birds train,
    the other half test. The window is aligned to the labelled song offset, as the
    encoder will be.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    bg = AudioLibrary(background_dir, sample_rate) if background_dir else None
    X, y, is_train = [], [], []
    classes = list(DIALECTS) + ["incomplete"]
    for d in DIALECTS:
        for b in range(n_birds):
            bird = make_bird(d, rng, bird_id=b)
            train = b < n_birds // 2
            for _ in range(songs_per_bird):
                audio, ev = render_song(bird, rng, sample_rate)
                clip, t0 = clip_at_snr(
                    audio,
                    rng,
                    sample_rate,
                    rng.uniform(*snr_db),
                    length_s=audio.size / sample_rate + 0.4,
                    background=bg,
                    distance_m=rng.uniform(5, 60),
                )
                X.append(terminal_features(clip, sample_rate, t0 + ev.offset_s))
                y.append(d if ev.complete else "incomplete")
                is_train.append(train)
                if progress is not None:
                    progress(1)
    X, y, is_train = np.stack(X), np.array(y), np.array(is_train)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.5))
    clf.fit(X[is_train], y[is_train])
    pred = clf.predict(X[~is_train])
    yt = y[~is_train]
    per = {c: float(np.mean(pred[yt == c] == c)) if np.any(yt == c) else float("nan") for c in classes}
    return {
        "per_class_accuracy": per,
        "overall_accuracy": float(np.mean(pred == yt)),
        "n_train": int(is_train.sum()),
        "n_test": int((~is_train).sum()),
        "classes": classes,
        "confusion": confusion_matrix(yt, pred, labels=classes).tolist(),
    }
