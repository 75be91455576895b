"""The encoder with the song ends given, for ``tools/eval_valsynth.py``: the int8 encoder on
exactly the window the runtime would embed for a song ending at its true offset (the stream's
frames in the runtime's ``FrameRing``), then HDBSCAN as the server runs it and 1-NN from another
bird over the complete songs and over all songs, and the encoder's complete head."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from edge.adapters.audio.wavfile import read_wav, to_mono
from edge.adapters.models.tflite import TFLiteEncoder
from edge.core.frontend import StreamingLogMel
from edge.core.pipeline import FrameRing


def embed_given_ends(truth: list[dict], encoder: TFLiteEncoder, margin: int, progress=None) -> np.ndarray:
    """Embeddings of every song's runtime window (see the module docstring)."""
    cfg = encoder.frontend
    hop, half = cfg.hop_length, cfg.n_fft // 2
    w = encoder.window_frames
    out = np.zeros((len(truth), encoder.embedding_dim), np.float32)
    by_file: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(truth):
        by_file[s["path"]].append(i)
    for path, idx in by_file.items():
        x, sr = read_wav(path)
        x = to_mono(x)
        fe = StreamingLogMel(cfg, input_rate=sr)
        frames = fe.process(x.astype(np.float32))
        ring = FrameRing(max(frames.shape[0], 2 * w), cfg.n_mels)
        ring.append(frames)
        for i in idx:
            end_sample = truth[i]["offset_s"] * cfg.sample_rate  # in model-rate samples
            # the segmenter's convention: end_sample = (e - 1) * hop + n_fft/2 + hop/2
            e = int(round((end_sample - half - hop // 2) / hop)) + 1
            end = e + margin
            out[i] = encoder.embed(ring.get(end - w, end))
        if progress:
            progress(len(idx))
    return out


def one_nn_other_bird(z: np.ndarray, labels: list[str], birds: list[str]) -> dict:
    z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    sim = z @ z.T
    b = np.asarray(birds)
    sim[b[:, None] == b[None, :]] = -np.inf
    nn = np.argmax(sim, axis=1)
    lab = np.asarray(labels)
    hit = lab[nn] == lab
    per = {}
    for d in sorted(set(labels)):
        m = lab == d
        conf = Counter(lab[nn[m]])
        per[d] = {
            "n": int(m.sum()),
            "accuracy": round(float(hit[m].mean()), 4),
            "neighbours": dict(conf.most_common()),
        }
    return {"accuracy": round(float(hit.mean()), 4), "n": int(len(lab)), "per_label": per}


def cluster_report(z: np.ndarray, labels: list[str], min_cluster_size: int) -> dict:
    from server.clustering import ClusterParams, cluster_embeddings, evaluate

    res = cluster_embeddings(z, ClusterParams(min_cluster_size=min_cluster_size))
    ids = [str(i) for i in range(len(labels))]
    ev = evaluate(ids, res.labels, dict(zip(ids, labels, strict=True)))
    comp = defaultdict(Counter)
    for c, lab in zip(res.labels, labels, strict=True):
        comp[int(c)][lab] += 1
    return {
        "ari": ev["ari"],
        "nmi": ev["nmi"],
        "ari_clustered": ev.get("ari_clustered"),
        "outlier_fraction": ev["outlier_fraction"],
        "clusters": int(res.labels.max() + 1),
        "composition": {str(c): dict(cnt.most_common()) for c, cnt in sorted(comp.items())},
    }


def encoder_report(
    truth: list[dict], encoder: TFLiteEncoder, z: np.ndarray, margin: int, min_cluster_size: int
) -> dict:
    """HDBSCAN and 1-NN from another bird over the complete songs and over all songs, and the
    encoder's complete head (when it has one) on the embeddings ``z`` of the true songs."""
    comp = np.array([bool(s["complete"]) for s in truth])
    lab_all = [s["dialect"] if s["complete"] else "incomplete" for s in truth]
    birds = [s["bird_id"] for s in truth]
    enc = {
        "encoder_version": encoder.version,
        "songs": len(truth),
        "margin_frames": margin,
        "window_frames": encoder.window_frames,
    }
    zc = z[comp]
    lab_c = [lab for lab, c in zip(lab_all, comp, strict=True) if c]
    birds_c = [b for b, c in zip(birds, comp, strict=True) if c]
    enc["complete_songs"] = {
        "hdbscan": cluster_report(zc, lab_c, min_cluster_size),
        "one_nn_other_bird": one_nn_other_bird(zc, lab_c, birds_c),
    }
    enc["all_songs"] = {
        "hdbscan": cluster_report(z, lab_all, min_cluster_size),
        "one_nn_other_bird": one_nn_other_bird(z, lab_all, birds),
    }
    if encoder.complete_probability(z[0]) is not None:  # the encoder's complete head (issue 14)
        p = np.array([encoder.complete_probability(e) for e in z])
        pos, neg = p[comp], p[~comp]
        enc["complete_head"] = {
            "accuracy_at_0.5": round(float(np.mean((p >= 0.5) == comp)), 4),
            "incomplete_recall": round(float(np.mean(neg < 0.5)), 4) if neg.size else None,
            "complete_recall": round(float(np.mean(pos >= 0.5)), 4) if pos.size else None,
            "auc": round(float(np.mean(pos[:, None] > neg[None, :])), 4) if pos.size and neg.size else None,
        }
    return enc
