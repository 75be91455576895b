"""Live capture with pyaudio: the microphone as an :class:`edge.core.ports.AudioSource`.

Chunks are float32 mono at the model rate (or an integer multiple of it), each with its absolute
stream sample index and the UTC time of its first sample; the device is reopened after a loss.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator

import numpy as np

from edge.adapters.audio.replay import _convert, delivery_rate
from edge.adapters.system.clock import clock_synchronized
from edge.core.errors import AudioDeviceError, YellowhammerError
from edge.core.records import AudioChunk, Check
from edge.core.resample import Resampler

log = logging.getLogger(__name__)

_PA_INT16 = 8  # paInt16
_PA_CONTINUE = 0
_PA_INPUT_OVERFLOW = 0x2
_PREFERRED_RATES = (48000, 44100, 32000, 96000, 24000, 22050, 16000)


def _load_pyaudio():
    try:
        import pyaudio  # type: ignore[import-not-found]
    except ImportError:
        raise AudioDeviceError(
            "pyaudio is not installed: install the 'mic' extra (pip install 'yellowhammer[mic]'; "
            "on Debian first: apt install portaudio19-dev)"
        ) from None
    return pyaudio


class MicSource:
    """Live capture from a PortAudio input device via pyaudio, in callback mode.

    The PortAudio callback only copies bytes into a bounded queue, counting input overflows
    and chunks dropped because processing fell behind. When no audio arrives for
    ``stall_seconds`` or the stream dies (USB microphone unplugged), the source closes
    PortAudio, waits with backoff, rescans the devices and reopens, starting a new stream.

    Parameters
    ----------
    device
        Device index, or a case-insensitive substring of its name; None for the default input.
    sample_rate
        Model rate to deliver.
    rate_multiples
        Deliver a capture rate that is an integer multiple of the model rate as it is (see
        :func:`delivery_rate`).
    capture_rate
        Rate to open the device at; 0 picks the first rate the device supports from
        48k, 44.1k, 32k, 96k, 24k, 22.05k, 16k and its default.
    backend
        The pyaudio module, or a stand-in with the same interface (tests replay recordings).
    """

    def __init__(
        self,
        device: int | str | None,
        sample_rate: int,
        chunk_seconds: float = 0.5,
        capture_rate: int = 0,
        backend=None,
        stall_seconds: float = 5.0,
        max_backoff: float = 60.0,
        queue_seconds: float = 30.0,
        rate_multiples: bool = False,
    ) -> None:
        self.device = device
        self.sample_rate = int(sample_rate)
        self.rate_multiples = rate_multiples
        self.chunk_seconds = float(chunk_seconds)
        self.capture_rate = int(capture_rate)
        self._backend = backend
        self.stall_seconds = max(float(stall_seconds), 2.0 * self.chunk_seconds)  # a block must arrive
        self.max_backoff = max_backoff
        self.queue_seconds = queue_seconds
        self.name = f"mic:{device if device is not None else 'default'}"
        self._stats = {
            "state": "closed",
            "device": "",
            "capture_rate": 0,
            "overflows": 0,
            "dropped_chunks": 0,  # blocks lost because processing fell behind (the queue was full)
            "dropped_seconds": 0.0,
            "reopens": 0,
            "errors": 0,
            "seconds": 0.0,
            "last_error": "",
        }

    def stats(self) -> dict:
        return dict(self._stats)

    # -- device selection -------------------------------------------------------------
    def _find_device(self, pa) -> tuple[int, dict]:
        inputs = []
        for i in range(pa.get_device_count()):
            info = pa.get_device_info_by_index(i)
            if int(info.get("maxInputChannels", 0)) > 0:
                inputs.append((i, info))
        if not inputs:
            raise AudioDeviceError("no audio input device found (is the USB microphone plugged in?)")
        if self.device is None or self.device == "":
            try:
                info = pa.get_default_input_device_info()
                return int(info["index"]), info
            except (OSError, KeyError):
                return inputs[0]
        if isinstance(self.device, int) or str(self.device).isdigit():
            idx = int(self.device)
            for i, info in inputs:
                if i == idx:
                    return i, info
            raise AudioDeviceError(f"no input device with index {idx}; inputs: {_names(inputs)}")
        want = str(self.device).lower()
        for i, info in inputs:
            if want in str(info.get("name", "")).lower():
                return i, info
        raise AudioDeviceError(f"no input device matching {self.device!r}; inputs: {_names(inputs)}")

    def _pick_rate(self, pa, index: int, info: dict, channels: int) -> int:
        # The model rate first, then 48 kHz (what most USB microphones offer): either goes into
        # the frontend without a resampler when the pipeline takes rate multiples. Other rates
        # (44.1 kHz) are resampled, the largest single CPU cost of the always-on path.
        candidates = [self.capture_rate] if self.capture_rate else [self.sample_rate]
        candidates += list(_PREFERRED_RATES) + [int(float(info.get("defaultSampleRate", 48000)))]
        for rate in candidates:
            try:
                if pa.is_format_supported(
                    rate, input_device=index, input_channels=channels, input_format=_PA_INT16
                ):
                    return rate
            except ValueError:
                continue
        raise AudioDeviceError(f"device {info.get('name')!r} supports none of the rates {candidates}")

    # -- capture loop -----------------------------------------------------------------
    def chunks(self, stop: threading.Event | None = None) -> Iterator[AudioChunk]:
        stop = stop or threading.Event()
        backoff = 1.0
        while not stop.is_set():
            try:
                produced = False
                for chunk in self._capture_once(stop):
                    produced = True
                    backoff = 1.0
                    yield chunk
                if stop.is_set():
                    break
                if not produced:
                    raise AudioDeviceError("the input stream delivered no audio")
            except AudioDeviceError as exc:
                self._stats["errors"] += 1
                self._stats["last_error"] = str(exc)
                self._stats["state"] = "waiting for device"
                log.warning("microphone: %s; retrying in %.0f s", exc, backoff)
            self._stats["reopens"] += 1
            stop.wait(backoff)
            backoff = min(backoff * 2, self.max_backoff)
        self._stats["state"] = "closed"

    def _capture_once(self, stop: threading.Event) -> Iterator[AudioChunk]:
        """Open the device and yield chunks until ``stop``; AudioDeviceError when it fails or stalls."""
        backend = self._backend or _load_pyaudio()
        try:
            pa = backend.PyAudio()
        except Exception as exc:  # PortAudio init failures surface as various types
            raise AudioDeviceError(f"cannot initialise PortAudio: {exc}") from None
        stream = None
        try:
            q: queue.Queue[bytes] = queue.Queue(maxsize=max(2, int(self.queue_seconds / self.chunk_seconds)))
            stream, name, rate, channels = self._open_stream(pa, q)
            yield from self._chunks(stop, q, stream, name, rate, channels)
        finally:
            if stream is not None:
                _safe(stream.stop_stream)
                _safe(stream.close)
            _safe(pa.terminate)

    def _open_stream(self, pa, q: queue.Queue):
        """Find the device, pick a rate and channel count it opens with, start a callback stream
        that puts raw int16 buffers into ``q``; returns (stream, device name, rate, channels)."""
        index, info = self._find_device(pa)
        try:
            channels = 1
            rate = self._pick_rate(pa, index, info, channels)
        except AudioDeviceError:  # some interfaces only open with all their channels
            channels = int(info.get("maxInputChannels", 1))
            rate = self._pick_rate(pa, index, info, channels)

        def callback(in_data, frame_count, time_info, status):
            if status & _PA_INPUT_OVERFLOW:
                self._stats["overflows"] += 1
            try:
                q.put_nowait(in_data)
            except queue.Full:
                self._stats["dropped_chunks"] += 1
                self._stats["dropped_seconds"] += frame_count / rate
            return (None, _PA_CONTINUE)

        try:
            stream = pa.open(format=_PA_INT16, channels=channels, rate=rate, input=True, input_device_index=index,
                             frames_per_buffer=max(1, int(rate * self.chunk_seconds)), stream_callback=callback)  # fmt: skip
            stream.start_stream()
        except (OSError, ValueError) as exc:
            raise AudioDeviceError(f"cannot open {info.get('name')!r} at {rate} Hz: {exc}") from None
        return stream, str(info.get("name", index)), rate, channels

    def _chunks(
        self, stop, q: queue.Queue, stream, name: str, rate: int, channels: int
    ) -> Iterator[AudioChunk]:
        """Convert and resample the queued buffers into timestamped chunks (sample clock anchored on
        the wall clock, re-anchored when they drift apart by more than a second)."""
        self._stats.update(state="capturing", device=name, capture_rate=rate)
        out_rate = delivery_rate(rate, self.sample_rate, self.rate_multiples)
        log.info("microphone: capturing from %r at %d Hz (delivering %d Hz)", name, rate, out_rate)
        res = Resampler(rate, out_rate)
        emitted, t0, first = 0, None, True
        while not stop.is_set():
            try:
                data = q.get(timeout=self.stall_seconds)
            except queue.Empty:
                active = _safe(stream.is_active, False)
                raise AudioDeviceError(f"no audio from {name!r} for {self.stall_seconds:.0f} s"
                                       + ("" if active else " (stream stopped: device unplugged?)")) from None  # fmt: skip
            x = np.frombuffer(data, dtype="<i2").astype(np.float32)
            x *= 1.0 / 32768.0  # in place; exact (a power of two)
            y = _convert(res, x.reshape(-1, channels))
            now = time.time()
            if y.size == 0:
                continue
            expected_start = now - y.shape[0] / out_rate
            if t0 is None or abs(t0 + emitted / out_rate - expected_start) > 1.0:
                if t0 is not None:
                    log.info("microphone: re-anchoring timestamps (sample clock drifted)")
                t0 = expected_start - emitted / out_rate
            yield AudioChunk(samples=y, sample_rate=out_rate, start_sample=emitted, start_time=t0 + emitted / out_rate,
                             clock_synced=clock_synchronized(), source=f"mic:{name}", stream_start=first)  # fmt: skip
            first = False
            emitted += y.shape[0]
            self._stats["seconds"] += y.shape[0] / out_rate


def _names(inputs) -> str:
    return ", ".join(f"{i}: {info.get('name')}" for i, info in inputs)


def _safe(fn, default=None):
    """Call a PortAudio teardown function whose failure must not mask the real error."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - a dead device raises anything on teardown
        log.debug("ignored during teardown: %s", exc)
        return default


