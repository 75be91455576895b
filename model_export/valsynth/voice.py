"""Sound production of the validation synthesiser: contours, buzz, harmonics, envelopes.

Three ways of making a sound element, each driven by a per-sample frequency contour:

``tone``
    A phase-continuous carrier whose frequency is the contour plus a *cycle-built* buzz
    (:func:`buzz_track`): the modulation is laid down one cycle at a time, each cycle with its own
    length and depth (jitter), in a waveform between a sine and a sawtooth-like fast-rise /
    slow-fall (the repeated downward flicks seen inside real syllables), with a gating pulse per
    cycle (amplitude modulation locked to the frequency modulation at a per-bird phase).
``grains``
    A pulse train (source-filter style): short windowed chirps placed at a jittered rate along
    the contour. Phase coherence between grains goes from 1 (a pulsed tone: a comb of
    sidebands at the pulse rate) to 0 (a noisy buzz).
``noise``
    White noise shaped in the STFT domain by a Gaussian band that follows the contour.

Harmonics (:class:`Harmonics`) get their amplitude from a per-bird resonance evaluated at the
harmonic's own frequency, so a harmonic's level depends on the pitch it lands on (strongest near
the resonance), rather than being a fixed ratio. Everything is numpy/scipy; nothing here is
shared with the training synthesiser (``model_export/synth``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.signal import istft, stft

TWO_PI = 2.0 * np.pi


@dataclass(frozen=True, slots=True)
class Harmonics:
    """Harmonic amplitude model of one bird.

    Attributes
    ----------
    level_db : tuple of float
        Base level of harmonics 2, 3, 4 relative to the fundamental, dB (the resonance moves
        each by -15 to +8 dB depending on where it lands; never above -6 dB).
    resonance_hz : float
        Centre of the vocal-tract resonance that favours harmonics landing near it, Hz.
    resonance_width_hz : float
        Its width (the dB gain falls as a parabola: -12 dB at one width from the centre), Hz.
    """

    level_db: tuple[float, ...] = (-20.0, -32.0, -44.0)
    resonance_hz: float = 9000.0
    resonance_width_hz: float = 2500.0

    def gain_db(self, f: np.ndarray) -> np.ndarray:
        """Resonance gain in dB at frequencies ``f`` (0 at the centre, floored at -30)."""
        return np.maximum(-12.0 * ((f - self.resonance_hz) / self.resonance_width_hz) ** 2, -30.0)

    def weights(self, f0: np.ndarray, sample_rate: int, boost_db: float = 0.0) -> list[np.ndarray]:
        """Per-sample amplitude of harmonics 2.. relative to the fundamental ``f0`` (Hz).

        A harmonic fades out between 0.40 and 0.46 of the sample rate, so nothing aliases at
        any output rate.
        """
        g0 = self.gain_db(f0)
        out = []
        for k, lev in enumerate(self.level_db, start=2):
            fk = k * f0
            # the resonance tilts a harmonic by at most +8/-15 dB against its base level
            db = lev + boost_db + np.clip(self.gain_db(fk) - g0, -15.0, 8.0)
            w = 10.0 ** (np.minimum(db, -6.0) / 20.0)
            edge = np.clip((0.46 * sample_rate - fk) / (0.06 * sample_rate), 0.0, 1.0)
            out.append(w * edge)
        return out


def contour(knots_t, knots_f, n: int) -> np.ndarray:
    """Per-sample frequency (Hz) through knots at relative times ``knots_t`` in [0, 1].

    Shape-preserving cubic (PCHIP): no overshoot between knots, so a drawn sweep never rings
    outside its own frequency range.
    """
    t = np.asarray(knots_t, float)
    f = np.asarray(knots_f, float)
    if n <= 0:
        return np.zeros(0)
    if t.size == 1:
        return np.full(n, f[0])
    x = np.linspace(0.0, 1.0, n)
    return PchipInterpolator(t, f)(x)


def buzz_track(
    n: int,
    sample_rate: int,
    rate_hz: float,
    depth_hz: float,
    rng: np.random.Generator,
    jitter: float = 0.08,
    shape: float = 0.5,
    am_depth: float = 0.0,
    am_width: float = 0.3,
    am_phase: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Frequency offset (Hz) and amplitude factor of a buzz, built one cycle at a time.

    Parameters
    ----------
    rate_hz, depth_hz
        Mean cycle rate and mean peak deviation.
    jitter
        Relative standard deviation of each cycle's length and depth.
    shape
        0 = sine cycles; 1 = fast rise then linear fall (a downward flick per cycle).
    am_depth, am_width, am_phase
        Gating pulse per cycle: amplitude ``1 - am_depth + am_depth * pulse``, the pulse a
        Gaussian of relative width ``am_width`` centred at cycle phase ``am_phase``.
    """
    if n <= 0:
        return np.zeros(0), np.ones(0)
    period = sample_rate / max(rate_hz, 1.0)
    lengths, depths = [], []
    total = 0
    while total < n:
        L = max(4, int(round(period * (1.0 + jitter * rng.standard_normal()))))
        lengths.append(L)
        depths.append(depth_hz * max(0.1, 1.0 + jitter * 2.0 * rng.standard_normal()))
        total += L
    lengths = np.asarray(lengths)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    cyc = np.repeat(np.arange(lengths.size), lengths)[:n]
    u = (np.arange(n) - starts[cyc]) / lengths[cyc]  # phase within the cycle, [0, 1)
    sine = np.sin(TWO_PI * u)
    rise = 0.12
    flick = np.where(u < rise, -1.0 + 2.0 * u / rise, 1.0 - 2.0 * (u - rise) / (1.0 - rise))
    wave = (1.0 - shape) * sine + shape * flick
    fm = np.asarray(depths)[cyc] * wave
    # smooth the corners of the flick a little (a syrinx cannot jump)
    k = max(1, int(sample_rate * 0.0006))
    if k > 1:
        fm = np.convolve(fm, np.ones(k) / k, mode="same")
    if am_depth > 0:
        d = np.abs(((u - am_phase + 0.5) % 1.0) - 0.5)
        pulse = np.exp(-0.5 * (d / max(am_width, 0.03)) ** 2)
        am = 1.0 - am_depth + am_depth * pulse
    else:
        am = np.ones(n)
    return fm, am


