"""Keras architectures: the always-on detector and the dialect encoder (CNN or small ViT).

Both take raw log-mel windows in dB, shape ``(frames, n_mels, 1)``, and normalise inside the
graph, so the exported TFLite file is self-contained and the Pi feeds the frontend output
unchanged. Normalisation gives two channels:

1. the window minus its global mean (invariant to microphone gain and distance),
2. the window minus each band's mean over time (removes stationary noise colour per band).

Encoders pool over time only, keeping the frequency axis (pitch is part of the dialect: Bh vs Bl),
and never see time-stretched input (durations are part of the dialect: XlB vs XsB).
"""

from __future__ import annotations

import keras
from keras import layers, ops

DB_SCALE = 20.0  # dB -> roughly unit range
TAIL_CHANNELS = 8  # channels of the terminal-phrase steps kept in order (``cnn-tail``)
TAIL_STEPS = 5  # of the 10 steps (160 ms each) of an 80-frame window: the last 0.8 s


@keras.saving.register_keras_serializable(package="yh")
class LogMelNorm(layers.Layer):
    """(B, T, F, 1) dB -> (B, T, F, 2): global-mean- and band-mean-subtracted, scaled."""

    def call(self, x):
        # The global mean is taken as the mean of the band means: the same number, but TFLite's
        # int8 MEAN over a whole window (10k elements) came out tens of dB wrong on quiet
        # windows, while short reductions (160 frames, then 64 bands) are exact.
        band_mean = ops.mean(x, axis=1, keepdims=True)
        global_mean = ops.mean(band_mean, axis=2, keepdims=True)
        return ops.concatenate([x - global_mean, x - band_mean], axis=-1) / DB_SCALE


@keras.saving.register_keras_serializable(package="yh")
class TimeMean(layers.Layer):
    """Mean over the time axis: (B, T, F, C) -> (B, F, C)."""

    def call(self, x):
        return ops.mean(x, axis=1)


@keras.saving.register_keras_serializable(package="yh")
class TimeMax(layers.Layer):
    """Max over the time axis: (B, T, F, C) -> (B, F, C)."""

    def call(self, x):
        return ops.max(x, axis=1)


def _sep(x, filters, stride, name):
    x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(name=f"{name}_dwbn")(x)
    x = layers.ReLU(6.0, name=f"{name}_dwrelu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = layers.BatchNormalization(name=f"{name}_pwbn")(x)
    return layers.ReLU(6.0, name=f"{name}_pwrelu")(x)


def build_detector(frames: int, n_mels: int, width: int = 1, stem_time_stride: int = 2) -> keras.Model:
    """A MobileNet-style CNN (about 0.7 M multiply-adds per 100-frame window) -> probability.

    Global max pooling: a song may fill only part of the window. ``stem_time_stride`` 1 keeps
    the stem's time resolution (twice the multiply-adds after it).
    """
    inp = keras.Input((frames, n_mels, 1), name="logmel")
    x = LogMelNorm(name="norm")(inp)
    x = layers.Conv2D(
        12 * width, 3, strides=(stem_time_stride, 2), padding="same", use_bias=False, name="stem"
    )(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    x = _sep(x, 24 * width, 2, "b1")
    x = _sep(x, 32 * width, 2, "b2")
    x = _sep(x, 48 * width, 2, "b3")
    x = layers.GlobalMaxPooling2D(name="pool")(x)
    x = layers.Dropout(0.2, name="drop")(x)
    out = layers.Dense(1, activation="sigmoid", name="probability")(x)
    return keras.Model(inp, out, name="detector")


def _res_block(x, filters, stride, name):
    shortcut = x
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_c1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_r1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_c2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    if stride != (1, 1) or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_sc")(shortcut)
        shortcut = layers.BatchNormalization(name=f"{name}_scbn")(shortcut)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))


def _time_pool_head(x, embedding_dim, name="emb", tail_steps: int = 0):
    """Pool over time (mean and max), keep frequency x channels, reduce with dense layers.

    ``tail_steps`` > 0 adds the last ``tail_steps`` time steps *in order* (channels first reduced
    to ``TAIL_CHANNELS`` by a 1x1 convolution): the window ends just after the song, so these steps
    hold the terminal phrase, and the pooled features alone cannot say where in the window a note
    was or how long it lasted next to similar notes of the initial phrase (XlB vs XsB).
    """
    mean = TimeMean(name="time_mean")(x)
    mx = TimeMax(name="time_max")(x)
    pooled = layers.Flatten(name="flat")(layers.Concatenate(name="time_pool")([mean, mx]))
    if tail_steps > 0:
        t = layers.Conv2D(TAIL_CHANNELS, 1, use_bias=False, name="tail_reduce")(x)
        t = layers.BatchNormalization(name="tail_bn")(t)
        t = layers.ReLU(name="tail_relu")(t)
        t = layers.Cropping2D(((int(x.shape[1]) - tail_steps, 0), (0, 0)), name="tail")(t)
        pooled = layers.Concatenate(name="with_tail")([pooled, layers.Flatten(name="tail_flat")(t)])
    x = pooled
    x = layers.Dropout(0.3, name="drop")(x)
    x = layers.Dense(128, name="reduce")(x)
    x = layers.BatchNormalization(name="reduce_bn")(x)
    x = layers.ReLU(name="reduce_relu")(x)
    return layers.Dense(embedding_dim, name=name)(x)


