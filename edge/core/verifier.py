"""The song verifier: the second stage of the detection cascade (issue 13, item 4).

The detector and the segmenter propose candidate songs; the verifier scores each candidate once,
from what the pipeline already holds for it, and only songs it passes are stored. It is a tiny
classifier in plain numpy (a logistic regression or a one-hidden-layer MLP) on:

- ``embedding``: the encoder's unit dialect embedding of the song (the encoder runs once per
  song anyway, so the verifier is a head on it);
- ``score_logit``: the detector's best window score of the song, as a logit;
- ``duration_s``, ``snr_db``: the segmenter's onset/offset and song-band SNR;
- ``mel_profile``: the song's mean log-mel level in ``MEL_GROUPS`` groups of adjacent bands, less
  their mean (the shape of its spectrum, not its loudness);
- ``mel_modulation``: per group, the standard deviation over the song's frames (how much each
  part of the spectrum comes and goes: syllables against a steady hum or a trill);
- ``rhythm``: the normalised autocorrelation of the song's level (mean dB of its bands) at lags of
  1 to ``RHYTHM_LAGS`` frames (20-240 ms): a yellowhammer repeats one syllable every 0.1-0.2 s;
- ``peak_band``: the loudest band per frame: its mean and spread (in bands), the median jump from
  frame to frame, and the share of frames whose loudest band is that of the song's own peak
  profile (a steady pitch against a warble).

Its weights live in the encoder manifest (``verifier``, written by ``yh-model verifier``)::

    "verifier": {
      "kind": "mlp" | "logistic",
      "features": ["embedding", "score_logit", ...],   # in this order
      "mean": [...], "scale": [...],                     # standardisation of the feature vector
      "layers": [{"w": [[...]], "b": [...]}, ...],       # ReLU between layers, sigmoid at the end
      "threshold": 0.5,                                  # a candidate is stored when p >= threshold
      "candidate_threshold": null,                       # detector threshold of the candidates
      "detector_version": "detector-...",                # the detector it was fitted behind
      ...
    }

Without a ``verifier`` in the manifest the pipeline stores every candidate, as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.core.errors import ModelError
from edge.core.records import Song

MEL_GROUPS = 8
RHYTHM_LAGS = 12
LOGIT_CLIP = 12.0

FEATURE_SIZES = {
    "embedding": None,  # the encoder's embedding_dim
    "score_logit": 1,
    "duration_s": 1,
    "snr_db": 1,
    "mel_profile": MEL_GROUPS,
    "mel_modulation": MEL_GROUPS,
    "rhythm": RHYTHM_LAGS,
    "peak_band": 4,
}


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-6), 1 - 1e-6)
    return max(-LOGIT_CLIP, min(LOGIT_CLIP, math.log(p / (1 - p))))


def song_features(
    names: Sequence[str], song: Song, frames: np.ndarray, embedding: np.ndarray, sample_rate: int
) -> np.ndarray:
    """The feature vector of one candidate song.

    ``frames``: the song's log-mel frames ``(k, n_mels)`` (onset to offset, dB); ``embedding``: the
    encoder's unit embedding of the song.
    """
    parts: list[np.ndarray] = []
    groups = None
    for name in names:
        if name == "embedding":
            parts.append(np.asarray(embedding, np.float64).reshape(-1))
        elif name == "score_logit":
            parts.append(np.array([_logit(song.score)]))
        elif name == "duration_s":
            parts.append(np.array([(song.end_sample - song.start_sample) / sample_rate]))
        elif name == "snr_db":
            parts.append(np.array([float(song.snr_db)]))
        elif name in ("mel_profile", "mel_modulation"):
            if groups is None:
                f = np.asarray(frames, np.float64)
                if f.shape[0] == 0:
                    f = np.zeros((1, frames.shape[1] if frames.ndim == 2 else 64))
                n = f.shape[1] - f.shape[1] % MEL_GROUPS
                g = f[:, :n].reshape(f.shape[0], MEL_GROUPS, -1).mean(axis=2)  # (k, groups)
                groups = g
            if name == "mel_profile":
                prof = groups.mean(axis=0)
                parts.append(prof - prof.mean())
            else:
                parts.append(groups.std(axis=0))
        elif name == "rhythm":
            f = np.asarray(frames, np.float64)
            lvl = f.mean(axis=1) if f.shape[0] else np.zeros(1)
            lvl = lvl - lvl.mean()
            den = float(np.dot(lvl, lvl)) + 1e-9
            ac = [
                float(np.dot(lvl[:-k], lvl[k:])) / den if k < lvl.size else 0.0
                for k in range(1, RHYTHM_LAGS + 1)
            ]
            parts.append(np.array(ac))
        elif name == "peak_band":
            f = np.asarray(frames, np.float64)
            if f.shape[0] == 0:
                parts.append(np.zeros(4))
                continue
            top = f.argmax(axis=1).astype(np.float64)
            jump = float(np.median(np.abs(np.diff(top)))) if top.size > 1 else 0.0
            mode = float(np.mean(top == np.argmax(f.mean(axis=0))))
            parts.append(np.array([top.mean(), top.std(), jump, mode]))
        else:
            raise ModelError(f"verifier: unknown feature {name!r}")
    return np.concatenate(parts)


@dataclass(frozen=True)
class SongVerifier:
    """A fitted verifier (see the module docstring); :meth:`from_spec` reads the manifest's."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    threshold: float
    candidate_threshold: float | None = None
    detector_version: str = ""

    @classmethod
    def from_spec(cls, spec: dict, embedding_dim: int, where: str = "manifest") -> SongVerifier:
        try:
            names = tuple(str(x) for x in spec["features"])
            dim = 0
            for n in names:
                if n not in FEATURE_SIZES:
                    raise ModelError(f"{where}: verifier feature {n!r} is unknown")
                dim += FEATURE_SIZES[n] or embedding_dim
            mean = np.asarray(spec["mean"], np.float64).reshape(-1)
            scale = np.asarray(spec["scale"], np.float64).reshape(-1)
            layers = tuple(
                (np.asarray(layer["w"], np.float64), np.asarray(layer["b"], np.float64).reshape(-1))
                for layer in spec["layers"]
            )
            threshold = float(spec["threshold"])
            cand = spec.get("candidate_threshold")
            cand = None if cand is None else float(cand)
        except ModelError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{where}: malformed verifier ({exc!r})") from None
        if mean.shape != (dim,) or scale.shape != (dim,) or not layers:
            raise ModelError(f"{where}: verifier needs mean/scale of {dim} values and at least one layer")
        width = dim
        for w, b in layers:
            if w.ndim != 2 or w.shape[0] != width or b.shape != (w.shape[1],):
                raise ModelError(f"{where}: verifier layer shapes do not chain ({w.shape} after {width})")
            width = w.shape[1]
        if width != 1:
            raise ModelError(f"{where}: the verifier's last layer must have one output")
        arrays = [mean, scale] + [a for layer in layers for a in layer]
        if not all(np.all(np.isfinite(a)) for a in arrays) or np.any(scale <= 0):
            raise ModelError(f"{where}: verifier weights must be finite (and scales positive)")
        return cls(names, mean, scale, layers, threshold, cand, str(spec.get("detector_version", "")))

    def features_of(
        self, song: Song, frames: np.ndarray, embedding: np.ndarray, sample_rate: int
    ) -> np.ndarray:
        return song_features(self.features, song, frames, embedding, sample_rate)

    def probability_of(self, x: np.ndarray) -> np.ndarray:
        """Probabilities of feature vectors ``(n, dim)`` (or one ``(dim,)``)."""
        h = (np.atleast_2d(np.asarray(x, np.float64)) - self.mean) / self.scale
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                np.maximum(h, 0.0, out=h)
        z = np.clip(h[:, 0], -60.0, 60.0)
        return 1.0 / (1.0 + np.exp(-z))

    def probability(self, song: Song, frames: np.ndarray, embedding: np.ndarray, sample_rate: int) -> float:
        """P(the candidate is a yellowhammer song), rounded to 4 decimals."""
        x = self.features_of(song, frames, embedding, sample_rate)
        return round(float(self.probability_of(x)[0]), 4)
