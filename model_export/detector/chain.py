"""Recording-chain augmentation in the audio domain (model rate, float32 mono).

What a field recorder does to a song on its way to the frontend, each drawn at random by
:func:`random_chain`: band limits of the recorder's rate (a 16-kHz recorder holds nothing above
8 kHz; 22.05 kHz nothing above 11 kHz), automatic gain control / limiting, wind rumble, and a
cheap microphone's response, and (with ``codec > 0``) a lossy MP3 or Ogg Vorbis round trip
(:func:`lossy_codec`, in memory through ``soundfile``). Distance (absorption and reverberation) is
:func:`model_export.synth.propagate`, applied to the song before it is mixed.
"""

from __future__ import annotations

import io
import logging

import numpy as np

log = logging.getLogger(__name__)
RECORDER_RATES = (16000, 22050, 32000, 44100, 48000)


def band_limit(x: np.ndarray, sr: int, rate: int) -> np.ndarray:
    """Resample ``x`` down to a recorder's ``rate`` and back (nothing above its Nyquist)."""
    from model_export.synth import resample

    if rate >= 2 * sr or rate == sr:
        return x
    return resample(resample(x, sr, rate), rate, sr)[: len(x)].astype(np.float32)


def agc(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A recorder's automatic gain control: the level pulled towards a target with 50-500 ms
    time constants (up to +30 dB), then a soft limiter."""
    win = max(1, int(rng.uniform(0.05, 0.5) * sr))
    c = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    i = np.arange(len(x))
    lo, hi = np.maximum(0, i - win // 2), np.minimum(len(x), i + win // 2 + 1)
    env = np.sqrt((c[hi] - c[lo]) / (hi - lo) + 1e-12)  # moving rms, O(n)
    target = 10 ** (rng.uniform(-26, -12) / 20)
    gain = np.clip(target / env, 0.03, 10 ** (rng.uniform(12, 30) / 20))
    y = x * gain
    drive = rng.uniform(1.0, 4.0)
    return (np.tanh(drive * y) / drive).astype(np.float32)


def wind(n: int, sr: int, rng: np.random.Generator, level: float) -> np.ndarray:
    """Gusty low-frequency rumble (brown noise under ~300 Hz, slowly modulated) at rms ``level``."""
    w = np.cumsum(rng.standard_normal(n))
    from scipy.signal import butter, sosfilt

    w = sosfilt(butter(2, [20, 300], "bandpass", fs=sr, output="sos"), w)
    gust = 1 + 0.8 * np.sin(2 * np.pi * rng.uniform(0.1, 0.7) * np.arange(n) / sr + rng.uniform(0, 6.3))
    w = w * gust
    return (level * w / (np.sqrt(np.mean(w**2)) + 1e-12)).astype(np.float32)


_CODEC_WARNED: set = set()


def codec_available(fmt: str) -> bool:
    """Whether ``soundfile`` (libsndfile >= 1.1 for MP3) can write ``fmt`` ("MP3" or "OGG")."""
    try:
        import soundfile as sf
    except ImportError:
        return False
    sub = "MPEG_LAYER_III" if fmt == "MP3" else "VORBIS"
    return fmt in sf.available_formats() and sub in sf.available_subtypes(fmt)


def lossy_codec(x: np.ndarray, sr: int, fmt: str, kbps: float, rate: int) -> np.ndarray | None:
    """Encode ``x`` (float32 at ``sr``) as MP3 (constant ``kbps``, 64-192) or Ogg Vorbis (quality from
    ``kbps``) at a recorder's ``rate`` in memory and decode it back to ``sr``, same length; ``None``
    (one warning per format) when ``soundfile`` cannot write the format."""
    if not codec_available(fmt):
        if fmt not in _CODEC_WARNED:
            _CODEC_WARNED.add(fmt)
            log.warning("codec %s not available in soundfile/libsndfile: chain without it", fmt)
        return None
    import soundfile as sf

    from model_export.synth import resample

    y = resample(x, sr, rate) if rate != sr else x
    y = np.clip(y, -1.0, 1.0).astype(np.float32)
    level = float(np.clip((320.0 - kbps) / 288.0, 0.0, 0.88))  # libsndfile: 0 = 320 kbps, 1 = 32 kbps
    buf = io.BytesIO()
    if fmt == "MP3":
        sf.write(buf, y, rate, format="MP3", subtype="MPEG_LAYER_III", compression_level=level,
                 bitrate_mode="CONSTANT")  # fmt: skip
    else:
        sf.write(buf, y, rate, format="OGG", subtype="VORBIS", compression_level=level)
    buf.seek(0)
    z, _ = sf.read(buf, dtype="float32", always_2d=False)
    z = _align(z, y)
    out = resample(z, rate, sr) if rate != sr else z
    out = out[: len(x)]
    return np.pad(out, (0, len(x) - len(out))).astype(np.float32)


def _align(z: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Undo an encoder delay the decoder did not remove (length differs): shift by the lag of
    the best cross-correlation over the first second."""
    if len(z) == len(ref):
        return z
    from scipy.signal import correlate

    n = min(len(ref), len(z), 48000)
    c = correlate(z[:n], ref[:n], mode="full", method="fft")
    lag = int(np.argmax(c)) - (n - 1)
    z = z[lag:] if lag > 0 else np.pad(z, (-lag, 0))
    return np.pad(z[: len(ref)], (0, max(0, len(ref) - len(z))))


def random_codec(x: np.ndarray, sr: int, rng: np.random.Generator, rate: int) -> tuple[np.ndarray, dict]:
    """MP3 (70 %, 64-192 kbps) or Ogg Vorbis (30 %) at the recorder's ``rate``; unchanged if the
    format is unavailable."""
    fmt = "MP3" if rng.random() < 0.7 else "OGG"
    kbps = float(rng.uniform(64.0, 192.0))
    y = lossy_codec(x, sr, fmt, kbps, rate)
    if y is None:
        return x, {}
    return y, {"codec": fmt, "kbps": round(kbps), "codec_rate": rate}


def random_chain(
    x: np.ndarray, sr: int, rng: np.random.Generator, p16k: float = 0.3, codec: float = 0.0
) -> tuple[np.ndarray, dict]:
    """Apply a random recorder chain to a mixed scene -> (audio, what was applied). ``codec``: the
    share of scenes that also go through a lossy MP3/Ogg round trip (0: no draw at all, so the chain
    is the same as before for a seed)."""
    from model_export.synth import mic_colour

    info: dict = {}
    if rng.random() < 0.5:
        x = mic_colour(x, sr, rng)
        info["mic"] = True
    if rng.random() < 0.15:
        rms = float(np.sqrt(np.mean(x**2)) + 1e-9)
        x = x + wind(len(x), sr, rng, rms * 10 ** (rng.uniform(0, 20) / 20))
        info["wind"] = True
    rate = int(rng.choice(RECORDER_RATES)) if rng.random() < 0.6 else 48000
    if rng.random() < p16k:
        rate = 16000
    x = band_limit(x, sr, rate)
    info["rate"] = rate
    if rng.random() < 0.25:
        x = agc(x, sr, rng)
        info["agc"] = True
    if codec > 0 and rng.random() < codec:
        x, c = random_codec(x, sr, rng, rate)
        info.update(c)
    return x.astype(np.float32), info
