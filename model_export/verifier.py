"""The cascade's song verifier (issue 13, item 4): data, fit, choice of threshold, manifest.

The recorder's own pipeline (:func:`edge.app.compose.build_pipeline`) proposes candidate songs on
*train-split* audio only (``model_export/labels/real_files.csv``; the test split is never read):

- **real positives**: candidates on the train yellowhammer recordings (and the train files with a
  background yellowhammer) that overlap a hand-marked song of ``real_songs.csv``;
- **real negatives**: every candidate on the clean train other-species files (``anki_ce_birds/``,
  ``vogelstimmen_de/``, the rest) and the train soundscapes;
- **composites**: segments of those clean train files with one song mixed in (a synthetic song of the
  training generator or a hand-marked real train song, moved to 3-150 m, then a random recorder
  chain): candidates on the song are positives, the others negatives;
- **synthetic scenes** without a yellowhammer (the generator's distractors: cirl bunting, chaffinch,
  trills, warbles) are hard negatives.

Every real file is used once at its decoded rate and once through a 16-kHz recorder. Short streams
are added too (a song cut by the stream's start or end must still pass): 2-s clips around every
real train song and every composite's song (positives), and up to ``CLIPS_PER_FILE`` random 2-s clips
of every clean train file (negatives), each its own stream. Each candidate
keeps the features of :mod:`edge.core.verifier`; a small classifier (logistic, or an MLP with one
hidden layer) is fitted on them, cross-validated by recording (every composite belongs to its
background's recording), and its threshold chosen on the out-of-fold scores of the train split.

``yh-model verifier`` does all of this and writes the verifier into the encoder manifest
(``verifier``; the TFLite files are unchanged). See ``docs/models.md``, "Song verifier".
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import click
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


def collect(
    runner: CandidateRunner,
    root=None,
    composites_per_file: int = 3,
    synth_scenes: int = 60,
    seed: int = 0,
    progress=None,
) -> dict:
    """Candidates of the train split (see the module docstring) -> arrays ``x, y, group, kind`` and
    the hours of audio behind each negative kind."""
    from model_export.labels import real_files, real_songs
    from model_export.synth import load_audio, make_scene

    files = [f for f in real_files(root) if f.split == "train"]
    train = {f.file for f in files}
    songs: dict = {}
    for s in real_songs(root):
        if s.file in train:
            songs.setdefault(s.file, []).append((s.onset_s, s.offset_s))
    xs, ys, groups, kinds = [], [], [], []
    hours: dict = {}

    def add(labelled, group, kind_pos, kind_neg):
        for r, y in labelled:
            xs.append(r["x"]), ys.append(y), groups.append(group)
            kinds.append(kind_pos if y else kind_neg)

    real_song_audio = []
    pos_files = [f for f in files if f.file in songs]
    neg_files = [f for f in files if f.clean_negative and f.label in ("other", "soundscape")]
    for f in pos_files:
        try:
            a = load_audio(f.path, SR)
        except Exception as exc:  # noqa: BLE001 - a damaged file is skipped and named
            log.warning("%s: %s", f.file, exc)
            continue
        for on, off in songs[f.file]:
            i0, i1 = max(0, int((on - 0.15) * SR)), min(len(a), int((off + 0.15) * SR))
            real_song_audio.append((a[i0:i1].copy(), on - i0 / SR, off - i0 / SR))
        for variant, audio in (("", a), ("_16k", _through_16k(a))):
            add(_label(runner.run(audio, f.file), songs[f.file], True), f.file, "real_pos" + variant, "-")
            for on, off in songs[f.file]:
                c = 0.5 * (on + off)
                rows = runner.run(_clip_at(audio, c), f.file)
                lab = [(r, y) for r, y in _clip_labels(rows, c, len(audio), songs[f.file]) if y == 1]
                add(lab, f.file, "clip_pos" + variant, "-")
        if progress:
            progress(1)
    for f in neg_files:
        try:
            a = load_audio(f.path, SR)
        except Exception as exc:  # noqa: BLE001
            log.warning("%s: %s", f.file, exc)
            continue
        tag = "real_neg" if f.label == "other" else "scape_neg"
        frng = np.random.default_rng(int(hashlib.sha1(f"{seed}:{f.file}".encode()).hexdigest()[:8], 16))
        for variant, audio in (("", a), ("_16k", _through_16k(a))):
            add(_label(runner.run(audio, f.file), [], False), f.file, "-", tag + variant)
            hours[tag + variant] = hours.get(tag + variant, 0.0) + len(audio) / SR / 3600
            dur = len(audio) / SR
            if dur >= CLIP_S:
                for c in frng.uniform(CLIP_S / 2, dur - CLIP_S / 2, min(CLIPS_PER_FILE, int(dur // CLIP_S))):
                    add(_label(runner.run(_clip_at(audio, c), f.file), [], False), f.file, "-", "clip_neg")
                    hours["clip_neg"] = hours.get("clip_neg", 0.0) + CLIP_S / 3600
        for _ in range(composites_per_file):
            x, spans, src = _composite(a, frng, real_song_audio)
            add(_label(runner.run(x, f.file), spans, False), f.file, f"comp_pos_{src}", "comp_neg")
            hours["comp_neg"] = hours.get("comp_neg", 0.0) + len(x) / SR / 3600
            c = 0.5 * (spans[0][0] + spans[0][1])
            lab = [
                (r, y)
                for r, y in _clip_labels(runner.run(_clip_at(x, c), f.file), c, len(x), spans)
                if y == 1
            ]
            add(lab, f.file, "clip_pos_comp", "-")
        if progress:
            progress(1)
    for i in range(synth_scenes):
        srng = np.random.default_rng(10_000 + seed * 1000 + i)
        sc = make_scene([], srng, SR, duration_s=30.0, distractor_rate_per_min=12.0)
        add(
            _label(runner.run(sc.audio.astype(np.float32), f"synth{i}"), [], False),
            f"synth{i}",
            "-",
            "synth_neg",
        )
        hours["synth_neg"] = hours.get("synth_neg", 0.0) + 30.0 / 3600
        if progress:
            progress(1)
    return {
        "x": np.stack(xs).astype(np.float32) if xs else np.zeros((0, 0), np.float32),
        "y": np.array(ys, np.int8),
        "group": np.array(groups),
        "kind": np.array(kinds),
        "hours": hours,
        "candidate_threshold": float(runner.detector.threshold),
        "detector_version": runner.detector.version,
        "encoder_version": runner.encoder.version,
        "embedding_dim": int(runner.encoder.embedding_dim),
    }


def load_or_collect(cache: Path, models_dir, candidate_threshold, composites_per_file, synth_scenes, seed,
                    root=None, progress=None) -> dict:  # fmt: skip
    runner = CandidateRunner(models_dir, candidate_threshold)
    key = hashlib.sha1(repr((runner.detector.version, runner.encoder.version, runner.detector.threshold,
                             composites_per_file, synth_scenes, seed, ALL_FEATURES, MEL_GROUPS, RHYTHM_LAGS, CLIP_S, CLIPS_PER_FILE)).encode()
                       ).hexdigest()[:10]  # fmt: skip
    path = Path(cache) / f"verifier-candidates-{key}.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        d = {k: z[k] for k in ("x", "y", "group", "kind")}
        d.update(json.loads(str(z["meta"])))
        return d
    d = collect(runner, root, composites_per_file, synth_scenes, seed, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {k: v for k, v in d.items() if k not in ("x", "y", "group", "kind")}
    tmp = path.with_name(path.name + ".part.npz")
    np.savez(tmp, x=d["x"], y=d["y"], group=d["group"].astype(str), kind=d["kind"].astype(str),
             meta=json.dumps(meta))  # fmt: skip
    tmp.replace(path)
    return d


# ------------------------------------------------------------------------------------------
# fit
def fit(x: np.ndarray, y: np.ndarray, hidden: int = 0, c: float = 1.0, seed: int = 0, weight=None,
        bag: int = 1) -> dict:  # fmt: skip
    """Standardise, then logistic regression (``hidden`` 0) or a one-hidden-layer ReLU MLP;
    returns the manifest's ``mean``/``scale``/``layers``. ``bag`` > 1 MLPs (each on its own class-
    balanced resample, own seed) are merged into one wider MLP whose logit is their mean logit."""
    if hidden > 0 and bag > 1:
        parts = [fit(x, y, hidden, c, seed + 1000 * i, weight) for i in range(bag)]
        w1 = np.concatenate([m["layers"][0][0] for m in parts], axis=1)
        b1 = np.concatenate([m["layers"][0][1] for m in parts])
        w2 = np.concatenate([m["layers"][1][0] for m in parts], axis=0) / bag
        b2 = np.mean([m["layers"][1][1] for m in parts], axis=0)
        return {"mean": parts[0]["mean"], "scale": parts[0]["scale"], "layers": [(w1, b1), (w2, b2)]}
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    z = (x - mean) / scale
    if hidden <= 0:
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=c, class_weight="balanced", max_iter=3000).fit(z, y, sample_weight=weight)
        layers = [(lr.coef_.T.astype(np.float64), lr.intercept_.astype(np.float64))]
    else:
        from sklearn.neural_network import MLPClassifier

        # balance the classes by resampling (MLPClassifier takes no class weights)
        rng = np.random.default_rng(seed)
        pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        k = max(len(pos), len(neg))
        w = np.ones(len(y)) if weight is None else np.asarray(weight, float)
        idx = np.concatenate(
            [rng.choice(pos, k, p=w[pos] / w[pos].sum()), rng.choice(neg, k, p=w[neg] / w[neg].sum())]
        )
        mlp = MLPClassifier((hidden,), alpha=1.0 / c, max_iter=600, early_stopping=False,
                            random_state=seed).fit(z[idx], y[idx])  # fmt: skip
        layers = [(w.astype(np.float64), b.astype(np.float64)) for w, b in zip(mlp.coefs_, mlp.intercepts_)]
    return {"mean": mean, "scale": scale, "layers": layers}


def predict(model: dict, x: np.ndarray) -> np.ndarray:
    h = (x - model["mean"]) / model["scale"]
    for i, (w, b) in enumerate(model["layers"]):
        h = h @ w + b
        if i < len(model["layers"]) - 1:
            h = np.maximum(h, 0.0)
    return 1.0 / (1.0 + np.exp(-np.clip(h[:, 0], -60, 60)))


def group_folds(groups: np.ndarray, k: int = 5) -> np.ndarray:
    """Fold of every row by a hash of its recording (a recording never straddles folds)."""
    return np.array([int(hashlib.sha1(g.encode()).hexdigest()[:8], 16) % k for g in groups])


def weights(kind: np.ndarray, real_weight: float) -> np.ndarray:
    """Real (not composite) train songs count ``real_weight`` times: few, and the closest to the target."""
    return np.where(np.char.startswith(kind.astype(str), "real_pos") | np.isin(kind, ["clip_pos", "clip_pos_16k"]),
                    real_weight, 1.0)  # fmt: skip


def out_of_fold(x, y, groups, hidden, c, k=5, seed=0, weight=None, bag=1) -> np.ndarray:
    folds = group_folds(groups, k)
    p = np.zeros(len(y))
    for i in range(k):
        tr, te = folds != i, folds == i
        if te.any():
            p[te] = predict(
                fit(x[tr], y[tr], hidden, c, seed, None if weight is None else weight[tr], bag), x[te]
            )
    return p


def figures(p: np.ndarray, y: np.ndarray, kind: np.ndarray, hours: dict, thr: float) -> dict:
    """Recall per positive kind and false candidates per hour per negative kind at ``thr``."""
    out = {}
    for k in sorted(set(kind.tolist())):
        sel = kind == k
        if y[sel].max() > 0:
            out[f"recall_{k}"] = round(float(np.mean(p[sel] >= thr)), 3)
        else:
            h = hours.get(k, 0.0)
            out[f"false_per_h_{k}"] = round(float(np.sum(p[sel] >= thr)) / h, 2) if h else None
    return out


def threshold_for_recall(p, y, kind, recall: float = 0.9) -> float:
    """The highest threshold that keeps at least ``recall`` of the out-of-fold real train song
    candidates (hand-marked songs, native and through 16 kHz)."""
    s = np.sort(p[np.isin(kind, ["real_pos", "real_pos_16k"]) & (y == 1)])
    if not s.size:
        return 0.5
    missed = int(np.floor((1 - recall) * s.size + 1e-9))
    return round(float(s[missed]) - 1e-4, 4)


def choose_threshold(p, y, kind, hours, target_per_h: float = 1.0) -> float:
    """The lowest threshold whose out-of-fold false candidates per hour on the real other-species
    train audio (native and through 16 kHz together) is at most ``target_per_h``."""
    neg = np.isin(kind, ["real_neg", "real_neg_16k"])
    h = hours.get("real_neg", 0.0) + hours.get("real_neg_16k", 0.0)
    allowed = int(np.floor(target_per_h * h))
    s = np.sort(p[neg])[::-1]
    thr = float(s[allowed]) + 1e-4 if allowed < len(s) else 0.0
    return round(min(thr, 0.999), 4)


def table(rows: list[dict]) -> str:
    keys = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    lines = ["  ".join(f"{k:>14s}"[-14:] for k in keys)]
    for r in rows:
        lines.append("  ".join(f"{r.get(k, '')!s:>14s}"[-14:] for k in keys))
    return "\n".join(lines)


@click.command("verifier")
@click.option("--models", "models_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Folder with detector.tflite and encoder.tflite (default: the shipped edge/models); the "
                   "verifier is written into its encoder.json.")  # fmt: skip
@click.option("--cache", default="runs/cache", show_default=True, type=click.Path(path_type=Path))
@click.option("--real", default=None, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--collect-threshold",
    default=0.3,
    show_default=True,
    help="Detector threshold of the training candidates (below the operating one: the detector "
    "rarely fires on the train audio it was fitted on, so more of its near misses are kept).",
)
@click.option("--candidate-threshold", default=None, type=float,
              help="Detector threshold of the candidates on the recorder, written to the manifest "
                   "(default: the detector manifest's).")  # fmt: skip
@click.option("--features", default=",".join(DEFAULT_FEATURES), show_default=True)
@click.option("--hidden", default=16, show_default=True, help="Hidden units (0: logistic regression).")
@click.option("--c", "c_reg", default=1.0, show_default=True, help="Inverse regularisation strength.")
@click.option(
    "--recall",
    "target_recall",
    default=0.95,
    show_default=True,
    help="Threshold: the highest that keeps this share of the out-of-fold real train songs "
    "(candidates at the recorder's candidate threshold).",
)
@click.option("--target-per-hour", default=None, type=float,
              help="Instead: out-of-fold false candidates per hour of train other-species audio.")  # fmt: skip
@click.option("--threshold", default=None, type=float, help="Use this threshold instead.")
@click.option("--composites", default=3, show_default=True, help="Composites per clean train file.")
@click.option("--synth-scenes", default=60, show_default=True)
@click.option("--real-weight", default=1.0, show_default=True, help="Weight of the real train songs.")
@click.option("--bag", default=5, show_default=True, help="MLPs averaged (merged into one wider MLP).")
@click.option("--seed", default=0, show_default=True)
@click.option("--compare", is_flag=True, help="Also print out-of-fold figures of other feature sets/heads.")
@click.option("--dry-run", is_flag=True, help="Print the figures; leave the manifest alone.")
def verifier_cmd(models_dir, cache, real, collect_threshold, candidate_threshold, features, hidden, c_reg,
                 target_recall, target_per_hour, threshold, composites, synth_scenes, real_weight, bag, seed, compare,
                 dry_run):  # fmt: skip
    """Fit the cascade's song verifier on train-split candidates and write it into the encoder manifest."""
    from edge.adapters.models.manifest import load_manifest, manifest_path, write_manifest
    from edge.adapters.models.tflite import MODELS_DIR

    t0 = time.time()
    names = tuple(n for n in features.split(",") if n)
    bad = [n for n in names if n not in ALL_FEATURES]
    if bad:
        raise click.BadParameter(f"unknown features {bad}; choose from {ALL_FEATURES}")
    d = load_or_collect(cache, models_dir, collect_threshold, composites, synth_scenes, seed, real)
    x_all, y, groups, kind, hours = d["x"], d["y"].astype(int), d["group"], d["kind"], d["hours"]
    dim = int(d["embedding_dim"])
    det_thr = load_manifest((Path(models_dir) if models_dir else MODELS_DIR) / "detector.tflite").threshold
    cand = det_thr if candidate_threshold is None else float(candidate_threshold)
    score = 1 / (1 + np.exp(-x_all[:, columns(("score_logit",), dim)][:, 0]))
    deploy = score >= cand  # the candidates the recorder would propose
    counts = {str(k): int(v) for k, v in zip(*np.unique(kind, return_counts=True))}
    click.echo(f"candidates: {counts}; hours: { {k: round(v, 2) for k, v in hours.items()} }", err=True)
    rows = []
    variants = [(names, hidden, c_reg)]
    if compare:
        variants += [(("embedding",), 0, 1.0), (("embedding",), 16, 1.0),
                     (tuple(n for n in ALL_FEATURES if n != "embedding"), 0, 1.0),
                     (tuple(n for n in ALL_FEATURES if n != "embedding"), 16, 1.0),
                     (ALL_FEATURES, 0, 1.0), (ALL_FEATURES, 16, 1.0), (ALL_FEATURES, 32, 1.0)]  # fmt: skip
    chosen = None
    for fs, h, c in variants:
        x = x_all[:, columns(fs, dim)]
        p = out_of_fold(x, y, groups, h, c, seed=seed, weight=weights(kind, real_weight), bag=bag)
        if threshold is not None:
            thr = threshold
        elif target_per_hour is not None:
            thr = choose_threshold(p[deploy], y[deploy], kind[deploy], hours, target_per_hour)
        else:
            thr = threshold_for_recall(p[deploy], y[deploy], kind[deploy], target_recall)
        pos = y == 1
        auc = float(np.mean(p[pos][:, None] > p[~pos][None, :])) if pos.any() and (~pos).any() else None
        row = {"features": "+".join(f[:5] for f in fs), "hidden": h, "auc_oof": round(auc, 4), "thr": thr}
        row.update(figures(p[deploy], y[deploy], kind[deploy], hours, thr))
        rows.append(row)
        if chosen is None:
            chosen = (fs, h, c, thr, row, p)
    click.echo(table(rows))
    fs, h, c, thr, row, p_oof = chosen
    click.echo(f"out-of-fold figures of the candidates at detector threshold {cand} (the recorder's):")
    sweep = [dict(thr=t, **figures(p_oof[deploy], y[deploy], kind[deploy], hours, t))
             for t in (0.0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95)]  # fmt: skip
    click.echo(table(sweep))
    if dry_run:
        return
    model = fit(x_all[:, columns(fs, dim)], y, h, c, seed, weights(kind, real_weight), bag)
    enc_path = (Path(models_dir) / "encoder.tflite") if models_dir else MODELS_DIR / "encoder.tflite"
    data = json.loads(manifest_path(enc_path).read_text(encoding="utf-8"))
    data["verifier"] = {
        "kind": (f"mlp ({bag} bagged, merged)" if bag > 1 else "mlp") if h > 0 else "logistic",
        "features": list(fs),
        "mean": [round(float(v), 6) for v in model["mean"]],
        "scale": [round(float(v), 6) for v in model["scale"]],
        "layers": [{"w": np.round(w, 6).tolist(), "b": np.round(b, 6).tolist()} for w, b in model["layers"]],
        "threshold": thr,
        "candidate_threshold": None if candidate_threshold is None else float(candidate_threshold),
        "detector_version": d["detector_version"],
        "fitted_on": f"candidate songs of the recorder's pipeline on the real train split (native and through "
        f"16 kHz), composites of train backgrounds with synthetic and real train songs, and synthetic "
        f"distractor scenes: {counts}",
        "hours": {k: round(v, 3) for k, v in hours.items()},
        "collect_threshold": float(collect_threshold),
        "threshold_rule": "given"
        if threshold is not None
        else f"out-of-fold (5 folds by recording) false candidates <= {target_per_hour}/h on train other-species "
        "audio"
        if target_per_hour is not None
        else f"highest keeping {target_recall} of the out-of-fold real train song candidates (5 folds by recording)",
        "metrics_out_of_fold": row,
        "reproduce": "yh-model " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "seconds": round(time.time() - t0),
    }
    write_manifest(enc_path, data)
    load_manifest(enc_path)
    from edge.adapters.models.tflite import TFLiteEncoder

    TFLiteEncoder(enc_path)  # the runtime accepts the verifier
    click.echo(f"verifier written to {manifest_path(enc_path)}")
