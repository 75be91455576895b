"""Encoder training with wide domain randomisation on the log-mel windows (issue 14, item 2).

The training generator's songs pass through one recording chain per render; what the
independent validation generator showed is that the encoder leans on details of that chain
(the B-ending dialects merged under other propagation, harmonics and buzz models). This trainer
keeps the supervised objective of :func:`model_export.train.train_encoder` (ArcFace or softmax
head over the dialects plus "incomplete", class-balanced batches, validation by 1-NN on the
training generator's validation birds) and adds, per window and at random, what other recording
chains and other element models do to a log-mel window, never time stretching and never a pitch
shift that could change a dialect (at most one mel band, ~4 %):

- a smooth random spectral tilt/ripple (microphone, foliage, distance; up to about +-8 dB);
- a low-pass roll-off from 7.5-10.5 kHz (recorders, distance) that weakens high X notes;
- smearing along frequency (broader buzz and FM than the generator's) and along time
  (reverberation tails of 0.1-0.8 s, in the power domain);
- a raised stationary noise floor of random colour (lower SNR) and a weaker second song
  window mixed under the song (another bird, overlap);
- a one-band pitch shift and time shifts up to 0.16 s (segmenter end errors).

``yh-model train encoder-dr --out DIR [--epochs 20] [--objective arcface]`` trains, exports int8
with the manifest (the same export and held-out report as ``train encoder``) and records these
options in ``training.domain_randomisation``.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np

from edge.core.frontend import FrontendConfig, mel_frequencies
from model_export.runkit import labels_option
from model_export.synth.variety import VARIETIES

DR = {
    "tilt_db": 8.0,
    "lowpass_p": 0.35,
    "smear_f_p": 0.3,
    "reverb_p": 0.4,
    "reverb_rt_s": (0.1, 0.8),
    "reverb_db": (-18.0, -6.0),
    "noise_p": 0.4,
    "mix_p": 0.2,
    "shift_band_p": 0.3,
    "max_shift_frames": 8,
}
# ``--dr-reverb strong``: reverberation as far rooms and forests give it (rt60 to 1.2 s, the tail as
# loud as the direct sound beyond the critical distance): a click with such a tail looks like a
# long note, the XsB/XlB confusion the independent generator's propagation showed
DR_STRONG_REVERB = {"reverb_p": 0.6, "reverb_rt_s": (0.1, 1.2), "reverb_db": (-15.0, 3.0)}
DR_MEDIUM_REVERB = {"reverb_p": 0.5, "reverb_rt_s": (0.1, 1.0), "reverb_db": (-15.0, -3.0)}
_LN10_10 = np.log(10.0) / 10.0


def _db_to_p(x):
    return np.exp(x * _LN10_10)


def _p_to_db(p):
    return np.log(np.maximum(p, 1e-30)) / _LN10_10


def domain_randomise(
    x: np.ndarray, rng: np.random.Generator, cfg: FrontendConfig, opts: dict = DR
) -> np.ndarray:
    """Randomised recording chains on a batch of log-mel windows ``(B, T, F)`` dB (float32 copy)."""
    x = x.astype(np.float32, copy=True)
    b, t, f = x.shape
    freqs = mel_frequencies(cfg)
    pos = np.linspace(-1.0, 1.0, f)
    for i in range(b):
        w = x[i]
        # smooth tilt and ripple: a few cosine terms over the band axis
        k = rng.uniform(-1, 1, 4) * opts["tilt_db"] / np.array([1.0, 2.0, 3.0, 4.0])
        w += (k[0] * pos + k[1] * np.cos(np.pi * pos) + k[2] * np.cos(2 * np.pi * pos)
              + k[3] * np.sin(3 * np.pi * pos)).astype(np.float32)[None, :]  # fmt: skip
        if rng.random() < opts["lowpass_p"]:
            fc = rng.uniform(7500.0, 10500.0)
            slope = rng.uniform(12.0, 36.0)  # dB per octave
            w -= (slope * np.log2(np.maximum(freqs / fc, 1.0))).astype(np.float32)[None, :]
        p = _db_to_p(w.astype(np.float64))
        if rng.random() < opts["smear_f_p"]:
            lo, hi = rng.uniform(0.1, 0.45, 2)
            q = p.copy()
            q[:, 1:] += lo * p[:, :-1]
            q[:, :-1] += hi * p[:, 1:]
            p = q / (1.0 + lo + hi)
        if rng.random() < opts["reverb_p"]:
            rt = rng.uniform(*opts.get("reverb_rt_s", DR["reverb_rt_s"]))  # s to -60 dB
            frames = int(round(rt * cfg.frame_rate))
            decay = 10 ** (-6.0 * np.arange(1, frames + 1) / max(frames, 1))
            g = 10 ** (rng.uniform(*opts.get("reverb_db", DR["reverb_db"])) / 10)
            tail = np.zeros_like(p)
            for j, a in enumerate(decay, start=1):
                tail[j:] += a * p[:-j]
            p = p + g * tail / max(decay.sum(), 1e-9)
        if rng.random() < opts["mix_p"]:
            other = _db_to_p(x[rng.integers(b)].astype(np.float64))
            p = p + 10 ** (rng.uniform(-20.0, -8.0) / 10) * other
        if rng.random() < opts["noise_p"]:
            level = np.percentile(p, 50) * 10 ** (rng.uniform(0.0, 15.0) / 10)
            colour = np.exp(rng.uniform(-1.5, 0.5) * (pos + 1))
            p = p + level * colour[None, :] * rng.gamma(4.0, 0.25, size=p.shape)
        w = _p_to_db(p).astype(np.float32)
        if rng.random() < opts["shift_band_p"]:
            s = int(rng.choice([-1, 1]))
            w = np.roll(w, s, axis=1)
            w[:, 0 if s > 0 else -1] = w[:, 1 if s > 0 else -2]
        x[i] = w
    return x


def train_dr(model, train, val, classes, objective="arcface", epochs=20, batch=96, lr=2e-3, seed=0,
             progress=None, opts: dict = DR, ssl_real=None, ssl_weight: float = 0.0,
             ssl_batch: int = 32):  # fmt: skip
    """Supervised training (ArcFace/softmax head) with :func:`domain_randomise` after the base
    augmentation; keeps the weights with the best validation 1-NN accuracy.

    ``ssl_real`` (:class:`model_export.encoder_ssl.RealSongWindows`) with ``ssl_weight > 0`` adds the
    BYOL term of :mod:`model_export.encoder_ssl` on ``ssl_batch`` pairs of real-song views per step
    (its own random stream: the supervised batches are the same as without it)."""
    import tensorflow as tf

    from model_export.train import TrainLog, balanced_batches, embed, knn_accuracy

    cfg = FrontendConfig()
    rng = np.random.default_rng(seed)
    y = np.array([classes.index(c) for c in train.dialect], dtype=np.int32)
    steps = max(1, len(y) // batch)
    opt = tf.keras.optimizers.Adam(tf.keras.optimizers.schedules.CosineDecay(lr, epochs * steps))
    n_classes, emb_dim = len(classes), int(model.output.shape[-1])
    head = tf.Variable(tf.random.normal((emb_dim, n_classes), stddev=0.1, seed=seed), name="head")
    ssl = None
    if ssl_real is not None and ssl_weight > 0 and len(ssl_real) > 0:
        from model_export.encoder_ssl import SSLTerm

        ssl = _Ssl(SSLTerm(model, seed=seed), np.random.default_rng(seed + 7), ssl_real, ssl_batch, ssl_weight,
                   epochs * steps)  # fmt: skip
    step, step_ssl = _make_steps(tf, model, head, opt, objective, n_classes, ssl)

    best, best_w, hist, t0 = -1.0, None, [], time.time()
    for ep in range(epochs):
        losses, ssl_losses = [], []
        for idx in balanced_batches(y, batch, steps, rng):
            xb = augment_dr(train.x[idx], rng, cfg, opts)
            if ssl is not None:
                sup, byol = ssl.run(tf, step_ssl, xb, y[idx], lambda xv, r: augment_dr(xv, r, cfg, opts))
                losses.append(sup)
                ssl_losses.append(byol)
            else:
                losses.append(float(step(tf.constant(xb), tf.constant(y[idx]))))
            if progress:
                progress(1)
        score = knn_accuracy(embed(model, val.x), val.dialect)
        hist.append({"epoch": ep + 1, "loss": float(np.mean(losses)), "val_1nn_acc": score})
        if ssl is not None:
            hist[-1]["ssl_loss"] = float(np.mean(ssl_losses))
        click.echo(f"epoch {ep + 1}: loss {np.mean(losses):.4f} val 1-NN {score:.4f}"
                   + (f" ssl {np.mean(ssl_losses):.4f}" if ssl is not None else ""), err=True)  # fmt: skip
        if score >= best:
            best, best_w = score, model.get_weights()
    model.set_weights(best_w)
    tl = TrainLog(epochs, time.time() - t0, hist)
    tl.head = head.numpy()
    return tl


def augment_dr(x: np.ndarray, rng: np.random.Generator, cfg: FrontendConfig, opts: dict) -> np.ndarray:
    """The base augmentation then :func:`domain_randomise`, with a channel axis: one training batch."""
    from model_export.train import augment

    return domain_randomise(augment(x, rng, max_shift=opts["max_shift_frames"]), rng, cfg, opts)[..., None]


class _Ssl:
    """The BYOL term's state during :func:`train_dr`: the term, its own random stream, the real
    songs, the batch of view pairs, its weight and the teacher's schedule."""

    def __init__(self, term, rng, songs, batch: int, weight: float, total_steps: int) -> None:
        self.term, self.rng, self.songs, self.batch = term, rng, songs, batch
        self.weight, self.total, self.k = float(weight), total_steps, 0

    def run(self, tf, step_ssl, xb, labels, view) -> tuple[float, float]:
        from model_export.encoder_ssl import sample_views

        v1, v2, _, _ = sample_views(self.songs, self.batch, self.rng, view)
        sup, byol = step_ssl(tf.constant(xb), tf.constant(labels), tf.constant(v1), tf.constant(v2))
        self.k += 1
        self.term.update_teacher(self.term.tau(self.k, self.total))
        return float(sup), float(byol)


