"""The composed pipeline on WAV streams with known songs, through the real TFLite adapters."""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading

import numpy as np
import pytest

from edge.adapters.audio.replay import ReplaySource
from edge.adapters.audio.wavfile import write_wav
from edge.adapters.models.tflite import MODELS_DIR, TFLiteDetector
from edge.adapters.store.sqlite import SqliteStore
from edge.app.compose import build_pipeline
from edge.app.config import Config, load_config
from edge.contract import detection_id
from edge.core.errors import ModelError
from edge.core.frontend import FrontendConfig
from edge.core.pipeline import FrameRing
from tests.edge.helpers import ALL_SONGS, SR, make_song_stream, song_clip


def run_file(paths, models, chunk_seconds=0.5, config: Config | None = None, sink=None):
    det, enc = models
    comp = build_pipeline(config or Config(), memory=True, detector=det, encoder=enc)
    if sink is not None:
        comp.pipeline.sink = sink
    src = ReplaySource(paths, SR, chunk_seconds=chunk_seconds)
    out = []
    for chunk in src.chunks(threading.Event()):
        out += comp.pipeline.process(chunk)
    out += comp.pipeline.end_stream()
    return out, comp


def match(truth, found, tol=0.3):
    """Pairs (truth, detection) whose intervals overlap best; unmatched truth is missed."""
    pairs = []
    for t in truth:
        best = max(
            found,
            key=lambda d: min(t.offset_s, d.offset_s) - max(t.onset_s, d.onset_s),
            default=None,
        )
        if best is not None and abs(best.onset_s - t.onset_s) < tol:
            pairs.append((t, best))
    return pairs


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    path = tmp_path_factory.mktemp("stream") / "songs.wav"
    return path, make_song_stream(path, ALL_SONGS, gap_s=2.5)


def test_every_song_found_with_precise_onset_and_offset(stream, models):
    path, truth = stream
    found, comp = run_file([path], models)
    assert len(found) == len(truth)
    pairs = match(truth, found)
    assert len(pairs) == len(truth)
    for t, d in pairs:
        assert abs(d.onset_s - t.onset_s) < 0.03, (t, d.extra)
        assert abs(d.offset_s - t.offset_s) < 0.03, (t, d.extra)
        assert not d.truncated
    det, enc = models
    for d in found:
        assert d.detector_version == det.version and d.encoder_version == enc.version
        assert d.embedding.shape == (enc.embedding_dim,)
        assert np.linalg.norm(d.embedding) == pytest.approx(1.0, abs=1e-3)
        assert d.device_id == Config().device_id
        assert d.id == detection_id(d.device_id, d.source, d.onset_s, d.offset_s, d.start_time, enc.version)
        assert d.id != detection_id(
            d.device_id, d.source, d.onset_s, d.offset_s, d.start_time, "other-encoder"
        )
    stats = comp.pipeline.stats.as_dict()
    assert stats["detections"] == len(truth) and stats["windows"] > 0


@pytest.mark.parametrize("chunk_seconds", [0.13, 1.9])
def test_chunk_size_does_not_change_the_detections(stream, models, chunk_seconds):
    path, _ = stream
    ref, _ = run_file([path], models, chunk_seconds=0.5)
    got, _ = run_file([path], models, chunk_seconds=chunk_seconds)
    assert [d.id for d in got] == [d.id for d in ref]
    for a, b in zip(got, ref, strict=True):
        np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-6)


class BatchSink:
    def __init__(self):
        self.items = []
        self.calls = []

    def add_many(self, items):
        self.calls.append(len(items))
        self.items += items
        return [True] * len(items)


def test_songs_ending_in_one_chunk_are_stored_in_one_call(stream, models):
    """The sink gets the songs of a chunk together (the store commits them in one transaction);
    the detections are those of small chunks, which close one song at a time."""
    path, _ = stream
    ref, _ = run_file([path], models, chunk_seconds=10.0)
    sink = BatchSink()
    got, comp = run_file([path], models, chunk_seconds=10.0, sink=sink)
    assert [d.id for d in got] == [d.id for d in ref] == [d.id for d, _ in sink.items]
    assert sum(sink.calls) == len(got) and max(sink.calls) > 1
    assert comp.pipeline.stats.detections == len(got) and comp.pipeline.stats.held == 0


