"""FLAC, MP3 and Ogg recordings through the optional ``soundfile`` package (libsndfile).

The recorder itself needs only WAV (:mod:`.wavfile`, no dependency); ``yh-edge analyze`` reads
these formats too where ``soundfile`` is installed (``pip install yellowhammer[formats]``;
Raspberry Pi OS: ``python3-soundfile``). Without it, such a file is one clear error line.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.adapters.audio.wavfile import WavReader, read_info
from edge.core.errors import AudioFormatError

WAV_SUFFIXES = (".wav", ".wave")
SOUNDFILE_SUFFIXES = (".flac", ".mp3", ".ogg", ".oga", ".opus")


def soundfile_available() -> bool:
    return importlib.util.find_spec("soundfile") is not None


def audio_suffixes() -> tuple[str, ...]:
    """Suffixes a folder is searched for: WAV, plus FLAC/MP3/Ogg where ``soundfile`` is installed."""
    return WAV_SUFFIXES + (SOUNDFILE_SUFFIXES if soundfile_available() else ())


@dataclass(frozen=True, slots=True)
class SoundInfo:
    """What :class:`SoundFileReader` needs to know of a file (the fields of ``WavInfo`` it uses)."""

    path: Path
    sample_rate: int
    channels: int
    n_frames: int

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return self.n_frames / self.sample_rate


def _soundfile(path: Path):
    try:
        import soundfile
    except ImportError:
        raise AudioFormatError(
            f"{path}: reading {path.suffix} files needs the 'soundfile' package "
            "(pip install 'yellowhammer[formats]'); the recorder itself reads WAV"
        ) from None
    return soundfile


class SoundFileReader:
    """Read a FLAC/MP3/Ogg file block by block as float32 ``(frames, channels)``."""

    def __init__(self, path: str | os.PathLike) -> None:
        path = Path(path)
        sf = _soundfile(path)
        try:
            self._f = sf.SoundFile(str(path))
        except (RuntimeError, OSError) as exc:
            raise AudioFormatError(f"{path}: cannot read ({exc})") from None
        self.info = SoundInfo(path, int(self._f.samplerate), int(self._f.channels), int(self._f.frames))

    def read(self, n_frames: int) -> np.ndarray:
        """Up to ``n_frames`` frames; an empty array at the end (also where a damaged file stops)."""
        try:
            return self._f.read(n_frames, dtype="float32", always_2d=True)
        except (RuntimeError, OSError) as exc:
            raise AudioFormatError(f"{self.info.path}: decoding stopped ({exc})") from None

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> SoundFileReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_audio(path: str | os.PathLike) -> WavReader | SoundFileReader:
    """The reader for a file: WAV natively, other formats through ``soundfile``."""
    p = Path(path)
    if p.suffix.lower() in WAV_SUFFIXES or p.suffix.lower() not in SOUNDFILE_SUFFIXES:
        return WavReader(p)
    return SoundFileReader(p)


def audio_info(path: str | os.PathLike):
    """``read_info`` for WAV, the soundfile header for the other formats (duration, rate)."""
    p = Path(path)
    if p.suffix.lower() in SOUNDFILE_SUFFIXES:
        with SoundFileReader(p) as r:
            return r.info
    return read_info(p)
