"""Learning from real yellowhammer songs without labels (issue 14, item 3).

A BYOL-style teacher-student term added to the supervised dialect loss of ``train encoder-dr``
(:func:`model_export.encoder_dr.train_dr`):

- **teacher** = an exponential moving average (EMA) of the student encoder's weights, never trained
  by gradient; ``tau`` rises from ``tau_base`` (0.99) to 1 on a cosine schedule over the training;
- **student** = the encoder being trained, plus a small predictor MLP on its embedding;
- **positives**: two views of real songs: either two domain-randomised, time-shifted views of one
  song or two different songs of the same recording (one focal bird per recording, so mostly the
  same bird and the same song type); loss = BYOL's ``2 - 2 cos(predictor(student(v1)), teacher(v2))``
  symmetrised over the two views, on unit embeddings;
- the total loss is ``supervised + weight * ssl`` (``yh-model train encoder-dr --ssl-real WEIGHT``).

**Which real songs.** Only recordings of the frozen *train* split of ``model_export/labels/
real_files.csv`` with a focal singing yellowhammer (``yellowhammer == "yes"``); never the test split,
and no hand-made label is read: the songs are cut at run time by the runtime itself (the shipped
detector and segmenter through :func:`edge.app.compose.build_pipeline`, as ``yh-edge analyze`` would),
and each window is the one the runtime would embed (``window.frames`` frames closing
``margin_frames`` after the song's last frame, :mod:`model_export.embed_songs`). The windows are
cached (``real_ssl-*.npz`` under the training cache; log-mel floats, never audio).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.core.frontend import FrontendConfig


@dataclass
class RealSongWindows:
    """Log-mel windows ``x (n, T, F)`` of songs cut at run time; ``group`` = recording index."""

    x: np.ndarray
    group: np.ndarray
    files: list[str]
    ends_s: np.ndarray

    def __len__(self) -> int:
        return int(self.x.shape[0])


def ssl_recordings(root: Path | None = None, split: str = "train") -> list:
    """The real recordings the SSL term may use: focal singing yellowhammers of ``split``."""
    from model_export.labels import real_files

    if split != "train":
        raise ValueError("the SSL term trains on the train split only (the test split is for evaluation)")
    return [f for f in real_files(root) if f.split == "train" and f.yellowhammer == "yes"]


def _detect(x: np.ndarray, sr: int, path: str) -> list[tuple[float, float]]:
    """(onset_s, offset_s) of the runtime's detections in one recording (shipped models)."""
    from edge.adapters.audio.replay import delivery_rate
    from edge.app.compose import build_pipeline
    from edge.app.config import Config
    from edge.core.records import AudioChunk
    from edge.core.resample import Resampler

    comp = build_pipeline(Config(), memory=True)
    rate = delivery_rate(sr, comp.pipeline.frontend_cfg.sample_rate, True)
    res = Resampler(sr, rate)
    out, emitted = [], 0
    for i in range(0, x.shape[0] + 1, sr):
        last = i >= x.shape[0]
        y = res.flush() if last else res.process(x[i : i + sr])
        if y.size:
            chunk = AudioChunk(samples=y, sample_rate=rate, start_sample=emitted, source=path,
                               start_time=1.7e9 + emitted / rate, stream_start=emitted == 0)  # fmt: skip
            emitted += y.size
            out += comp.pipeline.process(chunk)
        if last:
            break
    out += comp.pipeline.end_stream()
    return [(float(d.onset_s), float(d.offset_s)) for d in out]


def cut_real_songs(recordings, frames: int, margin: int, cfg: FrontendConfig | None = None,
                   min_song_s: float = 0.8) -> RealSongWindows:  # fmt: skip
    """Run the runtime over each recording and cut the encoder window of every detection lasting
    at least ``min_song_s`` (shorter ones are calls or fragments)."""
    from model_export.embed_songs import read_audio, song_end_frame, stream_frames

    cfg = cfg or FrontendConfig()
    xs, groups, ends, files = [], [], [], []
    for g, rec in enumerate(recordings):
        x, sr = read_audio(Path(rec.path))
        dets = _detect(x, sr, str(rec.path))
        fr = stream_frames(x, sr, cfg)
        files.append(rec.file)
        for on, off in dets:
            if off - on < min_song_s:
                continue
            end = song_end_frame(off, cfg) + margin
            if end - frames < 0 or end > fr.shape[0]:
                continue
            xs.append(fr[end - frames : end])
            groups.append(g)
            ends.append(off)
    x = np.stack(xs).astype(np.float32) if xs else np.zeros((0, frames, cfg.n_mels), np.float32)
    return RealSongWindows(x, np.asarray(groups, np.int32), files, np.asarray(ends, np.float32))