def build_cnn_encoder(
    frames: int, n_mels: int, embedding_dim: int = 32, stem_time_stride: int = 2, tail_steps: int = 0
) -> keras.Model:
    """ResNet-style encoder (about 25 M multiply-adds per song) -> un-normalised embedding.

    Frequency is downsampled 4x (64 -> 16 bands, each ~0.5 kHz at 5 kHz), time 8x after the stem
    before the time pooling. ``stem_time_stride``: 2 for 100 frames/s, 1 for 50 frames/s (the
    residual blocks then see the same 20-ms steps and the same shapes). ``tail_steps``: see
    :func:`_time_pool_head` (arch ``cnn-tail``).
    """
    inp = keras.Input((frames, n_mels, 1), name="logmel")
    x = LogMelNorm(name="norm")(inp)
    x = layers.Conv2D(16, 3, strides=(stem_time_stride, 1), padding="same", use_bias=False, name="stem")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = _res_block(x, 24, (2, 2), "r1")
    x = _res_block(x, 32, (2, 2), "r2")
    x = _res_block(x, 48, (2, 1), "r3")
    head = _time_pool_head(x, embedding_dim, tail_steps=tail_steps)
    return keras.Model(inp, head, name="encoder_cnn" + ("_tail" if tail_steps else ""))


def build_vit_encoder(
    frames: int,
    n_mels: int,
    embedding_dim: int = 32,
    dim: int = 64,
    depth: int = 3,
    heads: int = 4,
    patch=(16, 8),
) -> keras.Model:
    """A small vision transformer on (time x frequency) patches -> embedding.

    Tokens keep a learned position embedding over both axes (pitch stays visible); the output is
    the mean over time of the tokens of each frequency row, concatenated over frequency.
    """
    pt, pf = patch
    nt, nf = frames // pt, n_mels // pf
    inp = keras.Input((frames, n_mels, 1), name="logmel")
    x = LogMelNorm(name="norm")(inp)
    x = layers.Cropping2D(((0, frames - nt * pt), (0, n_mels - nf * pf)), name="crop")(x)
    x = layers.Conv2D(dim, (pt, pf), strides=(pt, pf), name="patch")(x)  # (B, nt, nf, dim)
    x = layers.Reshape((nt * nf, dim), name="tokens")(x)
    pos = layers.Embedding(nt * nf, dim, name="pos")(ops.arange(nt * nf))
    x = x + pos
    for i in range(depth):
        h = layers.LayerNormalization(epsilon=1e-5, name=f"t{i}_ln1")(x)
        h = layers.MultiHeadAttention(heads, dim // heads, name=f"t{i}_att")(h, h)
        x = layers.Add(name=f"t{i}_add1")([x, h])
        h = layers.LayerNormalization(epsilon=1e-5, name=f"t{i}_ln2")(x)
        h = layers.Dense(2 * dim, activation="gelu", name=f"t{i}_ff1")(h)
        h = layers.Dense(dim, name=f"t{i}_ff2")(h)
        x = layers.Add(name=f"t{i}_add2")([x, h])
    x = layers.LayerNormalization(epsilon=1e-5, name="final_ln")(x)
    x = layers.Reshape((nt, nf, dim), name="grid")(x)
    return keras.Model(inp, _time_pool_head(x, embedding_dim), name="encoder_vit")


def build_encoder(
    arch: str, frames: int, n_mels: int, embedding_dim: int, stem_time_stride: int = 2
) -> keras.Model:
    if arch == "cnn":
        return build_cnn_encoder(frames, n_mels, embedding_dim, stem_time_stride)
    if arch == "cnn-tail":
        return build_cnn_encoder(frames, n_mels, embedding_dim, stem_time_stride, TAIL_STEPS)
    if arch == "vit":
        return build_vit_encoder(frames, n_mels, embedding_dim)
    raise ValueError(f"unknown encoder architecture {arch!r}")


def with_unit_norm(encoder: keras.Model) -> keras.Model:
    """The encoder with L2 normalisation as its last op (what ships: unit embeddings, so the
    int8 output scale covers [-1, 1] for every song)."""
    out = layers.UnitNormalization(axis=-1, name="embedding_unit")(encoder.output)
    return keras.Model(encoder.input, out, name=encoder.name + "_unit")
