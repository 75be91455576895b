"""The cascade's song verifier (edge/core/verifier.py) in the composed pipeline, real TFLite models.

- an encoder manifest without ``verifier`` composes exactly the pipeline of before (same songs);
- a fitted verifier (``tests/fixtures/verifier.json``: the head ``yh-model verifier`` fitted on the
  real train split behind the previous detector, ef5f8a16-real, as it stands in a manifest) keeps true songs and
  drops a candidate it should (``tests/fixtures/verifier_false_candidate.wav``, synthetic: the
  project's ``render_distractor("two_note_call", np.random.default_rng(12), 24000)`` placed 1 s
  into 5 s of N(0, 0.003) noise drawn next from the same generator, 16-bit; the detector proposes it
  at a candidate threshold of 0.25: the detector it was picked for, ``ef5f8a16-real``, proposed it at its
  own threshold; the wide-variety one, ``034dee5c-real``, scores its 1-s windows at most 0.32 against 0.98);
- malformed verifier specs are refused when the model is loaded.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading

import numpy as np
import pytest

from edge.adapters.audio.replay import ReplaySource
from edge.adapters.models.manifest import manifest_path, write_manifest
from edge.adapters.models.tflite import MODELS_DIR, TFLiteDetector, TFLiteEncoder
from edge.app.compose import build_pipeline
from edge.app.config import Config
from edge.core.errors import ModelError
from edge.core.frontend import FrontendConfig
from edge.core.records import Song
from edge.core.verifier import SongVerifier, song_features
from tests.edge.helpers import ALL_SONGS, SR, make_song_stream

FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures"
VERIFIER = FIXTURES / "verifier.json"


def _encoder_dir(tmp_path, verifier: dict | None):
    """A copy of the shipped models whose encoder manifest has ``verifier`` (or none)."""
    d = tmp_path / "models"
    d.mkdir(parents=True)
    for name in ("detector.tflite", "detector.json", "encoder.tflite"):
        shutil.copy(MODELS_DIR / name, d / name)
    data = json.loads(manifest_path(MODELS_DIR / "encoder.tflite").read_text())
    data.pop("verifier", None)
    if verifier is not None:
        data["verifier"] = verifier
    write_manifest(d / "encoder.tflite", data)
    return d


def _run(paths, models_dir, config: Config | None = None):
    cfg = FrontendConfig()
    det = TFLiteDetector(models_dir / "detector.tflite", frontend=cfg)
    enc = TFLiteEncoder(models_dir / "encoder.tflite", frontend=cfg)
    comp = build_pipeline(config or Config(), memory=True, detector=det, encoder=enc)
    seen = []
    comp.pipeline.on_candidate = lambda song, p, kept: seen.append((song, p, kept))
    out = []
    for chunk in ReplaySource(paths, SR, chunk_seconds=0.5).chunks(threading.Event()):
        out += comp.pipeline.process(chunk)
    out += comp.pipeline.end_stream()
    return out, seen, comp


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    path = tmp_path_factory.mktemp("vstream") / "songs.wav"
    return path, make_song_stream(path, ALL_SONGS, gap_s=2.5)


def _fitted() -> dict:
    return json.loads(VERIFIER.read_text())


def test_without_a_verifier_the_pipeline_is_unchanged(tmp_path, stream):
    path, truth = stream
    plain = _encoder_dir(tmp_path / "a", None)
    keep_all = dict(_fitted(), threshold=0.0)
    with_v = _encoder_dir(tmp_path / "b", keep_all)
    found, seen, comp = _run([path], plain)
    assert comp.pipeline.verifier is None and all(p is None and kept for _, p, kept in seen)
    assert len(found) == len(truth) == comp.pipeline.stats.candidates and comp.pipeline.stats.rejected == 0
    found_v, seen_v, comp_v = _run([path], with_v)
    assert comp_v.pipeline.verifier is not None and all(p is not None for _, p, _ in seen_v)
    assert [d.id for d in found_v] == [d.id for d in found]
    for a, b in zip(found, found_v, strict=True):
        assert (a.onset_s, a.offset_s, a.score, a.complete) == (b.onset_s, b.offset_s, b.score, b.complete)
        np.testing.assert_array_equal(a.embedding, b.embedding)
    # switched off in the config: the verifier is not composed
    off = dataclasses.replace(Config(), models=dataclasses.replace(Config().models, verifier=False))
    found_off, _, comp_off = _run([path], with_v, off)
    assert comp_off.pipeline.verifier is None and [d.id for d in found_off] == [d.id for d in found]


def test_the_fitted_verifier_keeps_songs_and_drops_a_false_candidate(tmp_path, stream):
    path, truth = stream
    models = _encoder_dir(tmp_path, _fitted())
    found, seen, comp = _run([path], models)
    assert len(found) == len(truth), [(s.start_sample / SR, p) for s, p, _ in seen]
    assert comp.pipeline.stats.rejected == 0
    models = _encoder_dir(tmp_path / "low", dict(_fitted(), candidate_threshold=0.25))
    found, seen, comp = _run([FIXTURES / "verifier_false_candidate.wav"], models)
    assert seen, "the detector proposes the distractor"
    assert not found and comp.pipeline.stats.rejected == len(seen)
    assert all(p < comp.pipeline.verifier.threshold for _, p, _ in seen)


def test_features_and_probability_are_plain_numpy():
    v = SongVerifier.from_spec(_fitted(), 32)
    song = Song(0, 2 * SR, 100, 0.97, 12.0)
    frames = np.random.default_rng(0).normal(-60, 5, (100, 64)).astype(np.float32)
    e = np.ones(32, np.float32) / np.sqrt(32)
    x = song_features(v.features, song, frames, e, SR)
    assert x.shape == v.mean.shape
    p = v.probability(song, frames, e, SR)
    assert 0.0 <= p <= 1.0 and p == round(float(v.probability_of(x)[0]), 4)


@pytest.mark.parametrize(
    "change",
    [
        {"features": ["embedding", "nonsense"]},
        {"mean": [0.0]},
        {"scale": None},
        {"layers": []},
        {"threshold": "high"},
    ],
)
def test_malformed_verifiers_are_refused(tmp_path, change):
    spec = dict(_fitted(), **change)
    models = _encoder_dir(tmp_path, spec)
    with pytest.raises(ModelError, match="verifier"):
        TFLiteEncoder(models / "encoder.tflite")
