"""The embedding on the wire: ``{"dtype": "f16"|"f32", "dim": n, "b64": ...}``, little-endian,
a unit vector (within ``NORM_TOLERANCE``); encoded by the device, decoded and checked by the
server (:func:`decode_embedding` raises :class:`~edge.contract.wire.ContractError`).
"""

from __future__ import annotations

import base64

import numpy as np

from edge.contract.wire import ContractError, check_b64

#: wire dtypes of the embedding
EMBEDDING_DTYPES = {"f16": "<f2", "f32": "<f4"}
MAX_EMBEDDING_DIM = 4096
#: an embedding's L2 norm may differ from 1 by this much (float16 rounding, int8 models)
NORM_TOLERANCE = 0.05


def encode_embedding(embedding, dtype: str = "f16") -> dict:
    arr = np.asarray(embedding, dtype=EMBEDDING_DTYPES[dtype]).reshape(-1)
    return {"dtype": dtype, "dim": int(arr.shape[0]), "b64": base64.b64encode(arr.tobytes()).decode("ascii")}


def decode_embedding(emb) -> np.ndarray:
    """A wire embedding ``{dtype, dim, b64}`` -> float32 unit vector; raises ContractError."""
    if not isinstance(emb, dict):
        raise ContractError("field 'embedding' must be an object {dtype, dim, b64}")
    dtype = emb.get("dtype")
    if not isinstance(dtype, str) or dtype not in EMBEDDING_DTYPES:
        raise ContractError(f"embedding dtype {str(dtype)[:20]!r} not supported (use f16 or f32)")
    dim = emb.get("dim")
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= MAX_EMBEDDING_DIM:
        raise ContractError(f"embedding dim must be an integer 1..{MAX_EMBEDDING_DIM}")
    raw = check_b64(emb.get("b64"), "embedding")
    np_dtype = np.dtype(EMBEDDING_DTYPES[dtype])
    if len(raw) != dim * np_dtype.itemsize:
        raise ContractError(
            f"embedding has {len(raw)} bytes, expected {dim * np_dtype.itemsize} for dim {dim} {dtype}"
        )
    x = np.frombuffer(raw, dtype=np_dtype).astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise ContractError("embedding contains NaN or infinite values")
    norm = float(np.linalg.norm(x))
    if abs(norm - 1.0) > NORM_TOLERANCE:
        raise ContractError(f"embedding is not L2-normalised (norm {norm:.3g})")
    return x
