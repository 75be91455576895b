"""The song verifier's training data: candidate songs of the recorder's own pipeline on train-split
audio, labelled against the hand-marked songs (see :mod:`model_export.verifier` for what is
collected and why).

Owns the feature layout of a candidate (:data:`ALL_FEATURES`, :func:`feature_slices`,
:func:`columns`), the pipeline run with a recording stand-in for the verifier
(:class:`CandidateRunner`), the labelling, the composites and 2-s clips, :func:`collect` and its
cache (:func:`load_or_collect`). Re-exported by :mod:`model_export.verifier`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from edge.core.verifier import FEATURE_SIZES, MEL_GROUPS, RHYTHM_LAGS, song_features

log = logging.getLogger(__name__)

SR = 24000
ALL_FEATURES = ("embedding", "score_logit", "duration_s", "snr_db", "mel_profile", "mel_modulation", "rhythm",
                "peak_band")  # fmt: skip
DEFAULT_FEATURES = ALL_FEATURES
CHUNK_S = 3.0
CLIP_S = 2.0
CLIPS_PER_FILE = 3


def feature_slices(dim: int) -> dict[str, slice]:
    """Columns of each feature in a vector of :data:`ALL_FEATURES`."""
    out, i = {}, 0
    for n in ALL_FEATURES:
        k = FEATURE_SIZES[n] or dim
        out[n] = slice(i, i + k)
        i += k
    return out


def columns(names, dim: int) -> np.ndarray:
    sl = feature_slices(dim)
    return np.concatenate([np.arange(sl[n].start, sl[n].stop) for n in names])


# ------------------------------------------------------------------------------------------
# candidates from the recorder's pipeline
class _Recorder:
    """Stands in for a verifier: keeps every candidate's features and lets it through."""

    threshold = -1.0
    candidate_threshold = None

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def probability(self, song, frames, embedding, sample_rate) -> float:
        x = song_features(ALL_FEATURES, song, frames, embedding, sample_rate)
        self.rows.append({"on": song.start_sample / sample_rate, "off": song.end_sample / sample_rate,
                          "score": float(song.score), "x": x.astype(np.float32)})  # fmt: skip
        return 1.0


class CandidateRunner:
    """The recorder's pipeline (memory store) with the detector at ``candidate_threshold``."""

    def __init__(self, models_dir: Path | None, candidate_threshold: float | None) -> None:
        import dataclasses

        from edge.app.compose import build_pipeline, load_models
        from edge.app.config import load_config

        cfg = load_config(None)
        m = cfg.models
        if models_dir is not None:
            m = dataclasses.replace(m, detector=str(Path(models_dir) / "detector.tflite"),
                                    encoder=str(Path(models_dir) / "encoder.tflite"))  # fmt: skip
        if candidate_threshold is not None:
            m = dataclasses.replace(m, threshold=float(candidate_threshold))
        m = dataclasses.replace(m, verifier=False)
        cfg = dataclasses.replace(cfg, models=m)
        self.detector, self.encoder = load_models(cfg)
        self.comp = build_pipeline(cfg, detector=self.detector, encoder=self.encoder, memory=True)
        self.rec = _Recorder()
        self.comp.pipeline.verifier = self.rec
        self.chunk = int(CHUNK_S * SR)

    def run(self, audio: np.ndarray, name: str = "") -> list[dict]:
        from edge.core.records import AudioChunk

        pipe = self.comp.pipeline
        self.rec.rows = []
        for i in range(0, max(1, len(audio)), self.chunk):
            pipe.process(
                AudioChunk(audio[i : i + self.chunk], SR, i, i / SR, source=name, stream_start=i == 0)
            )
        pipe.end_stream()
        return self.rec.rows


def _label(rows: list[dict], spans, unknown_elsewhere: bool) -> list[tuple[dict, int]]:
    """1: the candidate overlaps a song by >= min(0.3 s, half of either); 0: nothing within 0.5 s;
    otherwise (or elsewhere in a file where unmarked sounds may be yellowhammers) left out."""
    out = []
    for r in rows:
        best, near = 0.0, False
        for on, off in spans:
            ov = min(r["off"], off) - max(r["on"], on)
            need = min(0.3, 0.5 * (off - on), 0.5 * (r["off"] - r["on"]))
            if ov >= need:
                best = 1.0
            if ov > -0.5:
                near = True
        if best:
            out.append((r, 1))
        elif not near and not unknown_elsewhere:
            out.append((r, 0))
    return out