def _make_steps(tf, model, head, opt, objective: str, n_classes: int, ssl: _Ssl | None):
    """The compiled training steps: supervised, and (with ``ssl``) supervised + weighted BYOL."""
    from model_export.train import _arcface_logits, _norm_penalty

    def sup_loss(x, labels):
        emb = model(x, training=True)
        if objective == "arcface":
            logits = _arcface_logits(tf, emb, head, labels, n_classes)
        else:
            logits = tf.matmul(emb, head)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        return loss + _norm_penalty(tf, emb)

    @tf.function
    def step(x, labels):
        with tf.GradientTape() as tape:
            loss = sup_loss(x, labels)
        vars_ = model.trainable_variables + [head]
        opt.apply_gradients(zip(tape.gradient(loss, vars_), vars_))
        return loss

    if ssl is None:
        return step, None

    @tf.function
    def step_ssl(x, labels, v1, v2):
        with tf.GradientTape() as tape:
            sup = sup_loss(x, labels)
            byol = ssl.term.loss(v1, v2)
            loss = sup + ssl.weight * byol
        vars_ = model.trainable_variables + [head] + ssl.term.trainable_variables
        opt.apply_gradients(zip(tape.gradient(loss, vars_), vars_))
        return sup, byol

    return step, step_ssl


