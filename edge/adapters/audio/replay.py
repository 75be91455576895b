"""WAV replay: recordings as an :class:`edge.core.ports.AudioSource` (``yh-edge analyze``, the
daemon's replay mode, evaluations and tests).

Chunks are float32 mono at the model rate (or an integer multiple of it), each with its absolute
stream sample index and the UTC time of its first sample; see :mod:`.mic` for live capture.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge.adapters.audio.sfreader import audio_suffixes, open_audio
from edge.adapters.audio.wavfile import to_mono
from edge.adapters.system.clock import clock_synchronized
from edge.contract.detection import MAX_FUTURE_S, MIN_TIME
from edge.contract.wire import clean_text
from edge.core.errors import AudioFormatError
from edge.core.frontend import MAX_RATE_MULTIPLE
from edge.core.records import AudioChunk, Check
from edge.core.resample import Resampler

log = logging.getLogger(__name__)

WAV_SUFFIXES = (".wav", ".wave")
# AudioMoth / Song Meter style names: ..._20190522_064500.wav or 20190522T064500
_STAMP = re.compile(r"(\d{8})[_T-]?(\d{6})")


def delivery_rate(in_rate: int, model_rate: int, rate_multiples: bool) -> int:
    """The rate a source delivers: ``in_rate`` itself when ``rate_multiples`` allows it and it
    is 1 to ``MAX_RATE_MULTIPLE`` times the model rate (the pipeline's frontend then analyses
    it without resampling, see :meth:`edge.core.frontend.FrontendConfig.for_input_rate`), else the
    model rate."""
    k, rem = divmod(int(in_rate), int(model_rate))
    if rate_multiples and not rem and 1 <= k <= MAX_RATE_MULTIPLE:
        return int(in_rate)
    return int(model_rate)


def expand_paths(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Files as given, and every WAV below each directory (sorted; also FLAC, MP3 and Ogg where
    ``soundfile`` is installed); missing paths are kept so the reader reports them."""
    out: list[Path] = []
    suffixes = audio_suffixes()
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.suffix.lower() in suffixes and q.is_file()))
        else:
            out.append(p)
    return out


