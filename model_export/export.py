"""Full-integer int8 TFLite export with a representative dataset, plus the JSON manifest.

The representative windows come from the project's frontend (the same features the Pi
computes). After conversion the model is loaded back through the *edge* runtime adapter
(:mod:`edge.adapters.models.tflite`) and compared with the float Keras model on held-out windows.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from edge.adapters.models.manifest import write_manifest
from edge.core.frontend import FrontendConfig

log = logging.getLogger(__name__)


def convert_int8(model, representative: np.ndarray, n_samples: int = 300, seed: int = 0) -> bytes:
    """Keras model -> int8 TFLite bytes (int8 input and output, int8 kernels only)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    idx = rng.choice(len(representative), size=min(n_samples, len(representative)), replace=False)

    def rep():
        for i in idx:
            yield [representative[i][None, ..., None].astype(np.float32)]

    with tempfile.TemporaryDirectory() as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        return conv.convert()


def tensor_specs(tflite_path: Path) -> tuple[dict, dict]:
    """(input spec, output spec) dicts of a single-input, single-output TFLite model."""
    from edge.adapters.models.tflite import load_interpreter

    interp = load_interpreter(tflite_path)

    def spec(d):
        scale, zp = d["quantization"]
        return {
            "name": d["name"],
            "shape": [int(v) for v in d["shape"]],
            "dtype": np.dtype(d["dtype"]).name,
            "scale": float(scale),
            "zero_point": int(zp),
        }

    (i,), (o,) = interp.get_input_details(), interp.get_output_details()
    return spec(i), spec(o)


def encoder_margin_frames(cfg: FrontendConfig) -> int:
    """Frames between a song's offset and the end of its encoder window (0.1 s, as in training)."""
    from edge.core.pipeline import ENCODER_MARGIN_S

    return cfg.frames_for(ENCODER_MARGIN_S)


def export_model(
    model,
    kind: str,
    out_dir: Path,
    representative: np.ndarray,
    cfg: FrontendConfig,
    window_frames: int,
    hop_frames: int,
    extra: dict,
    version_tag: str = "",
) -> Path:
    """Convert, write ``<kind>.tflite`` and its manifest into ``out_dir``; returns the model path."""
    import hashlib

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{kind}.tflite"
    data = convert_int8(model, representative)
    write_model_file(path, data)
    now = dt.datetime.now(dt.timezone.utc)
    version = f"{kind}-{now:%Y%m%d}-{hashlib.sha256(data).hexdigest()[:8]}" + (
        f"-{version_tag}" if version_tag else ""
    )
    manifest = build_manifest(path, kind, version, cfg, window_frames, hop_frames, extra, created=now)
    write_manifest(path, manifest)
    log.info("exported %s (%d bytes) as %s", path, len(data), version)
    return path


def write_model_file(path: Path, data: bytes) -> None:
    """Write a converted model's bytes (atomically: temporary file, then rename)."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)


def build_manifest(
    path: Path,
    kind: str,
    version: str,
    cfg: FrontendConfig,
    window_frames: int,
    hop_frames: int,
    extra: dict,
    created: dt.datetime | None = None,
) -> dict:
    """The manifest of the model file at ``path`` (``detector``/``encoder``): identity, frontend,
    window (the encoder's ends a margin after the song's offset), tensor specs read back from the
    file, then ``extra`` (labels, threshold, training, metrics, ...). Every model the project
    ships, trained or placeholder, gets its manifest from here; write it with
    :func:`edge.adapters.models.manifest.write_manifest`."""
    created = created or dt.datetime.now(dt.timezone.utc)
    ispec, ospec = tensor_specs(path)
    key = "probability" if kind == "detector" else "embedding"
    return {
        "kind": kind,
        "version": version,
        "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "frontend": cfg.to_dict(),
        "window": {
            "frames": window_frames,
            "hop_frames": hop_frames,
            "align": "end" if kind == "encoder" else "start",
            # the encoder window closes this many frames after the song's offset (as in training)
            **({"margin_frames": encoder_margin_frames(cfg)} if kind == "encoder" else {}),
        },
        "input": ispec,
        "outputs": {key: ospec},
        **extra,
    }


def compare_int8(kind: str, model_path: Path, float_model, x: np.ndarray, threshold: float = 0.5) -> dict:
    """Run the exported model with the edge runtime and the float model on the same windows."""
    from edge.adapters.models.tflite import TFLiteDetector, TFLiteEncoder
    from model_export.train import embed, predict

    if kind == "detector":
        det = TFLiteDetector(model_path)
        q = det.predict(x.astype(np.float32))
        f = predict(float_model, x)
        agree = float(np.mean((q >= threshold) == (f >= threshold)))
        return {
            "windows": int(len(x)),
            "decision_agreement": round(agree, 5),
            "max_abs_prob_diff": round(float(np.max(np.abs(q - f))), 5),
            "size_kb": round(model_path.stat().st_size / 1024, 1),
        }
    enc = TFLiteEncoder(model_path)
    q = np.stack([enc.embed(w.astype(np.float32)) for w in x])
    f = embed(float_model, x)
    cos = np.sum(q * f, axis=1)
    return {
        "songs": int(len(x)),
        "cosine_mean": round(float(cos.mean()), 5),
        "cosine_min": round(float(cos.min()), 5),
        "cosine_p01": round(float(np.quantile(cos, 0.01)), 5),
        "size_kb": round(model_path.stat().st_size / 1024, 1),
    }


def update_manifest(model_path: Path, **fields) -> None:
    """Add fields (metrics, comparison) to an exported model's manifest, keeping its hash valid."""
    from edge.adapters.models.manifest import manifest_path

    data = json.loads(manifest_path(model_path).read_text())
    data.update(fields)
    write_manifest(model_path, data)