def list_input_devices(backend=None) -> list[dict]:
    """Input devices as dicts with index, name, channels and default rate (for `doctor`)."""
    backend = backend or _load_pyaudio()
    pa = backend.PyAudio()
    try:
        out = []
        for i in range(pa.get_device_count()):
            info = pa.get_device_info_by_index(i)
            if int(info.get("maxInputChannels", 0)) > 0:
                out.append(
                    {
                        "index": i,
                        "name": info.get("name"),
                        "channels": int(info["maxInputChannels"]),
                        "default_rate": int(float(info.get("defaultSampleRate", 0))),
                    }
                )
        return out
    finally:
        _safe(pa.terminate)


def check(device: str) -> Check:
    """Doctor: is there an input device, and the one ``audio.device`` names?"""
    try:
        devices = list_input_devices()
    except YellowhammerError as exc:
        return Check("microphone", "fail", str(exc), "install the 'mic' extra and portaudio19-dev")
    except OSError as exc:
        return Check(
            "microphone", "fail", f"PortAudio failed: {exc}", "no sound subsystem access (audio group?)"
        )
    names = ", ".join(f"{x['index']}: {x['name']}" for x in devices)
    if not devices:
        return Check("microphone", "fail", "no input device",
                     "USB microphone unplugged or not recognised (check `arecord -l`), or this user is not in "
                     "the audio group")  # fmt: skip
    if device and not any((device.isdigit() and int(device) == x["index"]) or device.lower() in str(x["name"]).lower()
                          for x in devices):  # fmt: skip
        return Check(
            "microphone", "fail", f"no input device matches {device!r}; inputs: {names}", "audio.device typo"
        )
    return Check("microphone", "ok", names)
