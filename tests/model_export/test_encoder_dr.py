"""Domain randomisation of encoder training windows and the complete head's fit (issue 14)."""

from __future__ import annotations

import numpy as np

from edge.core.frontend import FrontendConfig
from model_export.complete_head import fit_head, head_metrics, probabilities
from model_export.encoder_dr import domain_randomise

CFG = FrontendConfig()


def _whistles(n: int, band: int) -> np.ndarray:
    x = np.full((n, 80, CFG.n_mels), -80.0, np.float32)
    x[:, 30:60, band] = -30.0  # a flat whistle in one mel band, 0.6 s
    return x


def test_randomised_windows_keep_the_pitch_within_one_band_and_the_timing():
    x = _whistles(64, 30)
    y = domain_randomise(x, np.random.default_rng(1), CFG)
    assert y.shape == x.shape and np.isfinite(y).all()
    assert not np.allclose(y, x)  # something happened to every batch
    peak = y[:, 30:60].mean(axis=1).argmax(axis=1)
    assert np.all(np.abs(peak - 30) <= 1)  # never a pitch shift that could change a dialect
    onset = (y[:, :, 29:32].max(axis=2) > y[:, :, 29:32].max(axis=(1, 2))[:, None] - 10).argmax(axis=1)
    assert np.all(np.abs(onset - 30) <= 1)  # nothing is time-stretched or moved here
    again = domain_randomise(x, np.random.default_rng(1), CFG)
    assert np.array_equal(y, again)  # seeded


def test_the_complete_head_separates_what_is_separable_and_reports_it():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((400, 8))
    y = z[:, 0] + 0.1 * rng.standard_normal(400) > 0.3
    w, b = fit_head(z, y)
    m = head_metrics(probabilities(z, w, b), y)
    assert m["accuracy"] > 0.95 and m["auc"] > 0.99
    m_random = head_metrics(probabilities(z, w, b), rng.random(400) > 0.5)
    assert m_random["auc"] < 0.65


def test_a_left_out_dialect_leaves_no_song_of_its_birds_in_training():
    import click
    import pytest

    from model_export.data import EncoderSet
    from model_export.train_sets import drop_dialect

    # bird 2 sings BD and an incomplete song; bird 3 sings BD only; birds 1 and 4 other dialects
    dialect = np.array(["BC", "BD", "incomplete", "BD", "XlB", "incomplete"])
    bird = np.array([1, 2, 2, 3, 4, 4])
    ds = EncoderSet(np.arange(6, dtype=np.float16)[:, None, None] * np.ones((6, 2, 3), np.float16),
                    dialect, bird, np.zeros(6))  # fmt: skip
    out = drop_dialect(ds, "BD")
    assert out.bird.tolist() == [1, 4, 4]  # bird 2's incomplete song goes with its BD songs
    assert out.dialect.tolist() == ["BC", "XlB", "incomplete"]
    assert out.x[:, 0, 0].tolist() == [0.0, 4.0, 5.0]  # windows stay with their labels
    with pytest.raises(click.ClickException, match="--leave-out must be one of"):
        drop_dialect(ds, "BQ")


def test_strong_reverberation_gives_a_click_a_longer_louder_tail():
    from model_export.encoder_dr import DR, DR_STRONG_REVERB

    x = np.full((64, 80, CFG.n_mels), -80.0, np.float32)
    x[:, 40:42, 50] = -30.0  # a 40-ms click (an XsB X note)
    only_reverb = {**DR, "tilt_db": 0.0, "lowpass_p": 0.0, "smear_f_p": 0.0, "reverb_p": 1.0, "mix_p": 0.0,
                   "noise_p": 0.0, "shift_band_p": 0.0}  # fmt: skip

    def tail_db(opts):
        y = domain_randomise(x, np.random.default_rng(3), CFG, opts)
        return float(np.mean(y[:, 44:50, 50]))  # 40-160 ms after the click

    assert tail_db({**only_reverb, **DR_STRONG_REVERB, "reverb_p": 1.0}) > tail_db(only_reverb) + 3.0


def test_the_tail_encoder_exports_to_int8_and_embeds_through_the_runtime(tmp_path):
    import pytest

    pytest.importorskip("tensorflow")
    from edge.adapters.models.tflite import TFLiteEncoder
    from model_export.export import compare_int8, export_model
    from model_export.models import build_encoder

    rep = np.random.default_rng(0).normal(-60, 10, (32, 80, CFG.n_mels)).astype(np.float32)
    enc = build_encoder("cnn-tail", 80, CFG.n_mels, 32, 1)
    assert enc.get_layer("tail").output.shape[1] == 5  # the last 5 of 10 time steps, in order
    p = export_model(enc, "encoder", tmp_path, rep, CFG, 80, 80, {"embedding_dim": 32, "labels": ["a"]})
    e = TFLiteEncoder(p).embed(rep[0])
    assert e.shape == (32,) and abs(np.linalg.norm(e) - 1) < 1e-4
    assert compare_int8("encoder", p, enc, rep)["cosine_mean"] > 0.9
