"""Evaluation on real recordings: per-file detection next to BirdNET, and how real songs cluster.

Only files of the *test* split (see :mod:`model_export.data`) count as unseen: all real
yellowhammer files, and the third of the other-species and soundscape files that training never
used as background or distractor.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from edge.core.frontend import FrontendConfig, logmel

log = logging.getLogger(__name__)


def run_pipeline(audio: np.ndarray, detector, encoder, cfg: FrontendConfig, source: str = ""):
    """The recorder's pipeline on one clip -> detections: composed by
    :func:`edge.app.compose.build_pipeline` as on the Pi (energy gate, the encoder manifest's
    verifier if it has one; an in-memory store), fed in half-second chunks."""
    from edge.app.compose import build_pipeline
    from edge.app.config import load_config
    from edge.core.records import AudioChunk

    pipe = build_pipeline(load_config(None), detector=detector, encoder=encoder, memory=True).pipeline
    step = cfg.sample_rate // 2
    out = []
    for i in range(0, len(audio), step):
        chunk = AudioChunk(audio[i : i + step], cfg.sample_rate, i, i / cfg.sample_rate, source=source,
                           stream_start=(i == 0))  # fmt: skip
        out += pipe.process(chunk)
    out += pipe.end_stream()
    return out


def _windows(feats: np.ndarray, frames: int, hop: int) -> np.ndarray:
    n = (len(feats) - frames) // hop + 1
    if n <= 0:
        return np.zeros((0, frames, feats.shape[1]), np.float32)
    return np.stack([feats[i * hop : i * hop + frames] for i in range(n)])


def _birdnet(with_birdnet: bool):
    """BirdNET for the comparison (None when not wanted or not installed)."""
    if not with_birdnet:
        return None
    from model_export.birdnet import BirdNET, BirdNETUnavailable

    try:
        return BirdNET()
    except BirdNETUnavailable as exc:
        log.warning("BirdNET unavailable: %s", exc)
        return None


def _file_row(r: dict, det, enc, cfg: FrontendConfig, bn, embeddings: list) -> dict:
    """One file's row: the detector's highest window probability, the pipeline's songs (a real
    yellowhammer file's song embeddings go to ``embeddings``) and BirdNET's highest score."""
    from model_export.synth import load_audio

    audio = load_audio(r["path"], cfg.sample_rate)
    probs = det.predict(_windows(logmel(audio, cfg), det.window_frames, det.hop_frames))
    dets = run_pipeline(audio, det, enc, cfg, str(r["path"]))
    row = {
        "file": r["file"],
        "label": r["label"],
        "seconds": round(len(audio) / cfg.sample_rate, 1),
        "max_prob": round(float(probs.max()) if probs.size else 0.0, 3),
        "songs": len(dets),
        "detected": bool(dets),
    }
    if r["label"] == "yellowhammer":
        embeddings += [(r["file"], d.embedding) for d in dets]
    if bn is not None:
        a48 = load_audio(r["path"], 48000)
        row["birdnet_max"] = round(float(bn.yellowhammer_score(a48, 48000).max()), 3)
    return row


def _summary(rows: list[dict], threshold: float, with_birdnet: bool) -> dict:
    """Per label: files, the fraction detected, and BirdNET's fraction and agreement."""
    summary = {}
    for label in ("yellowhammer", "other", "soundscape"):
        sel = [x for x in rows if x["label"] == label]
        if not sel:
            continue
        s = {
            "files": len(sel),
            "detected_fraction": round(float(np.mean([x["detected"] for x in sel])), 3),
            "threshold": threshold,
        }
        if with_birdnet:
            s["birdnet_ge_0.5_fraction"] = round(float(np.mean([x["birdnet_max"] >= 0.5 for x in sel])), 3)
            s["agree_with_birdnet"] = round(
                float(np.mean([x["detected"] == (x["birdnet_max"] >= 0.5) for x in sel])), 3
            )
        summary[label] = s
    return summary


