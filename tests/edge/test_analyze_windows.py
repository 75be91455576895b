"""``yh-edge analyze --windows`` (every detector window), FLAC/Ogg input via soundfile, and the
warning for a stream recorded below the frontend's range."""

from __future__ import annotations

import csv
import io
import json
import logging

import numpy as np
import pytest
from click.testing import CliRunner

from edge.adapters.audio.replay import ReplaySource
from edge.adapters.audio.sfreader import SoundFileReader, open_audio
from edge.adapters.audio.wavfile import read_wav, to_mono, write_wav
from edge.app.cli import main
from edge.core.errors import AudioFormatError
from edge.core.frontend import FrontendConfig
from tests.edge.helpers import make_song_stream


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def song_wav(tmp_path_factory):
    d = tmp_path_factory.mktemp("win")
    truth = make_song_stream(d / "a.wav", ["song_XlB.wav", "song_BC.wav"], gap_s=2.0)
    return d / "a.wav", truth


def test_windows_csv_covers_the_file_and_scores_the_songs(song_wav):
    wav, truth = song_wav
    r = invoke("analyze", str(wav), "--no-store", "--windows")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(rows[0]) == ["file", "start_s", "end_s", "probability", "gated"]
    x, sr = read_wav(wav)
    seconds = len(x) / sr
    starts = np.array([float(r["start_s"]) for r in rows])
    ends = np.array([float(r["end_s"]) for r in rows])
    probs = np.array([float(r["probability"]) for r in rows])
    assert {r["file"] for r in rows} == {str(wav)}
    # 1-s windows every second, plus one aligned to the end of the file
    assert np.allclose(np.diff(starts[:-1]), 1.0) and starts[0] == 0.0
    assert ends[-1] == pytest.approx(seconds, abs=0.03)
    assert ((probs >= 0) & (probs <= 1)).all()
    gated = np.array([r["gated"] == "true" for r in rows])
    assert (probs[gated] == 0).all()
    for t in truth:  # the best window inside each song is far above the best window outside all songs
        inside = (starts < t.offset_s) & (ends > t.onset_s)
        assert probs[inside].max() >= 0.5
    outside = np.ones(len(rows), bool)
    for t in truth:
        outside &= (ends <= t.onset_s - 0.2) | (starts >= t.offset_s + 0.2)
    assert probs[outside].max(initial=0) < 0.5


def test_windows_json_and_no_raven(song_wav, tmp_path):
    wav, _ = song_wav
    out = tmp_path / "w.json"
    assert (
        invoke("analyze", str(wav), "--no-store", "--windows", "--format", "json", "-o", str(out)).exit_code
        == 0
    )
    rows = json.loads(out.read_text())
    assert set(rows[0]) == {"file", "start_s", "end_s", "probability", "gated"}
    r = CliRunner().invoke(main, ["analyze", str(wav), "--no-store", "--windows", "--format", "raven"])
    assert r.exit_code == 2 and "--windows prints CSV or JSON" in r.output


def test_flac_and_ogg_give_the_songs_of_the_wav(song_wav, tmp_path):
    sf = pytest.importorskip("soundfile")
    wav, truth = song_wav
    x, sr = read_wav(wav)
    ref = list(csv.DictReader(io.StringIO(invoke("analyze", str(wav), "--no-store").stdout)))
    for fmt in ("FLAC", "OGG"):
        p = tmp_path / f"a.{fmt.lower()}"
        sf.write(str(p), to_mono(x), sr, format=fmt)
        r = invoke("analyze", str(p), "--no-store")
        assert r.exit_code == 0, r.output
        rows = list(csv.DictReader(io.StringIO(r.stdout)))
        assert len(rows) == len(ref) == len(truth), fmt
        for a, b in zip(rows, ref, strict=True):
            assert abs(float(a["onset_s"]) - float(b["onset_s"])) < 0.05
    # folders are searched for them too
    r = invoke("analyze", str(tmp_path), "--no-store")
    assert "songs in 2 files" in r.stderr


def test_unreadable_compressed_file_is_one_line(tmp_path):
    pytest.importorskip("soundfile")
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"not an mp3 at all" * 10)
    with pytest.raises(AudioFormatError, match="bad.mp3: cannot read"):
        SoundFileReader(bad)
    r = CliRunner().invoke(main, ["analyze", str(bad), "--no-store"])
    assert r.exit_code == 1 and "bad.mp3" in r.output


def test_16khz_stream_warns_once(song_wav, tmp_path, caplog):
    from model_export.synth import resample

    wav, _ = song_wav
    x, sr = read_wav(wav)
    low = resample(to_mono(x), sr, 16000)
    for name in ("a16.wav", "b16.wav"):
        write_wav(tmp_path / name, low, 16000)
    write_wav(tmp_path / "c24.wav", to_mono(x), sr)
    src = ReplaySource([tmp_path], FrontendConfig().sample_rate)
    with caplog.at_level(logging.WARNING, logger="edge.adapters.audio.replay"):
        chunks = list(src.chunks())
    warnings = [r.getMessage() for r in caplog.records if "holds nothing above" in r.getMessage()]
    assert len(warnings) == 1 and "16000 Hz" in warnings[0] and "8000 Hz" in warnings[0]
    assert {c.sample_rate for c in chunks} == {FrontendConfig().sample_rate}
    assert isinstance(open_audio(tmp_path / "c24.wav").info.sample_rate, int)
