"""``yh-model embed``: hand-marked songs embedded exactly as the recorder embeds them."""

from __future__ import annotations

import csv
import threading

import numpy as np
import pytest
from click.testing import CliRunner

from edge.adapters.audio.replay import ReplaySource
from edge.adapters.audio.wavfile import read_wav, write_wav
from edge.app.compose import build_pipeline
from edge.app.config import Config
from edge.core.resample import resample
from model_export.cli import main
from tests.edge.helpers import ALL_SONGS, SR, make_song_stream


def _detect(path, models, rate):
    det, enc = models
    comp = build_pipeline(Config(), memory=True, detector=det, encoder=enc)
    out = []
    for chunk in ReplaySource([path], rate, chunk_seconds=0.7).chunks(threading.Event()):
        out += comp.pipeline.process(chunk)
    return out + comp.pipeline.end_stream()


def _write_csv(path, rows):
    with open(path, "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["file", "onset_s", "offset_s", "note"])
        wr.writerows(rows)


@pytest.fixture(scope="module")
def models():
    from edge.adapters.models.tflite import TFLiteDetector, TFLiteEncoder
    from edge.core.frontend import FrontendConfig

    return TFLiteDetector(frontend=FrontendConfig()), TFLiteEncoder(frontend=FrontendConfig())


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    d = tmp_path_factory.mktemp("embed")
    path = d / "stream.wav"
    make_song_stream(path, ALL_SONGS[:5], gap_s=2.0)
    x, _ = read_wav(path)  # the same recording at 44.1 kHz: resampled like the replay source
    write_wav(d / "stream_44k.wav", resample(x[:, 0], SR, 44100), 44100)
    return d


@pytest.mark.parametrize("name", ["stream.wav", "stream_44k.wav"])
def test_embed_equals_the_pipelines_embedding_of_the_same_song(recordings, models, name):
    found = _detect(recordings / name, models, SR)
    assert len(found) == 5
    songs = recordings / f"songs_{name}.csv"
    _write_csv(songs, [(name, d.onset_s, d.offset_s, "x") for d in found])
    out = recordings / f"emb_{name}.npy"
    r = CliRunner().invoke(main, ["embed", str(songs), "--out", str(out)])
    assert r.exit_code == 0, r.output
    z = np.load(out)
    assert z.shape == (5, models[1].embedding_dim)
    ref = np.stack([d.embedding for d in found])
    assert np.allclose(z, ref, atol=1e-5)
    with open(out.with_suffix(".csv"), newline="") as fh:
        side = list(csv.DictReader(fh))
    assert [s["note"] for s in side] == ["x"] * 5
    assert {s["encoder_version"] for s in side} == {models[1].version}


def test_a_different_end_gives_a_different_embedding(recordings, models):
    found = _detect(recordings / "stream.wav", models, SR)[:1]
    songs = recordings / "moved.csv"
    d = found[0]
    _write_csv(
        songs, [("stream.wav", d.onset_s, d.offset_s, ""), ("stream.wav", d.onset_s, d.offset_s - 0.5, "")]
    )
    out = recordings / "moved.npy"
    assert CliRunner().invoke(main, ["embed", str(songs), "--out", str(out)]).exit_code == 0
    z = np.load(out)
    assert float(z[0] @ z[1]) < 0.999


@pytest.mark.parametrize(
    "content, message",
    [
        ("file,onset_s\nstream.wav,1.0\n", "missing column(s) offset_s"),
        ("file,onset_s,offset_s\nstream.wav,2.0,1.0\n", "need 0 <= onset_s < offset_s"),
        ("file,onset_s,offset_s\nnone.wav,1.0,2.0\n", "no such file"),
        ("file,onset_s,offset_s\nstream.wav,1.0,999.0\n", "after the file"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(recordings, content, message):
    songs = recordings / "bad.csv"
    songs.write_text(content)
    out = recordings / "bad.npy"
    r = CliRunner().invoke(main, ["embed", str(songs), "--out", str(out)])
    assert r.exit_code == 1
    assert message in r.output and r.output.count("\n") == 1
    assert not out.exists()