def synth_cache(cache, variety: str = "base") -> Path:
    """:func:`model_export.synth.syllable_library.synth_cache` with the default real recordings."""
    from model_export.runkit import real_folder
    from model_export.synth.syllable_library import synth_cache as variety_cache

    return variety_cache(cache, variety, real_folder(None))


def _load_split(cache, split: str, scale: float, seed: int):
    """One standard encoder set (the cache ``train encoder`` uses; real backgrounds as its default;
    ``cache``: :func:`synth_cache`'s)."""
    from model_export.data import DEFAULT_END_JITTER_S, load_or_build
    from model_export.geometry import DET_TRAIN_HOP, ENC_FRAMES
    from model_export.runkit import progress_bar, real_folder
    from model_export.synth import DIALECTS

    return load_or_build(cache, "encoder", split, FrontendConfig(), DIALECTS, real_folder(None), scale, seed,
                         ENC_FRAMES, DET_TRAIN_HOP, progress_factory=progress_bar,
                         end_jitter_s=DEFAULT_END_JITTER_S)  # fmt: skip


def _ssl_songs(cache, train, ssl_weight: float, ssl_batch: int, ssl_source: str):
    """The BYOL term's songs and their manifest block (``(None, None)`` without the term): real
    songs cut from the train-split recordings (cached in ``cache``), or the training set's own."""
    if ssl_weight <= 0:
        return None, None
    if ssl_source == "synth":
        from model_export.encoder_ssl import RealSongWindows

        songs = RealSongWindows(train.x, train.bird, [], np.zeros(len(train.bird), np.float32))
        return songs, {"weight": ssl_weight, "batch": ssl_batch, "songs": len(songs), "source": "synth"}
    from edge.core.pipeline import ENCODER_MARGIN_S
    from model_export.encoder_ssl import load_real_songs
    from model_export.geometry import ENC_FRAMES

    songs = load_real_songs(cache, None, ENC_FRAMES, FrontendConfig().frames_for(ENCODER_MARGIN_S))
    click.echo(f"SSL: {len(songs)} real songs from {len(songs.files)} train recordings", err=True)
    return songs, {"weight": ssl_weight, "batch": ssl_batch, "songs": len(songs), "recordings": songs.files,
                   "split": "train", "cut_by": "runtime detector+segmenter"}  # fmt: skip


