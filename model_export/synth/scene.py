"""Scenes: bouts of song from several birds, propagation, background, microphone.

Public API
----------
``make_scene(birds, rng, sample_rate=24000, duration_s=60.0, background=None, distractors=None, ...) -> Scene``
    Mix bouts of song from ``birds`` (each at its own distance), distractors and a
    background into one recording; returns audio plus every label.
Building blocks for trainers that assemble their own clips:
``propagate(audio, sample_rate, distance_m, rng)``,
``synthetic_background(rng, n, sample_rate) -> (audio, description)``,
``mic_colour(audio, sample_rate, rng)``, ``band_power(audio, sample_rate)``,
``bout_onsets(rng, duration_s)`` (the signal ones live in :mod:`.acoustics`).

Levels
------
SNR is measured in the 2-9 kHz band (where the song is) as the song's power over
its own duration divided by the background's power over the same samples. Each
bird in a scene gets a distance, drawn log-uniformly; its target SNR falls
linearly with log-distance across ``snr_db_range`` (plus +-3 dB per song), and the
song is scaled to that SNR after propagation. The measured value is stored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from .acoustics import BAND_HZ, band_power, mic_colour, propagate, synthetic_background  # noqa: F401 - re-exported
from .audio_io import AudioLibrary
from .distractors import DISTRACTOR_KINDS, DistractorEvent, render_distractor
from .song import Bird, SongEvent, render_song
from .song_spec import _RECORD

logger = logging.getLogger(__name__)


@dataclass(**_RECORD)
class SceneSong:
    """A song placed in a scene.

    Attributes
    ----------
    event : SongEvent
        Times relative to the start of the scene, s.
    distance_m : float
        Singer's distance from the microphone, m.
    snr_db : float
        Measured SNR in ``BAND_HZ`` against the background, dB.
    """

    event: SongEvent
    distance_m: float
    snr_db: float


@dataclass(**_RECORD)
class SceneDistractor:
    """A distractor placed in a scene (``event`` times relative to the scene start; SNR in dB)."""

    event: DistractorEvent
    distance_m: float
    snr_db: float


@dataclass(**_RECORD)
class Scene:
    """One rendered recording and its labels.

    Attributes
    ----------
    audio : numpy.ndarray
        float32, shape (n,), within [-1, 1].
    sample_rate : int
        Hz.
    songs : tuple of SceneSong
        Sorted by onset.
    distractors : tuple of SceneDistractor
        Sorted by onset.
    background : str
        ``synthetic:<components>`` or ``<relpath>@<start_s>``.
    gain_db : float
        Overall gain applied at the end, dB.
    clipped : bool
        Whether the recording was deliberately driven into clipping.
    birds : tuple of dict
        ``bird_id``, ``dialect``, ``distance_m`` of every bird in the scene.
    """

    audio: np.ndarray = field(repr=False)
    sample_rate: int
    songs: tuple[SceneSong, ...]
    distractors: tuple[SceneDistractor, ...]
    background: str
    gain_db: float
    clipped: bool
    birds: tuple[dict, ...]

    def description(self) -> dict:
        """JSON-serialisable description of the scene (no audio)."""
        return {
            "duration_s": round(self.audio.size / self.sample_rate, 4),
            "sample_rate": self.sample_rate,
            "background": self.background,
            "gain_db": round(self.gain_db, 2),
            "clipped": self.clipped,
            "birds": list(self.birds),
            "songs": [
                {
                    "onset_s": round(s.event.onset_s, 4),
                    "offset_s": round(s.event.offset_s, 4),
                    "terminal_onset_s": None
                    if s.event.terminal_onset_s is None
                    else round(s.event.terminal_onset_s, 4),
                    "bird_id": s.event.bird_id,
                    "dialect": s.event.dialect,
                    "complete": s.event.complete,
                    "song_type": s.event.song_type,
                    "distance_m": round(s.distance_m, 1),
                    "snr_db": round(s.snr_db, 2),
                }
                for s in self.songs
            ],
            "distractors": [
                {
                    "kind": d.event.kind,
                    "onset_s": round(d.event.onset_s, 4),
                    "offset_s": round(d.event.offset_s, 4),
                    "source": d.event.source,
                    "distance_m": round(d.distance_m, 1),
                    "snr_db": round(d.snr_db, 2),
                }
                for d in self.distractors
            ],
        }


# --------------------------------------------------------------------------------------------------
# scenes


def bout_onsets(rng: np.random.Generator, duration_s: float, song_s: float = 2.5) -> list[float]:
    """Song onsets of one bird: bouts of songs every ~6-10 s, separated by pauses.

    A bird is singing at the scene's start with probability 0.7; bouts last
    20-180 s, pauses 10-90 s; songs within a bout come 6-9 per minute.
    """
    onsets = []
    t = 0.0 if rng.random() < 0.7 else rng.uniform(0.0, min(60.0, duration_s))
    t += rng.uniform(0.0, 4.0)
    while t < duration_s - song_s:
        bout_end = t + rng.uniform(20.0, 180.0)
        interval = 60.0 / rng.uniform(6.0, 9.0)
        while t < min(bout_end, duration_s - song_s):
            onsets.append(t)
            t += interval * rng.uniform(0.8, 1.25)
        t = bout_end + rng.uniform(10.0, 90.0)
    return onsets


def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _place(mix: np.ndarray, sig: np.ndarray, i0: int) -> None:
    n = min(sig.size, mix.size - i0)
    if n > 0:
        mix[i0 : i0 + n] += sig[:n]


def _scale_to_snr(
    sig: np.ndarray, dry_len: int, bg: np.ndarray, i0: int, sr: int, snr_db: float
) -> tuple[np.ndarray, float]:
    seg = bg[i0 : i0 + dry_len]
    p_bg = band_power(seg, sr) if seg.size else 0.0
    p_sig = band_power(sig[:dry_len], sr)
    if p_sig <= 0:
        return sig, float("nan")
    p_bg = max(p_bg, 1e-10)
    g = np.sqrt(p_bg * 10.0 ** (snr_db / 10.0) / p_sig)
    return sig * np.float32(g), float(10.0 * np.log10(p_sig * g * g / p_bg))


def make_scene(
    birds: list[Bird] | tuple[Bird, ...],
    rng: np.random.Generator,
    sample_rate: int = 24000,
    duration_s: float = 60.0,
    background: AudioLibrary | None = None,
    distractors: AudioLibrary | None = None,
    distractor_rate_per_min: float = 1.5,
    snr_db_range: tuple[float, float] = (0.0, 30.0),
    distance_range_m: tuple[float, float] = (5.0, 150.0),
    background_dbfs_range: tuple[float, float] = (-50.0, -28.0),
    clip_prob: float = 0.05,
    incomplete_fraction: float | None = None,
    onsets: dict[int, list[float]] | None = None,
    distractor_kinds: tuple[str, ...] = DISTRACTOR_KINDS,
) -> Scene:
    """Render one recording with singing birds, distractors and background.

    Parameters
    ----------
    birds : sequence of Bird
        Birds in the scene (may be empty: a distractor/background-only scene).
    rng : numpy.random.Generator
        Randomness; the scene is a pure function of its state.
    sample_rate : int
        Hz.
    duration_s : float
        Length of the recording, s.
    background : AudioLibrary, optional
        Real background recordings; synthetic noise when None.
    distractors : AudioLibrary, optional
        Real other-species recordings, used for 40 % of the distractors when given.
    distractor_rate_per_min : float
        Mean number of distractors per minute (Poisson).
    snr_db_range : (float, float)
        SNR of the farthest and the nearest bird, dB (band ``BAND_HZ``).
    distance_range_m : (float, float)
        Bird distances are drawn log-uniformly in this range, m.
    background_dbfs_range : (float, float)
        RMS level of the background, dBFS.
    clip_prob : float
        Probability that the recording is driven into clipping.
    incomplete_fraction : float, optional
        Override every bird's probability of an incomplete song.
    onsets : dict, optional
        ``bird_id -> list of onset times (s)``; default from ``bout_onsets``.
    distractor_kinds : tuple of str
        Synthetic kinds to draw from.

    Returns
    -------
    Scene
    """
    # size: its documented parameters; the body is four steps (background, songs, distractors, master)
    sr = int(sample_rate)
    n = int(round(duration_s * sr))
    bg, bg_desc = _background(rng, n, sr, background, background_dbfs_range)
    mix = bg.copy()
    songs, bird_desc = _add_songs(mix, bg, birds, rng, sr, duration_s, distance_range_m, snr_db_range,
                                  incomplete_fraction, onsets)  # fmt: skip
    dis = _add_distractors(mix, bg, rng, sr, duration_s, distractors, distractor_rate_per_min, distractor_kinds,
                           distance_range_m, snr_db_range)  # fmt: skip
    mix, gain, clipped = _master(mix, sr, rng, clip_prob)
    return Scene(
        audio=mix,
        sample_rate=sr,
        songs=tuple(sorted(songs, key=lambda s: s.event.onset_s)),
        distractors=tuple(sorted(dis, key=lambda d: d.event.onset_s)),
        background=bg_desc,
        gain_db=float(20.0 * np.log10(gain)),
        clipped=clipped,
        birds=tuple(bird_desc),
    )


def _background(rng, n: int, sr: int, background: AudioLibrary | None, dbfs_range) -> tuple[np.ndarray, str]:
    """The scene's background at its drawn level: a real excerpt (unit RMS first) or synthetic noise."""
    if background is not None:
        bg, bg_desc = background.excerpt(rng, n)
        bg = bg - np.float32(np.mean(bg))
        bg /= np.float32(np.sqrt(np.mean(bg.astype(np.float64) ** 2)) + 1e-9)
    else:
        bg, bg_desc = synthetic_background(rng, n, sr)
    bg *= np.float32(10.0 ** (rng.uniform(*dbfs_range) / 20.0))
    return bg, bg_desc


