"""The detector on the real *test* split, through the recorder's own pipeline, next to BirdNET.

Every figure comes from :func:`edge.app.compose.build_pipeline` (the daemon's composition, energy
gate included) fed the decoded recording in 3-s chunks, one stream per file or per clip:

- **files**: a file's score is its highest detector window; positives are the test-split files
  with a focal singing yellowhammer (``real_files.csv``: ``yellowhammer == yes``), negatives the
  clean other-species files (``no``: UK chaffinch files, which carry background yellowhammers,
  are left out). ROC-AUC, recall at <= 1 % / <= 2 % false recordings, and at the manifest threshold
  (a file counts as detected when the pipeline stores a song).
- **false songs per hour** on the clean other-species files and on the soundscapes.
- **2-s clips**: centred on each hand-marked real song of a test file, against seeded random 2-s
  clips of the clean negative test files; at the decoded native rate and resampled through 16 kHz.
  Recall at <= 1 % false clips.

**Cascade** (a song verifier in the encoder manifest, :mod:`edge.core.verifier`): the pipeline
stores only the candidate songs the verifier passes. The ``detector`` block then counts every
candidate (the first stage alone, at the candidate threshold) and scores a file by its best window;
the ``cascade`` block counts the stored songs and scores a file (or clip) by its best candidate's
verifier probability (0 without a candidate); ``cascade_sweep`` repeats the cascade's song figures at
other verifier thresholds from the same run.

BirdNET V2.4 gets the same files and clips in the same run (3-s windows every 1 s on files; a clip
is one zero-padded window). Its scores are cached (``birdnet_cache``), since the test audio does
not change.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MODEL_RATE = 24000
CLIP_S = 2.0
NEG_CLIPS_PER_FILE = 5
BIRDNET_THRESHOLD = 0.5


# ------------------------------------------------------------------------------------------
# metrics
def roc_auc(pos, neg) -> float:
    """Probability that a positive scores above a negative (ties count half)."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if not len(pos) or not len(neg):
        return float("nan")
    gt = (pos[:, None] > neg[None, :]).mean()
    eq = (pos[:, None] == neg[None, :]).mean()
    return float(gt + 0.5 * eq)


def recall_at_false(pos, neg, max_false: float) -> tuple[float, float]:
    """Best recall whose threshold passes at most ``max_false`` of the negatives -> (recall, thr).

    A score must be strictly above the threshold; a threshold at a saturated value therefore
    passes nothing that ties with it (an int8 output stuck at its top step cannot be split).
    """
    pos, neg = np.asarray(pos, float), np.sort(np.asarray(neg, float))[::-1]
    allowed = int(np.floor(max_false * len(neg)))
    thr = neg[allowed] if allowed < len(neg) else -np.inf
    return float(np.mean(pos > thr)) if len(pos) else float("nan"), float(thr)


def events(scores: np.ndarray, thr: float) -> int:
    """Runs of consecutive windows at or above ``thr`` (BirdNET's songs)."""
    hit = np.asarray(scores) >= thr
    return int(hit[0] + np.sum(hit[1:] & ~hit[:-1])) if hit.size else 0


# ------------------------------------------------------------------------------------------
# the pipeline
class PipelineRunner:
    """One composed pipeline (memory store) fed whole recordings as separate streams."""

    def __init__(self, models_dir: Path | None = None, config_path: Path | None = None) -> None:
        from edge.app.compose import build_pipeline, load_models
        from edge.app.config import load_config

        cfg = load_config(config_path)
        if models_dir is not None:
            import dataclasses

            m = dataclasses.replace(
                cfg.models,
                detector=str(Path(models_dir) / "detector.tflite"),
                encoder=str(Path(models_dir) / "encoder.tflite")
                if (Path(models_dir) / "encoder.tflite").exists()
                else cfg.models.encoder,
            )
            cfg = dataclasses.replace(cfg, models=m)
        det, enc = load_models(cfg)
        self.detector = det
        self.comp = build_pipeline(cfg, detector=det, encoder=enc, memory=True)
        self.chunk = int(cfg.audio.chunk_seconds * MODEL_RATE)
        self._windows: list = []
        self.comp.pipeline.on_windows = self._windows.extend
        self.candidates: list = []  # (detector score, verifier probability or None, stored)
        self.comp.pipeline.on_candidate = lambda song, p, kept: self.candidates.append((song.score, p, kept))
        v = self.comp.pipeline.verifier
        self.verifier_threshold = None if v is None else float(v.threshold)

    def run(self, audio: np.ndarray, name: str = "") -> tuple[np.ndarray, int]:
        """-> (window probabilities in time order, songs stored)."""
        from edge.core.records import AudioChunk

        pipe = self.comp.pipeline
        self._windows.clear()
        self.candidates.clear()
        self.songs = []  # the stored detections of this stream, in order
        for i in range(0, max(1, len(audio)), self.chunk):
            c = AudioChunk(
                audio[i : i + self.chunk], MODEL_RATE, i, i / MODEL_RATE, source=name, stream_start=i == 0
            )
            self.songs += pipe.process(c)
        self.songs += pipe.end_stream()
        probs = np.array([p for _, p, _ in self._windows], np.float32)
        return probs, len(self.songs)


