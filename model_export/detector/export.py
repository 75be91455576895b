"""int8 export of the real-recordings detector: a clipped-logit output and its manifest."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np


def export_detector(model, out: Path, representative: np.ndarray, threshold: float, training: dict,
                    command: str, frames: int, hop: int) -> Path:  # fmt: skip
    """Write ``out/detector.tflite`` (int8 in, int8 clipped logit out) and ``detector.json``.

    The representative windows mix every training stratum, so the int8 input range covers quiet
    and loud, native and 16-kHz windows.
    """
    from edge.adapters.models.manifest import write_manifest
    from edge.core.frontend import FrontendConfig
    from model_export.detector.fit import LOGIT_CLIP, for_export, predict_logits
    from model_export.export import convert_int8, tensor_specs

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "detector.tflite"
    data = convert_int8(for_export(model), representative, n_samples=500)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)
    now = dt.datetime.now(dt.timezone.utc)
    ispec, ospec = tensor_specs(path)
    manifest = {
        "kind": "detector",
        "version": f"detector-{now:%Y%m%d}-{hashlib.sha256(data).hexdigest()[:8]}-real",
        "created": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "frontend": FrontendConfig().to_dict(),
        "window": {"frames": frames, "hop_frames": hop, "align": "start"},
        "input": ispec,
        "outputs": {"logit": ospec},
        "output_activation": {
            "logit": f"sigmoid (probability = 1 / (1 + exp(-logit)), logit clipped to +-{LOGIT_CLIP})"
        },
        "threshold": threshold,
        "labels": ["yellowhammer"],
        "training": training,
        "reproduce": command,
    }
    write_manifest(path, manifest)
    # int8 against float on a sample of the representative windows
    from edge.adapters.models.tflite import TFLiteDetector

    rng = np.random.default_rng(0)
    idx = rng.choice(len(representative), size=min(2000, len(representative)), replace=False)
    x = representative[idx].astype(np.float32)
    q = TFLiteDetector(path).predict(x)
    f = 1 / (1 + np.exp(-np.clip(predict_logits(model, x), -LOGIT_CLIP, LOGIT_CLIP)))
    manifest["int8_vs_float"] = {
        "windows": int(len(x)),
        "decision_agreement": round(float(np.mean((q >= threshold) == (f >= threshold))), 5),
        "max_abs_prob_diff": round(float(np.max(np.abs(q - f))), 5),
        "distinct_int8_scores_above_0.9": int(len(np.unique(q[q > 0.9]))),
        "size_kb": round(path.stat().st_size / 1024, 1),
    }
    write_manifest(path, manifest)
    return path
