"""Song audio saved on the device (opt-in, off by default for privacy) under a disk quota: the
:class:`~edge.core.ports.ClipSink` of the recorder, and the policy that picks songs to upload.

Clips are written at the model rate (24 kHz; a 48-kHz stream is halved by the project's
resampler) as 16-bit WAV, or as FLAC where the ``soundfile`` package is installed (the Pi
runtime does not need it; ``apt install python3-soundfile`` or ``pip install soundfile`` adds it).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.adapters.audio.wavfile import write_wav

log = logging.getLogger(__name__)

CLIP_RATE = 24000
CODECS = ("wav", "flac")


def flac_available() -> bool:
    """Whether this installation can write FLAC (the optional ``soundfile`` package with libsndfile)."""
    try:
        import soundfile

        return "FLAC" in soundfile.available_formats()
    except (ImportError, OSError):
        return False


def pick_codec(fmt: str) -> str:
    """``auto`` -> ``flac`` where it can be written, else ``wav``; ``flac`` falls back to ``wav``
    with a warning when it cannot."""
    if fmt == "wav":
        return "wav"
    if flac_available():
        return "flac"
    if fmt == "flac":
        log.warning("clips: FLAC asked for but the soundfile package is not installed; writing WAV")
    return "wav"


def encode_clip(path: Path, audio: np.ndarray, sample_rate: int, codec: str) -> None:
    """Write float audio as a 16-bit clip at ``sample_rate``, atomically (``.part`` then rename)."""
    if codec == "wav":
        write_wav(path, audio, sample_rate)
        return
    import soundfile

    tmp = path.with_name(path.name + ".part")
    pcm = np.round(np.clip(np.asarray(audio, np.float64), -1.0, 1.0) * 32767.0).astype(np.int16)
    soundfile.write(str(tmp), pcm, int(sample_rate), format="FLAC", subtype="PCM_16")
    os.replace(tmp, path)


def to_clip_rate(audio: np.ndarray, sample_rate: int, rate: int = CLIP_RATE) -> tuple[np.ndarray, int]:
    """Audio at ``rate`` (the model rate): streams at a multiple of it are resampled down; others
    are kept as they are."""
    if sample_rate == rate or sample_rate % rate:
        return audio, sample_rate
    from edge.core.resample import resample

    return resample(np.asarray(audio, np.float32), sample_rate, rate), rate


class UploadPolicy:
    """Which songs' clips are uploaded: at most ``per_hour`` songs of each UTC hour of song time,
    the first to come (0: only the ones the server asks for).

    No I/O: the store counts what it queued (:meth:`take`, inside its transaction) and seeds the
    counts at start from its own table (:meth:`seed`); the clip saver asks :meth:`has_room`
    before it writes a clip that is kept only for upload.
    """

    def __init__(self, per_hour: int) -> None:
        self.per_hour = int(per_hour)
        self._counts: dict[int, int] = {}

    @staticmethod
    def hour(start_time: float) -> int:
        return int(start_time // 3600)

    def give_back(self, start_time: float) -> None:
        """Undo a :meth:`take` whose upload was not queued after all."""
        h = self.hour(start_time)
        if self._counts.get(h, 0) > 0:
            self._counts[h] -= 1

    def seed(self, counts: dict[int, int]) -> None:
        self._counts.update(counts)

    def has_room(self, start_time: float) -> bool:
        return self._counts.get(self.hour(start_time), 0) < self.per_hour

    def take(self, start_time: float) -> bool:
        """Count one upload in its hour; False when the hour's share is used up."""
        h = self.hour(start_time)
        if self._counts.get(h, 0) >= self.per_hour:
            return False
        self._counts[h] = self._counts.get(h, 0) + 1
        if len(self._counts) > 48:  # only recent hours matter
            for old in sorted(self._counts)[:-48]:
                del self._counts[old]
        return True