def tone(
    f0: np.ndarray,
    amp: np.ndarray,
    sample_rate: int,
    harmonics: Harmonics,
    rng: np.random.Generator,
    harmonic_boost_db: float = 0.0,
) -> np.ndarray:
    """Phase-continuous carrier following ``f0`` (Hz per sample) with amplitude ``amp``."""
    if f0.size == 0:
        return np.zeros(0)
    f0 = np.clip(f0, 50.0, 0.47 * sample_rate)
    phase = TWO_PI * np.cumsum(f0) / sample_rate + rng.uniform(0, TWO_PI)
    y = np.sin(phase)
    for k, w in enumerate(harmonics.weights(f0, sample_rate, harmonic_boost_db), start=2):
        if np.any(w > 1e-4):
            y = y + w * np.sin(k * phase + rng.uniform(0, TWO_PI))
    return amp * y


def grains(
    f0: np.ndarray,
    amp: np.ndarray,
    sample_rate: int,
    harmonics: Harmonics,
    rng: np.random.Generator,
    rate_hz: float,
    grain_s: float,
    coherence: float = 1.0,
    jitter: float = 0.1,
    harmonic_boost_db: float = 0.0,
) -> np.ndarray:
    """A pulse train of short chirps along ``f0``: pulsed tones (coherent) to noisy buzz."""
    n = f0.size
    out = np.zeros(n)
    if n == 0:
        return out
    f0 = np.clip(f0, 50.0, 0.47 * sample_rate)
    glen = max(8, int(grain_s * sample_rate))
    win = np.hanning(glen + 2)[1:-1]
    phase = TWO_PI * np.cumsum(f0) / sample_rate + rng.uniform(0, TWO_PI)
    hw = harmonics.weights(f0, sample_rate, harmonic_boost_db)
    t = float(rng.uniform(0, sample_rate / rate_hz))
    period = sample_rate / rate_hz
    while t < n:
        i0 = int(t)
        i1 = min(n, i0 + glen)
        seg = slice(i0, i1)
        # phase of this grain: the carrier's own (coherent) or partly random (noisy)
        off = (1.0 - coherence) * rng.uniform(-np.pi, np.pi)
        ph = phase[seg] + off
        g = np.sin(ph)
        for k, w in enumerate(hw, start=2):
            g = g + w[seg] * np.sin(k * ph + (1.0 - coherence) * rng.uniform(-np.pi, np.pi))
        centre = min(n - 1, i0 + glen // 2)
        out[seg] += win[: i1 - i0] * g * amp[centre]
        t += period * max(0.3, 1.0 + jitter * rng.standard_normal())
    return out


def noise_band(
    fc: np.ndarray,
    bandwidth_hz: float,
    amp: np.ndarray,
    sample_rate: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """White noise passed through a Gaussian band (width ``bandwidth_hz``) centred on ``fc``."""
    n = fc.size
    if n == 0:
        return np.zeros(0)
    nper = 128 if sample_rate <= 32000 else 256
    pad = nper
    x = rng.standard_normal(n + 2 * pad)
    f, t, Z = stft(x, sample_rate, nperseg=nper, noverlap=nper * 3 // 4)
    centre = np.interp(t * sample_rate - pad, np.arange(n), fc)
    mask = np.exp(-0.5 * ((f[:, None] - centre[None, :]) / (bandwidth_hz / 2.355)) ** 2)
    _, y = istft(Z * mask, sample_rate, nperseg=nper, noverlap=nper * 3 // 4)
    y = y[pad : pad + n]
    if y.size < n:
        y = np.pad(y, (0, n - y.size))
    rms = float(np.sqrt(np.mean(y**2))) or 1.0
    return amp * y / rms * 0.7


def envelope(
    n: int,
    sample_rate: int,
    attack_s: float,
    release_s: float,
    tilt_db: float = 0.0,
    attack_power: float = 1.0,
    release_power: float = 1.5,
) -> np.ndarray:
    """Amplitude envelope: a shaped rise, a straight dB tilt across the element, a shaped fall."""
    if n <= 0:
        return np.zeros(0)
    x = np.ones(n)
    na = min(n // 2, max(1, int(attack_s * sample_rate)))
    nr = min(n - na, max(1, int(release_s * sample_rate)))
    x[:na] = np.sin(0.5 * np.pi * np.linspace(0, 1, na, endpoint=False)) ** (2 * attack_power)
    x[n - nr :] *= (1.0 - np.linspace(0, 1, nr)) ** release_power
    if tilt_db:
        x *= 10.0 ** (np.linspace(0.0, tilt_db, n) / 20.0)
    return x