def _warn_if_not_utf8(path: Path) -> None:
    """One line for a file name that is not UTF-8 (Latin-1 names from a FAT stick): its songs are
    stored, under the name with the odd bytes written as ``\\xNN``."""
    name = str(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        log.warning("replay: file name is not UTF-8; its songs are stored as source %s", clean_text(name))


def file_start_time(path: Path, duration: float) -> float:
    """UTC start of a recording: from a timestamp in its name, else its mtime minus its length.

    A name's time outside what the server accepts (2000-01-01 to a day ahead: an AudioMoth whose
    clock was never set names its files 19700101_...) is not taken; one warning line says so."""
    m = _STAMP.search(path.stem)
    if m:
        try:
            dt = datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
            t = dt.timestamp()
        except ValueError:
            t = None
        if t is not None and MIN_TIME <= t <= time.time() + MAX_FUTURE_S:
            return t
        if t is not None:
            log.warning("%s: the time in its name (%s) is not between 2000-01-01 and tomorrow (recorder clock "
                        "not set?); using the file's modification time instead", clean_text(str(path)),
                        m.group(0))  # fmt: skip
    try:
        return path.stat().st_mtime - duration
    except OSError:
        return time.time()


def _convert(res: Resampler, x: np.ndarray) -> np.ndarray:
    """Freshly decoded ``(frames, channels)`` float32 -> mono at the delivery rate. The decoded
    block is ours, so one channel is passed on as a view and the delivery rate as it is: no
    copies on the always-on path (to_mono and a pass-through resampler would copy)."""
    mono = x[:, 0] if x.shape[1] == 1 else to_mono(x)
    return mono if res.passthrough else res.process(mono)


class ReplaySource:
    """Stream WAV files (or folders of them; FLAC, MP3 and Ogg with ``soundfile``) as canonical chunks.

    A file whose rate cannot hold the frontend's top band (a 16-kHz recorder holds nothing above
    8 kHz; the frontend reads up to ``fmax``) is logged once per rate: the detector then sees
    empty top bands.

    Parameters
    ----------
    paths
        Files and/or directories (searched recursively for ``*.wav``).
    sample_rate
        Model rate to resample to.
    rate_multiples
        Deliver files whose rate is an integer multiple of the model rate (48 kHz) as they
        are, for a pipeline whose frontend takes them directly (see :func:`delivery_rate`).
    chunk_seconds
        Length of the chunks read from each file.
    realtime
        Pace output to the wall clock (stands in for a microphone); otherwise as fast as possible.
    timestamps
        ``"file"``: times from the file name or mtime; ``"now"``: each file starts at the wall
        clock when it is opened (as a live capture would).
    loop
        Start again from the first file after the last one.
    on_error
        Called with ``(path, AudioFormatError)`` for a file that cannot be read; the source
        logs it and goes on with the next file.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        sample_rate: int,
        chunk_seconds: float = 0.5,
        realtime: bool = False,
        timestamps: str = "file",
        loop: bool = False,
        on_error: Callable[[Path, AudioFormatError], None] | None = None,
        rate_multiples: bool = False,
    ) -> None:
        if timestamps not in ("file", "now"):
            raise ValueError("timestamps must be 'file' or 'now'")
        self.paths = list(paths)
        self.sample_rate = int(sample_rate)
        self.rate_multiples = rate_multiples
        self.chunk_seconds = float(chunk_seconds)
        self.realtime = realtime
        self.timestamps = timestamps
        self.loop = loop
        self.on_error = on_error
        self.name = (
            "replay:" + ",".join(str(p) for p in self.paths[:3]) + ("..." if len(self.paths) > 3 else "")
        )
        self.fmax_hz: float | None = None  # the frontend's top (set by the caller), for the warning
        self._warned_rates: set[int] = set()
        self._stats = {"files_done": 0, "files_failed": 0, "seconds": 0.0, "state": "idle", "current": ""}

    def stats(self) -> dict:
        return dict(self._stats)

    def chunks(self, stop: threading.Event | None = None) -> Iterator[AudioChunk]:
        stop = stop or threading.Event()
        while not stop.is_set():
            files = expand_paths(self.paths)
            if not files:
                log.warning("replay: no WAV files under %s", self.paths)
                return
            for path in files:
                if stop.is_set():
                    return
                yield from self._stream_file(path, stop)
            if not self.loop:
                break
        self._stats["state"] = "finished"

    def _stream_file(self, path: Path, stop: threading.Event) -> Iterator[AudioChunk]:
        try:
            reader = open_audio(path)
        except AudioFormatError as exc:
            self._failed(path, exc)
            return
        with reader:
            info = reader.info
            self._warn_band_limited(path, info.sample_rate)
            _warn_if_not_utf8(path)
            self._stats.update(state="replaying", current=str(path))
            synced = clock_synchronized() if self.timestamps == "now" else False
            t0 = time.time() if self.timestamps == "now" else file_start_time(path, info.duration)
            wall0 = time.monotonic()
            rate = delivery_rate(info.sample_rate, self.sample_rate, self.rate_multiples)
            res = Resampler(info.sample_rate, rate)
            block = max(1, int(round(self.chunk_seconds * info.sample_rate)))
            emitted = 0
            first = True
            while not stop.is_set():
                try:
                    raw = reader.read(block)
                except AudioFormatError as exc:
                    self._failed(path, exc)
                    return
                last = raw.shape[0] == 0
                y = res.flush() if last else _convert(res, raw)
                if y.size:
                    yield AudioChunk(
                        samples=y,
                        sample_rate=rate,
                        start_sample=emitted,
                        start_time=t0 + emitted / rate,
                        clock_synced=synced,
                        source=str(path),
                        stream_start=first,
                    )
                    first = False
                    emitted += y.shape[0]
                    self._stats["seconds"] += y.shape[0] / rate
                    if self.realtime:
                        ahead = emitted / rate - (time.monotonic() - wall0)
                        if ahead > 0:
                            stop.wait(ahead)
                if last:
                    break
            self._stats["files_done"] += 1

    def _warn_band_limited(self, path: Path, rate: int) -> None:
        fmax = self.fmax_hz
        if fmax is None:
            from edge.core.frontend import FrontendConfig

            fmax = FrontendConfig().fmax
        if rate / 2 < fmax and rate not in self._warned_rates:
            self._warned_rates.add(rate)
            log.warning(
                "%s: recorded at %d Hz, which holds nothing above %.0f Hz; the frontend reads up to "
                "%.0f Hz, so its top bands are empty (detector scores may be lower; shown once per rate)",
                path, rate, rate / 2, fmax,
            )  # fmt: skip

    def _failed(self, path: Path, exc: AudioFormatError) -> None:
        self._stats["files_failed"] += 1
        log.error("skipping unreadable audio: %s", exc)
        if self.on_error:
            self.on_error(path, exc)


# pyaudio constants we need, so this module imports without pyaudio installed
_PA_INT16 = 8


def check(replay_path: str) -> Check:
    """Doctor: do the replay files exist?"""
    missing = [p for p in replay_path.split(":") if p and not Path(p).exists()]
    if not replay_path or missing:
        return Check("audio", "fail",
                     f"replay source without files ({missing[0] if missing else 'audio.replay_path empty'})",
                     "audio.replay_path typo")  # fmt: skip
    return Check("audio", "ok", f"replay {replay_path}")