def _through_16k(audio: np.ndarray) -> np.ndarray:
    from model_export.detector.chain import band_limit

    return band_limit(audio, SR, 16000)


def _composite(bg: np.ndarray, rng: np.random.Generator, real_songs: list, seconds: float = 15.0):
    """A segment of ``bg`` with one song mixed in -> (audio, [(onset, offset)], source of the song)."""
    from model_export.detector.chain import random_chain
    from model_export.detector.realdata import _band_rms
    from model_export.synth import DIALECTS, make_bird, propagate, render_song

    n = int(seconds * SR)
    if len(bg) < n:
        bg = np.tile(bg, n // max(1, len(bg)) + 1)
    s = int(rng.integers(0, len(bg) - n + 1))
    x = bg[s : s + n].astype(np.float32).copy()
    if real_songs and rng.random() < 0.4:
        song, on, off = real_songs[int(rng.integers(len(real_songs)))]
        kind = "real"
    else:
        bird = make_bird(str(rng.choice(DIALECTS)), rng, int(rng.integers(1 << 30)))
        song, ev = render_song(bird, rng, SR)
        on, off, kind = ev.onset_s, ev.offset_s, "synth"
    d = float(np.exp(rng.uniform(np.log(3.0), np.log(150.0))))
    song = propagate(song, SR, d, rng)[: len(song) + SR // 2]
    song = song[: n - SR]
    start = int(rng.integers(SR // 2, n - len(song) + 1))
    snr = rng.uniform(-5.0, 25.0)
    g = _band_rms(x) * 10 ** (snr / 20) / (_band_rms(song[int(on * SR) : int(off * SR)]) + 1e-9)
    x[start : start + len(song)] += g * song
    x, _ = random_chain(x, SR, rng, 0.3)
    x *= 10 ** (rng.uniform(-30, -1) / 20) / (np.max(np.abs(x)) + 1e-9)
    return x.astype(np.float32), [(start / SR + on, start / SR + off)], kind


def _clip_at(audio: np.ndarray, centre_s: float) -> np.ndarray:
    n = int(CLIP_S * SR)
    s = int(round((centre_s - CLIP_S / 2) * SR))
    s = min(max(0, s), max(0, len(audio) - n))
    return audio[s : s + n]


def _clip_labels(rows, centre_s: float, audio_len: int, spans) -> list:
    """Candidates of a clip, labelled against the spans moved into the clip's time."""
    n = int(CLIP_S * SR)
    s = min(max(0, int(round((centre_s - CLIP_S / 2) * SR))), max(0, audio_len - n)) / SR
    return _label(rows, [(on - s, off - s) for on, off in spans], False)


class _Candidates:
    """The labelled candidates gathered so far (feature rows, labels, recordings, kinds) and the
    hours of audio behind each negative kind."""

    def __init__(self) -> None:
        self.xs: list = []
        self.ys: list = []
        self.groups: list = []
        self.kinds: list = []
        self.hours: dict = {}

    def add(self, labelled, group, kind_pos, kind_neg) -> None:
        for r, y in labelled:
            self.xs.append(r["x"]), self.ys.append(y), self.groups.append(group)
            self.kinds.append(kind_pos if y else kind_neg)

    def add_hours(self, kind: str, hours: float) -> None:
        self.hours[kind] = self.hours.get(kind, 0.0) + hours


def _load(f):
    """The file's audio at :data:`SR` (None, logged, when it cannot be decoded)."""
    from model_export.synth import load_audio

    try:
        return load_audio(f.path, SR)
    except Exception as exc:  # noqa: BLE001 - a damaged file is skipped and named
        log.warning("%s: %s", f.file, exc)
        return None


def _positive_file(runner: CandidateRunner, f, spans, out: _Candidates, real_song_audio: list) -> bool:
    """A train file with hand-marked songs: its songs' audio kept for the composites, its
    candidates (native and through 16 kHz) and those of a 2-s clip around every song. False when
    the file cannot be read."""
    a = _load(f)
    if a is None:
        return False
    for on, off in spans:
        i0, i1 = max(0, int((on - 0.15) * SR)), min(len(a), int((off + 0.15) * SR))
        real_song_audio.append((a[i0:i1].copy(), on - i0 / SR, off - i0 / SR))
    for variant, audio in (("", a), ("_16k", _through_16k(a))):
        out.add(_label(runner.run(audio, f.file), spans, True), f.file, "real_pos" + variant, "-")
        for on, off in spans:
            c = 0.5 * (on + off)
            rows = runner.run(_clip_at(audio, c), f.file)
            lab = [(r, y) for r, y in _clip_labels(rows, c, len(audio), spans) if y == 1]
            out.add(lab, f.file, "clip_pos" + variant, "-")
    return True


def _negative_file(runner: CandidateRunner, f, seed: int, composites_per_file: int, out: _Candidates,
                   real_song_audio: list) -> bool:  # fmt: skip
    """A clean train other-species file or soundscape: its candidates (native and through 16 kHz),
    those of random 2-s clips, and its composites. False when the file cannot be read."""
    a = _load(f)
    if a is None:
        return False
    tag = "real_neg" if f.label == "other" else "scape_neg"
    frng = np.random.default_rng(int(hashlib.sha1(f"{seed}:{f.file}".encode()).hexdigest()[:8], 16))
    for variant, audio in (("", a), ("_16k", _through_16k(a))):
        out.add(_label(runner.run(audio, f.file), [], False), f.file, "-", tag + variant)
        out.add_hours(tag + variant, len(audio) / SR / 3600)
        dur = len(audio) / SR
        if dur >= CLIP_S:
            for c in frng.uniform(CLIP_S / 2, dur - CLIP_S / 2, min(CLIPS_PER_FILE, int(dur // CLIP_S))):
                out.add(_label(runner.run(_clip_at(audio, c), f.file), [], False), f.file, "-", "clip_neg")
                out.add_hours("clip_neg", CLIP_S / 3600)
    for _ in range(composites_per_file):
        _add_composite(runner, f.file, a, frng, real_song_audio, out)
    return True


def _add_composite(runner: CandidateRunner, name: str, bg: np.ndarray, rng: np.random.Generator,
                   real_song_audio: list, out: _Candidates) -> None:  # fmt: skip
    """One composite of the background ``bg``: its candidates and those of a 2-s clip around its song."""
    x, spans, src = _composite(bg, rng, real_song_audio)
    out.add(_label(runner.run(x, name), spans, False), name, f"comp_pos_{src}", "comp_neg")
    out.add_hours("comp_neg", len(x) / SR / 3600)
    c = 0.5 * (spans[0][0] + spans[0][1])
    lab = [(r, y) for r, y in _clip_labels(runner.run(_clip_at(x, c), name), c, len(x), spans) if y == 1]
    out.add(lab, name, "clip_pos_comp", "-")


def _synth_scene(runner: CandidateRunner, seed: int, i: int, out: _Candidates) -> None:
    """The candidates of one 30-s synthetic scene of distractors only (hard negatives)."""
    from model_export.synth import make_scene

    srng = np.random.default_rng(10_000 + seed * 1000 + i)
    sc = make_scene([], srng, SR, duration_s=30.0, distractor_rate_per_min=12.0)
    out.add(
        _label(runner.run(sc.audio.astype(np.float32), f"synth{i}"), [], False), f"synth{i}", "-", "synth_neg"
    )
    out.add_hours("synth_neg", 30.0 / 3600)


def collect(
    runner: CandidateRunner,
    root=None,
    composites_per_file: int = 3,
    synth_scenes: int = 60,
    seed: int = 0,
    progress=None,
) -> dict:
    """Candidates of the train split (see :mod:`model_export.verifier`) -> arrays ``x, y, group,
    kind`` and the hours of audio behind each negative kind."""
    from model_export.labels import real_files, real_songs

    files = [f for f in real_files(root) if f.split == "train"]
    train = {f.file for f in files}
    songs: dict = {}
    for s in real_songs(root):
        if s.file in train:
            songs.setdefault(s.file, []).append((s.onset_s, s.offset_s))
    out = _Candidates()
    real_song_audio: list = []
    pos_files = [f for f in files if f.file in songs]
    neg_files = [f for f in files if f.clean_negative and f.label in ("other", "soundscape")]
    for f in pos_files:
        if _positive_file(runner, f, songs[f.file], out, real_song_audio) and progress:
            progress(1)
    for f in neg_files:
        if _negative_file(runner, f, seed, composites_per_file, out, real_song_audio) and progress:
            progress(1)
    for i in range(synth_scenes):
        _synth_scene(runner, seed, i, out)
        if progress:
            progress(1)
    return {
        "x": np.stack(out.xs).astype(np.float32) if out.xs else np.zeros((0, 0), np.float32),
        "y": np.array(out.ys, np.int8),
        "group": np.array(out.groups),
        "kind": np.array(out.kinds),
        "hours": out.hours,
        "candidate_threshold": float(runner.detector.threshold),
        "detector_version": runner.detector.version,
        "encoder_version": runner.encoder.version,
        "embedding_dim": int(runner.encoder.embedding_dim),
    }


def candidates_key(
    runner: CandidateRunner, composites_per_file, synth_scenes, seed, variety: str = "base"
) -> str:
    """The cache key of the candidates: the models, the collection's settings, the feature layout,
    the synthetic songs' variety and the source of the runtime code that proposes the candidates
    and computes their features (:func:`pipeline_code`: a segmenter change makes new candidates)."""
    parts = (runner.detector.version, runner.encoder.version, runner.detector.threshold, composites_per_file,
             synth_scenes, seed, ALL_FEATURES, MEL_GROUPS, RHYTHM_LAGS, CLIP_S, CLIPS_PER_FILE)  # fmt: skip
    if variety != "base":
        parts += (f"variety-{variety}",)
    parts += (pipeline_code(),)
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:10]


_PIPELINE_MODULES = (
    "frontend",
    "band",
    "level",
    "segmenter",
    "placement",
    "pipeline",
    "resample",
    "verifier",
)


def pipeline_code() -> str:
    """A digest of the ``edge.core`` modules that turn audio into candidate songs and features."""
    import edge.core

    root = Path(edge.core.__file__).parent
    h = hashlib.sha1()
    for name in _PIPELINE_MODULES:
        h.update((root / f"{name}.py").read_bytes())
    return h.hexdigest()[:12]


def load_or_collect(cache: Path, models_dir, candidate_threshold, composites_per_file, synth_scenes, seed,
                    root=None, progress=None, variety: str = "base") -> dict:  # fmt: skip
    """The candidates of :func:`collect`, from ``cache`` when collected before with the same key.
    ``variety="wide"``: the composites' synthetic songs from the wide variety (the detector's
    ``--synth-variety wide``; syllable library measured from the train split, cached in ``cache``)."""
    from model_export.synth.syllable_library import use_variety

    runner = CandidateRunner(models_dir, candidate_threshold)
    key = candidates_key(runner, composites_per_file, synth_scenes, seed, variety)
    path = Path(cache) / f"verifier-candidates-{key}.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        d = {k: z[k] for k in ("x", "y", "group", "kind")}
        d.update(json.loads(str(z["meta"])))
        return d
    use_variety(variety, cache, root)
    try:
        d = collect(runner, root, composites_per_file, synth_scenes, seed, progress)
    finally:
        use_variety("base", cache)
    d["synth_variety"] = variety
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in d.items() if k not in ("x", "y", "group", "kind")}
    tmp = path.with_name(path.name + ".part.npz")
    np.savez(tmp, x=d["x"], y=d["y"], group=d["group"].astype(str), kind=d["kind"].astype(str),
             meta=json.dumps(meta))  # fmt: skip
    tmp.replace(path)
    return d