def _add_songs(mix, bg, birds, rng, sr: int, duration_s: float, distance_range_m, snr_db_range,
               incomplete_fraction, onsets) -> tuple[list[SceneSong], list[dict]]:  # fmt: skip
    """Mix every bird's bouts into ``mix`` (each bird at its distance, each song at an SNR that
    falls with log-distance); returns the songs and the birds' descriptions."""
    n = int(round(duration_s * sr))
    d_lo, d_hi = distance_range_m
    s_lo, s_hi = snr_db_range
    songs: list[SceneSong] = []
    bird_desc = []
    for bird in birds:
        dist = _loguniform(rng, d_lo, d_hi)
        frac = 0.0 if d_hi <= d_lo else np.log(dist / d_lo) / np.log(d_hi / d_lo)
        base_snr = s_hi - frac * (s_hi - s_lo)
        bird_desc.append({"bird_id": bird.bird_id, "dialect": bird.dialect, "distance_m": round(dist, 1)})
        times = onsets.get(bird.bird_id, []) if onsets is not None else bout_onsets(rng, duration_s)
        song_type = int(rng.integers(len(bird.song_types)))
        for t0 in times:
            if rng.random() < 0.2:  # birds sing a type in runs, then switch
                song_type = int(rng.integers(len(bird.song_types)))
            complete = None if incomplete_fraction is None else bool(rng.random() >= incomplete_fraction)
            audio, ev = render_song(bird, rng, sr, song_type=song_type, complete=complete)
            wet = propagate(audio, sr, dist, rng)
            i0 = int(round(t0 * sr))
            if i0 + audio.size > n:
                continue
            wet, snr = _scale_to_snr(wet, audio.size, bg, i0, sr, base_snr + rng.uniform(-3.0, 3.0))
            _place(mix, wet, i0)
            songs.append(SceneSong(ev.shifted(i0 / sr), dist, snr))
    return songs, bird_desc