# ------------------------------------------------------------------------------------------
# BirdNET with a cache
class CachedBirdNET:
    """Yellowhammer scores of BirdNET V2.4, cached in a JSON file by (file, variant, span)."""

    def __init__(self, cache_path: Path | None) -> None:
        from model_export.birdnet import BirdNET

        self.bn = None
        self._make = BirdNET
        self.path = Path(cache_path) if cache_path else None
        self.cache = json.loads(self.path.read_text()) if self.path and self.path.exists() else {}
        self.dirty = 0

    def scores(self, key: str, audio48: callable, hop_s: float) -> np.ndarray:
        if key not in self.cache:
            if self.bn is None:
                self.bn = self._make()
            self.cache[key] = [
                round(float(v), 5) for v in self.bn.yellowhammer_score(audio48(), 48000, hop_s)
            ]
            self.dirty += 1
            if self.dirty % 50 == 0:
                self.save()
        return np.array(self.cache[key], np.float32)

    def save(self) -> None:
        if self.path and self.dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".part")
            tmp.write_text(json.dumps(self.cache))
            tmp.replace(self.path)


# ------------------------------------------------------------------------------------------
def _through_16k(audio24: np.ndarray) -> np.ndarray:
    from model_export.synth import resample

    return resample(resample(audio24, MODEL_RATE, 16000), 16000, MODEL_RATE)


def _clip(audio: np.ndarray, centre_s: float) -> np.ndarray:
    n = int(CLIP_S * MODEL_RATE)
    s = int(round((centre_s - CLIP_S / 2) * MODEL_RATE))
    s = min(max(0, s), max(0, len(audio) - n))
    return audio[s : s + n]