def load_real_songs(cache: Path, root: Path | None, frames: int, margin: int) -> RealSongWindows:
    """:func:`cut_real_songs` over :func:`ssl_recordings`, cached under ``cache``."""
    recs = ssl_recordings(root)
    cfg = FrontendConfig()
    key = repr((sorted(r.file for r in recs), cfg.to_dict(), frames, margin, "v1"))
    path = Path(cache) / f"real_ssl-{hashlib.sha1(key.encode()).hexdigest()[:10]}.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        return RealSongWindows(z["x"], z["group"], z["files"].tolist(), z["ends_s"])
    rs = cut_real_songs(recs, frames, margin, cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, x=rs.x, group=rs.group, files=np.array(rs.files), ends_s=rs.ends_s)
    return rs


def sample_views(rs: RealSongWindows, n: int, rng: np.random.Generator, view, p_same_song: float = 0.5):
    """Two views of ``n`` real songs: with probability ``p_same_song`` the second view is the same
    song, otherwise another song of the same recording (the same song when it has no other).
    ``view(x_batch, rng)`` augments a batch ``(B, T, F)``."""
    i1 = rng.integers(len(rs), size=n)
    i2 = i1.copy()
    by_group = {g: np.flatnonzero(rs.group == g) for g in np.unique(rs.group)}
    for k, i in enumerate(i1):
        same = by_group[int(rs.group[i])]
        if rng.random() >= p_same_song and same.size > 1:
            i2[k] = rng.choice(same[same != i])
    return view(rs.x[i1], rng), view(rs.x[i2], rng), i1, i2


class SSLTerm:
    """BYOL term over a Keras encoder ``model``: EMA teacher (a clone) and a student predictor."""

    def __init__(self, model, hidden: int = 64, tau_base: float = 0.99, seed: int = 0):
        import keras

        self.model = model
        self.tau_base = float(tau_base)
        self.teacher = keras.models.clone_model(model)
        self.teacher.set_weights(model.get_weights())
        self.teacher.trainable = False
        dim = int(model.output.shape[-1])
        init = keras.initializers.GlorotUniform(seed=seed)
        self.predictor = keras.Sequential(
            [
                keras.layers.Dense(hidden, activation="relu", kernel_initializer=init),
                keras.layers.Dense(dim, kernel_initializer=init),
            ],
            name="ssl_predictor",
        )
        self.predictor.build((None, dim))

    @property
    def trainable_variables(self) -> list:
        return list(self.predictor.trainable_variables)

    def loss(self, x1, x2):
        """BYOL loss of two view batches (call inside the student's gradient tape); in [0, 4]."""
        import tensorflow as tf

        def unit(e):
            return tf.math.l2_normalize(e, axis=-1)

        t1 = tf.stop_gradient(unit(self.teacher(x1, training=False)))
        t2 = tf.stop_gradient(unit(self.teacher(x2, training=False)))
        p1 = unit(self.predictor(self.model(x1, training=True)))
        p2 = unit(self.predictor(self.model(x2, training=True)))
        return (
            4.0
            - 2.0 * tf.reduce_mean(tf.reduce_sum(p1 * t2, -1))
            - 2.0 * tf.reduce_mean(tf.reduce_sum(p2 * t1, -1))
        )

    def tau(self, k: int, total: int) -> float:
        """BYOL's schedule: ``tau_base`` at the start, 1 at step ``total``."""
        return 1.0 - (1.0 - self.tau_base) * (np.cos(np.pi * min(k, total) / max(total, 1)) + 1) / 2

    def update_teacher(self, tau: float) -> None:
        """teacher <- tau * teacher + (1 - tau) * student, every weight (BatchNorm statistics too)."""
        for tv, sv in zip(self.teacher.weights, self.model.weights, strict=True):
            tv.assign(tau * tv + (1.0 - tau) * sv)
