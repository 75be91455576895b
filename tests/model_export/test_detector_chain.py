"""Recording-chain augmentation and window labels of the real-recordings detector training."""

import numpy as np

from edge.core.frontend import FrontendConfig, logmel, mel_frequencies
from model_export.detector.chain import agc, band_limit, random_chain, wind
from model_export.detector.fit import SONG_BANDS_16K
from model_export.detector.realdata import _overlap_labels

SR = 24000


def _tone(freqs, seconds=1.0, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return (sum(np.sin(2 * np.pi * f * t) for f in freqs) * 0.1).astype(np.float32)


def test_16khz_recorder_removes_everything_above_8khz_and_keeps_the_song_band():
    x = _tone([4400.0, 9500.0])
    y = band_limit(x, SR, 16000)
    assert len(y) == len(x)
    spec = np.abs(np.fft.rfft(y))
    f = np.fft.rfftfreq(len(y), 1 / SR)
    assert spec[np.argmin(abs(f - 9500))] < 1e-3 * spec[np.argmin(abs(f - 4400))]
    # what the frontend then sees: the top bands on the floor, the bands the 16-kHz-safe crop keeps are not
    m = logmel(y, FrontendConfig()).mean(axis=0)
    top = mel_frequencies(FrontendConfig()) > 8500
    assert m[top].max() < -90 and m[:SONG_BANDS_16K].max() > -40
    assert band_limit(x, SR, 48000) is x  # 48 kHz holds everything the frontend reads


def test_agc_and_wind_are_bounded_and_seeded():
    rng = np.random.default_rng(0)
    quiet = _tone([4000.0]) * 0.01
    y = agc(quiet, SR, rng)
    assert np.abs(y).max() <= 1.0 and np.sqrt(np.mean(y**2)) > np.sqrt(np.mean(quiet**2))
    w1, w2 = wind(SR, SR, np.random.default_rng(3), 0.1), wind(SR, SR, np.random.default_rng(3), 0.1)
    assert np.array_equal(w1, w2) and abs(np.sqrt(np.mean(w1**2)) - 0.1) < 1e-3
    spec = np.abs(np.fft.rfft(w1))
    f = np.fft.rfftfreq(len(w1), 1 / SR)
    assert spec[f > 1500].sum() < 0.05 * spec.sum()  # rumble: almost nothing in the frontend's range


def test_random_chain_reports_what_it_did():
    x = _tone([4400.0], seconds=2.0)
    rates = set()
    for s in range(30):
        y, info = random_chain(x, SR, np.random.default_rng(s), p16k=0.5)
        assert y.shape == x.shape and np.isfinite(y).all()
        rates.add(info["rate"])
    assert 16000 in rates and len(rates) >= 3


def test_window_labels_by_overlap_with_the_song():
    cfg = FrontendConfig()
    # 1-s windows every 0.24 s; a song 2.0-4.0 s
    y = _overlap_labels(20, 12, 50, cfg, [(2.0, 4.0)])
    starts = np.arange(20) * 12 * cfg.hop_length / cfg.sample_rate
    assert (y[(starts >= 2.0) & (starts + 1.0 <= 4.0)] == 1).all()
    assert (y[starts + 1.0 < 1.95] == 0).all() and (y[starts > 4.05] == 0).all()
    assert set(np.unique(y)) == {-1.0, 0.0, 1.0}  # windows that only touch the song are left out
