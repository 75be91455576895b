"""Rendering one rendition of a bird's song (:func:`render_song`): the rendition's variation
(tempo, pitch, syllable count, element lengths) and phase-continuous synthesis of the whole
song's frequency and harmonic tracks (see :mod:`.song` for the model).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .song_spec import (
    SONG_PEAK,
    Bird,
    ElementEvent,
    ElementSpec,
    SongEvent,
    SongType,
    SyllableSpec,
    _clip_terminal,
    _terminal_length,
)


def _envelope(n: int, sr: int, attack_s: float, release_s: float) -> np.ndarray:
    env = np.ones(n, dtype=np.float64)
    na = min(n // 2, max(1, int(attack_s * sr)))
    nr = min(n - na, max(1, int(release_s * sr)))
    env[:na] = 0.5 - 0.5 * np.cos(np.pi * np.arange(na) / na)
    env[n - nr :] = 0.5 + 0.5 * np.cos(np.pi * np.arange(1, nr + 1) / nr)
    return env


def _fm_wave(t: np.ndarray, rate: float, shape: float, phase0: float) -> np.ndarray:
    """Blend of sine and a band-limited falling sawtooth (3 partials), roughly in [-1, 1].

    A hard sawtooth would put a broadband click at every jump; real syllables show
    streaks that stay within ~2-7 kHz, which three partials reproduce.
    """
    x = 2 * np.pi * (rate * t + phase0)
    sine = np.sin(x)
    saw = (np.sin(x) + np.sin(2 * x) / 2 + np.sin(3 * x) / 3) * (2 / np.pi) * 1.25
    return (1.0 - shape) * sine + shape * saw


class _Tracks:
    """Frequency and harmonic-amplitude tracks of a whole song."""

    def __init__(self, n: int) -> None:
        self.f = np.full(n, 4500.0)
        self.a = np.zeros((3, n))
        self.extra: np.ndarray | None = None  # direct audio (noisy syllable parts); None: unused

    def add_audio(self, i0: int, x: np.ndarray) -> None:
        n = min(len(x), self.f.size - i0)
        if n <= 0:
            return
        if self.extra is None:
            self.extra = np.zeros(self.f.size)
        self.extra[i0 : i0 + n] += x[:n]

    def put(self, i0: int, f: np.ndarray, a1: np.ndarray, h2: float, h3: float) -> None:
        n = min(len(f), self.f.size - i0)
        if n <= 0:
            return
        self.f[i0 : i0 + n] = f[:n]
        self.a[0, i0 : i0 + n] += a1[:n]
        self.a[1, i0 : i0 + n] += h2 * a1[:n]
        self.a[2, i0 : i0 + n] += h3 * a1[:n]

    def synthesize(self, sr: int, rng: np.random.Generator) -> np.ndarray:
        # integrate in float64 (long songs), then wrap and evaluate in float32 (speed)
        cyc = np.cumsum(self.f) / sr
        f32 = self.f.astype(np.float32)
        out = np.zeros(self.f.size, dtype=np.float32)
        for k in range(3):
            if not self.a[k].any():
                continue
            ph = (2.0 * np.pi * np.mod((k + 1) * cyc + rng.uniform(0, 1), 1.0)).astype(np.float32)
            # fade each harmonic out before Nyquist so nothing aliases
            guard = np.clip((0.46 * sr - (k + 1) * f32) / (0.03 * sr), 0.0, 1.0)
            out += self.a[k].astype(np.float32) * guard * np.sin(ph)
        if self.extra is not None:
            out += self.extra.astype(np.float32)
        return out


def _syllable(
    tr: _Tracks,
    i0: int,
    s: SyllableSpec,
    sr: int,
    level: float,
    rng: np.random.Generator,
    shift_hz: float = 0.0,
) -> None:
    n = int(s.duration_s * sr)
    t = np.arange(n) / sr
    carrier = s.f_plateau_hz + shift_hz + (s.f_start_hz - s.f_plateau_hz) * np.exp(-t / s.sweep_tau_s)
    carrier = carrier + s.drift_hz * t / s.duration_s
    # the buzz builds up once the opening sweep is done
    depth = s.fm_depth_hz * (1.0 - np.exp(-t / (2.0 * s.sweep_tau_s)))
    ph0 = rng.uniform(0, 1)
    fm = _fm_wave(t, s.fm_rate_hz, s.fm_shape, ph0)
    f = np.clip(carrier + depth * fm, 1500.0, None)
    pulses = 1.0 - s.am_depth * (0.5 - 0.5 * np.cos(2 * np.pi * (s.fm_rate_hz * t + ph0 + 0.5)))
    env = _envelope(n, sr, 0.004, 0.012) * pulses * level
    tr.put(i0, f, env, s.h2, s.h3)


def _element(tr: _Tracks, i0: int, e: ElementSpec, sr: int, rng: np.random.Generator) -> None:
    n = int(e.duration_s * sr)
    t = np.arange(n) / sr
    x = t / max(e.duration_s, 1e-6)
    if e.kind in ("C", "D", "E", "P"):
        # sweeps: slightly curved (faster change early)
        curve = 1.0 - (1.0 - x) ** 1.4
        carrier = e.f_start_hz + (e.f_end_hz - e.f_start_hz) * curve
    else:
        carrier = np.full(n, e.f_start_hz)
        if e.kind != "X":
            # whistles start a little high and settle within ~40 ms
            over_hz = rng.uniform(100.0, 350.0)
            if e.glide is None:
                carrier = carrier + over_hz * np.exp(-t / 0.015)
            else:  # wide-glide: a slower settle from further above, then a drift
                over, settle_s, drift = e.glide
                carrier = carrier * (1.0 + drift * x) + over * e.f_start_hz * np.exp(-t / settle_s)
    ph0 = rng.uniform(0, 1)
    wob = e.fm_depth_hz * np.sin(2 * np.pi * (e.fm_rate_hz * t + ph0))
    f = carrier + wob
    amp = 1.0 - e.am_depth * (0.5 - 0.5 * np.cos(2 * np.pi * (e.fm_rate_hz * t + ph0)))
    if e.pulse_hz > 0:
        amp = amp * np.abs(np.cos(np.pi * e.pulse_hz * t)) ** 3
    attack = 0.003 if e.kind == "X" else 0.012
    release = min(0.4 * e.duration_s, 0.006 if e.kind == "X" else 0.04)
    env = _envelope(n, sr, attack, release)
    if e.kind not in ("X",):
        env = env * (1.0 - 0.25 * x)  # whistles fade slightly towards their end
    tr.put(i0, f, env * amp * e.level, e.h2, e.h3)


def _jit(rng: np.random.Generator, x: float, rel: float) -> float:
    return float(x * (1.0 + rng.uniform(-rel, rel)))


def render_song(
    bird: Bird,
    rng: np.random.Generator,
    sample_rate: int = 24000,
    song_type: int | None = None,
    complete: bool | None = None,
) -> tuple[np.ndarray, SongEvent]:
    """Render one rendition of a bird's song.

    Parameters
    ----------
    bird : Bird
        The singer.
    rng : numpy.random.Generator
        Randomness for this rendition.
    sample_rate : int
        Output rate, Hz (>= 16000; harmonics above ~0.46 * rate are dropped).
    song_type : int, optional
        Song-type index (default: drawn; birds repeat a type in runs, see ``scene``).
    complete : bool, optional
        Force a complete or an incomplete song (default: drawn with ``bird.incomplete_prob``).

    Returns
    -------
    audio : numpy.ndarray
        float32, shape (n,), peak ``SONG_PEAK``, 20 ms of silence on both sides.
    event : SongEvent
        Times relative to the start of ``audio``.
    """
    sr = int(sample_rate)
    if sr < 16000:
        raise ValueError(f"sample_rate {sr} too low; need >= 16000 Hz")
    if song_type is None:
        song_type = int(rng.integers(len(bird.song_types)))
    st = bird.song_types[song_type]
    if complete is None:
        complete = bool(rng.random() >= bird.incomplete_prob)

    syl, n_syl, term = _vary(bird, st, complete, rng)
    pad = 0.02
    tr, events, t, terminal_onset = _sing(st, syl, n_syl, term, complete, sr, pad, rng)
    audio = tr.synthesize(sr, rng)
    peak = float(np.max(np.abs(audio)))
    if peak > 0:
        audio *= SONG_PEAK / peak
    ev = SongEvent(
        onset_s=pad,
        offset_s=t,
        terminal_onset_s=terminal_onset,
        dialect=bird.dialect,
        complete=complete,
        bird_id=bird.bird_id,
        song_type=song_type,
        n_syllables=n_syl,
        syllable_period_s=syl.period_s,
        elements=tuple(events),
    )
    return audio.astype(np.float32), ev


def _vary(bird: Bird, st: SongType, complete: bool, rng: np.random.Generator):
    """One rendition's variation of a song type: tempo, pitch, syllable count (fewer in an
    incomplete song) and terminal element lengths. Returns (syllable, number of syllables,
    terminal elements)."""
    tempo = _jit(rng, 1.0, 0.03)
    pitch = _jit(rng, 1.0, 0.012)
    s = st.syllable
    wide = bird.variety == "wide"
    if wide:
        from .syllable_shapes import vary_shaped

        return _vary_terminal(bird, st, complete, rng, vary_shaped(s, tempo, pitch, rng), (5, 20))
    syl = replace(
        s,
        period_s=s.period_s * tempo,
        duration_s=min(s.duration_s * tempo, s.period_s * tempo - 0.015),
        f_start_hz=s.f_start_hz * pitch,
        f_plateau_hz=s.f_plateau_hz * pitch,
        fm_rate_hz=_jit(rng, s.fm_rate_hz, 0.04),
        fm_depth_hz=_jit(rng, s.fm_depth_hz, 0.08),
    )
    return _vary_terminal(bird, st, complete, rng, syl, (6, 18))


def _vary_terminal(bird: Bird, st: SongType, complete: bool, rng: np.random.Generator, syl, bounds):
    """The rest of :func:`_vary`: syllable count within ``bounds`` and the terminal elements."""
    n_syl = int(np.clip(st.n_syllables + rng.integers(-2, 3), *bounds))
    if not complete:
        # incomplete songs are cut short, often before the full number of syllables
        n_syl = int(np.clip(n_syl - rng.integers(0, 4), 4, bounds[1]))
    term = tuple(
        replace(
            e,
            duration_s=_jit(rng, e.duration_s, 0.04),
            f_start_hz=_jit(rng, e.f_start_hz, 0.008),
            f_end_hz=_jit(rng, e.f_end_hz, 0.008),
            gap_before_s=_jit(rng, e.gap_before_s, 0.15),
        )
        for e in st.terminal
    )
    term = _clip_terminal(term, bird.dialect, bird.variety == "wide")
    return syl, n_syl, term


def _sing(
    st: SongType,
    syl: SyllableSpec,
    n_syl: int,
    term,
    complete: bool,
    sr: int,
    pad: float,
    rng: np.random.Generator,
):
    """Lay the intro note, the syllables and (complete songs) the terminal elements into the
    song's tracks. Returns (tracks, element events, end time s, terminal onset s or None)."""
    intro_len = 0.04 + 0.04 if st.intro_note else 0.0
    body = intro_len + (n_syl - 1) * syl.period_s + syl.duration_s
    if complete:
        body += st.gap_to_terminal_s + _terminal_length(term)
    n = int((body + 2 * pad) * sr) + 2
    tr = _Tracks(n)
    events: list[ElementEvent] = []
    t = pad
    if st.intro_note:
        f_intro = _jit(rng, 7900.0, 0.04)
        intro = ElementSpec(
            "intro", 0.04, f_intro, f_intro - 300.0, 0.0, 150.0, 50.0, 0.2, 0.1, 0.0, 0.4, 0.0
        )
        _element(tr, int(t * sr), intro, sr, rng)
        events.append(ElementEvent("intro", t, t + 0.04, f_intro, f_intro - 300.0))
        t += intro_len
    for i in range(n_syl):
        level = min(1.0, 0.55 + 0.18 * i) * _jit(rng, 1.0, 0.05)  # crescendo over the first syllables
        shift = syl.phrase_rise_hz * (i / max(n_syl - 1, 1) - 1.0)  # ends on the plateau
        i0 = int(round((t + i * syl.period_s) * sr))
        if isinstance(syl, SyllableSpec):
            _syllable(tr, i0, syl, sr, level, rng, shift)
        else:  # a shaped syllable (the wide variety)
            from .syllable_shapes import render_shaped

            render_shaped(tr, i0, syl, sr, level, rng)
    t += (n_syl - 1) * syl.period_s + syl.duration_s
    terminal_onset = None
    if complete:
        t += st.gap_to_terminal_s
        for j, e in enumerate(term):
            t += e.gap_before_s if j > 0 else 0.0
            if j == 0:
                terminal_onset = t
            _element(tr, int(round(t * sr)), e, sr, rng)
            events.append(ElementEvent(e.kind, t, t + e.duration_s, e.f_start_hz, e.f_end_hz))
            t += e.duration_s
    return tr, events, t, terminal_onset
