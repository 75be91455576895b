"""The microphone source on a fake pyaudio that replays a WAV: resampling, overflows, device
loss and return (unplug/replug), device selection, and the pipeline and daemon on top of it."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edge.adapters.audio.mic import MicSource, list_input_devices
from edge.adapters.audio.wavfile import read_wav, write_wav
from edge.app.compose import build_pipeline
from edge.app.config import load_config
from edge.app.daemon import Daemon, SystemdNotifier
from edge.core.errors import AudioDeviceError
from edge.core.resample import resample
from tests.edge.fake_pyaudio import FakePyAudioModule
from tests.edge.helpers import SR, make_song_stream, write_config

TIMEOUT = 60.0


@pytest.fixture(scope="module")
def mic_wav(tmp_path_factory):
    """Four songs with 3 s gaps, as a 48 kHz stereo recording (what a USB microphone gives)."""
    d = tmp_path_factory.mktemp("mic")
    mono = d / "mono.wav"
    truth = make_song_stream(
        mono, ["song_XlB.wav", "song_BC.wav", "song_BhBl.wav", "song_XsB.wav"], gap_s=3.0
    )
    x, _ = read_wav(mono)
    up = resample(x[:, 0], SR, 48000)
    stereo = np.stack([up, 0.9 * up], axis=1)
    write_wav(d / "mic48k.wav", stereo, 48000)
    return d / "mic48k.wav", truth, up.shape[0]


def mic(fake, **kw) -> MicSource:
    kw.setdefault("stall_seconds", 0.3)
    kw.setdefault("queue_seconds", 600.0)  # never drop in tests: the consumer may be slow
    return MicSource("USB", SR, chunk_seconds=0.25, backend=fake, **kw)


def collect(source: MicSource, fake: FakePyAudioModule, want_samples: int):
    """Chunks until ``want_samples`` (at the model rate) arrived or the fake ran dry."""
    stop = threading.Event()
    chunks = []
    got = 0
    deadline = time.monotonic() + TIMEOUT

    def watchdog():
        while not stop.wait(0.05):
            if time.monotonic() > deadline:
                stop.set()

    threading.Thread(target=watchdog, daemon=True).start()
    for chunk in source.chunks(stop):
        chunks.append(chunk)
        got += chunk.samples.shape[0]
        if got >= want_samples:
            stop.set()
    stop.set()
    return chunks


def test_resampled_mono_chunks_with_overflows_counted(mic_wav):
    wav, _, n48 = mic_wav
    fake = FakePyAudioModule(wav, overflow_every=7)
    src = mic(fake)
    chunks = collect(src, fake, want_samples=n48 // 2 - 2000)
    assert chunks[0].stream_start and not any(c.stream_start for c in chunks[1:])
    assert all(c.sample_rate == SR and c.samples.dtype == np.float32 for c in chunks)
    starts = [c.start_sample for c in chunks]
    assert starts == list(np.cumsum([0] + [c.samples.shape[0] for c in chunks[:-1]]))
    st = src.stats()
    assert st["overflows"] == fake.overflows_flagged > 0
    assert st["capture_rate"] == 48000 and "USB" in st["device"] and st["dropped_chunks"] == 0
    assert chunks[0].source.startswith("mic:")


@pytest.mark.slow
def test_unplug_and_replug_start_a_new_stream(mic_wav):
    wav, _, n48 = mic_wav
    fake = FakePyAudioModule(wav, unplug_at_s=6.0, missing_opens=1)
    src = mic(fake)
    chunks = collect(src, fake, want_samples=n48 // 2 - 4000)
    new_streams = [i for i, c in enumerate(chunks) if c.stream_start]
    assert len(new_streams) == 2
    second = chunks[new_streams[1]]
    assert second.start_sample == 0
    st = src.stats()
    assert st["reopens"] >= 2 and st["errors"] >= 2  # the stall, then the missing device
    assert fake.inits >= 3 and fake.opens == 2
    assert "no audio" in st["last_error"] or "no audio input device" in st["last_error"]


def test_device_selection_and_listing(mic_wav):
    wav, _, _ = mic_wav
    fake = FakePyAudioModule(wav)
    devices = list_input_devices(backend=fake)
    assert [d["name"] for d in devices] == [fake.device_name]
    pa = fake.PyAudio()
    assert MicSource("usb audio", SR, backend=fake)._find_device(pa)[0] == 1
    assert MicSource("1", SR, backend=fake)._find_device(pa)[0] == 1
    assert MicSource(None, SR, backend=fake)._find_device(pa)[0] == 1
    with pytest.raises(AudioDeviceError, match="no input device matching 'Zoom'.*USB Audio"):
        MicSource("Zoom", SR, backend=fake)._find_device(pa)
    with pytest.raises(AudioDeviceError, match="index 0"):
        MicSource(0, SR, backend=fake)._find_device(pa)  # an output-only device
    fake.unplugged, fake.missing_opens = True, 1
    with pytest.raises(AudioDeviceError, match="USB microphone plugged in"):
        MicSource("USB", SR, backend=fake)._find_device(fake.PyAudio())


@pytest.mark.slow
@pytest.mark.parametrize("rate_multiples", [False, True], ids=["resampled", "48k-into-frontend"])
def test_pipeline_on_the_microphone_survives_an_unplug(mic_wav, models, rate_multiples):
    wav, truth, n48 = mic_wav
    unplug = (truth[1].offset_s + truth[2].onset_s) / 2  # in the silence between songs 2 and 3
    fake = FakePyAudioModule(wav, unplug_at_s=unplug, missing_opens=1)
    src = mic(fake, rate_multiples=rate_multiples)
    rate = 48000 if rate_multiples else SR
    det, enc = models

    class Sink:
        items: list = []

        def add(self, d, clip_path=None):
            self.items.append(d)
            return True

    comp = build_pipeline(load_config(None, env={}), store=Sink(), detector=det, encoder=enc)
    found = []
    for chunk in collect(src, fake, want_samples=(n48 - 4000) * rate // 48000):
        assert chunk.sample_rate == rate
        found += comp.pipeline.process(chunk)
    found += comp.pipeline.end_stream()
    assert comp.pipeline.stats.streams == 2
    assert len(found) == len(truth)
    # times are relative to each stream: the second began at the unplug point
    expected = [t.onset_s if t.onset_s < unplug else t.onset_s - unplug for t in truth]
    for d, on in zip(found, expected, strict=True):
        assert abs(d.onset_s - on) < 0.06, (d.extra, on)
        assert not d.truncated


@pytest.mark.slow
def test_daemon_records_from_the_microphone_across_a_device_loss(tmp_path, mic_wav, models):
    wav, truth, _ = mic_wav
    unplug = (truth[1].offset_s + truth[2].onset_s) / 2
    fake = FakePyAudioModule(wav, unplug_at_s=unplug, missing_opens=1)
    cfg = load_config(write_config(tmp_path / "edge.toml", tmp_path / "data"))  # audio.source = "mic"
    det, enc = models
    comp = build_pipeline(cfg, detector=det, encoder=enc)
    d = Daemon(
        cfg,
        notifier=SystemdNotifier(env={}),
        components=comp,
        source_factory=lambda: mic(fake, stall_seconds=0.3),
    )
    t = threading.Thread(target=d.run)
    t.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (fake.finished and comp.store.counts()["detections"] >= len(truth) - 1):
            assert time.monotonic() < deadline, comp.store.counts()
            time.sleep(0.05)
        snap = d.health()
        assert snap["source"]["reopens"] >= 1 and snap["source"]["kind"] == "mic"
        assert snap["processing_lag_s"] is not None
    finally:
        d.stop.set()
        t.join(TIMEOUT)
    assert not t.is_alive()
    from edge.adapters.store.sqlite import SqliteStore

    s = SqliteStore(cfg.db_path, readonly=True)
    assert s.counts()["detections"] == len(truth)  # the last song was flushed at the stop
    s.close()


def test_device_that_supports_the_model_rate_is_opened_at_it(tmp_path):
    # a microphone that captures 24 kHz natively needs no resampling at all
    x = (0.3 * np.sin(2 * np.pi * 5000 * np.arange(SR * 2) / SR)).astype(np.float32)
    write_wav(tmp_path / "mic24k.wav", x, SR)
    fake = FakePyAudioModule(tmp_path / "mic24k.wav", supported_rates=(48000, 44100, SR))
    src = mic(fake)
    chunks = collect(src, fake, want_samples=SR)
    assert src.stats()["capture_rate"] == SR
    got = np.concatenate([c.samples for c in chunks])
    np.testing.assert_allclose(got[: SR // 2], x[: SR // 2], atol=1e-4)  # bit-exact up to 16-bit PCM