def _add_distractors(mix, bg, rng, sr: int, duration_s: float, distractors: AudioLibrary | None, rate_per_min,
                     kinds, distance_range_m, snr_db_range) -> list[SceneDistractor]:  # fmt: skip
    """Mix a Poisson number of distractors (real excerpts 40 % of the time when given) into ``mix``."""
    n = int(round(duration_s * sr))
    d_lo, d_hi = distance_range_m
    s_lo, s_hi = snr_db_range
    dis: list[SceneDistractor] = []
    n_dis = int(rng.poisson(rate_per_min * duration_s / 60.0))
    for _ in range(n_dis):
        if distractors is not None and rng.random() < 0.4:
            clip_n = int(rng.uniform(1.5, 5.0) * sr)
            audio, src = distractors.excerpt(rng, min(clip_n, n))
            fade = min(audio.size // 4, int(0.05 * sr))
            ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
            audio[:fade] *= ramp
            audio[audio.size - fade :] *= ramp[::-1]
            ev = DistractorEvent("real", 0.0, audio.size / sr, 0.0, 0.0, src)
        else:
            kind = kinds[int(rng.integers(len(kinds)))]
            audio, ev = render_distractor(kind, rng, sr)
        dist = _loguniform(rng, d_lo, d_hi)
        wet = propagate(audio, sr, dist, rng)
        if wet.size >= n:
            continue
        i0 = int(rng.integers(0, n - wet.size))
        frac = np.log(dist / d_lo) / np.log(d_hi / d_lo) if d_hi > d_lo else 0.0
        wet, snr = _scale_to_snr(
            wet, audio.size, bg, i0, sr, s_hi - frac * (s_hi - s_lo) + rng.uniform(-3, 3)
        )
        _place(mix, wet, i0)
        shifted = DistractorEvent(
            ev.kind, ev.onset_s + i0 / sr, ev.offset_s + i0 / sr, ev.f_lo_hz, ev.f_hi_hz, ev.source
        )
        dis.append(SceneDistractor(shifted, dist, snr))
    return dis


def _master(mix, sr: int, rng, clip_prob: float) -> tuple[np.ndarray, float, bool]:
    """The microphone's colour and the recording's gain (driven into clipping with ``clip_prob``)."""
    mix = mic_colour(mix, sr, rng)
    peak = float(np.max(np.abs(mix))) + 1e-9
    clipped = bool(rng.random() < clip_prob)
    if clipped:
        target = rng.uniform(1.2, 2.5)
    else:
        target = min(0.95, peak * 10.0 ** (rng.uniform(-6.0, 12.0) / 20.0))
        target = max(target, min(0.95, 0.05))
    gain = target / peak
    mix = np.clip(mix * np.float32(gain), -1.0, 1.0).astype(np.float32)
    return mix, gain, clipped