@click.command("encoder-dr")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--epochs", default=20, show_default=True)
@click.option("--objective", type=click.Choice(["arcface", "softmax"]), default="arcface", show_default=True)
@click.option("--emb-dim", default=32, show_default=True, help="Embedding size (16/32/64).")
@click.option("--cache", default="runs/cache", show_default=True, type=click.Path(path_type=Path))
@click.option("--scale", default=1.0, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--ssl-real", "ssl_weight", default=0.0, show_default=True,
              help="Weight of the BYOL term on real songs cut from the train-split recordings "
              "(model_export/encoder_ssl.py); 0 = off.")  # fmt: skip
@click.option("--ssl-batch", default=32, show_default=True, help="Real-song view pairs per step.")
@click.option("--ssl-source", type=click.Choice(["real", "synth"]), default="real", show_default=True,
              help="'synth': the same term on the training generator's songs (positives: songs of one "
              "bird) instead of real ones, a control for what the real songs add.")  # fmt: skip
@click.option("--leave-out", default=None,
              help="Hold one dialect out of training entirely (every song of its birds; novelty test).")  # fmt: skip
@click.option("--synth-variety", default="base", show_default=True, type=click.Choice(VARIETIES),
              help="Song variety of the synthetic train/val/test sets (model_export/synth/variety.py); "
              "wide: syllable library measured from the train split, sets cached in CACHE/variety-wide.")  # fmt: skip
@click.option("--arch", type=click.Choice(["cnn", "cnn-tail"]), default="cnn", show_default=True,
              help="cnn-tail: the pooled features plus the window's last 0.8 s in order (models.py).")  # fmt: skip
