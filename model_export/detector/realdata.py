"""Training windows from the real *train* split (``model_export/labels/real_files.csv``).

Test-split files are never read here, not even as backgrounds. Three sets:

- **real windows**: every 1-s window (0.5-s hop) of the clean other-species and soundscape train
  files (``yellowhammer == no``) is a negative; windows of the hand-marked train songs
  (``real_songs.csv``) are positives. Each file once at its decoded rate and once through 16 kHz.
- **composites** (:func:`build_composites`): 4-s scenes made of a real negative train segment with a
  song mixed in: a hand-marked real train song (with its own surroundings) or a synthetic song of a
  random bird, moved to a random distance (:func:`model_export.synth.propagate`), at -5..25 dB in
  the song band, sometimes with a louder other-species segment on top; then a random recorder chain
  (:func:`.chain.random_chain`). Windows (0.25-s hop) are labelled by their overlap with the song.
- files are split once more, by hash, into *fit* and *val* (15 %) for model selection.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
from dataclasses import dataclass

import numpy as np

from edge.core.frontend import FrontendConfig, logmel

SR = 24000
_BG: dict = {}  # worker state (fork-shared): background segments, real songs


def _is_val(rel: str) -> bool:
    return int(hashlib.sha1(("val:" + rel).encode()).hexdigest(), 16) % 100 < 15


@dataclass
class WindowSet:
    """x float16 (n, frames, n_mels); y float32 (n,); kind str (n,): the stratum; src: file index."""

    x: np.ndarray
    y: np.ndarray
    kind: np.ndarray

    @staticmethod
    def concat(*sets: WindowSet) -> WindowSet:
        sets = [s for s in sets if s is not None and len(s.y)]
        return WindowSet(*(np.concatenate([getattr(s, a) for s in sets]) for a in ("x", "y", "kind")))


def _cut(feats: np.ndarray, frames: int, hop: int) -> np.ndarray:
    n = (len(feats) - frames) // hop + 1
    if n <= 0:
        return np.zeros((0, frames, feats.shape[1]), np.float16)
    idx = np.arange(n)[:, None] * hop + np.arange(frames)[None, :]
    return feats[idx].astype(np.float16)


def _overlap_labels(n: int, hop: int, frames: int, cfg: FrontendConfig, spans) -> np.ndarray:
    """1 = a song overlaps by >= min(0.3 s, half the song), 0 = none within 0.05 s, -1 = unsure."""
    fr = cfg.hop_length / cfg.sample_rate
    t0 = np.arange(n) * hop * fr
    t1 = t0 + frames * fr
    y = np.zeros(n, np.float32)
    for on, off in spans:
        ov = np.minimum(t1, off) - np.maximum(t0, on)
        pos = ov >= min(0.3, 0.5 * (off - on))
        y[(ov > -0.05) & ~pos & (y != 1)] = -1
        y[pos] = 1
    return y


def train_files(root=None):
    """(clean negative train files, train songs by file) from the frozen split."""
    from model_export.labels import real_files, real_songs

    files = [f for f in real_files(root) if f.split == "train"]
    neg = [f for f in files if f.clean_negative and f.label in ("other", "soundscape")]
    songs: dict = {}
    train = {f.file for f in files}
    for s in real_songs(root):
        if s.file in train:
            songs.setdefault(s.file, []).append(s)
    return neg, songs, {f.file: f for f in files}


def real_windows(frames: int, root=None, progress=None) -> tuple[WindowSet, WindowSet, dict]:
    """(fit, val) real windows; see the module docstring. Also returns the decoded audio pool
    (int16 at 24 kHz, by file) the composites draw their backgrounds from."""
    from model_export.detector.chain import band_limit
    from model_export.synth import load_audio

    cfg = FrontendConfig()
    neg, songs, by_file = train_files(root)
    pool: dict = {}
    out = {"fit": [], "val": []}
    todo = [(f.file, f.path, True) for f in neg] + [(k, by_file[k].path, False) for k in songs]
    for rel, path, negative in todo:
        try:
            audio = load_audio(path, SR)
        except Exception:  # noqa: BLE001 - damaged files are skipped
            continue
        part = "val" if _is_val(rel) else "fit"
        if negative:
            pool[rel] = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
        for variant, a in (("", audio), ("_16k", band_limit(audio, SR, 16000))):
            feats = logmel(a, cfg)
            if negative:
                x = _cut(feats, frames, frames // 2)
                y = np.zeros(len(x), np.float32)
                kind = "real_neg"
            else:
                hop = frames // 4
                x = _cut(feats, frames, hop)
                y = _overlap_labels(len(x), hop, frames, cfg, [(s.onset_s, s.offset_s) for s in songs[rel]])
                x, y = x[y >= 0], y[y >= 0]
                x, y = x[y == 1], y[y == 1]  # the rest of a yellowhammer file is not checked for calls
                kind = "real_pos"
            out[part].append(WindowSet(x, y, np.full(len(y), kind + variant)))
        if progress:
            progress(1)
    return WindowSet.concat(*out["fit"]), WindowSet.concat(*out["val"]), pool


# ------------------------------------------------------------------------------------------
# composites
def _segment(rng: np.random.Generator, keys: list, n: int) -> np.ndarray:
    a = _BG["pool"][keys[int(rng.integers(len(keys)))]]
    if len(a) < n:
        a = np.tile(a, n // max(1, len(a)) + 1)
    s = int(rng.integers(0, len(a) - n + 1))
    return a[s : s + n].astype(np.float32) / 32767


def _band_rms(x: np.ndarray) -> float:
    from model_export.synth.scene import band_power

    return float(np.sqrt(band_power(x, SR, (2500.0, 8500.0)) + 1e-14))


def _song(rng: np.random.Generator) -> np.ndarray:
    """A real train song (with 0.15 s of its own surroundings) or a synthetic one."""
    from model_export.synth import DIALECTS, make_bird, render_song

    if _BG["songs"] and rng.random() < 0.4:
        audio, on, off = _BG["songs"][int(rng.integers(len(_BG["songs"])))]
        return audio, on, off
    bird = make_bird(str(rng.choice(DIALECTS)), rng, int(rng.integers(1 << 30)))
    audio, ev = render_song(bird, rng, SR)
    return audio, ev.onset_s, ev.offset_s


def _composite_job(args):
    seed, keys, frames, p16k, codec = args
    from model_export.detector.chain import random_chain
    from model_export.synth import propagate

    rng = np.random.default_rng(seed)
    cfg = FrontendConfig()
    n = 4 * SR
    x = _segment(rng, keys, n)
    spans = []
    if rng.random() < 0.6:
        song, on, off = _song(rng)
        d = float(np.exp(rng.uniform(np.log(3.0), np.log(150.0))))
        song = propagate(song, SR, d, rng)[: len(song) + SR // 2]
        song = song[: n - SR // 10]
        start = int(rng.integers(0, n - len(song) + 1))
        snr = rng.uniform(-5.0, 25.0)
        g = _band_rms(x) * 10 ** (snr / 20) / (_band_rms(song[int(on * SR) : int(off * SR)]) + 1e-9)
        x[start : start + len(song)] += g * song
        spans.append((start / SR + on, min(n / SR, start / SR + off)))
    if rng.random() < 0.3:  # another species louder than the rest
        other = _segment(rng, keys, n)
        x += other * (_band_rms(x) / (_band_rms(other) + 1e-9)) * 10 ** (rng.uniform(0, 12) / 20)
    x, _ = random_chain(x, SR, rng, p16k, codec)
    peak = np.max(np.abs(x)) + 1e-9
    x *= 10 ** (rng.uniform(-30, -1) / 20) / peak
    hop = frames // 4
    w = _cut(logmel(x, cfg), frames, hop)
    y = _overlap_labels(len(w), hop, frames, cfg, spans)
    keep = y >= 0
    kind = np.where(y[keep] > 0, "comp_pos", "comp_neg")
    return w[keep], y[keep], kind


def build_composites(
    pool: dict,
    songs: dict,
    n: int,
    seed: int,
    frames: int,
    val: bool,
    workers: int = 2,
    p16k: float = 0.3,
    progress=None,
    codec: float = 0.0,
) -> WindowSet:
    """``n`` composites (see the module docstring) from the fit or val part of the pool; ``codec``:
    the share that also goes through an MP3/Ogg round trip (:func:`.chain.random_codec`)."""
    from model_export.synth import load_audio

    keys = sorted(k for k in pool if _is_val(k) == val)
    real = []
    for _rel, ss in sorted(songs.items()) if not val else ():  # val composites: synthetic songs only
        a = load_audio(ss[0].path, SR)
        for s in ss:
            i0, i1 = max(0, int((s.onset_s - 0.15) * SR)), min(len(a), int((s.offset_s + 0.15) * SR))
            real.append((a[i0:i1].copy(), s.onset_s - i0 / SR, s.offset_s - i0 / SR))
    _BG.update(pool=pool, songs=real)
    jobs = [(seed * 7919 + i, keys, frames, p16k, codec) for i in range(n)]
    xs, ys, ks = [], [], []
    with mp.get_context("fork").Pool(workers) as p:
        for x, y, k in p.imap(_composite_job, jobs, chunksize=16):
            xs.append(x), ys.append(y), ks.append(k)
            if progress:
                progress(1)
    return WindowSet(np.concatenate(xs), np.concatenate(ys), np.concatenate(ks))
