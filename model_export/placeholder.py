"""Placeholder int8 TFLite models with the real interface, until the trained ones exist.

Both are genuine Keras models converted to full-int8 TFLite with a representative dataset, and
both ship with a real manifest built by the export's own builder
(:func:`model_export.export.build_manifest`), so the runtime path (manifest check, tensors by
name, int8 quantise/dequantise) is exactly the one the trained models take. Only the weights are set by hand:

- **detector** (``placeholder-detector-1``): window of 1 s, hop 0.5 s (in frames of the default
  frontend). Per frame,
  the mean log-mel level of the bands at 3-7.5 kHz minus the mean of the other bands; averaged over
  the window; ``sigmoid(DET_SCALE * (contrast - DET_OFFSET_DB))``. It finds loud songs in quiet
  surroundings and will also fire on other birds singing in that band.
- **encoder** (``placeholder-encoder-1``): window of 1.6 s ending ``ENC_MARGIN_FRAMES`` (0.1 s) after
  the song's offset; per-band time mean (with the overall level removed) and per-band mean
  absolute deviation over time, through a fixed seeded random projection to 32 dimensions. It is
  a spectral-shape fingerprint, not a learnt dialect embedding.

Usage::

    python -m model_export.placeholder OUT_DIR [--install]

``--install`` also copies them into ``edge/models/`` when no detector is there yet (never over a
real model).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from edge.adapters.models.manifest import write_manifest
from edge.core.frontend import FrontendConfig, logmel, mel_frequencies
from model_export.export import encoder_margin_frames

log = logging.getLogger(__name__)

DETECTOR_VERSION = "placeholder-detector-1"
ENCODER_VERSION = "placeholder-encoder-1"
_CFG = FrontendConfig()  # windows in seconds: detector 1 s every 0.5 s, encoder 1.6 s
DET_FRAMES, DET_HOP = _CFG.frames_for(1.0), _CFG.frames_for(0.5)
ENC_FRAMES, ENC_MARGIN_FRAMES = _CFG.frames_for(1.6), encoder_margin_frames(_CFG)
EMBEDDING_DIM = 32
SONG_BAND_HZ = (3000.0, 7500.0)
DET_OFFSET_DB = 3.0  # window contrast (dB) at which p = 0.5; calibrated on the synthetic fixtures
DET_SCALE = 2.0  # 1/dB: p goes 0.12 -> 0.88 over +-1 dB around the offset
SEED = 20240611
EDGE_MODELS = Path(__file__).resolve().parents[1] / "edge" / "models"


def _band_weights(cfg: FrontendConfig) -> np.ndarray:
    f = mel_frequencies(cfg)
    inb = (f >= SONG_BAND_HZ[0]) & (f <= SONG_BAND_HZ[1])
    return np.where(inb, 1.0 / inb.sum(), -1.0 / (~inb).sum()).astype(np.float32)


def build_detector_keras(cfg: FrontendConfig):
    """Keras model ``(1, 100, n_mels, 1)`` dB -> ``(1, 1)`` probability, weights set by hand."""
    import keras

    inp = keras.Input(shape=(DET_FRAMES, cfg.n_mels, 1), batch_size=1, name="logmel")
    contrast = keras.layers.Conv2D(1, (1, cfg.n_mels), use_bias=False, name="band_contrast")(inp)
    pooled = keras.layers.AveragePooling2D((DET_FRAMES, 1), name="time_mean")(contrast)
    flat = keras.layers.Flatten()(pooled)
    prob = keras.layers.Dense(1, activation="sigmoid", name="probability")(flat)
    model = keras.Model(inp, prob, name="placeholder_detector")
    model.get_layer("band_contrast").set_weights([_band_weights(cfg).reshape(1, cfg.n_mels, 1, 1)])
    model.get_layer("probability").set_weights(
        [np.array([[DET_SCALE]], np.float32), np.array([-DET_SCALE * DET_OFFSET_DB], np.float32)]
    )
    return model


def build_encoder_keras(cfg: FrontendConfig):
    """Keras model ``(1, 160, n_mels, 1)`` dB -> ``(1, 32)`` embedding (not normalised)."""
    import keras

    n = cfg.n_mels
    inp = keras.Input(shape=(ENC_FRAMES, n, 1), batch_size=1, name="logmel")
    mean = keras.layers.AveragePooling2D((ENC_FRAMES, 1), name="time_mean")(inp)
    mean_b = keras.layers.UpSampling2D((ENC_FRAMES, 1))(mean)
    # |x - mean| as relu(x - mean) + relu(mean - x): plain layers every converter knows
    up = keras.layers.ReLU()(keras.layers.Subtract()([inp, mean_b]))
    down = keras.layers.ReLU()(keras.layers.Subtract()([mean_b, inp]))
    dev = keras.layers.AveragePooling2D((ENC_FRAMES, 1), name="time_mad")(keras.layers.Add()([up, down]))
    feats = keras.layers.Concatenate()([keras.layers.Flatten()(mean), keras.layers.Flatten()(dev)])
    emb = keras.layers.Dense(EMBEDDING_DIM, use_bias=False, name="embedding")(feats)
    model = keras.Model(inp, emb, name="placeholder_encoder")
    rng = np.random.default_rng(SEED)
    proj = rng.standard_normal((2 * n, EMBEDDING_DIM)).astype(np.float32) / np.sqrt(2 * n)
    # remove the overall level from the band means (spectral shape only), folded into the weights
    centre = np.eye(n, dtype=np.float32) - np.full((n, n), 1.0 / n, np.float32)
    proj[:n] = centre @ proj[:n]
    proj[n:] *= 4.0  # deviations are a few dB, means tens: balance their contributions
    model.get_layer("embedding").set_weights([proj])
    return model


def _representative_logmel(cfg: FrontendConfig, seed: int = SEED) -> np.ndarray:
    """Log-mel frames of noise at many levels plus synthetic songs, for int8 calibration."""
    rng = np.random.default_rng(seed)
    sr = cfg.sample_rate
    parts = []
    for level in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1):
        parts.append((level * rng.standard_normal(4 * sr)).astype(np.float32))
    try:
        from model_export.synth import DIALECTS, make_bird, render_song

        for i, dialect in enumerate(DIALECTS):
            bird = make_bird(dialect, rng, bird_id=i)
            audio, _ = render_song(bird, rng, sr)
            noise = 10 ** rng.uniform(-5, -2.5) * rng.standard_normal(audio.size + sr)
            noise[sr // 2 : sr // 2 + audio.size] += audio * 10 ** rng.uniform(-2, 0)
            parts.append(noise.astype(np.float32))
    except ImportError:  # the generator is optional here: tones stand in for songs
        t = np.arange(3 * sr) / sr
        for f0 in (3500.0, 4500.0, 6000.0, 7500.0):
            parts.append(
                (0.1 * np.sin(2 * np.pi * f0 * t) + 1e-3 * rng.standard_normal(t.size)).astype(np.float32)
            )
    return np.concatenate([logmel(p, cfg) for p in parts])


def _convert(model, frames: int, rep: np.ndarray, n_samples: int = 200) -> bytes:
    """Full-int8 conversion on random ``frames``-long crops of the representative log-mel."""
    from model_export.export import convert_int8

    rng = np.random.default_rng(SEED)
    starts = rng.integers(0, rep.shape[0] - frames, size=n_samples)
    crops = np.stack([rep[s : s + frames] for s in starts])
    return convert_int8(model, crops, n_samples=n_samples, seed=SEED)


def build_placeholders(out_dir: str | Path, cfg: FrontendConfig | None = None) -> tuple[Path, Path]:
    """Write ``detector.tflite/.json`` and ``encoder.tflite/.json`` into ``out_dir`` (manifests
    by the export's builder, :func:`model_export.export.build_manifest`).

    Returns
    -------
    (Path, Path)
        The detector and encoder model files.
    """
    from model_export.export import build_manifest, write_model_file

    cfg = cfg or FrontendConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rep = _representative_logmel(cfg)
    created = datetime.now(timezone.utc)
    common = {
        "training": {
            "data": "none: weights set by hand (placeholder)",
            "calibration": "synthetic songs + noise",
        },
        "metrics": {},
        "reproduce": "python -m model_export.placeholder OUT_DIR",
    }
    det_path = out / "detector.tflite"
    write_model_file(det_path, _convert(build_detector_keras(cfg), DET_FRAMES, rep))
    det_extra = {
        **common,
        "labels": ["yellowhammer"],
        "threshold": 0.5,
        "description": f"band-energy rule: mean log-mel {SONG_BAND_HZ[0]:.0f}-{SONG_BAND_HZ[1]:.0f} Hz minus "
        f"the other bands, sigmoid({DET_SCALE} * (contrast - {DET_OFFSET_DB} dB))",
    }
    manifest = build_manifest(
        det_path, "detector", DETECTOR_VERSION, cfg, DET_FRAMES, DET_HOP, det_extra, created
    )
    write_manifest(det_path, manifest)
    enc_path = out / "encoder.tflite"
    write_model_file(enc_path, _convert(build_encoder_keras(cfg), ENC_FRAMES, rep))
    enc_extra = {
        **common,
        "labels": [],
        "embedding_dim": EMBEDDING_DIM,
        "description": "fixed random projection of per-band time mean (level removed) and mean absolute deviation",
    }
    manifest = build_manifest(
        enc_path, "encoder", ENCODER_VERSION, cfg, ENC_FRAMES, ENC_FRAMES, enc_extra, created
    )
    write_manifest(enc_path, manifest)
    log.info("wrote placeholder models to %s", out)
    return det_path, enc_path


def install_if_absent(src_dir: str | Path, models_dir: str | Path = EDGE_MODELS) -> bool:
    """Copy placeholders into the package's model folder unless a detector is already there."""
    models_dir = Path(models_dir)
    if (models_dir / "detector.tflite").exists():
        log.info("%s already holds a detector: not installing the placeholders", models_dir)
        return False
    models_dir.mkdir(parents=True, exist_ok=True)
    for name in ("detector.tflite", "detector.json", "encoder.tflite", "encoder.json"):
        tmp = models_dir / (name + ".part")
        shutil.copyfile(Path(src_dir) / name, tmp)
        tmp.replace(models_dir / name)
    log.info("installed placeholder models into %s", models_dir)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m model_export.placeholder", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("out_dir", nargs="?", help="where to write the models (default: a temporary folder)")
    p.add_argument(
        "--install", action="store_true", help="also copy into edge/models/ if no detector is there"
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if args.out_dir is None and not args.install:
        p.error("give OUT_DIR and/or --install")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out_dir or tmp)
        det, enc = build_placeholders(out)
        print(det)
        print(enc)
        if args.install:
            install_if_absent(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