def _neg_clip_centres(rel: str, seconds: float) -> list[float]:
    if seconds < CLIP_S:
        return []
    rng = np.random.default_rng(int(hashlib.sha1(rel.encode()).hexdigest()[:8], 16))
    k = min(NEG_CLIPS_PER_FILE, int(seconds // CLIP_S))
    return sorted(rng.uniform(CLIP_S / 2, seconds - CLIP_S / 2, size=k).tolist())


def _summary(
    rows: list[dict], clips: dict, threshold: float, with_bn: bool, vthr: float | None = None
) -> dict:
    pos = [r for r in rows if r["group"] == "yellowhammer"]
    neg = [r for r in rows if r["group"] == "other"]
    scape = [r for r in rows if r["group"] == "soundscape"]
    out: dict = {"files": {"yellowhammer": len(pos), "other": len(neg), "soundscape": len(scape)}}
    hours = {g: sum(r["seconds"] for r in rs) / 3600 for g, rs in (("other", neg), ("soundscape", scape))}
    out["hours"] = {k: round(v, 3) for k, v in hours.items()}
    cascade = vthr is not None
    stages = (("detector", "max_prob", "candidates" if cascade else "songs", threshold),)
    if cascade:
        stages += (("cascade", "cascade_max", "songs", vthr),)
    if with_bn:
        stages += (("birdnet", "birdnet_max", "birdnet_events", BIRDNET_THRESHOLD),)
    for who, score, songs, thr in stages:
        p, n = [r[score] for r in pos], [r[score] for r in neg]
        r1, t1 = recall_at_false(p, n, 0.01)
        r2, t2 = recall_at_false(p, n, 0.02)
        d = {
            "file_auc": round(roc_auc(p, n), 4),
            "recall_at_1pct_false_files": round(r1, 3),
            "threshold_1pct": round(t1, 5),
            "recall_at_2pct_false_files": round(r2, 3),
            "threshold_2pct": round(t2, 5),
            "threshold": thr,
            "files_detected": sum(r[songs] > 0 for r in pos),
            "other_files_false": sum(r[songs] > 0 for r in neg),
            "soundscape_files_false": sum(r[songs] > 0 for r in scape),
            "false_songs_per_hour_other": round(sum(r[songs] for r in neg) / max(hours["other"], 1e-9), 2),
            "false_songs_per_hour_soundscape": round(
                sum(r[songs] for r in scape) / max(hours["soundscape"], 1e-9), 2
            ),
            "saturated_top": {
                "value": round(float(max(p + n)), 5),
                "yellowhammer_files": sum(v == max(p + n) for v in p),
                "other_files": sum(v == max(p + n) for v in n),
            },
        }
        for variant in ("native", "16k"):
            cp = [c[who] for c in clips[variant] if c["y"] == 1]
            cn = [c[who] for c in clips[variant] if c["y"] == 0]
            r, t = recall_at_false(cp, cn, 0.01)
            d[f"clips_{variant}"] = {
                "auc": round(roc_auc(cp, cn), 4),
                "recall_at_1pct_false_clips": round(r, 3),
                "threshold": round(t, 5),
                "recall_at_threshold": round(float(np.mean(np.array(cp) >= thr)), 3),
                "false_clips_at_threshold": round(float(np.mean(np.array(cn) >= thr)), 4),
            }
        out[who] = d
    out["clips"] = {
        "positive": sum(c["y"] for c in clips["native"]),
        "negative": sum(1 - c["y"] for c in clips["native"]),
    }
    return out


def cascade_sweep(rows: list[dict], clips: dict, thresholds) -> list[dict]:
    """The cascade's song and clip figures at other verifier thresholds (from the candidates'
    probabilities of one run)."""
    neg = [r for r in rows if r["group"] == "other"]
    scape = [r for r in rows if r["group"] == "soundscape"]
    pos = [r for r in rows if r["group"] == "yellowhammer"]
    h_o = max(sum(r["seconds"] for r in neg) / 3600, 1e-9)
    h_s = max(sum(r["seconds"] for r in scape) / 3600, 1e-9)
    out = []
    for t in thresholds:

        def n(r, t=t):
            return sum(p >= t for p in r["verifier_p"])

        d = {
            "verifier_threshold": t,
            "files_detected": sum(n(r) > 0 for r in pos),
            "other_files_false": sum(n(r) > 0 for r in neg),
            "false_songs_per_hour_other": round(sum(n(r) for r in neg) / h_o, 2),
            "false_songs_per_hour_soundscape": round(sum(n(r) for r in scape) / h_s, 2),
        }
        for variant in ("native", "16k"):
            cp = np.array([c["cascade"] for c in clips[variant] if c["y"] == 1])
            cn = np.array([c["cascade"] for c in clips[variant] if c["y"] == 0])
            d[f"clips_{variant}_recall"] = round(float(np.mean(cp >= t)), 3) if cp.size else None
            d[f"clips_{variant}_false"] = round(float(np.mean(cn >= t)), 4) if cn.size else None
        out.append(d)
    return out


def evaluate(
    models_dir: Path | None = None,
    with_birdnet: bool = True,
    cache: Path | None = Path("runs/cache/birdnet_eval_cache.json"),
    root: Path | None = None,
    progress=None,
    config_path: Path | None = None,
    sweep=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
) -> dict:
    """Run the whole evaluation; see the module docstring. Returns ``{summary, rows, clips}``."""
    from model_export.labels import real_files, real_songs
    from model_export.synth import load_audio

    runner = PipelineRunner(models_dir, config_path)
    bn = CachedBirdNET(cache) if with_birdnet else None
    files = [f for f in real_files(root) if f.split == "test"]
    songs_by_file: dict[str, list] = {}
    for s in real_songs(root):
        songs_by_file.setdefault(s.file, []).append(s)
    rows, clips = [], {"native": [], "16k": []}
    for f in files:
        group = _group(f)
        spans = [(0.5 * (s.onset_s + s.offset_s), 1) for s in songs_by_file.get(f.file, [])]
        if group in ("other", "soundscape"):
            spans += [(c, 0) for c in _neg_clip_centres(f.file, _duration(f.path))]
        if group is None and not any(y for _, y in spans):
            if progress:
                progress(1)
            continue
        try:
            audio = load_audio(f.path, MODEL_RATE)
        except Exception as exc:  # noqa: BLE001 - a damaged file is skipped and named
            log.warning("%s: %s", f.file, exc)
            continue
        if group is not None:
            rows.append(_file_row(runner, bn, f, group, audio))
        _score_clips(runner, bn, f.file, audio, spans, clips)
        if progress:
            progress(1)
    if bn is not None:
        bn.save()
    summary = _summary(rows, clips, runner.detector.threshold, bn is not None, runner.verifier_threshold)
    if runner.verifier_threshold is not None:
        summary["cascade_sweep"] = cascade_sweep(rows, clips, sweep)
    summary["detector_version"] = runner.detector.version
    return {"summary": summary, "rows": rows, "clips": clips}


def _group(f) -> str | None:
    """The file's group in the per-file figures: "yellowhammer" (a focal one), "other" or
    "soundscape" (clean negatives); None: only its hand-marked songs count (as clips)."""
    if f.label == "yellowhammer" and f.yellowhammer == "yes":
        return "yellowhammer"
    if f.label in ("other", "soundscape") and f.clean_negative:
        return f.label
    return None


def _file_row(runner, bn, f, group: str, audio: np.ndarray) -> dict:
    """One file's row: the detector's highest window probability and the pipeline's songs (with
    the verifier's probability of every candidate when there is one), and BirdNET's scores."""
    from model_export.synth import load_audio

    probs, n_songs = runner.run(audio, f.file)
    row = {"file": f.file, "group": group, "seconds": round(len(audio) / MODEL_RATE, 2),
           "max_prob": float(probs.max()) if probs.size else 0.0, "songs": n_songs}  # fmt: skip
    if runner.verifier_threshold is not None:
        row["candidates"] = len(runner.candidates)
        row["verifier_p"] = [p for _, p, _ in runner.candidates]
        row["cascade_max"] = max(row["verifier_p"], default=0.0)
    if bn is not None:
        s = bn.scores(f"{f.file}|file|1", lambda f=f: load_audio(f.path, 48000), 1.0)
        row["birdnet_max"] = float(s.max())
        row["birdnet_events"] = events(s, BIRDNET_THRESHOLD)
    return row


def _score_clips(runner, bn, rel: str, audio: np.ndarray, spans, clips: dict) -> None:
    """Each 2-s clip (centre, label) of one file as its own pipeline stream, native and through
    16 kHz, and BirdNET on the same clip (zero-padded to 3 s)."""
    from model_export.synth import resample

    low = _through_16k(audio) if spans else None
    for centre, y in spans:
        for variant, a in (("native", audio), ("16k", low)):
            clip = _clip(a, centre)
            probs, _ = runner.run(clip, rel)
            c = {"file": rel, "centre_s": round(centre, 2), "y": y,
                 "detector": float(probs.max()) if probs.size else 0.0}  # fmt: skip
            if runner.verifier_threshold is not None:
                c["cascade"] = max((p for _, p, _ in runner.candidates), default=0.0)
            if bn is not None:
                c["birdnet"] = float(
                    bn.scores(f"{rel}|clip|{variant}|{centre:.2f}",
                              lambda clip=clip: resample(clip, MODEL_RATE, 48000), 3.0).max()
                )  # fmt: skip
            clips[variant].append(c)


def _duration(path: Path) -> float:
    import soundfile as sf

    try:
        return float(sf.info(str(path)).duration)
    except Exception:  # noqa: BLE001 - fall back to decoding
        from model_export.synth import load_audio

        return len(load_audio(path, 8000)) / 8000
