"""A stand-in for the ``pyaudio`` module that "records" from a WAV file.

Pass an instance as ``MicSource(..., backend=FakePyAudioModule(...))``. It implements the parts
of the pyaudio API the source uses (device enumeration, ``is_format_supported``, ``open`` in
callback mode, ``start_stream``/``stop_stream``/``close``/``is_active``, ``terminate``) and can:

- replay faster than real time (``speed``), in blocks of ``frames_per_buffer`` frames, 16-bit;
- simulate an **unplug**: after ``unplug_at_s`` seconds of audio the callbacks stop and the
  stream goes inactive; the next ``missing_opens`` PortAudio initialisations see no input device;
  then the device is back and the recording goes on where it stopped (audio while unplugged is
  lost in reality; here nothing is skipped so tests can account for every sample);
- flag **input overflows** on chosen callbacks (``overflow_every``).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from edge.adapters.audio.wavfile import read_wav

paInt16 = 8
paContinue = 0
paInputOverflow = 0x2


class FakePyAudioModule:
    """The module object: ``backend.PyAudio()`` returns a new :class:`FakePyAudio`."""

    paInt16 = paInt16
    paContinue = paContinue

    def __init__(
        self,
        wav: str | Path,
        device_name: str = "USB Audio Device: fake (hw:1,0)",
        speed: float = 50.0,
        unplug_at_s: float | None = None,
        missing_opens: int = 1,
        overflow_every: int = 0,
        supported_rates: tuple[int, ...] = (48000, 44100),
    ) -> None:
        audio, self.rate = read_wav(wav)
        self.pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")
        self.device_name = device_name
        self.speed = speed
        self.unplug_at = None if unplug_at_s is None else int(unplug_at_s * self.rate)
        self.missing_opens = missing_opens
        self.overflow_every = overflow_every
        self.supported_rates = supported_rates
        self.position = 0  # next frame of the file to deliver
        self.unplugged = False
        self.inits = 0
        self.opens = 0
        self.callbacks = 0
        self.overflows_flagged = 0
        self.lock = threading.Lock()

    @property
    def finished(self) -> bool:
        return self.position >= self.pcm.shape[0]

    def PyAudio(self):  # noqa: N802 - pyaudio's spelling
        with self.lock:
            self.inits += 1
            present = True
            if self.unplugged:
                if self.missing_opens > 0:
                    self.missing_opens -= 1
                    present = False
                else:
                    self.unplugged = False  # replugged
        return FakePyAudio(self, present)


class FakePyAudio:
    def __init__(self, module: FakePyAudioModule, present: bool) -> None:
        self.m = module
        self.present = present
        self._devices = [
            {"index": 0, "name": "bcm2835 Headphones", "maxInputChannels": 0, "defaultSampleRate": 48000.0},
        ]
        if present:
            self._devices.append(
                {
                    "index": 1,
                    "name": module.device_name,
                    "maxInputChannels": module.pcm.shape[1],
                    "defaultSampleRate": float(module.rate),
                }
            )

    def get_device_count(self) -> int:
        return len(self._devices)

    def get_device_info_by_index(self, i: int) -> dict:
        return dict(self._devices[i])

    def get_default_input_device_info(self) -> dict:
        for d in self._devices:
            if d["maxInputChannels"] > 0:
                return dict(d)
        raise OSError("No Default Input Device Available")

    def is_format_supported(self, rate, input_device=None, input_channels=None, input_format=None) -> bool:
        dev = self._devices[input_device]
        if (
            input_channels > dev["maxInputChannels"]
            or rate not in self.m.supported_rates
            or rate != self.m.rate
        ):
            raise ValueError("Invalid sample rate")
        return True

    def open(self, format, channels, rate, input, input_device_index, frames_per_buffer, stream_callback):  # noqa: A002
        if not self.present:
            raise OSError("[Errno -9996] Invalid input device (no default output device)")
        self.m.opens += 1
        return FakeStream(self.m, channels, frames_per_buffer, stream_callback)

    def terminate(self) -> None:
        pass


class FakeStream:
    def __init__(self, m: FakePyAudioModule, channels: int, frames: int, callback) -> None:
        self.m = m
        self.channels = channels
        self.frames = frames
        self.callback = callback
        self._active = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start_stream(self) -> None:
        self._active = True
        self._thread = threading.Thread(target=self._run, name="fake-portaudio", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        m = self.m
        period = self.frames / m.rate / m.speed
        while not self._stop.is_set():
            with m.lock:
                if m.finished:
                    return  # the "room" went silent for good: no more callbacks
                end = min(m.position + self.frames, m.pcm.shape[0])
                if m.unplug_at is not None and m.position < m.unplug_at <= end:
                    end = m.unplug_at
                block = m.pcm[m.position : end, : self.channels]  # the channels that were opened
                m.position = end
                m.callbacks += 1
                status = 0
                if m.overflow_every and m.callbacks % m.overflow_every == 0:
                    status = paInputOverflow
                    m.overflows_flagged += 1
                unplug_now = m.unplug_at is not None and end == m.unplug_at
            if block.shape[0]:
                self.callback(np.ascontiguousarray(block).tobytes(), block.shape[0], {}, status)
            if unplug_now:
                with m.lock:
                    m.unplug_at = None
                    m.unplugged = True
                self._active = False
                return  # the device is gone: the stream dies silently, as USB unplugs do
            time.sleep(period)

    def is_active(self) -> bool:
        return self._active

    def stop_stream(self) -> None:
        self._stop.set()
        self._active = False
        if self._thread is not None:
            self._thread.join(5)

    def close(self) -> None:
        self.stop_stream()