def test_energy_gate_skips_silence_but_keeps_the_songs(stream, models):
    path, _ = stream
    ref, comp_ref = run_file([path], models)
    cfg = Config()
    cfg = dataclasses.replace(cfg, segmenter=dataclasses.replace(cfg.segmenter, energy_gate_db=6.0))
    got, comp = run_file([path], models, config=cfg)
    assert [d.id for d in got] == [d.id for d in ref]
    assert comp.pipeline.stats.windows_gated > comp.pipeline.stats.windows // 3


def test_songs_cut_by_the_file_are_truncated(tmp_path, models):
    audio, on, off = song_clip("song_XlB.wav")
    cut_start = audio[int((on + 0.8) * SR) :]  # starts in the middle of a song
    path = tmp_path / "cut.wav"
    x = np.concatenate([cut_start, np.zeros(2 * SR, np.float32), audio[: int((on + 1.2) * SR)]])
    x += (1e-4 * np.random.default_rng(1).standard_normal(x.size)).astype(np.float32)
    write_wav(path, x, SR)
    found, _ = run_file([path], models)
    assert len(found) == 2
    assert found[0].truncated and found[0].onset_s < 0.05
    assert found[1].truncated and found[1].offset_s == pytest.approx(x.size / SR, abs=0.05)


def test_files_are_separate_streams(tmp_path, models):
    a = tmp_path / "a.wav"
    b = tmp_path / "b.wav"
    ta = make_song_stream(a, ["song_BC.wav"], gap_s=0.5, lead_s=0.5)
    tb = make_song_stream(b, ["song_BD.wav"], gap_s=0.5, lead_s=0.2)
    found, comp = run_file([a, b], models)
    assert [d.source for d in found] == [str(a), str(b)]
    assert abs(found[0].onset_s - ta[0].onset_s) < 0.03
    assert abs(found[1].onset_s - tb[0].onset_s) < 0.03
    assert comp.pipeline.stats.streams == 2


def _clips_config(data_dir) -> Config:
    """Defaults with the data directory in ``data_dir`` and clip saving on."""
    env = {"YH_DEVICE__DATA_DIR": str(data_dir), "YH_STORE__SAVE_CLIPS": "true", "YH_STORE__MIN_FREE_MB": "0"}
    return load_config(None, env=env)


def test_store_and_clips_end_to_end(stream, models, tmp_path):
    path, truth = stream
    cfg = _clips_config(tmp_path)
    store = SqliteStore(cfg.db_path)
    det, enc = models
    comp = build_pipeline(cfg, store=store, detector=det, encoder=enc)
    comp.pipeline.run(ReplaySource([path], SR), threading.Event())
    rows = store.detections()
    assert len(rows) == len(truth)
    clip_rows = store.db.execute("SELECT clip_path FROM detections").fetchall()
    assert all(r[0] and (tmp_path / "clips") in __import__("pathlib").Path(r[0]).parents for r in clip_rows)
    assert comp.clips.stats()["clips_saved"] == len(truth)
    # running the same audio again stores nothing twice
    comp2 = build_pipeline(cfg, store=store, detector=det, encoder=enc)
    comp2.pipeline.run(ReplaySource([path], SR), threading.Event())
    assert len(store.detections()) == len(truth)


def _copy_models(dst):
    for name in ("detector.tflite", "detector.json", "encoder.tflite", "encoder.json"):
        shutil.copy(MODELS_DIR / name, dst / name)


def test_manifest_that_does_not_match_the_frontend_is_refused(tmp_path):
    _copy_models(tmp_path)
    m = json.loads((tmp_path / "detector.json").read_text())
    m["frontend"]["n_mels"] = 40
    (tmp_path / "detector.json").write_text(json.dumps(m))
    with pytest.raises(ModelError, match="different frontend"):
        TFLiteDetector(tmp_path / "detector.tflite", frontend=FrontendConfig())
    cfg = load_config(None, env={"YH_MODELS__DETECTOR": str(tmp_path / "detector.tflite")})
    with pytest.raises(ModelError):
        build_pipeline(cfg, memory=True)


