"""Model, training (stratified batches, hard-negative mining) and int8 export with a logit output.

The exported detector emits a **logit** clipped to +-``LOGIT_CLIP`` (int8 step about 0.1), and the
edge runtime applies the sigmoid after dequantising: a probability output in int8 has 1/256 steps
and saturates at 0.996, so the top decile of scores could not be told apart.
"""

from __future__ import annotations

import logging
import time

import keras
import numpy as np
from keras import layers, ops

from model_export.models import LogMelNorm, _sep

log = logging.getLogger(__name__)

LOGIT_CLIP = 12.0
SONG_BANDS_16K = 51  # mel bands whose upper edge stays below 7.7 kHz (a 16-kHz recorder's range)


@keras.saving.register_keras_serializable(package="yh")
class ClipLogit(layers.Layer):
    """Clip the logit to +-LOGIT_CLIP so its int8 range resolves scores near 0 and 1."""

    def call(self, x):
        return ops.clip(x, -LOGIT_CLIP, LOGIT_CLIP)


def build(frames: int, n_mels: int, width: float = 1.0, bands: int | None = None) -> keras.Model:
    """The shipped detector's CNN (LogMelNorm, stem, three depthwise-separable blocks, global max
    pool), with a logit output; ``bands`` keeps only the lowest mel bands (16-kHz-safe input)."""
    inp = keras.Input((frames, n_mels, 1), name="logmel")
    x = inp
    if bands and bands < n_mels:
        x = layers.Cropping2D(((0, 0), (0, n_mels - bands)), name="band_crop")(x)
    x = LogMelNorm(name="norm")(x)
    c = lambda n: max(4, int(round(n * width)))  # noqa: E731
    x = layers.Conv2D(c(12), 3, strides=(2, 2), padding="same", use_bias=False, name="stem")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    x = _sep(x, c(24), 2, "b1")
    x = _sep(x, c(32), 2, "b2")
    x = _sep(x, c(48), 2, "b3")
    x = layers.GlobalMaxPooling2D(name="pool")(x)
    x = layers.Dropout(0.2, name="drop")(x)
    out = layers.Dense(1, name="logit")(x)
    return keras.Model(inp, out, name="detector")


def for_export(model: keras.Model) -> keras.Model:
    return keras.Model(model.input, ClipLogit(name="logit_clip")(model.output), name="detector_export")


SHARES = {
    "pos": 0.12, "background": 0.06, "distractor": 0.06,  # synthetic scenes
    "comp_pos": 0.26, "comp_neg": 0.08,  # real backgrounds + songs + recorder chains
    "real_pos": 0.05, "real_pos_16k": 0.05,  # hand-marked real train songs
    "real_neg": 0.16, "real_neg_16k": 0.08,  # every clean other-species / soundscape window
    "hard": 0.08,  # mined: real negatives the previous model fired on
    "teach": 0.06, "teach_16k": 0.04,  # --teacher birdnet: yes/possible/background files, soft labels
    "own_pos": 0.08, "own_neg": 0.04,  # --labels: a researcher's own labelled recordings
}  # fmt: skip


def strata(kind: np.ndarray, y: np.ndarray) -> np.ndarray:
    k = kind.astype(str)
    return np.where((y > 0.5) & (k == "song"), "pos", k)


def loss_fn():
    """Binary cross-entropy on logits. Targets may be soft (any value in [0, 1], e.g. the BirdNET
    teacher's labels): the loss of a window is minimal where sigmoid(logit) equals its target."""
    return keras.losses.BinaryCrossentropy(from_logits=True)


def predict_logits(model, x: np.ndarray, batch: int = 1024) -> np.ndarray:
    out = [np.asarray(model(x[i : i + batch].astype(np.float32)[..., None], training=False)).reshape(-1)
           for i in range(0, len(x), batch)]  # fmt: skip
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def val_score(model, val) -> dict:
    """Recall of the val positives at 1 % false val negatives (real and composite), and AUC."""
    z = predict_logits(model, val.x)
    pos, neg = z[val.y > 0.5], np.sort(z[val.y < 0.5])[::-1]
    thr = neg[int(0.01 * len(neg))]
    from model_export.eval_detector import roc_auc

    return {
        "recall_at_1pct": float(np.mean(pos > thr)),
        "auc": roc_auc(pos[:2000], neg[:: max(1, len(neg) // 4000)]),
    }


def train(model, train, val, epochs: int, steps: int, lr: float = 3e-3, seed: int = 0, shares=None,
          progress=None) -> list:  # fmt: skip
    """Stratified balanced batches (``SHARES``), SpecAugment-style augmentation, BCE on logits;
    keeps the weights with the best val recall at 1 % false windows."""
    import tensorflow as tf

    from model_export.train import augment, balanced_batches

    rng = np.random.default_rng(seed)
    st = strata(train.kind, train.y)
    present = set(st.tolist())
    sh = {k: v for k, v in (shares or SHARES).items() if k in present}
    opt = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(lr, epochs * steps, alpha=0.05))
    bce = loss_fn()

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = bce(y, model(x, training=True))
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    best, best_w, hist = -1.0, None, []
    t0 = time.time()
    for ep in range(epochs):
        losses = []
        for idx in balanced_batches(st, 128, steps, rng, sh):
            xb = augment(train.x[idx], rng, max_t=10, max_f=4)[..., None]
            losses.append(float(step(tf.constant(xb), tf.constant(train.y[idx][:, None]))))
            if progress:
                progress(1)
        v = val_score(model, val)
        hist.append(
            {
                "epoch": ep + 1,
                "loss": round(float(np.mean(losses)), 4),
                **{k: round(x, 4) for k, x in v.items()},
            }
        )
        log.warning("epoch %d %s (%.0f s)", ep + 1, hist[-1], time.time() - t0)
        if v["recall_at_1pct"] + 0.1 * v["auc"] > best:
            best, best_w = v["recall_at_1pct"] + 0.1 * v["auc"], model.get_weights()
    model.set_weights(best_w)
    return hist


def mine_hard(model, pool: dict, frames: int, hop: int, top_fraction: float = 0.03, min_logit: float = -2.0):
    """Windows (``hop`` frames apart) of the fit real negatives, native and through 16 kHz, on which
    ``model`` scores highest: the top ``top_fraction`` that also exceed ``min_logit``."""
    from edge.core.frontend import FrontendConfig, logmel
    from model_export.detector.chain import band_limit
    from model_export.detector.realdata import SR, WindowSet, _cut, _is_val

    cfg = FrontendConfig()
    xs, zs = [], []
    for rel, a16 in pool.items():
        if _is_val(rel):
            continue
        a = a16.astype(np.float32) / 32767
        for v in (a, band_limit(a, SR, 16000)):
            w = _cut(logmel(v, cfg), frames, hop)
            if len(w):
                xs.append(w)
                zs.append(predict_logits(model, w))
    x, z = np.concatenate(xs), np.concatenate(zs)
    k = max(1, int(top_fraction * len(z)))
    order = np.argsort(-z)[:k]
    order = order[z[order] > min_logit]
    log.warning(
        "hard negatives: %d of %d windows (logit >= %.2f)",
        len(order),
        len(z),
        z[order].min() if len(order) else 0,
    )
    return WindowSet(x[order], np.zeros(len(order), np.float32), np.full(len(order), "hard")), {
        "windows_scored": int(len(z)), "mined": int(len(order))}  # fmt: skip
