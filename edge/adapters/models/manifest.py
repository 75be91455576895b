"""Model manifests: the JSON file written beside every ``.tflite`` by ``model_export``.

The runtime refuses a model whose file hash, kind, tensors or frontend parameters disagree
with its manifest or with the frontend it will be fed by.

Format (``format: "yellowhammer-model/1"``)::

    {
      "format": "yellowhammer-model/1",
      "kind": "detector" | "encoder",
      "version": "detector-20261123-1a2b3c4d",   # unique; travels with every detection
      "file": "detector.tflite",
      "sha256": "...",                             # of the .tflite file
      "created": "2026-11-23T12:00:00Z",
      "frontend": {...FrontendConfig...},
      "window": {"frames": 100, "hop_frames": 50, "align": "end"},
      "input":  {"name": "...", "shape": [1, 100, 64, 1], "dtype": "int8", "scale": 0.1, "zero_point": -10},
      "outputs": {"probability": {"name": "...", "shape": [1, 1], "dtype": "int8", "scale": ..., "zero_point": ...}},
      "labels": ["XlB", ...],                      # encoder: dialects its training head knew
      "embedding_dim": 32,                         # encoder only
      "threshold": 0.5,                            # detector only
      "support_threshold": 0.9,                    # detector, optional: two consecutive windows
                                                   # at or above it are active too (segmenter)
      "training": {...data summary...},
      "metrics": {...held-out figures...},
      "reproduce": "yh-model train detector ..."
    }
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from edge.core.errors import ModelError
from edge.core.frontend import FrontendConfig

FORMAT = "yellowhammer-model/1"
KINDS = ("detector", "encoder")


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A model input or output as the manifest describes it (quantisation as in TFLite)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0

    @classmethod
    def from_dict(cls, d: dict, where: str) -> TensorSpec:
        try:
            return cls(
                str(d["name"]),
                tuple(int(v) for v in d["shape"]),
                str(d["dtype"]),
                float(d.get("scale", 0.0)),
                int(d.get("zero_point", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{where}: malformed tensor description ({exc})") from None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "scale": self.scale,
            "zero_point": self.zero_point,
        }


@dataclass(frozen=True, slots=True)
class Manifest:
    """Parsed manifest; ``raw`` keeps every field, including the free-form summaries."""

    kind: str
    version: str
    file: str
    sha256: str
    frontend: FrontendConfig
    window_frames: int
    hop_frames: int
    input: TensorSpec
    outputs: dict[str, TensorSpec]
    labels: tuple[str, ...] = ()
    embedding_dim: int = 0
    threshold: float = 0.5
    support_threshold: float | None = None
    raw: dict = field(default_factory=dict, compare=False)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def manifest_path(model_path: str | os.PathLike) -> Path:
    """``detector.tflite`` -> ``detector.json``."""
    return Path(model_path).with_suffix(".json")


def parse_manifest(data: dict, where: str = "manifest") -> Manifest:
    """Validate a manifest dict."""
    if not isinstance(data, dict):
        raise ModelError(f"{where}: not a JSON object")
    if data.get("format") != FORMAT:
        raise ModelError(f"{where}: unknown manifest format {data.get('format')!r} (expected {FORMAT!r})")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ModelError(f"{where}: kind must be one of {KINDS}, got {kind!r}")
    try:
        window = data["window"]
        outputs = {k: TensorSpec.from_dict(v, where) for k, v in data["outputs"].items()}
        m = Manifest(
            kind=kind,
            version=str(data["version"]),
            file=str(data["file"]),
            sha256=str(data["sha256"]).lower(),
            frontend=FrontendConfig.from_dict(data["frontend"]),
            window_frames=int(window["frames"]),
            hop_frames=int(window.get("hop_frames", window["frames"])),
            input=TensorSpec.from_dict(data["input"], where),
            outputs=outputs,
            labels=tuple(str(x) for x in data.get("labels", ())),
            embedding_dim=int(data.get("embedding_dim", 0)),
            threshold=float(data.get("threshold", 0.5)),
            support_threshold=None
            if data.get("support_threshold") is None
            else float(data["support_threshold"]),
            raw=data,
        )
    except ModelError as exc:
        raise ModelError(f"{where}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelError(f"{where}: missing or malformed field ({exc!r})") from None
    if m.window_frames <= 0 or m.hop_frames <= 0:
        raise ModelError(f"{where}: window sizes must be positive")
    if m.support_threshold is not None and not 0 < m.support_threshold <= 1:
        raise ModelError(f"{where}: support_threshold must be in (0, 1]")
    if kind == "encoder" and m.embedding_dim <= 0:
        raise ModelError(f"{where}: an encoder manifest needs embedding_dim")
    return m


def load_manifest(model_path: str | os.PathLike, verify_hash: bool = True) -> Manifest:
    """Read and check the manifest beside a model file (and the file's hash)."""
    model_path = Path(model_path)
    mpath = manifest_path(model_path)
    if not model_path.is_file():
        raise ModelError(f"{model_path}: model file not found")
    try:
        data = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{model_path}: no manifest {mpath.name} beside the model") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{mpath}: unreadable manifest ({exc})") from None
    m = parse_manifest(data, str(mpath))
    if verify_hash:
        actual = sha256_file(model_path)
        if actual != m.sha256:
            raise ModelError(
                f"{model_path}: sha256 {actual[:12]}... does not match its manifest ({m.sha256[:12]}...): "
                "corrupt or replaced model file"
            )
    return m


def write_manifest(model_path: str | os.PathLike, data: dict) -> Path:
    """Write the manifest for a model file, filling ``format``, ``file`` and ``sha256``; atomic."""
    model_path = Path(model_path)
    data = dict(data)
    data["format"] = FORMAT
    data["file"] = model_path.name
    data["sha256"] = sha256_file(model_path)
    parse_manifest(data, "new manifest")  # never write one the runtime would refuse
    out = manifest_path(model_path)
    tmp = out.with_name(out.name + ".part")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return out