def test_model_file_that_does_not_match_its_manifest_is_refused(tmp_path):
    _copy_models(tmp_path)
    with open(tmp_path / "encoder.tflite", "ab") as fh:
        fh.write(b"\0")
    cfg = load_config(None, env={"YH_MODELS__ENCODER": str(tmp_path / "encoder.tflite")})
    with pytest.raises(ModelError, match="does not match its manifest"):
        build_pipeline(cfg, memory=True)


def test_frame_ring_keeps_the_tail_and_pads_outside():
    ring = FrameRing(10, 2)
    for i in range(0, 25, 3):
        ring.append(np.arange(i, min(i + 3, 25), dtype=np.float32)[:, None].repeat(2, axis=1))
    assert ring.end == 25 and 10 <= ring.end - ring.start <= 20
    np.testing.assert_array_equal(ring.get(20, 23)[:, 0], [20, 21, 22])
    got = ring.get(ring.start - 2, ring.start + 1)[:, 0]
    assert got[0] == got[1] == got[2] == ring.start  # padded with the minimum of what is held
    assert ring.get(30, 32).shape == (2, 2)


def test_a_48k_stream_goes_unresampled_into_the_frontend_with_the_same_detections(stream, models, tmp_path):
    """48 kHz audio, as a USB microphone delivers it: the frontend analyses it directly (no
    resampler); the songs, their times and embeddings match the resampled path, and saved
    clips are halved to 24 kHz."""
    from edge.adapters.audio.wavfile import read_info, read_wav
    from edge.core.resample import resample

    path, truth = stream
    x, sr = read_wav(path)
    hi = tmp_path / "songs48k.wav"
    write_wav(hi, resample(x.reshape(-1), sr, 2 * sr), 2 * sr)
    det, enc = models
    ref, _ = run_file([hi], models)  # resampled to the model rate by the source
    chunks = list(ReplaySource([hi], SR, rate_multiples=True).chunks(threading.Event()))
    assert {c.sample_rate for c in chunks} == {2 * SR}
    cfg = _clips_config(tmp_path)
    store = SqliteStore(cfg.db_path)
    comp = build_pipeline(cfg, store=store, detector=det, encoder=enc)
    got = []
    for c in chunks:
        got += comp.pipeline.process(c)
    got += comp.pipeline.end_stream()
    assert len(got) == len(ref) == len(truth)
    for a, b in zip(got, ref, strict=True):
        assert abs(a.start_time - b.start_time) < 0.015 and abs(a.end_time - b.end_time) < 0.015
        assert a.onset_s == pytest.approx(b.onset_s, abs=0.015)
        assert float(a.embedding @ b.embedding) > 0.98, float(a.embedding @ b.embedding)
    # clips are written at the model rate (24 kHz covers the song), as FLAC where soundfile is installed
    clip_path = store.db.execute("SELECT clip_path FROM detections").fetchone()[0]
    if clip_path.endswith(".flac"):
        import soundfile

        assert soundfile.info(clip_path).samplerate == SR
    else:
        assert read_info(clip_path).sample_rate == SR
    store.close()


def test_each_song_carries_its_spectrogram_and_the_recorders_position(stream, models):
    """The spectrogram is the song's own log-mel frames (the same frontend) from margin_s before
    the onset to margin_s after the offset, quantised; position from the config."""
    from edge.core.frontend import logmel

    path, truth = stream
    env = {"YH_DEVICE__LATITUDE": "49.2", "YH_DEVICE__LONGITUDE": "16.6", "YH_SPECTROGRAM__MARGIN_S": "0.3"}
    found, comp = run_file([path], models, config=load_config(None, env=env))
    assert len(found) == len(truth)
    fe = comp.pipeline.frontend_cfg
    from edge.adapters.audio.wavfile import read_wav, to_mono

    x, _ = read_wav(path)
    frames = logmel(to_mono(x), fe)
    for d in found:
        s = d.spectrogram
        assert (d.latitude, d.longitude) == (49.2, 16.6)
        assert s.mels == fe.n_mels and s.fps == fe.frame_rate and (s.fmin, s.fmax) == (fe.fmin, fe.fmax)
        assert s.t0 == pytest.approx(-0.3, abs=0.021)  # the margin, to a frame
        assert s.duration_s == pytest.approx(d.offset_s - d.onset_s + 0.6, abs=0.2)
        first = int(round((d.onset_s + s.t0) * fe.frame_rate))
        ref = frames[first : first + s.frames]
        top = ref.max()
        keep = ref > top - 60  # within half a step where the cells are above the floor
        np.testing.assert_allclose(s.db()[keep], ref[keep], atol=s.db_step / 2 + 1e-3)
        back = type(d).from_payload(d.to_payload(), d.device_id)
        assert back.spectrogram == s
    # off by config: no spectrogram, and the payload is the size it was
    off, _ = run_file([path], models, config=load_config(None, env={"YH_SPECTROGRAM__ENABLED": "false"}))
    assert all(d.spectrogram is None and d.latitude is None for d in off)
    assert max(len(d.to_payload()) for d in off) < 700 < min(len(d.to_payload()) for d in found)


