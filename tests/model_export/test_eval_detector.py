"""The real-audio evaluation's figures (model_export.eval_detector), on known score lists."""

import numpy as np
import pytest

from model_export.eval_detector import _clip, _neg_clip_centres, events, recall_at_false, roc_auc


def test_roc_auc_counts_ties_half():
    assert roc_auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert roc_auc([0.5], [0.5]) == 0.5
    assert roc_auc([0.9, 0.1], [0.5]) == 0.5
    assert np.isnan(roc_auc([], [0.1]))


def test_recall_at_false_allows_exactly_the_share_of_negatives():
    neg = np.linspace(0, 0.99, 100)  # 100 negatives: 1 % = 1 may pass
    r, thr = recall_at_false([0.985, 0.995, 0.5], neg, 0.01)
    assert thr == pytest.approx(0.98) and r == pytest.approx(2 / 3)
    r, thr = recall_at_false([0.985, 0.995, 0.5], neg, 0.0)
    assert thr == pytest.approx(0.99) and r == pytest.approx(1 / 3)


def test_a_saturated_top_value_cannot_be_split():
    # int8 probability stuck at 0.996 on positives and on 3 of 100 negatives: at <= 1 % false
    # files no threshold passes those positives
    neg = [0.996] * 3 + [0.1] * 97
    r, _ = recall_at_false([0.996] * 5, neg, 0.01)
    assert r == 0.0
    r, _ = recall_at_false([0.996] * 5, neg, 0.03)
    assert r == 1.0


def test_events_are_runs_above_threshold():
    assert events(np.array([0.1, 0.6, 0.7, 0.2, 0.9]), 0.5) == 2
    assert events(np.array([0.6]), 0.5) == 1
    assert events(np.array([]), 0.5) == 0


def test_clips_are_two_seconds_inside_the_file():
    a = np.arange(24000 * 5, dtype=np.float32)
    assert len(_clip(a, 0.2)) == 48000 and _clip(a, 0.2)[0] == 0
    assert len(_clip(a, 4.9)) == 48000 and _clip(a, 4.9)[-1] == a[-1]
    c = _neg_clip_centres("x/y.mp3", 30.0)
    assert c == _neg_clip_centres("x/y.mp3", 30.0) and len(c) == 5  # seeded by file
    assert all(1.0 <= t <= 29.0 for t in c) and _neg_clip_centres("x/y.mp3", 1.5) == []


def test_cascade_figures_come_from_the_candidates_verifier_probabilities():
    from model_export.eval_detector import _summary, cascade_sweep

    rows = [
        {"group": "yellowhammer", "seconds": 60, "max_prob": 0.99, "songs": 1, "candidates": 2,
         "verifier_p": [0.9, 0.2], "cascade_max": 0.9},
        {"group": "other", "seconds": 1800, "max_prob": 0.95, "songs": 0, "candidates": 3,
         "verifier_p": [0.4, 0.3, 0.1], "cascade_max": 0.4},
        {"group": "other", "seconds": 1800, "max_prob": 0.1, "songs": 0, "candidates": 0,
         "verifier_p": [], "cascade_max": 0.0},
        {"group": "soundscape", "seconds": 3600, "max_prob": 0.2, "songs": 0, "candidates": 0,
         "verifier_p": [], "cascade_max": 0.0},
    ]  # fmt: skip
    clips = {v: [{"y": 1, "detector": 0.9, "cascade": 0.8}, {"y": 0, "detector": 0.95, "cascade": 0.3}]
             for v in ("native", "16k")}  # fmt: skip
    s = _summary(rows, clips, 0.85, False, vthr=0.5)
    assert s["detector"]["false_songs_per_hour_other"] == 3.0  # every candidate: the detector alone
    assert s["cascade"]["false_songs_per_hour_other"] == 0.0 and s["cascade"]["files_detected"] == 1
    assert s["cascade"]["file_auc"] == 1.0 and s["detector"]["file_auc"] == 1.0
    sweep = {d["verifier_threshold"]: d for d in cascade_sweep(rows, clips, (0.25, 0.5))}
    assert sweep[0.25]["false_songs_per_hour_other"] == 2.0 and sweep[0.25]["other_files_false"] == 1
    assert sweep[0.25]["clips_native_recall"] == 1.0 and sweep[0.25]["clips_native_false"] == 1.0
    assert sweep[0.5]["clips_native_false"] == 0.0
