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
