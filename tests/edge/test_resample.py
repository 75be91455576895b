import numpy as np
import pytest
from scipy.signal import resample_poly

from edge.core.resample import Resampler, resample

TARGET = 24000


def _tone(freq, rate, seconds=1.0):
    t = np.arange(int(rate * seconds)) / rate
    return np.sin(2 * np.pi * freq * t).astype(np.float32)


def _spectrum(y, rate):
    y = y[2000:-2000]
    mag = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return np.fft.rfftfreq(len(y), 1 / rate), mag


@pytest.mark.parametrize("rate", [44100, 48000])
def test_5khz_tone_stays_at_5khz(rate):
    y = resample(_tone(5000, rate), rate, TARGET)
    assert len(y) == TARGET
    freqs, mag = _spectrum(y, TARGET)
    assert abs(freqs[mag.argmax()] - 5000) < 5
    assert np.sqrt(np.mean(y[2000:-2000] ** 2)) == pytest.approx(np.sqrt(0.5), rel=0.01)


@pytest.mark.parametrize("rate", [44100, 48000])
@pytest.mark.parametrize("freq", [13500, 15000, 20000])
def test_energy_above_new_nyquist_is_rejected(rate, freq):
    # tones that would fold below 10.5 kHz, into the bands the frontend analyses
    y = resample(_tone(freq, rate), rate, TARGET)
    rms = np.sqrt(np.mean(y[2000:-2000] ** 2))
    assert 20 * np.log10(rms / np.sqrt(0.5)) < -60  # >60 dB below the input tone


@pytest.mark.parametrize("freq,lo,hi", [(10000, -0.5, 0.1), (11000, -1.0, 0.1), (13000, -80, -25)])
def test_halving_the_rate_keeps_the_analysed_band(freq, lo, hi):
    """48 -> 24 kHz (half-band): flat to the frontend's 11 kHz top; 13 kHz, which folds onto
    11 kHz, is already well down."""
    y = resample(_tone(freq, 48000), 48000, TARGET)
    gain = 20 * np.log10(np.sqrt(np.mean(y[2000:-2000] ** 2)) / np.sqrt(0.5))
    assert lo < gain < hi


@pytest.mark.parametrize("rate", [16000, 22050, 44100, 48000, 96000])
def test_streaming_equals_batch_for_any_chunking(rate):
    x = np.random.default_rng(3).standard_normal(rate).astype(np.float32)
    batch = resample(x, rate, TARGET)
    for chunk in (7, 1000, 4096, rate):
        r = Resampler(rate, TARGET)
        out = np.concatenate([r.process(x[i : i + chunk]) for i in range(0, len(x), chunk)] + [r.flush()])
        np.testing.assert_array_equal(out, batch)


def test_close_to_scipy_reference_in_passband():
    rate = 48000
    x = _tone(3000, rate) + _tone(7000, rate) * 0.5
    ours = resample(x, rate, TARGET)
    ref = resample_poly(x, 1, 2)
    assert np.max(np.abs(ours[500:-500] - ref[500:-500])) < 0.01


def test_passthrough_at_model_rate():
    x = np.arange(10, dtype=np.float32)
    r = Resampler(TARGET, TARGET)
    np.testing.assert_array_equal(r.process(x), x)
    assert r.flush().size == 0
