"""The teacher-student (BYOL) term on real songs (issue 14, item 3): tiny models, a few steps."""

from __future__ import annotations

import numpy as np
import pytest

from model_export.data import EncoderSet
from model_export.encoder_ssl import RealSongWindows, SSLTerm, sample_views, ssl_recordings

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


def _tiny(frames: int = 8, mels: int = 64, dim: int = 4, seed: int = 0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((frames, mels, 1))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inp, keras.layers.Dense(dim)(h))


def test_teacher_is_the_ema_of_the_student_and_the_loss_falls_on_a_fixed_batch():
    model = _tiny()
    term = SSLTerm(model, hidden=8, tau_base=0.9, seed=0)
    for tv, sv in zip(term.teacher.weights, model.weights, strict=True):
        np.testing.assert_array_equal(tv.numpy(), sv.numpy())  # starts as a copy
    rng = np.random.default_rng(0)
    x1 = rng.normal(-50, 10, (16, 8, 64, 1)).astype(np.float32)
    x2 = x1 + rng.normal(0, 1, x1.shape).astype(np.float32)
    opt = keras.optimizers.Adam(1e-2)
    losses = []
    for k in range(1, 16):
        with tf.GradientTape() as tape:
            loss = term.loss(x1, x2)
        vars_ = model.trainable_variables + term.trainable_variables
        opt.apply_gradients(zip(tape.gradient(loss, vars_), vars_))
        losses.append(float(loss))
        before = [w.numpy().copy() for w in term.teacher.weights]
        student = [w.numpy().copy() for w in model.weights]
        tau = term.tau(k, 15)
        term.update_teacher(tau)
        for tv, b, s in zip(term.teacher.weights, before, student, strict=True):
            np.testing.assert_allclose(tv.numpy(), tau * b + (1 - tau) * s, rtol=1e-5, atol=1e-6)
    assert np.isfinite(losses).all() and min(losses) >= 0.0 and max(losses) <= 4.0
    assert losses[-1] < losses[0]
    assert term.tau(0, 15) == pytest.approx(0.9) and term.tau(15, 15) == pytest.approx(1.0)
    # the teacher moved (it follows the student) but is not the student
    assert any(not np.allclose(t.numpy(), s.numpy()) for t, s in zip(term.teacher.weights, model.weights))


def test_views_pair_songs_of_one_recording_only():
    x = np.arange(10, dtype=np.float32)[:, None, None] * np.ones((10, 3, 2), np.float32)
    rs = RealSongWindows(x, np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3]), ["a", "b", "c", "d"], np.zeros(10))
    v1, v2, i1, i2 = sample_views(rs, 200, np.random.default_rng(0), lambda xb, r: xb, p_same_song=0.3)
    assert np.array_equal(rs.group[i1], rs.group[i2])
    assert (i1 != i2).any() and (i1 == i2).any()
    assert np.array_equal(v1[:, 0, 0], i1) and np.array_equal(v2[:, 0, 0], i2)
    assert np.all(i2[rs.group[i1] == 3] == 9)  # a recording with one song pairs it with itself


def test_only_train_split_recordings_are_used():
    with pytest.raises(ValueError):
        ssl_recordings(split="test")


def test_train_dr_with_the_ssl_term_runs_and_logs_it():
    from model_export.encoder_dr import train_dr

    rng = np.random.default_rng(1)
    n = 24
    train = EncoderSet(
        rng.normal(-60, 8, (n, 16, 64)).astype(np.float16),
        np.array(["a", "b"] * (n // 2)),
        np.arange(n) % 6,
        np.zeros(n),
    )
    real = RealSongWindows(rng.normal(-60, 8, (6, 16, 64)).astype(np.float32), np.array([0, 0, 1, 1, 2, 2]),
                           ["r0", "r1", "r2"], np.zeros(6))  # fmt: skip
    model = _tiny(frames=16)
    opts = {"tilt_db": 8.0, "lowpass_p": 0.3, "smear_f_p": 0.3, "reverb_p": 0.3, "noise_p": 0.3,
            "mix_p": 0.2, "shift_band_p": 0.3, "max_shift_frames": 1}  # fmt: skip
    tl = train_dr(model, train, train, ["a", "b"], epochs=2, batch=8, opts=opts, ssl_real=real, ssl_weight=0.5,
                  ssl_batch=4)  # fmt: skip
    assert len(tl.history) == 2
    assert all(np.isfinite(h["ssl_loss"]) and np.isfinite(h["loss"]) for h in tl.history)
