"""TFLite adapters for the Detector and Encoder ports (the only module that imports LiteRT).

The interpreter comes from ``ai_edge_litert`` where it has wheels, else ``tflite_runtime`` (32-bit
Raspberry Pi OS), else full TensorFlow (a training machine). Tensors are found by the names the
manifest gives, never by position, and checked against the manifest's shapes and quantisation.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np

from edge.adapters.models.manifest import Manifest, TensorSpec, load_manifest
from edge.core.errors import ModelError
from edge.core.frontend import FrontendConfig

log = logging.getLogger(__name__)

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"  # edge/models: the shipped models


def interpreter_class():
    """The TFLite ``Interpreter`` class of the best runtime installed (LiteRT, tflite-runtime or
    TensorFlow); raises ModelError when there is none."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found]

        return Interpreter
    except ImportError:
        pass
    try:
        import tensorflow as tf  # type: ignore[import-not-found]

        return tf.lite.Interpreter
    except ImportError:
        raise ModelError(
            "no TFLite interpreter installed (pip install ai-edge-litert, or tflite-runtime)"
        ) from None


def load_interpreter(path: str | os.PathLike, num_threads: int = 1):
    """A TFLite interpreter for ``path`` with its tensors allocated; ModelError when the file is
    not a loadable model. The public loader of every TFLite model in the project (the Pi's
    models, export checks, BirdNET as a reference)."""
    try:
        interp = interpreter_class()(model_path=str(path), num_threads=num_threads)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{path}: not a loadable TFLite model ({str(exc).splitlines()[0]})") from None
    return interp


def interpreter_name() -> str:
    """Which TFLite runtime is in use (for `doctor` and benchmarks)."""
    cls = interpreter_class()
    return f"{cls.__module__}.{cls.__name__}"


class TFLiteModel:
    """A manifest-checked TFLite model with quantise/dequantise helpers."""

    def __init__(
        self, path: str | os.PathLike, kind: str, frontend: FrontendConfig | None = None, num_threads: int = 1
    ) -> None:
        self.path = Path(path)
        self.manifest: Manifest = load_manifest(self.path)
        if self.manifest.kind != kind:
            raise ModelError(f"{self.path}: manifest says this is a {self.manifest.kind}, expected a {kind}")
        if frontend is not None:
            diff = self.manifest.frontend.mismatch(frontend)
            if diff:
                raise ModelError(
                    f"{self.path}: model was trained on a different frontend ({'; '.join(diff)})"
                )
        self._interp = load_interpreter(self.path, num_threads)
        self._in = self._match(self._interp.get_input_details(), self.manifest.input, "input")
        self._outs = {
            key: self._match(self._interp.get_output_details(), spec, f"output {key!r}")
            for key, spec in self.manifest.outputs.items()
        }

    @property
    def version(self) -> str:
        return self.manifest.version

    def _match(self, details: list[dict], spec: TensorSpec, what: str) -> dict:
        by_name = [d for d in details if d["name"] == spec.name]
        if not by_name:  # names can change in conversion; accept a unique shape match
            by_name = [d for d in details if tuple(int(v) for v in d["shape"]) == spec.shape]
            if len(by_name) != 1:
                raise ModelError(f"{self.path}: {what} {spec.name!r} of the manifest is not in the model")
        d = by_name[0]
        shape = tuple(int(v) for v in d["shape"])
        if shape != spec.shape:
            raise ModelError(f"{self.path}: {what} shape {shape} does not match the manifest's {spec.shape}")
        dtype = np.dtype(d["dtype"]).name
        if dtype != spec.dtype:
            raise ModelError(f"{self.path}: {what} dtype {dtype} does not match the manifest's {spec.dtype}")
        scale, zp = d.get("quantization", (0.0, 0))
        if spec.dtype in ("int8", "uint8") and (not np.isclose(scale, spec.scale) or zp != spec.zero_point):
            raise ModelError(f"{self.path}: {what} quantisation ({scale}, {zp}) does not match the manifest")
        return d

    def _prepare(self) -> None:
        """Precompute what every call needs (the detector runs twice a second for months)."""
        d = self._in
        self._in_index = d["index"]
        self._in_shape = tuple(int(v) for v in d["shape"])
        self._in_dtype = np.dtype(d["dtype"])
        self._in_q = None
        if self._in_dtype in (np.int8, np.uint8):
            scale, zp = d["quantization"]
            info = np.iinfo(self._in_dtype)
            self._in_q = (np.float32(1.0 / scale), np.float32(zp), info.min, info.max)
        self._out_q = []
        for key, od in self._outs.items():
            scale, zp = od["quantization"]
            quantised = np.dtype(od["dtype"]) in (np.int8, np.uint8)
            self._out_q.append((key, od["index"], np.float32(scale), np.float32(zp), quantised))

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run one input (float, without the batch axis or with it) -> float outputs by key."""
        if not hasattr(self, "_in_index"):
            self._prepare()
        x = np.asarray(x, dtype=np.float32).reshape(self._in_shape)
        if self._in_q is not None:
            inv, zp, lo, hi = self._in_q
            q = x * inv
            q += zp
            np.rint(q, out=q)
            np.clip(q, lo, hi, out=q)
            x = q.astype(self._in_dtype)
        self._interp.set_tensor(self._in_index, x)
        self._interp.invoke()
        out = {}
        for key, index, scale, zp, quantised in self._out_q:
            y = self._interp.get_tensor(index)
            out[key] = (y.astype(np.float32) - zp) * scale if quantised else y.astype(np.float32)
        return out


class TFLiteDetector:
    """Detector port on a TFLite model: log-mel windows -> yellowhammer probability."""

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        frontend: FrontendConfig | None = None,
        threshold: float | None = None,
        num_threads: int = 1,
        support_threshold: float | None = None,
    ) -> None:
        """``threshold``/``support_threshold``: None or negative = the manifest's; a support
        threshold of 0 switches the manifest's off."""
        self.model = TFLiteModel(path or MODELS_DIR / "detector.tflite", "detector", frontend, num_threads)
        m = self.model.manifest
        # a 'logit' output (int8 steps of ~0.1 in logit) resolves scores near 1, where an int8
        # 'probability' output has 1/256 steps and saturates at 0.996
        self._key = "logit" if "logit" in m.outputs else "probability"
        if self._key not in m.outputs:
            raise ModelError(f"{self.model.path}: detector manifest has no 'probability' or 'logit' output")
        self.version = m.version
        self.frontend = m.frontend
        self.window_frames = m.window_frames
        self.hop_frames = m.hop_frames
        self.threshold = m.threshold if threshold is None or threshold < 0 else float(threshold)
        sup = (
            m.support_threshold
            if support_threshold is None or support_threshold < 0
            else float(support_threshold)
        )
        self.support_threshold = sup or None

    def predict(self, windows: np.ndarray) -> np.ndarray:
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim == 2:
            windows = windows[None]
        out = np.empty(windows.shape[0], dtype=np.float32)
        run, key = self.model.run, self._key
        for i in range(windows.shape[0]):
            out[i] = run(windows[i])[key].reshape(-1)[-1]
        if key == "logit":
            out = (1.0 / (1.0 + np.exp(-out))).astype(np.float32)
        return out


