"""Held-out evaluation of the detector and the encoder (synthetic birds never seen in training,
real recordings from the test split) and speed against BirdNET.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

import numpy as np

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# detector
def merge_events(flags: np.ndarray) -> int:
    """Number of runs of consecutive True values."""
    f = np.asarray(flags, dtype=bool)
    return int(np.sum(f[1:] & ~f[:-1]) + (1 if f.size and f[0] else 0))


def detector_metrics(prob: np.ndarray, test, threshold: float, hop_s: float) -> dict:
    """ROC-AUC, precision/recall at the threshold, and false detections per hour of audio with
    no yellowhammer (background and distractor windows of bird-free scenes)."""
    from sklearn.metrics import precision_score, recall_score, roc_auc_score

    y = test.y > 0.5
    pred = prob >= threshold
    out = {
        "windows": int(len(y)),
        "positives": int(y.sum()),
        "threshold": threshold,
        "roc_auc": round(float(roc_auc_score(y, prob)), 4),
        "precision": round(float(precision_score(y, pred)), 4),
        "recall": round(float(recall_score(y, pred)), 4),
    }
    groups_with_song = set(test.group[test.kind == "song"].tolist())
    fp_events, seconds = 0, 0.0
    distractor_windows = distractor_fp = 0
    for g in np.unique(test.group):
        if g in groups_with_song:
            continue
        m = test.group == g
        fp_events += merge_events(pred[m])
        seconds += m.sum() * hop_s
        d = m & (test.kind == "distractor")
        distractor_windows += int(d.sum())
        distractor_fp += int((pred & d).sum())
    out["bird_free_hours"] = round(seconds / 3600, 3)
    out["false_events_per_hour"] = round(fp_events / (seconds / 3600), 2) if seconds else None
    out["distractor_window_fp_rate"] = (
        round(distractor_fp / distractor_windows, 4) if distractor_windows else None
    )
    return out


# --------------------------------------------------------------------------------------------
# encoder
def cluster(
    emb: np.ndarray, min_cluster_size: int = 15, min_samples: int = 5, pca_dims: int = 0
) -> np.ndarray:
    """HDBSCAN labels (-1 = noise) of unit embeddings (optionally after PCA)."""
    from sklearn.cluster import HDBSCAN
    from sklearn.decomposition import PCA

    x = emb
    if pca_dims and pca_dims < emb.shape[1]:
        x = PCA(pca_dims, random_state=0).fit_transform(emb)
    return HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples).fit_predict(x)


def cluster_scores(labels: np.ndarray, truth: np.ndarray) -> dict:
    """ARI and NMI (noise points count as one extra cluster), cluster count, noise fraction."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {
        "ari": round(float(adjusted_rand_score(truth, labels)), 4),
        "nmi": round(float(normalized_mutual_info_score(truth, labels)), 4),
        "clusters": int(len(set(labels.tolist()) - {-1})),
        "noise_fraction": round(float(np.mean(labels == -1)), 4),
    }


def novelty(labels: np.ndarray, truth: np.ndarray, left_out: str, purity: float = 0.9) -> dict:
    """Fraction of the left-out dialect's songs that sit in clusters that are >= 90 % that dialect."""
    songs = truth == left_out
    pure_clusters = []
    for c in set(labels.tolist()) - {-1}:
        m = labels == c
        if np.mean(truth[m] == left_out) >= purity:
            pure_clusters.append(c)
    in_pure = np.isin(labels, pure_clusters) & songs
    absorbed = Counter(
        truth[
            np.isin(labels, list(set(labels[songs].tolist()) - set(pure_clusters) - {-1})) & ~songs
        ].tolist()
    )
    return {
        "left_out": left_out,
        "songs": int(songs.sum()),
        "fraction_in_own_clusters": round(float(in_pure.sum() / max(1, songs.sum())), 4),
        "own_clusters": len(pure_clusters),
        "fraction_noise": round(float(np.mean(labels[songs] == -1)), 4),
        "mixed_with": dict(absorbed.most_common(3)),
    }


def per_class_accuracy(pred: np.ndarray, truth: np.ndarray) -> dict:
    return {str(c): round(float(np.mean(pred[truth == c] == c)), 4) for c in sorted(set(truth.tolist()))}


def encoder_report(
    emb: np.ndarray, truth: np.ndarray, head_pred: np.ndarray | None = None, min_cluster_size: int = 15
) -> dict:
    """Everything the issue asks of an encoder on held-out birds."""
    from model_export.train import knn_accuracy

    labels = cluster(emb, min_cluster_size)
    complete = truth != "incomplete"
    labels_c = cluster(emb[complete], min_cluster_size)
    out = {
        "songs": int(len(truth)),
        "all_songs": cluster_scores(labels, truth),
        "complete_songs": cluster_scores(labels_c, truth[complete]),
        "knn1_accuracy": round(knn_accuracy(emb, truth), 4),
    }
    if head_pred is not None:
        out["head_accuracy"] = round(float(np.mean(head_pred == truth)), 4)
        out["head_per_dialect"] = per_class_accuracy(head_pred, truth)
    return out


# --------------------------------------------------------------------------------------------
# speed
def cpu_ms_per_audio_second(fn, audio_seconds: float, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return 1000.0 * best / audio_seconds
