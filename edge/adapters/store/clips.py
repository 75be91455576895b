"""Song audio saved on the device (opt-in, off by default for privacy) under a disk quota: the
:class:`~edge.core.ports.ClipSink` of the recorder."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from edge.adapters.audio.wavfile import write_wav

log = logging.getLogger(__name__)


class ClipSaver:
    """Optional saving of each song's audio (off by default: privacy) under a disk quota.

    Clips go to ``<dir>/<YYYY-MM-DD>/<detection id>.wav``; when the total would exceed the quota
    the oldest clips are deleted first. No clip is written while free space is below
    ``min_free_bytes``.
    """

    def __init__(self, directory: str | os.PathLike, quota_bytes: int, min_free_bytes: int = 0) -> None:
        self.dir = Path(directory)
        self.quota = int(quota_bytes)
        self.min_free = int(min_free_bytes)
        self.saved = 0
        self.skipped = 0
        self.deleted = 0
        self._files: list[tuple[float, int, Path]] = []  # (mtime, size, path), oldest first
        self._total = 0
        if self.dir.exists():
            for p in self.dir.rglob("*.wav"):
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

    def save(self, detection_id: str, audio: np.ndarray, sample_rate: int, start_time: float) -> str | None:
        """Write one clip; returns its path, or None when skipped (no space, quota too small)."""
        size = 44 + 2 * int(audio.shape[0])
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
        path = self.dir / day / f"{detection_id}.wav"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_wav(path, audio, sample_rate)
        except OSError as exc:
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
        """Delete the oldest clips until ``need`` more bytes fit under the quota."""
        while self._files and self._total + need > self.quota:
            self.delete_oldest()

    def delete_oldest(self) -> int:
        """Delete the oldest clip; returns the bytes freed (0 when there is none)."""
        if not self._files:
            return 0
        _, size, path = self._files.pop(0)
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
        }
