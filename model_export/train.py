"""Training: the detector (binary) and the encoder (supervised or self-supervised objectives).

Custom TensorFlow loops (GradientTape) so every objective shares one data path:
class-balanced sampling, SpecAugment, gain and small time shifts (never time stretching, never
pitch shifts). The classifier head exists only here; the exported encoder ends at the embedding.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

OBJECTIVES = ("softmax", "arcface", "supcon", "byol")


# --------------------------------------------------------------------------------------------
# augmentation (numpy, per batch)
def augment(
    x: np.ndarray,
    rng: np.random.Generator,
    max_shift: int = 4,
    gain_db: float = 12.0,
    time_masks: int = 2,
    freq_masks: int = 1,
    max_t: int = 12,
    max_f: int = 4,
) -> np.ndarray:
    """SpecAugment-style masks, a level change and a small time shift; ``x`` (B, T, F) dB.

    Masks fill with the window's median level (a gap in the song, not digital silence).
    Frequency masks are narrow (<= 4 of 64 bands) so they never erase a dialect's pitch cue.
    """
    x = x.astype(np.float32, copy=True)
    b, t, f = x.shape
    x += rng.uniform(-gain_db, gain_db, size=(b, 1, 1)).astype(np.float32)
    if max_shift:
        shifts = rng.integers(-max_shift, max_shift + 1, size=b)
        for i, s in enumerate(shifts):
            if s:
                x[i] = np.roll(x[i], s, axis=0)
                if s > 0:
                    x[i, :s] = x[i, s : s + 1]
                else:
                    x[i, s:] = x[i, s - 1 : s]
    fill = np.median(x, axis=(1, 2))
    for i in range(b):
        for _ in range(time_masks):
            w = rng.integers(0, max_t + 1)
            t0 = rng.integers(0, t - w + 1)
            x[i, t0 : t0 + w] = fill[i]
        for _ in range(freq_masks):
            w = rng.integers(0, max_f + 1)
            f0 = rng.integers(0, f - w + 1)
            x[i, :, f0 : f0 + w] = fill[i]
    return x


def balanced_batches(
    labels: np.ndarray, batch: int, steps: int, rng: np.random.Generator, shares: dict | None = None
):
    """Index batches drawn with probability inversely proportional to class frequency, so each
    class gets an equal share of every batch, or the share given in ``shares`` (by label)."""
    names, inv, counts = np.unique(labels, return_inverse=True, return_counts=True)
    weight = np.ones(len(names))
    if shares:
        weight = np.array([shares.get(str(n), 1.0 / len(names)) for n in names])
    p = weight[inv] / counts[inv]
    p /= p.sum()
    for _ in range(steps):
        yield rng.choice(len(labels), size=batch, replace=True, p=p)


# --------------------------------------------------------------------------------------------
# detector
@dataclass
class TrainLog:
    epochs: int
    seconds: float
    history: list


def train_detector(
    model, train, val, epochs: int = 12, batch: int = 128, lr: float = 3e-3, seed: int = 0, progress=None
) -> TrainLog:
    """Binary cross-entropy with balanced batches; keeps the weights with the best val AUC."""
    import tensorflow as tf
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    steps = max(1, len(train.y) // batch)
    sched = tf.keras.optimizers.schedules.CosineDecay(lr, epochs * steps)
    opt = tf.keras.optimizers.Adam(sched)
    bce = tf.keras.losses.BinaryCrossentropy()
    # balance positives, background negatives and distractor negatives; real recordings (weakly
    # labelled by BirdNET) get fixed shares so a few files cannot dominate
    kind = train.kind.astype(str)
    strata = np.where(train.y > 0.5, np.where(kind == "real_song", "real_pos", "pos"), kind)
    present = set(strata.tolist())
    shares = None
    if present & {"real_pos", "real_other"}:
        shares = {
            "pos": 0.3,
            "real_pos": 0.1,
            "background": 0.25,
            "distractor": 0.2,
            "real_other": 0.15,
            "song": 0.0,
        }
        shares = {k: v for k, v in shares.items() if k in present}

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            p = model(x, training=True)
            loss = bce(y, p)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    best, best_w, hist, t0 = -1.0, None, [], time.time()
    for ep in range(epochs):
        losses = []
        for idx in balanced_batches(strata, batch, steps, rng, shares):
            xb = augment(train.x[idx], rng, max_t=15, max_f=6)[..., None]
            losses.append(float(step(tf.constant(xb), tf.constant(train.y[idx][:, None]))))
            if progress:
                progress(1)
        p = predict(model, val.x)
        auc = float(roc_auc_score(val.y, p))
        hist.append({"epoch": ep + 1, "loss": float(np.mean(losses)), "val_auc": auc})
        log.info("detector epoch %d: loss %.4f val AUC %.4f", ep + 1, np.mean(losses), auc)
        if auc > best:
            best, best_w = auc, model.get_weights()
    model.set_weights(best_w)
    return TrainLog(epochs, time.time() - t0, hist)


def predict(model, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """Float Keras model on (n, T, F) windows -> (n, ...) outputs."""
    outs = [
        np.asarray(model(x[i : i + batch, ..., None].astype(np.float32), training=False))
        for i in range(0, len(x), batch)
    ]
    out = np.concatenate(outs)
    return out[:, 0] if out.ndim == 2 and out.shape[1] == 1 else out


# --------------------------------------------------------------------------------------------
# encoder objectives
def _l2n(tf, e):
    return tf.math.l2_normalize(e, axis=-1)


def _arcface_logits(tf, emb, w, labels, n_classes, margin=0.2, scale=16.0):
    cos = tf.matmul(_l2n(tf, emb), tf.math.l2_normalize(w, axis=0))
    cos = tf.clip_by_value(cos, -1.0 + 1e-6, 1.0 - 1e-6)
    theta = tf.acos(cos)
    onehot = tf.one_hot(labels, n_classes)
    return scale * tf.cos(theta + margin * onehot)


def _supcon_loss(tf, emb, labels, temperature=0.1):
    z = _l2n(tf, emb)
    sim = tf.matmul(z, z, transpose_b=True) / temperature
    n = tf.shape(z)[0]
    eye = tf.eye(n)
    same = tf.cast(tf.equal(labels[:, None], labels[None, :]), tf.float32) - eye
    logits = sim - 1e9 * eye
    log_prob = logits - tf.reduce_logsumexp(logits, axis=1, keepdims=True)
    pos = tf.maximum(tf.reduce_sum(same, axis=1), 1.0)
    return -tf.reduce_mean(tf.reduce_sum(same * log_prob, axis=1) / pos)


NORM_TARGET = 4.0  # raw embedding norm the regulariser pulls towards
NORM_WEIGHT = 0.1


def _norm_penalty(tf, emb):
    """Keep raw embedding norms near one value: the direction carries the dialect, and a steady
    norm keeps int8 quantisation of the embedding layer equally fine for every song."""
    n = tf.norm(emb, axis=-1)
    return NORM_WEIGHT * tf.reduce_mean(tf.square(n / NORM_TARGET - 1.0))


def train_encoder(
    model,
    train,
    val,
    classes: list[str],
    objective: str = "softmax",
    epochs: int = 20,
    batch: int = 96,
    lr: float = 2e-3,
    seed: int = 0,
    progress=None,
) -> TrainLog:
    """Train an encoder with the chosen objective; keeps the weights with the best val score.

    - ``softmax``: linear classifier head on the embedding (cross-entropy).
    - ``arcface``: additive angular margin head on the unit embedding (tight, separated clusters).
    - ``supcon``: supervised contrastive loss in the batch (no head).
    - ``byol``: self-supervised teacher-student without dialect labels: an EMA teacher, two
      augmented views, positives are *different songs of the same bird*.
    The validation score is the leave-one-out 1-nearest-neighbour dialect accuracy of the
    embeddings on validation birds (comparable across objectives).
    """
    import tensorflow as tf

    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}")
    rng = np.random.default_rng(seed)
    y = np.array([classes.index(c) for c in train.dialect], dtype=np.int32)
    steps = max(1, len(y) // batch)
    opt = tf.keras.optimizers.Adam(tf.keras.optimizers.schedules.CosineDecay(lr, epochs * steps))
    n_classes = len(classes)
    emb_dim = int(model.output.shape[-1])
    head = None
    if objective in ("softmax", "arcface"):
        head = tf.Variable(tf.random.normal((emb_dim, n_classes), stddev=0.1, seed=seed), name="head")
    if objective == "byol":
        run_epoch = _byol_epochs(tf, model, train, opt, emb_dim, batch, steps, epochs * steps, rng, progress)
    else:
        step = _supervised_step(tf, model, head, opt, objective, n_classes)
        run_epoch = _supervised_epochs(tf, step, train, y, batch, steps, rng, progress)
    best, best_w, hist, t0 = -1.0, None, [], time.time()
    for ep in range(epochs):
        losses = run_epoch()
        emb = embed(model, val.x)
        score = knn_accuracy(emb, val.dialect)
        hist.append({"epoch": ep + 1, "loss": float(np.mean(losses)), "val_1nn_acc": score})
        log.info(
            "encoder[%s] epoch %d: loss %.4f val 1-NN acc %.4f", objective, ep + 1, np.mean(losses), score
        )
        if score >= best:
            best, best_w = score, model.get_weights()
    model.set_weights(best_w)
    tl = TrainLog(epochs, time.time() - t0, hist)
    tl.head = None if head is None else head.numpy()
    return tl


def _supervised_step(tf, model, head, opt, objective: str, n_classes: int):
    """One optimiser step of a supervised objective (softmax, arcface: with the head; supcon)."""
    extra = [head] if head is not None else []

    @tf.function
    def step_sup(x, labels):
        with tf.GradientTape() as tape:
            emb = model(x, training=True)
            if objective == "softmax":
                logits = tf.matmul(emb, head)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
            elif objective == "arcface":
                logits = _arcface_logits(tf, emb, head, labels, n_classes)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
            else:
                loss = _supcon_loss(tf, emb, labels)
            loss += _norm_penalty(tf, emb)
        vars_ = model.trainable_variables + extra
        grads = tape.gradient(loss, vars_)
        opt.apply_gradients(zip(grads, vars_))
        return loss

    return step_sup


def _supervised_epochs(tf, step, train, y, batch: int, steps: int, rng, progress):
    """A function that runs one epoch of class-balanced batches and returns its step losses."""

    def run_epoch() -> list[float]:
        losses = []
        for idx in balanced_batches(y, batch, steps, rng):
            xb = augment(train.x[idx], rng)[..., None]
            losses.append(float(step(tf.constant(xb), tf.constant(y[idx]))))
            if progress:
                progress(1)
        return losses

    return run_epoch


def _byol_epochs(tf, model, train, opt, emb_dim: int, batch: int, steps: int, total: int, rng, progress):
    """BYOL: an EMA teacher (a copy of the model), a predictor, and a function that runs one
    epoch of two-view batches (two songs of the same bird) and returns its step losses."""
    import keras

    teacher = keras.models.clone_model(model)
    teacher.set_weights(model.get_weights())
    proj = keras.Sequential(
        [keras.layers.Dense(64, activation="relu"), keras.layers.Dense(emb_dim)], name="predictor"
    )
    proj.build((None, emb_dim))
    extra = list(proj.trainable_variables)
    bird_songs = {}
    for i, b in enumerate(train.bird):
        bird_songs.setdefault(int(b), []).append(i)
    birds = np.array(sorted(bird_songs))

    @tf.function
    def step_byol(x1, x2):
        t1 = tf.stop_gradient(_l2n(tf, teacher(x1, training=False)))
        t2 = tf.stop_gradient(_l2n(tf, teacher(x2, training=False)))
        with tf.GradientTape() as tape:
            s1, s2 = model(x1, training=True), model(x2, training=True)
            p1, p2 = _l2n(tf, proj(s1)), _l2n(tf, proj(s2))
            loss = (
                4.0
                - 2.0 * tf.reduce_mean(tf.reduce_sum(p1 * t2, -1))
                - 2.0 * tf.reduce_mean(tf.reduce_sum(p2 * t1, -1))
                + _norm_penalty(tf, s1)
                + _norm_penalty(tf, s2)
            )
        vars_ = model.trainable_variables + extra
        grads = tape.gradient(loss, vars_)
        opt.apply_gradients(zip(grads, vars_))
        return loss

    def ema(tau):
        for tv, sv in zip(teacher.weights, model.weights):
            tv.assign(tau * tv + (1.0 - tau) * sv)

    done = [0]  # steps taken, over all epochs (the EMA schedule)

    def run_epoch() -> list[float]:
        losses = []
        for _ in range(steps):
            bs = rng.choice(birds, size=batch, replace=True)
            i1 = np.array([rng.choice(bird_songs[b]) for b in bs])
            i2 = np.array([rng.choice(bird_songs[b]) for b in bs])
            x1 = augment(train.x[i1], rng)[..., None]
            x2 = augment(train.x[i2], rng)[..., None]
            losses.append(float(step_byol(tf.constant(x1), tf.constant(x2))))
            done[0] += 1
            ema(1.0 - (1.0 - 0.99) * (math.cos(math.pi * done[0] / total) + 1) / 2)
            if progress:
                progress(1)
        return losses

    return run_epoch


def embed(model, x: np.ndarray) -> np.ndarray:
    """Unit-length embeddings of (n, T, F) windows with a float Keras encoder."""
    e = predict(model, x)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def knn_accuracy(emb: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy (cosine)."""
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    return float(np.mean(labels[sim.argmax(axis=1)] == labels))
