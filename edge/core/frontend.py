"""The one log-mel frontend, in numpy, shared by training, export calibration and the Pi.

Batch (:func:`logmel`) and streaming (:class:`StreamingLogMel`) use the same framing and the
same arithmetic, so a stream fed in chunks of any size yields exactly the frames of the batch
call on the concatenated audio.

Framing is causal and unpadded: frame ``i`` covers samples ``[i*hop, i*hop + n_fft)`` of the
stream. A stream of ``n`` samples therefore has ``1 + (n - n_fft) // hop`` frames (0 if shorter
than one window).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache

import numpy as np
import scipy.fft

from edge.core.errors import ModelError

NORMALIZATIONS = ("none", "ema")
#: input at up to this many times the model rate goes straight into the frontend (see
#: :meth:`FrontendConfig.for_input_rate`) instead of through a resampler
MAX_RATE_MULTIPLE = 4


@dataclass(frozen=True, slots=True)
class FrontendConfig:
    """Every parameter of the log-mel frontend; the model manifest carries a copy.

    Defaults chosen for the yellowhammer:

    - ``sample_rate`` 24 kHz: the song's energy lies at 3-7 kHz with brief excursions and 2nd
      harmonics at 8-10 kHz; a 12 kHz Nyquist keeps all of it, halves the work of 48 kHz, and
      48 kHz microphones resample by an exact factor of 2.
    - ``n_fft`` 512 (21.3 ms, 47 Hz bins): long enough to resolve the 4.4 vs 4.9 kHz B
      whistles and the 150-250 Hz frequency modulation as sidebands, short enough to keep the
      20-50 ms X click of XsB within a couple of frames.
    - ``hop_length`` 480 (20 ms, 50 frames/s): consecutive 21.3-ms windows still overlap, so
      no sound falls between frames; syllables (60-90 ms, every 0.09-0.13 s) span 3-5 frames
      and the terminal elements 10-35, and the X note of XsB (20-50 ms) against XlB's
      (100-250 ms) is 1-3 frames against 5-13. Half the FFTs of a 10-ms hop: the frontend is
      most of the always-on cost (see docs/models.md, "Speed").
    - 64 mel bands over 1.5-11 kHz: below 1.5 kHz is wind, traffic and handling noise that only
      hurts; 11 kHz leaves margin under Nyquist for the resampler's transition band. At these
      frequencies a band is 90-300 Hz wide, enough to separate Bh from Bl by several bands.
    - ``log_floor`` 1e-10 of full-scale power (-100 dB) bounds the log of silence.
    - ``normalization`` ``"none"`` by default (the models learn level robustness from gain
      augmentation); ``"ema"`` subtracts a causal per-band running mean (time constant
      ``ema_seconds``), which removes stationary noise colour and stays streaming-exact.
    """

    sample_rate: int = 24000
    n_fft: int = 512
    hop_length: int = 480
    n_mels: int = 64
    fmin: float = 1500.0
    fmax: float = 11000.0
    log_floor: float = 1e-10
    normalization: str = "none"
    ema_seconds: float = 3.0

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError("frontend sizes must be positive")
        if self.hop_length > self.n_fft:
            raise ValueError("hop_length must not exceed n_fft")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= fmin < fmax <= Nyquist ({self.sample_rate / 2} Hz)")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}")
        if self.log_floor <= 0 or self.ema_seconds <= 0:
            raise ValueError("log_floor and ema_seconds must be positive")

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop_length

    def frames_for(self, seconds: float) -> int:
        """A duration as a whole number of frames (at least one)."""
        return max(1, int(round(seconds * self.frame_rate)))

    def n_frames(self, n_samples: int) -> int:
        """Number of frames a stream of ``n_samples`` samples produces."""
        return 0 if n_samples < self.n_fft else 1 + (n_samples - self.n_fft) // self.hop_length

    def frame_start(self, frame_index: int) -> int:
        """First sample of a frame (relative to its stream)."""
        return frame_index * self.hop_length

    def for_input_rate(self, rate: int) -> FrontendConfig:
        """The same analysis for input at ``rate``, an integer multiple ``k`` of ``sample_rate``.

        A ``k`` times longer FFT with a ``k`` times longer hop covers the same 21.3 ms every
        hop with the same 47 Hz bins, and the window is normalised to the same sum, so the
        mel bands come out as from resampled audio (up to the resampler's ripple, about 0.3 dB
        at 11 kHz) without the resampler: for a 48 kHz microphone that is cheaper than
        half-band filtering followed by the short FFT.
        """
        rate = int(rate)
        if rate == self.sample_rate:
            return self
        k, rem = divmod(rate, self.sample_rate)
        if rem or not 1 <= k <= MAX_RATE_MULTIPLE:
            raise ValueError(
                f"{rate} Hz is not 1-{MAX_RATE_MULTIPLE} times the frontend's {self.sample_rate} Hz"
            )
        return replace(self, sample_rate=rate, n_fft=self.n_fft * k, hop_length=self.hop_length * k)

    def to_dict(self) -> dict:
        """Plain dict for a manifest."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FrontendConfig:
        """Build from a manifest dict; unknown keys are an error (a newer frontend)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ModelError(f"frontend parameters not understood by this version: {sorted(unknown)}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"invalid frontend parameters: {exc}") from None

    def mismatch(self, other: FrontendConfig) -> list[str]:
        """Names and values of the parameters that differ from ``other``."""
        out = []
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, float) or isinstance(b, float):
                same = math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
            else:
                same = a == b
            if not same:
                out.append(f"{f.name}: {a!r} != {b!r}")
        return out


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


_DB_PER_NEPER = np.float32(10.0 / math.log(10.0))
#: The streaming frontend transforms at most this many frame samples (frames x n_fft) per call:
#: 128 frames at 48 kHz, 256 at 24 kHz. Larger batches make temporaries of over 1 MB, which
#: glibc maps and unmaps on every call; each chunk then pays ~200 page faults per MB (measured:
#: 2-s chunks at 48 kHz cost 0.68 CPU ms per audio s in tools/bench.py instead of 0.32).
_MAX_BLOCK_SAMPLES = 1 << 17


@lru_cache(maxsize=8)
def _tables(cfg: FrontendConfig) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(window, mel filterbank rows lo:hi, lo, hi) for a config, computed once.

    The window is a periodic Hann scaled so that a full-scale sine at a bin centre has power
    0.25 (-6 dB); the filterbank is ``(n_fft // 2 + 1, n_mels)`` of triangles on the HTK mel
    scale, area-normalised (Slaney) so bands of different widths are comparable.
    """
    n = cfg.n_fft
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
    window = window / window.sum()
    freqs = np.arange(n // 2 + 1) * cfg.sample_rate / n
    edges = _mel_to_hz(np.linspace(_hz_to_mel(cfg.fmin), _hz_to_mel(cfg.fmax), cfg.n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    fb = np.maximum(0.0, np.minimum(rising, falling))
    fb *= 2.0 / (upper - lower)  # Slaney area normalisation
    fb /= fb.sum(axis=1, keepdims=True).mean()  # keep a flat spectrum near unit gain
    # A band narrower than one FFT bin would be empty; give it the nearest bin.
    for b in np.where(fb.sum(axis=1) == 0)[0]:
        fb[b, int(np.argmin(np.abs(freqs - centre[b, 0])))] = 1.0
    used = np.where(fb.any(axis=0))[0]
    lo, hi = int(used[0]), int(used[-1]) + 1
    return window.astype(np.float32), fb.T[lo:hi].astype(np.float32).copy(), lo, hi


def mel_frequencies(cfg: FrontendConfig) -> np.ndarray:
    """Centre frequency in Hz of every mel band, shape ``(n_mels,)``."""
    return _mel_to_hz(np.linspace(_hz_to_mel(cfg.fmin), _hz_to_mel(cfg.fmax), cfg.n_mels + 2))[1:-1]


def _frame_view(x: np.ndarray, k: int, cfg: FrontendConfig) -> np.ndarray:
    """The first ``k`` frames of contiguous samples ``x`` as a ``(k, n_fft)`` strided view (no
    copy): what ``sliding_window_view(x, n_fft)[::hop][:k]`` gives, at a fifth of its call
    overhead, which is paid on every chunk."""
    assert x.flags.c_contiguous and x.shape[0] >= (k - 1) * cfg.hop_length + cfg.n_fft
    step = x.strides[0]
    return np.ndarray((k, cfg.n_fft), x.dtype, x, 0, (cfg.hop_length * step, step))


def _frames_to_logmel(frames: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """Log-mel (dB) of a ``(k, n_fft)`` float32 frame matrix -> ``(k, n_mels)`` float32."""
    window, fb, lo, hi = _tables(cfg)
    spec = scipy.fft.rfft(frames * window, axis=1)  # float32 in, complex64 out
    power = spec.real[:, lo:hi] ** 2 + spec.imag[:, lo:hi] ** 2  # only bins the filters touch
    mel = power @ fb
    np.maximum(mel, cfg.log_floor, out=mel)
    np.log(mel, out=mel)
    mel *= _DB_PER_NEPER
    return mel


def _ema_coeff(cfg: FrontendConfig) -> float:
    return math.exp(-1.0 / (cfg.ema_seconds * cfg.frame_rate))


def _ema_normalize(logmel: np.ndarray, cfg: FrontendConfig, state: np.ndarray | None):
    """Subtract a causal per-band running mean; returns (normalised, new_state)."""
    if logmel.shape[0] == 0:
        return logmel, state
    from scipy.signal import lfilter  # here: scipy.signal costs ~50 MB RSS, only "ema" needs it

    a = _ema_coeff(cfg)
    x = logmel.astype(np.float64)
    if state is None:  # start the mean at the first frame so the stream starts near zero
        state = a * x[0]
    mean, zf = lfilter([1.0 - a], [1.0, -a], x, axis=0, zi=state[None, :])
    return (x - mean).astype(np.float32), zf[0]


def logmel(audio: np.ndarray, cfg: FrontendConfig | None = None) -> np.ndarray:
    """Log-mel spectrogram of a whole clip.

    Parameters
    ----------
    audio
        float mono samples at ``cfg.sample_rate``, shape ``(n,)``.
    cfg
        Frontend parameters (defaults if omitted).

    Returns
    -------
    np.ndarray
        float32 ``(n_frames, n_mels)`` in dB (normalised if ``cfg.normalization`` says so).
    """
    cfg = cfg or FrontendConfig()
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected mono audio of shape (n,), got {x.shape}")
    n = cfg.n_frames(x.shape[0])
    if n == 0:
        return np.zeros((0, cfg.n_mels), dtype=np.float32)
    frames = _frame_view(np.ascontiguousarray(x), n, cfg)
    out = _frames_to_logmel(frames, cfg)
    if cfg.normalization == "ema":
        out, _ = _ema_normalize(out, cfg, None)
    return out


class StreamingLogMel:
    """Incremental log-mel: feed chunks of any size, get the frames that became complete.

    ``frames_out`` counts the frames emitted since the last reset, so frame ``i`` of the stream
    starts at stream sample ``i * hop_length`` (at the model rate).

    ``input_rate`` (default: the config's rate) may be an integer multiple of the config's
    rate; the samples fed are then at that rate and analysed by
    :meth:`FrontendConfig.for_input_rate`, with the same frames as out of a resampler.
    """

    def __init__(self, cfg: FrontendConfig | None = None, input_rate: int | None = None) -> None:
        self.cfg = cfg or FrontendConfig()
        self.input_rate = int(input_rate or self.cfg.sample_rate)
        self._work = self.cfg.for_input_rate(self.input_rate)
        self._buf = np.zeros(0, dtype=np.float32)
        self._ema_state: np.ndarray | None = None
        self.frames_out = 0

    def reset(self) -> None:
        """Forget everything: the next sample starts a new stream."""
        self._buf = np.zeros(0, dtype=np.float32)
        self._ema_state = None
        self.frames_out = 0

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Append samples; return the newly complete frames, float32 ``(k, n_mels)``."""
        cfg = self._work
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        buf = np.concatenate([self._buf, x]) if self._buf.size else np.ascontiguousarray(x)
        k = cfg.n_frames(buf.shape[0])
        if k == 0:
            self._buf = buf.copy()
            return np.zeros((0, cfg.n_mels), dtype=np.float32)
        frames = _frame_view(buf, k, cfg)
        n_blocks = -(-k * cfg.n_fft // _MAX_BLOCK_SAMPLES)
        if n_blocks > 1:  # a long chunk: in even blocks of frames (see _MAX_BLOCK_SAMPLES)
            step = -(-k // n_blocks)
            out = np.empty((k, cfg.n_mels), dtype=np.float32)
            for i in range(0, k, step):
                out[i : i + step] = _frames_to_logmel(frames[i : i + step], cfg)
        else:
            out = _frames_to_logmel(frames, cfg)
        # keep the tail that later frames still need
        self._buf = buf[k * cfg.hop_length :].copy()
        if cfg.normalization == "ema":
            out, self._ema_state = _ema_normalize(out, cfg, self._ema_state)
        self.frames_out += k
        return out