def _clusters(embeddings: list) -> dict:
    """How the real yellowhammer songs' embeddings cluster (empty below 5 songs)."""
    if len(embeddings) < 5:
        return {}
    from model_export.evaluate_models import cluster

    e = np.stack([v for _, v in embeddings])
    labels = cluster(e, min_cluster_size=max(3, len(e) // 20), min_samples=3)
    counts = sorted(np.bincount(labels[labels >= 0]).tolist(), reverse=True) if (labels >= 0).any() else []
    clusters = {
        "songs": len(e),
        "files": len({f for f, _ in embeddings}),
        "clusters": len(counts),
        "sizes": counts,
        "noise_fraction": round(float(np.mean(labels == -1)), 3),
        "largest_cluster_fraction": round(counts[0] / len(e), 3) if counts else 0.0,
    }
    by_cluster: dict[int, set] = {}
    for (f, _), c in zip(embeddings, labels):
        by_cluster.setdefault(int(c), set()).add(f)
    clusters["files_per_cluster"] = {str(c): len(fs) for c, fs in sorted(by_cluster.items())}
    clusters["embeddings"] = e.tolist()
    clusters["song_files"] = [f for f, _ in embeddings]
    return clusters


def evaluate_real(
    real_root: str | Path,
    models_dir: str | Path | None = None,
    with_birdnet: bool = True,
    splits=("test",),
    progress=None,
) -> dict:
    """Per-file table and summary; see the module docstring for what counts as unseen."""
    from edge.adapters.models.tflite import TFLiteDetector, TFLiteEncoder
    from model_export.data import real_manifest

    models_dir = Path(models_dir) if models_dir else None
    det = TFLiteDetector(models_dir / "detector.tflite" if models_dir else None)
    enc = TFLiteEncoder(models_dir / "encoder.tflite" if models_dir else None)
    cfg = det.frontend
    bn = _birdnet(with_birdnet)
    rows, embeddings = [], []
    for r in [r for r in real_manifest(real_root) if r["split"] in splits]:
        rows.append(_file_row(r, det, enc, cfg, bn, embeddings))
        if progress:
            progress(1)
    return {
        "rows": rows,
        "summary": _summary(rows, det.threshold, bn is not None),
        "real_yellowhammer_clusters": _clusters(embeddings),
        "models": {"detector": det.version, "encoder": enc.version},
    }


def bench_models(
    seconds: float = 60.0, models_dir: str | Path | None = None, with_birdnet: bool = True
) -> dict:
    """CPU ms per audio second of frontend, detector and encoder (edge runtime) and BirdNET,
    measured in the same run on the same generated audio."""
    from edge.adapters.models.tflite import TFLiteDetector, TFLiteEncoder, interpreter_name
    from model_export.evaluate_models import cpu_ms_per_audio_second
    from model_export.synth import make_bird, make_scene

    models_dir = Path(models_dir) if models_dir else None
    det = TFLiteDetector(models_dir / "detector.tflite" if models_dir else None)
    enc = TFLiteEncoder(models_dir / "encoder.tflite" if models_dir else None)
    cfg = det.frontend
    rng = np.random.default_rng(0)
    scene = make_scene([make_bird("XlB", rng, 1), make_bird("BC", rng, 2)], rng, duration_s=seconds)
    audio = scene.audio
    windows = _windows(logmel(audio, cfg), det.window_frames, det.hop_frames)
    enc_windows = _windows(logmel(audio, cfg), enc.window_frames, enc.window_frames)[:10]
    out = {"audio_seconds": seconds, "runtime": interpreter_name()}
    out["frontend_ms_per_s"] = cpu_ms_per_audio_second(lambda: logmel(audio, cfg), seconds)
    out["detector_ms_per_s"] = cpu_ms_per_audio_second(lambda: det.predict(windows), seconds)
    t0 = time.process_time()
    for w in enc_windows:
        enc.embed(w)
    out["encoder_ms_per_song"] = 1000 * (time.process_time() - t0) / len(enc_windows)
    # at the fastest singing rate (9 songs a minute, all day)
    out["encoder_ms_per_s_at_9_songs_per_min"] = out["encoder_ms_per_song"] * 9 / 60
    out["always_on_ms_per_s"] = out["frontend_ms_per_s"] + out["detector_ms_per_s"]
    if with_birdnet:
        from model_export.birdnet import BirdNET
        from model_export.synth import resample

        bn = BirdNET()
        a48 = resample(audio, cfg.sample_rate, 48000)
        bn.scores(a48[: 48000 * 3], 48000)  # warm-up
        out["birdnet_ms_per_s"] = cpu_ms_per_audio_second(lambda: bn.scores(a48, 48000), seconds, repeat=1)
        out["birdnet_vs_always_on"] = out["birdnet_ms_per_s"] / out["always_on_ms_per_s"]
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}