@click.option("--labels", "labels_csv", default=None, callback=labels_option,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Label CSV of your own recordings (file,onset_s,offset_s,dialect[,complete,bird_id,split]); "
              "their train/val songs are added to the synthetic train/val sets.")  # fmt: skip
@click.option("--dr-reverb", type=click.Choice(["default", "medium", "strong"]), default="default",
              show_default=True, help="medium/strong: DR_MEDIUM_REVERB/DR_STRONG_REVERB (longer and "
              "louder reverberation tails, more often).")  # fmt: skip
def train_encoder_dr_cmd(
    out,
    epochs,
    objective,
    emb_dim,
    cache,
    scale,
    seed,
    ssl_weight,
    ssl_batch,
    ssl_source,
    leave_out,
    synth_variety,
    arch,
    labels_csv,
    dr_reverb,
):
    """Train the encoder with wide domain randomisation; export int8 + manifest into OUT."""
    import keras

    from model_export.encoder_training import export_evaluate_encoder
    from model_export.geometry import ENC_FRAMES, ENC_STEM_TIME_STRIDE
    from model_export.models import build_encoder
    from model_export.runkit import dumps, progress_bar, reproduce_command

    keras.utils.set_random_seed(seed)
    vcache = synth_cache(cache, synth_variety)  # before any set is built
    (train, tsum), (val, vsum) = (_load_split(vcache, split, scale, seed) for split in ("train", "val"))
    if labels_csv:  # a researcher's own songs: train/val rows to train/val, test rows left out
        from model_export.train_sets import add_labelled

        own = add_labelled({"train": (train, tsum), "val": (val, vsum)}, labels_csv, "encoder")
        (train, tsum), (val, vsum) = own["train"], own["val"]
    if leave_out:
        from model_export.train_sets import drop_dialect

        train, val = drop_dialect(train, leave_out), drop_dialect(val, leave_out)
    classes = sorted(set(train.dialect.tolist()))
    model = build_encoder(arch, ENC_FRAMES, FrontendConfig().n_mels, emb_dim, ENC_STEM_TIME_STRIDE)
    real_songs, ssl_info = _ssl_songs(cache, train, ssl_weight, ssl_batch, ssl_source)
    steps = epochs * max(1, len(train.dialect) // 96)
    bar = progress_bar(steps, f"train encoder-dr {objective}")
    opts = {**DR, **{"medium": DR_MEDIUM_REVERB, "strong": DR_STRONG_REVERB}.get(dr_reverb, {})}
    tl = train_dr(model, train, val, classes, objective, epochs=epochs, seed=seed, progress=bar.update,
                  opts=opts, ssl_real=real_songs, ssl_weight=ssl_weight, ssl_batch=ssl_batch)  # fmt: skip
    bar.close()
    training = {"objective": objective, "arch": arch, "leave_out": leave_out, "epochs": epochs,
                "seconds": round(tl.seconds), "history": tl.history, "seed": seed,
                "stem_time_stride": ENC_STEM_TIME_STRIDE, "domain_randomisation": opts,
                "embedding_dim": emb_dim, "scale": scale, "ssl_real": ssl_info, "synth_variety": synth_variety}  # fmt: skip
    Path(out).mkdir(parents=True, exist_ok=True)
    model.save(Path(out) / "encoder_float.keras")
    np.save(Path(out) / "head.npy", tl.head)
    test, esum = _load_split(vcache, "test", scale, seed)  # loaded (or built) after training
    summaries = {"train": tsum, "val": vsum, "test": esum}
    res = export_evaluate_encoder(model, tl.head, classes, training, out, train, test, summaries, True,
                                  reproduce_command(), embedding_dim=emb_dim)  # fmt: skip
    click.echo(dumps({k: v for k, v in res.items() if k != "classes"}))