class TFLiteEncoder:
    """Encoder port on a TFLite model: a song-end-aligned log-mel window -> unit embedding."""

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        frontend: FrontendConfig | None = None,
        num_threads: int = 1,
    ) -> None:
        self.model = TFLiteModel(path or MODELS_DIR / "encoder.tflite", "encoder", frontend, num_threads)
        m = self.model.manifest
        if "embedding" not in m.outputs:
            raise ModelError(f"{self.model.path}: encoder manifest has no 'embedding' output")
        self.version = m.version
        self.frontend = m.frontend
        self.window_frames = m.window_frames
        self.embedding_dim = m.embedding_dim
        self.labels = m.labels
        if int(np.prod(m.outputs["embedding"].shape)) != self.embedding_dim:
            raise ModelError(f"{self.model.path}: embedding output size differs from embedding_dim")
        self._complete_w, self._complete_b = _complete_head(m.raw.get("complete_head"), self.embedding_dim,
                                                            str(self.model.path))  # fmt: skip
        self.verifier = None  # the cascade's song verifier (edge.core.verifier), when the manifest has one
        if m.raw.get("verifier") is not None:
            from edge.core.verifier import SongVerifier

            self.verifier = SongVerifier.from_spec(
                m.raw["verifier"], self.embedding_dim, str(self.model.path)
            )

    def embed(self, window: np.ndarray) -> np.ndarray:
        e = self.model.run(window)["embedding"].reshape(-1).astype(np.float32)
        n = float(np.linalg.norm(e))
        return e / n if n > 0 else e

    @property
    def has_complete_head(self) -> bool:
        return self._complete_w is not None

    def complete_probability(self, embedding: np.ndarray) -> float | None:
        """``sigmoid(w . e + b)`` of the manifest's ``complete_head`` (a logistic head on the unit
        embedding, fitted on the training generator's complete and incomplete songs), rounded to
        4 decimals; ``None`` without a head."""
        if self._complete_w is None:
            return None
        z = float(np.dot(self._complete_w, np.asarray(embedding, np.float64).reshape(-1))) + self._complete_b
        return round(1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z)))), 4)


def _complete_head(spec, dim: int, where: str) -> tuple[np.ndarray | None, float]:
    """The manifest's optional ``complete_head`` ``{"weights": [dim floats], "bias": float}``."""
    if spec is None:
        return None, 0.0
    try:
        w = np.asarray(spec["weights"], np.float64).reshape(-1)
        b = float(spec["bias"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{where}: malformed complete_head in the manifest ({exc!r})") from None
    if w.shape[0] != dim or not np.all(np.isfinite(w)) or not math.isfinite(b):
        raise ModelError(f"{where}: complete_head needs {dim} finite weights and a finite bias")
    return w, b
