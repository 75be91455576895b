"""A song's quantised log-mel spectrogram for its detection: what of the song's frames is kept
(:class:`SpectrogramSpec`, from the config's ``[spectrogram]``) and how it is cut from the
pipeline's frame history (:func:`song_spectrogram`). Re-exported by :mod:`edge.core.pipeline`.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.contract.spectrogram import Spectrogram
from edge.core.frontend import FrontendConfig
from edge.core.records import Song
from edge.core.ring import FrameRing


@dataclass(frozen=True, slots=True)
class SpectrogramSpec:
    """What of a song's log-mel frames goes into its detection (see :class:`edge.contract.Spectrogram`).

    Attributes
    ----------
    margin_s
        Seconds before the onset and after the offset, s.
    max_seconds
        At most this long, s; a longer song keeps its end (the terminal phrase).
    db_step
        Quantisation step, dB.
    """

    margin_s: float = 0.3
    max_seconds: float = 8.0
    db_step: float = 1.5


def song_spectrogram(frames: FrameRing, fe: FrontendConfig, spec: SpectrogramSpec, song: Song) -> Spectrogram:
    """The song's frames from ``margin_s`` before its onset to ``margin_s`` after its offset
    (only frames the ring holds: nothing is made up at the edges), quantised."""
    margin = int(round(spec.margin_s * fe.frame_rate))
    hi = min(song.end_frame + margin, frames.end)
    lo = max(song.start_sample // fe.hop_length - margin, hi - fe.frames_for(spec.max_seconds),
             frames.start)  # fmt: skip
    hi = max(hi, lo + 1)
    t0 = (lo * fe.hop_length - song.start_sample) / fe.sample_rate
    return Spectrogram.quantise(frames.get(lo, hi), fe.frame_rate, t0, fe.fmin, fe.fmax, spec.db_step)