class ClipSaver:
    """Saving of songs' audio under a disk quota (off by default: privacy).

    Clips go to ``<dir>/<YYYY-MM-DD>/<detection id>.<wav|flac>``; when the total would exceed the
    quota the oldest clips are deleted first, except clips still waiting for upload (``protect``
    returns their paths) unless nothing else is left. No clip is written while free space is
    below ``min_free_bytes``.

    Parameters
    ----------
    keep_all
        Save every song (``store.save_clips``). Otherwise only songs the upload ``policy`` has
        room for are written (the store then queues them for upload).
    """

    def __init__(self, directory: str | os.PathLike, quota_bytes: int, min_free_bytes: int = 0,
                 codec: str = "wav", keep_all: bool = True, policy: UploadPolicy | None = None,
                 protect: Callable[[], set[str]] | None = None) -> None:  # fmt: skip
        if codec not in CODECS:
            raise ValueError(f"clip codec must be one of {CODECS}")
        self.dir = Path(directory)
        self.quota = int(quota_bytes)
        self.min_free = int(min_free_bytes)
        self.codec = codec
        self.keep_all = keep_all
        self.policy = policy
        self.protect = protect
        self.saved = 0
        self.skipped = 0
        self.deleted = 0
        self.cpu_s = 0.0
        self._files: list[tuple[float, int, Path]] = []  # (mtime, size, path), oldest first
        self._total = 0
        if self.dir.exists():
            for p in [*self.dir.rglob("*.wav"), *self.dir.rglob("*.flac")]:
                try:
                    st = p.stat()
                except OSError:
                    continue
                self._files.append((st.st_mtime, st.st_size, p))
                self._total += st.st_size
            self._files.sort()

    @property
    def total_bytes(self) -> int:
        return self._total

    def wanted(self, start_time: float) -> bool:
        """Whether a song of this time is to be saved at all."""
        return self.keep_all or (self.policy is not None and self.policy.has_room(start_time))

    def save(self, detection_id: str, audio: np.ndarray, sample_rate: int, start_time: float) -> str | None:
        """Write one clip; returns its path, or None when skipped (not wanted, no space, quota)."""
        if not self.wanted(start_time):
            return None
        t0 = time.thread_time()
        try:
            return self._save(detection_id, audio, sample_rate, start_time)
        finally:
            self.cpu_s += time.thread_time() - t0

    def _save(self, detection_id: str, audio: np.ndarray, sample_rate: int, start_time: float) -> str | None:
        audio, sample_rate = to_clip_rate(audio, sample_rate)
        size = 44 + 2 * int(audio.shape[0])  # the WAV size: an upper bound for FLAC too
        if size > self.quota:
            self.skipped += 1
            return None
        try:
            if (
                shutil.disk_usage(self.dir if self.dir.exists() else self.dir.parent).free
                < self.min_free + size
            ):
                self.skipped += 1
                log.debug("clips: skipped %s (low disk space)", detection_id)
                return None
        except OSError:
            pass
        self.make_room(size)
        day = time.strftime("%Y-%m-%d", time.gmtime(start_time))
        path = self.dir / day / f"{detection_id}.{self.codec}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(self.dir, 0o750)  # people may be audible: not world-readable
            encode_clip(path, audio, sample_rate, self.codec)
            size = path.stat().st_size
        except (OSError, RuntimeError) as exc:  # soundfile raises RuntimeError subclasses
            self.skipped += 1
            log.warning("clips: could not save %s: %s", path, exc)
            try:
                path.with_name(path.name + ".part").unlink(missing_ok=True)
            except OSError:
                pass
            return None
        self._files.append((time.time(), size, path))
        self._total += size
        self.saved += 1
        return str(path)

    def make_room(self, need: int) -> None:
        """Delete the oldest clips until ``need`` more bytes fit under the quota (clips waiting
        for upload last)."""
        while self._files and self._total + need > self.quota:
            if not self.delete_oldest(spare_pending=True) and not self.delete_oldest():
                break

    def delete_oldest(self, spare_pending: bool = False) -> int:
        """Delete the oldest clip (with ``spare_pending``: the oldest not waiting for upload);
        returns the bytes freed (0 when there is none)."""
        if not self._files:
            return 0
        i = 0
        if spare_pending and self.protect is not None:
            keep = self.protect()
            i = next((j for j, f in enumerate(self._files) if str(f[2]) not in keep), -1)
            if i < 0:
                return 0
        _, size, path = self._files.pop(i)
        self._total -= size
        try:
            path.unlink(missing_ok=True)
            self.deleted += 1
        except OSError as exc:
            log.warning("clips: could not delete %s: %s", path, exc)
        return size

    def stats(self) -> dict:
        return {
            "clips_bytes": self._total,
            "clips": len(self._files),
            "clips_saved": self.saved,
            "clips_skipped": self.skipped,
            "clips_deleted": self.deleted,
            "codec": self.codec,
            "cpu_s": round(self.cpu_s, 4),
        }
