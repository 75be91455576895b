"""The models shipped in edge/models: manifests, and what they do on audio they never saw."""

import json

import numpy as np
import pytest

from edge.adapters.audio.wavfile import read_wav, to_mono
from edge.adapters.models.manifest import load_manifest
from edge.adapters.models.tflite import MODELS_DIR, TFLiteDetector, TFLiteEncoder
from edge.core.frontend import FrontendConfig, logmel

SHIPPED = MODELS_DIR / "encoder.json"
pytestmark = pytest.mark.skipif(
    not SHIPPED.exists() or json.loads(SHIPPED.read_text())["version"].startswith("placeholder"),
    reason="trained models not installed in edge/models",
)


def test_manifests_describe_the_models():
    for kind in ("detector", "encoder"):
        m = load_manifest(MODELS_DIR / f"{kind}.tflite")
        assert m.kind == kind and m.frontend == FrontendConfig()
        assert m.input.dtype == "int8"
        for key in ("training", "metrics", "reproduce", "int8_vs_float", "created"):
            assert key in m.raw, (kind, key)
        assert (MODELS_DIR / f"{kind}.tflite").stat().st_size < 1_000_000  # Pi Zero 2 W friendly


def _windows(audio, det):
    f = logmel(audio, det.frontend)
    n = (len(f) - det.window_frames) // det.hop_frames + 1
    return np.stack([f[i * det.hop_frames : i * det.hop_frames + det.window_frames] for i in range(n)])


def test_detector_fires_on_songs_and_not_on_distractors(fixtures_dir):
    det = TFLiteDetector()
    hits = []
    for d in ("XlB", "XsB", "BC", "BE", "BD", "BhBl", "BlBh", "BBe"):
        x, sr = read_wav(fixtures_dir / "synth" / f"song_{d}.wav")
        assert sr == det.frontend.sample_rate
        hits.append(det.predict(_windows(to_mono(x), det)).max() >= det.threshold)
    assert np.mean(hits) >= 0.75, hits
    x, _ = read_wav(fixtures_dir / "synth" / "scene_distractors.wav")
    p = det.predict(_windows(to_mono(x), det))
    assert np.mean(p >= det.threshold) < 0.2


@pytest.mark.slow
def test_encoder_separates_dialects_of_unseen_birds():
    synth = pytest.importorskip("model_export.synth")
    enc = TFLiteEncoder()
    cfg = enc.frontend
    rng = np.random.default_rng(424242)  # seeds disjoint from the training splits
    embs, labels = [], []
    for d in synth.DIALECTS:
        for b in range(2):
            bird = synth.make_bird(d, rng, bird_id=990_000 + b, incomplete_prob=0.0)
            for _ in range(3):
                audio, ev = synth.render_song(bird, rng, cfg.sample_rate, complete=True)
                audio = np.concatenate(
                    [np.zeros(cfg.sample_rate, np.float32), audio, np.zeros(cfg.sample_rate // 2, np.float32)]
                )
                audio = audio + 0.003 * rng.standard_normal(audio.shape).astype(np.float32)
                f = logmel(audio, cfg)
                end = (
                    int(round(((1.0 + ev.offset_s + 0.1) * cfg.sample_rate - cfg.n_fft) / cfg.hop_length)) + 1
                )
                embs.append(enc.embed(f[end - enc.window_frames : end]))
                labels.append(d)
    e, y = np.stack(embs), np.array(labels)
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-3)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    acc = np.mean(y[sim.argmax(1)] == y)
    assert acc >= 0.8, acc


def test_detector_output_resolves_scores_near_one(fixtures_dir):
    """An int8 probability output has 1/256 steps and sticks at 0.996 (issue 13); a logit output
    must resolve the top decile: fine steps near 1 and distinct scores on real songs' windows."""
    det = TFLiteDetector()
    out = det.model.manifest.outputs
    if "logit" not in out:
        pytest.skip("the shipped detector has a probability output")
    spec = out["logit"]
    top = spec.scale * (127 - spec.zero_point)  # the largest logit int8 can hold
    assert 1 / (1 + np.exp(-top)) > 0.9999
    step_near_099 = 1 / (1 + np.exp(-4.6)) - 1 / (1 + np.exp(-(4.6 - spec.scale)))
    assert step_near_099 < 0.002
    probs = []
    for d in ("XlB", "XsB", "BC", "BE", "BD", "BhBl", "BlBh", "BBe"):
        x, _ = read_wav(fixtures_dir / "synth" / f"song_{d}.wav")
        probs.append(det.predict(_windows(to_mono(x), det)))
    p = np.concatenate(probs)
    assert len(np.unique(p[p >= 0.9])) >= 3, np.sort(p)[-10:]