def test_the_demo_gives_exactly_its_seven_songs(models):
    # edge/data/demo.wav and its truth (demo.csv): one detection per song (issue 14)
    import csv
    from pathlib import Path

    data = Path(__file__).parents[2] / "edge" / "data"
    with open(data / "demo.csv", newline="") as fh:
        truth = [(float(r["onset_s"]), float(r["offset_s"])) for r in csv.DictReader(fh)]
    found, _ = run_file([data / "demo.wav"], models)
    assert len(found) == len(truth) == 7
    for (on, off), d in zip(truth, sorted(found, key=lambda d: d.onset_s), strict=True):
        assert min(off, d.offset_s) - max(on, d.onset_s) > 0.8 * (off - on)
        assert abs(d.offset_s - off) <= 0.1


def test_every_detection_carries_the_complete_probability_of_the_encoders_head(stream, models):
    # ALL_SONGS: eight complete songs (one per dialect), then an incomplete one (no terminal phrase)
    path, truth = stream
    found, _ = run_file([path], models)
    pairs = match(truth, found)
    assert len(pairs) == len(ALL_SONGS)
    probs = [d.complete for _, d in sorted(pairs, key=lambda p: p[0].onset_s)]
    assert all(p is not None and 0.0 <= p <= 1.0 for p in probs)
    assert probs[-1] < 0.5
    assert sum(p >= 0.5 for p in probs[:-1]) >= 7


def test_a_malformed_complete_head_is_refused_and_none_means_no_field(tmp_path):
    from edge.adapters.models.tflite import TFLiteEncoder

    for name in ("encoder.tflite", "encoder.json"):
        shutil.copy(MODELS_DIR / name, tmp_path / name)
    manifest = json.loads((tmp_path / "encoder.json").read_text())
    manifest["complete_head"] = {"weights": [0.1, 0.2], "bias": 0.0}
    (tmp_path / "encoder.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="complete_head needs"):
        TFLiteEncoder(tmp_path / "encoder.tflite", FrontendConfig())
    manifest.pop("complete_head")
    (tmp_path / "encoder.json").write_text(json.dumps(manifest))
    enc = TFLiteEncoder(tmp_path / "encoder.tflite", FrontendConfig())
    assert enc.complete_probability(np.ones(enc.embedding_dim) / np.sqrt(enc.embedding_dim)) is None


def test_the_support_threshold_comes_from_the_manifest_and_the_config_can_switch_it_off(tmp_path):
    _copy_models(tmp_path)
    m = json.loads((tmp_path / "detector.json").read_text())
    m["support_threshold"] = 0.9
    (tmp_path / "detector.json").write_text(json.dumps(m))
    env = {"YH_MODELS__DETECTOR": str(tmp_path / "detector.tflite")}
    assert build_pipeline(load_config(None, env=env), memory=True).pipeline.segmenter.support_threshold == 0.9
    off = {**env, "YH_MODELS__SUPPORT_THRESHOLD": "0"}
    assert (
        build_pipeline(load_config(None, env=off), memory=True).pipeline.segmenter.support_threshold is None
    )
    other = {**env, "YH_MODELS__SUPPORT_THRESHOLD": "0.7"}
    assert (
        build_pipeline(load_config(None, env=other), memory=True).pipeline.segmenter.support_threshold == 0.7
    )
    m["support_threshold"] = 2.0
    (tmp_path / "detector.json").write_text(json.dumps(m))
    with pytest.raises(ModelError, match="support_threshold"):
        build_pipeline(load_config(None, env=env), memory=True)
