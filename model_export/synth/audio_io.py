"""Reading directories of real recordings, resampling and writing WAV files.

Public API
----------
``load_audio(path, sample_rate) -> float32 mono``
    WAV via scipy; mp3/flac/ogg via ``soundfile`` (imported lazily, clear error
    when missing). Damaged files are decoded as far as possible.
``resample(audio, sr_in, sr_out)``
    Polyphase resampling (``scipy.signal.resample_poly``).
``write_wav(path, audio, sample_rate)``
    16-bit PCM, written to a temporary name and renamed (never half-written).
``AudioLibrary(directory, sample_rate, exclude_labels=("yellowhammer",))``
    All wav/mp3/flac/ogg files below a directory; ``excerpt(rng, n)`` returns a
    random excerpt of ``n`` samples (looped if the file is shorter). If the
    directory holds a ``manifest.csv`` with ``file`` and ``label`` columns (as
    ``../shared/realaudio/`` does), files whose label is in ``exclude_labels``
    are skipped, so yellowhammer recordings never end up as background.
"""

from __future__ import annotations

import csv
import logging
import os
import wave
from collections import OrderedDict
from math import gcd
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg")


class AudioReadError(RuntimeError):
    """A recording could not be read."""


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample a 1-D signal with a polyphase filter; returns float32."""
    if sr_in == sr_out:
        return np.asarray(audio, dtype=np.float32)
    g = gcd(int(sr_in), int(sr_out))
    return resample_poly(np.asarray(audio, dtype=np.float64), sr_out // g, sr_in // g).astype(np.float32)


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    try:
        import soundfile as sf
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise AudioReadError(
            f"reading {path.suffix} files needs the 'soundfile' package (pip install soundfile)"
        ) from exc
    blocks = []
    try:
        with sf.SoundFile(str(path)) as f:
            sr = f.samplerate
            try:
                for block in f.blocks(blocksize=65536, dtype="float32", always_2d=True):
                    blocks.append(block.mean(axis=1))
            except (RuntimeError, sf.LibsndfileError) as exc:
                # some mp3s are damaged part-way through: keep what decoded
                logger.warning("%s: decoding stopped early (%s)", path, exc)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioReadError(f"cannot read {path}: {exc}") from exc
    if not blocks:
        raise AudioReadError(f"{path}: no audio decoded")
    return np.concatenate(blocks), sr


def load_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Read a recording as float32 mono at ``sample_rate``.

    Raises
    ------
    AudioReadError
        The file cannot be decoded.
    """
    path = Path(path)
    if path.suffix.lower() == ".wav":
        from scipy.io import wavfile

        try:
            sr, x = wavfile.read(str(path))
        except ValueError:
            x, sr = _read_soundfile(path)
        else:
            if x.dtype.kind == "i":
                x = x.astype(np.float32) / float(np.iinfo(x.dtype).max)
            elif x.dtype.kind == "u":
                x = (x.astype(np.float32) - 128.0) / 128.0
            x = x.astype(np.float32)
            if x.ndim > 1:
                x = x.mean(axis=1)
    else:
        x, sr = _read_soundfile(path)
    return resample(x, int(sr), int(sample_rate))


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono 16-bit PCM; values beyond full scale are clipped."""
    path = Path(path)
    pcm = (np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0) * 32767.0).round().astype("<i2")
    tmp = path.with_name(path.name + ".part")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    os.replace(tmp, path)


def list_audio_files(
    directory: str | os.PathLike,
    exclude_labels: tuple[str, ...] = ("yellowhammer",),
    include_labels: tuple[str, ...] | None = None,
) -> list[Path]:
    """Audio files below ``directory`` (sorted), filtered by a ``manifest.csv`` when present."""
    root = Path(directory)
    if not root.is_dir():
        raise AudioReadError(f"{root} is not a directory")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    labels: dict[Path, str] = {}
    for manifest in sorted(root.rglob("manifest.csv")):
        with open(manifest, newline="") as fh:
            for row in csv.DictReader(fh):
                if "file" in row and "label" in row:
                    labels[(manifest.parent / row["file"]).resolve()] = row["label"]
    out = []
    for p in files:
        lab = labels.get(p.resolve())
        if lab is not None and lab in exclude_labels:
            continue
        if include_labels is not None and lab is not None and lab not in include_labels:
            continue
        out.append(p)
    return out


class AudioLibrary:
    """Random excerpts from the recordings below a directory.

    Parameters
    ----------
    directory : path
        Searched recursively for wav/mp3/flac/ogg.
    sample_rate : int
        Rate of the returned excerpts, Hz.
    exclude_labels, include_labels : tuple of str
        Filters applied through a ``manifest.csv`` (see module docstring).
    cache_files : int
        Decoded files kept in memory (decoding mp3 is the slow part).
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        sample_rate: int,
        exclude_labels: tuple[str, ...] = ("yellowhammer",),
        include_labels: tuple[str, ...] | None = None,
        cache_files: int = 48,
    ) -> None:
        self.root = Path(directory)
        self.sample_rate = int(sample_rate)
        self.files = list_audio_files(self.root, exclude_labels, include_labels)
        if not self.files:
            raise AudioReadError(f"no usable wav/mp3/flac/ogg files below {self.root}")
        self._cache: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._cache_files = cache_files
        self._bad: set[Path] = set()

    def __len__(self) -> int:
        return len(self.files)

    def _get(self, path: Path) -> np.ndarray | None:
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        try:
            x = load_audio(path, self.sample_rate)
        except AudioReadError as exc:
            logger.warning("skipping %s: %s", path, exc)
            self._bad.add(path)
            return None
        self._cache[path] = x
        if len(self._cache) > self._cache_files:
            self._cache.popitem(last=False)
        return x

    def excerpt(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, str]:
        """Return ``n`` samples from a random file and a description ``relpath@start_s``."""
        for _ in range(20):
            path = self.files[int(rng.integers(len(self.files)))]
            if path in self._bad:
                continue
            x = self._get(path)
            if x is None or x.size < self.sample_rate // 10:
                continue
            if x.size >= n:
                i0 = int(rng.integers(0, x.size - n + 1))
                out = x[i0 : i0 + n]
            else:
                i0 = 0
                reps = int(np.ceil(n / x.size))
                out = np.tile(x, reps)[:n]
            rel = path.relative_to(self.root).as_posix()
            return out.astype(np.float32, copy=True), f"{rel}@{i0 / self.sample_rate:.2f}"
        raise AudioReadError(f"no readable recordings below {self.root}")
