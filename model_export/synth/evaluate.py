"""Realism and separability measurements of the generator (behind ``yh-model synth ...``).

- ``birdnet_check``: BirdNET V2.4 on generated songs at moderate SNR, per dialect
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
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.signal import stft

from .audio_io import AudioLibrary, list_audio_files, load_audio
from .distractors import DISTRACTOR_KINDS, render_distractor
from .scene import band_power, mic_colour, propagate, synthetic_background
from .song import DIALECTS, Bird, make_bird, render_song

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# clips at a given SNR


def clip_at_snr(
    sig: np.ndarray,
    rng: np.random.Generator,
    sr: int,
    snr_db: float,
    length_s: float = 3.0,
    background: AudioLibrary | None = None,
    distance_m: float = 20.0,
) -> tuple[np.ndarray, float]:
    """Place ``sig`` (after propagation) at a random offset in a ``length_s`` clip at ``snr_db``.

    Returns the clip (peak-normalised to 0.5) and the sound's onset in it, s.
    """
    n = int(length_s * sr)
    wet = propagate(sig, sr, distance_m, rng)[:n]
    if background is not None:
        bg, _ = background.excerpt(rng, n)
        bg = bg - bg.mean()
    else:
        bg, _ = synthetic_background(rng, n, sr)
    bg = bg / (np.sqrt(np.mean(bg.astype(np.float64) ** 2)) + 1e-9)
    slack = max(0, n - sig.size)
    i0 = int(rng.integers(0, slack + 1)) if slack else 0
    seg = bg[i0 : i0 + min(sig.size, n)]
    g = np.sqrt(band_power(seg, sr) * 10 ** (snr_db / 10) / max(band_power(wet[: sig.size], sr), 1e-20))
    x = bg.astype(np.float32).copy()
    m = min(wet.size, n - i0)
    x[i0 : i0 + m] += np.float32(g) * wet[:m]
    x = mic_colour(x, sr, rng)
    return (0.5 * x / (np.max(np.abs(x)) + 1e-9)).astype(np.float32), i0 / sr


# --------------------------------------------------------------------------------------------------
# BirdNET


def ablate(bird: Bird, variant: str) -> Bird:
    """A bird with one realism feature removed (for measuring what each feature is worth).

    ``full`` (unchanged), ``no-buzz`` (no rapid FM/AM on syllables or elements),
    ``no-harmonics`` (fundamental only), ``plain`` (neither buzz nor harmonics).
    """
    if variant == "full":
        return bird
    if variant not in ("no-buzz", "no-harmonics", "plain"):
        raise ValueError(f"unknown variant {variant!r}")
    buzz = variant in ("no-buzz", "plain")
    harm = variant in ("no-harmonics", "plain")
    types = []
    for st in bird.song_types:
        syl = st.syllable
        if buzz:
            syl = replace(syl, fm_depth_hz=0.0, am_depth=0.0)
        if harm:
            syl = replace(syl, h2=0.0, h3=0.0)
        term = tuple(
            replace(
                e,
                fm_depth_hz=0.0 if buzz else e.fm_depth_hz,
                am_depth=0.0 if buzz else e.am_depth,
                pulse_hz=0.0 if buzz else e.pulse_hz,
                h2=0.0 if harm else e.h2,
                h3=0.0 if harm else e.h3,
            )
            for e in st.terminal
        )
        types.append(replace(st, syllable=syl, terminal=term))
    return replace(bird, song_types=tuple(types))


def birdnet_check(
    n_birds: int = 8,
    songs_per_bird: int = 4,
    snr_db: tuple[float, float] = (10.0, 20.0),
    seed: int = 0,
    background_dir: str | None = None,
    distractors_per_kind: int = 20,
    real_dir: str | None = None,
    sample_rate: int = 48000,
    variant: str = "full",
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Run BirdNET on generated songs, incomplete songs and distractors; return rates per group.

    Songs are rendered at ``sample_rate`` (48 kHz by default, BirdNET's rate; use 24000
    to see what the models' rate keeps), placed in 3 s clips at an SNR drawn from
    ``snr_db`` at 10-40 m, and scored as one BirdNET window each. ``variant`` removes a
    realism feature from every bird (see ``ablate``).
    """
    from ..birdnet import PINE_BUNTING, YELLOWHAMMER_INDEX, BirdNET

    bn = BirdNET(num_threads=2)
    pine = bn.labels.index(PINE_BUNTING)
    rng = np.random.default_rng(seed)
    bg = AudioLibrary(background_dir, sample_rate) if background_dir else None
    groups: dict[str, list[np.ndarray]] = {}

    def score(name: str, sig: np.ndarray) -> None:
        clip, _ = clip_at_snr(
            sig, rng, sample_rate, rng.uniform(*snr_db), background=bg, distance_m=rng.uniform(10, 40)
        )
        groups.setdefault(name, []).append(bn.scores(clip, sample_rate)[0])
        if progress is not None:
            progress(1)

    for d in DIALECTS:
        for b in range(n_birds):
            bird = ablate(make_bird(d, rng, bird_id=b), variant)
            for _ in range(songs_per_bird):
                audio, _ev = render_song(bird, rng, sample_rate, complete=True)
                score(d, audio)
            audio, _ev = render_song(bird, rng, sample_rate, complete=False)
            score("incomplete", audio)
    for kind in DISTRACTOR_KINDS:
        for _ in range(distractors_per_kind):
            audio, _ev = render_distractor(kind, rng, sample_rate)
            score("distractor:" + kind, audio)
    if real_dir:
        for path in list_audio_files(real_dir, exclude_labels=(), include_labels=("yellowhammer",)):
            x = load_audio(path, 48000)
            s = bn.scores(x, 48000)
            # reference: the windows in which BirdNET finds any yellowhammer at all
            s = s[s[:, YELLOWHAMMER_INDEX] >= 0.1]
            if len(s):
                groups.setdefault("real yellowhammer (windows with score>=0.1)", []).extend(list(s))
    out = {}
    for name, rows in groups.items():
        s = np.stack(rows)
        rank = bn.rank_of(s)
        top = np.argmax(s, axis=1)
        out[name] = {
            "n": len(s),
            "top1": float(np.mean(rank == 1)),
            "top2": float(np.mean(rank <= 2)),
            "top5": float(np.mean(rank <= 5)),
            "pine_top1": float(np.mean(top == pine)),
            "yh_or_pine_top1": float(np.mean((top == pine) | (top == YELLOWHAMMER_INDEX))),
            "yh_score_ge_0.5": float(np.mean(s[:, YELLOWHAMMER_INDEX] >= 0.5)),
            "yh_score_median": float(np.median(s[:, YELLOWHAMMER_INDEX])),
            "top_species": _most_common([bn.labels[i] for i in top]),
        }
    return out


def _most_common(items: Sequence[str], k: int = 3) -> list[tuple[str, int]]:
    vals, counts = np.unique(np.asarray(items), return_counts=True)
    order = np.argsort(-counts)[:k]
    return [(str(vals[i]).split("_")[-1], int(counts[i])) for i in order]


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
