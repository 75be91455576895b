"""Training pieces: labels, augmentation, metrics, labelled CSV import and int8 export round trip."""

import json

import numpy as np
import pytest

from edge.core.frontend import FrontendConfig
from model_export.data import end_frame, song_window, window_labels
from model_export.evaluate_models import cluster_scores, merge_events, novelty
from model_export.train import augment, balanced_batches, knn_accuracy

CFG = FrontendConfig()


class _Ev:
    def __init__(self, on, off):
        self.onset_s, self.offset_s = on, off


class _Song:
    def __init__(self, on, off, snr=20.0):
        self.event, self.snr_db = _Ev(on, off), snr


def test_window_labels_positive_negative_and_ambiguous():
    # windows of 100 frames (~1.01 s) every 25 frames (0.25 s) of a 10-ms-hop frontend
    cfg = FrontendConfig(hop_length=240)
    y, kind = window_labels(12, 25, 100, cfg, [_Song(0.9, 3.0)], [])
    starts = np.arange(12) * 0.25
    assert y[0] == -1  # [0, 1.01] overlaps the song by 0.11 s (< 0.3 s): ambiguous, skipped
    assert np.all(y[(starts >= 0.9) & (starts + 1.01 <= 3.0)] == 1)
    assert kind[1] == "song"
    y1, _ = window_labels(1, 25, 100, cfg, [_Song(1.0, 3.0)], [])
    assert y1[0] == 0  # touches the song by 11 ms only: a negative
    y2, _ = window_labels(4, 25, 100, cfg, [_Song(5.0, 7.0)], [])
    assert np.all(y2 == 0)
    y3, _ = window_labels(12, 25, 100, cfg, [_Song(1.0, 3.0, snr=-10.0)], [])
    assert not np.any(y3 == 1)  # inaudible songs are not taught as positives


def test_song_window_is_end_aligned_and_padded():
    feats = np.arange(50 * 2, dtype=np.float32).reshape(50, 2)
    w = song_window(feats, 30, 10)
    np.testing.assert_array_equal(w, feats[20:30])
    w = song_window(feats, 5, 10)  # before the start: edge padding, same length
    assert w.shape == (10, 2) and np.all(w[:5] == feats[0])
    assert end_frame(1.0, CFG, 0.1) == round((1.1 * 24000 - 512) / CFG.hop_length) + 1


def test_augment_keeps_shape_and_duration():
    rng = np.random.default_rng(0)
    x = np.random.default_rng(1).normal(-60, 5, (8, 160, 64)).astype(np.float32)
    a = augment(x, rng)
    assert a.shape == x.shape and a.dtype == np.float32
    # a level change and masks, but never a different number of frames (no time stretch)
    assert not np.allclose(a, x)


def test_balanced_batches_equalise_classes():
    labels = np.array(["a"] * 900 + ["b"] * 100)
    idx = np.concatenate(list(balanced_batches(labels, 200, 50, np.random.default_rng(0))))
    frac_b = np.mean(labels[idx] == "b")
    assert 0.45 < frac_b < 0.55


def test_metrics_on_known_clusters():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8))
    emb = np.concatenate([c + 0.05 * rng.normal(size=(40, 8)) for c in centres])
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    truth = np.repeat(np.array(["A", "B", "C"]), 40)
    assert knn_accuracy(emb, truth) == 1.0
    labels = np.repeat([0, 1, 2], 40)
    assert cluster_scores(labels, truth)["ari"] == 1.0
    nov = novelty(labels, truth, "C")
    assert nov["fraction_in_own_clusters"] == 1.0 and nov["own_clusters"] == 1
    merged = labels.copy()
    merged[merged == 2] = 1  # C absorbed into B's cluster
    assert novelty(merged, truth, "C")["fraction_in_own_clusters"] == 0.0
    assert merge_events(np.array([0, 1, 1, 0, 1, 0, 0, 1], bool)) == 3


def test_labelled_csv_gives_encoder_and_detector_examples(fixtures_dir):
    from model_export.labelled import labelled_sets

    sets = labelled_sets(fixtures_dir / "synth" / "labels.csv", CFG, 160, 100, 25)
    enc, det = sets["train"]
    assert enc.x.shape[1:] == (160, 64) and len(enc.dialect) >= 9
    assert {"XlB", "BC", "incomplete"} <= set(enc.dialect.tolist())
    assert det is not None and det.x.shape[1:] == (100, 64) and det.y.max() == 1


@pytest.mark.slow
def test_int8_export_roundtrip_through_the_edge_runtime(tmp_path):
    pytest.importorskip("tensorflow")
    from edge.adapters.models.manifest import load_manifest
    from edge.adapters.models.tflite import TFLiteDetector, TFLiteEncoder
    from model_export.export import compare_int8, export_model
    from model_export.models import build_cnn_encoder, build_detector

    rng = np.random.default_rng(0)
    rep = rng.normal(-60, 10, (64, 160, 64)).astype(np.float32)
    det = build_detector(100, 64)
    p = export_model(
        det, "detector", tmp_path, rep[:, :100], CFG, 100, 50, {"threshold": 0.5, "reproduce": "t"}
    )
    m = load_manifest(p)
    assert m.kind == "detector" and m.input.dtype == "int8" and m.window_frames == 100
    runtime = TFLiteDetector(p, frontend=CFG)
    probs = runtime.predict(rep[:4, :100])
    assert probs.shape == (4,) and np.all((probs >= 0) & (probs <= 1))
    cmp_d = compare_int8("detector", p, det, rep[:, :100])
    # untrained weights sit near 0.5, so compare probabilities, not decisions
    assert cmp_d["max_abs_prob_diff"] < 0.05 and cmp_d["size_kb"] < 100
    enc = build_cnn_encoder(160, 64, 32)
    pe = export_model(enc, "encoder", tmp_path, rep, CFG, 160, 160, {"embedding_dim": 32, "labels": ["a"]})
    e = TFLiteEncoder(pe).embed(rep[0])
    assert e.shape == (32,) and abs(np.linalg.norm(e) - 1) < 1e-4
    assert json.loads(pe.with_suffix(".json").read_text())["window"]["margin_frames"] == round(
        0.1 * CFG.frame_rate
    )
    assert compare_int8("encoder", pe, enc, rep)["cosine_mean"] > 0.9
