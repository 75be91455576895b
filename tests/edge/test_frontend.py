import numpy as np
import pytest

from edge.core.frontend import FrontendConfig, StreamingLogMel, logmel, mel_frequencies


def _audio(seconds=3.0, seed=0, sr=24000):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    chirp = 0.3 * np.sin(2 * np.pi * np.cumsum(4000 + 2000 * np.sin(2 * np.pi * 3 * t)) / sr)
    return (chirp + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)


def _stream(x, cfg, chunk, fe=None):
    fe = fe or StreamingLogMel(cfg)
    outs = [fe.process(x[i : i + chunk]) for i in range(0, len(x), chunk)]
    return np.concatenate(outs), fe


@pytest.mark.parametrize("normalization", ["none", "ema"])
@pytest.mark.parametrize("chunk", [1, 160, 1000, 4096, 48000, 72000])  # 72000: in two blocks
def test_streaming_equals_batch(chunk, normalization):
    cfg = FrontendConfig(normalization=normalization)
    x = _audio(seconds=1.0 if chunk == 1 else 3.0)
    batch = logmel(x, cfg)
    streamed, fe = _stream(x, cfg, chunk)
    assert streamed.shape == batch.shape == (cfg.n_frames(len(x)), cfg.n_mels)
    assert np.max(np.abs(streamed - batch)) < 1e-4
    assert fe.frames_out == batch.shape[0]


@pytest.mark.parametrize("normalization", ["none", "ema"])
def test_streaming_after_reset_equals_batch(normalization):
    cfg = FrontendConfig(normalization=normalization)
    a, b = _audio(seed=1), _audio(seed=2, seconds=2.0)
    _, fe = _stream(a, cfg, 777)
    fe.reset()
    again, _ = _stream(b, cfg, 1000, fe)
    assert np.max(np.abs(again - logmel(b, cfg))) < 1e-4


def test_short_input_gives_no_frames_then_completes():
    cfg = FrontendConfig()
    fe = StreamingLogMel(cfg)
    assert fe.process(np.zeros(cfg.n_fft - 1, np.float32)).shape == (0, cfg.n_mels)
    assert fe.process(np.zeros(1, np.float32)).shape == (1, cfg.n_mels)
    assert logmel(np.zeros(10, np.float32), cfg).shape == (0, cfg.n_mels)


def test_tone_lands_in_its_mel_band_and_level_is_calibrated():
    cfg = FrontendConfig()
    t = np.arange(cfg.sample_rate) / cfg.sample_rate
    for f in (3000.0, 5000.0, 8000.0):
        m = logmel(np.sin(2 * np.pi * f * t).astype(np.float32), cfg)
        centre = mel_frequencies(cfg)[int(m.mean(axis=0).argmax())]
        assert abs(centre - f) < 0.08 * f
    # a full-scale sine peaks near -6 dB + filterbank gain, silence sits at the floor
    assert logmel(np.zeros(4800, np.float32), cfg).max() == pytest.approx(-100.0)


def test_config_validation_and_mismatch():
    with pytest.raises(ValueError):
        FrontendConfig(fmax=20000)
    with pytest.raises(ValueError):
        FrontendConfig(hop_length=1024)
    with pytest.raises(ValueError):
        FrontendConfig(normalization="pcen")
    a, b = FrontendConfig(), FrontendConfig(n_mels=40)
    assert a.mismatch(a) == []
    assert a.mismatch(b) == ["n_mels: 64 != 40"]
    assert FrontendConfig.from_dict(a.to_dict()) == a


@pytest.mark.parametrize("k", [2, 4])
def test_input_at_a_rate_multiple_gives_the_frames_of_resampled_audio(k):
    """48 kHz (or 96 kHz) straight into the frontend: the frames of resample-then-analyse,
    up to the resampler's ripple near 11 kHz; the same in any chunking."""
    from edge.core.resample import resample

    cfg = FrontendConfig()
    rate = k * cfg.sample_rate
    hi = _audio(seconds=3.0, seed=3, sr=rate)
    ref = logmel(resample(hi, rate, cfg.sample_rate), cfg)
    fe = StreamingLogMel(cfg, input_rate=rate)
    got = np.concatenate([fe.process(hi[i : i + 7919]) for i in range(0, hi.size, 7919)])
    assert got.shape == ref.shape and fe.frames_out == ref.shape[0]
    # the general resampler (96 kHz) rolls off above 10 kHz (up to 3 dB in the top band): compare below
    d = np.abs(got - ref)[:, mel_frequencies(cfg) < (11000 if k == 2 else 9500)]
    assert np.median(d) < 0.01 and d.max() < 0.5, (np.median(d), d.max())
    fe.reset()
    again = fe.process(hi)
    assert np.max(np.abs(again - got)) < 1e-4


def test_input_rate_that_is_not_a_multiple_is_refused():
    cfg = FrontendConfig()
    assert cfg.for_input_rate(cfg.sample_rate) is cfg
    w = cfg.for_input_rate(48000)
    assert (w.sample_rate, w.n_fft, w.hop_length, w.frame_rate) == (
        48000,
        1024,
        2 * cfg.hop_length,
        cfg.frame_rate,
    )
    for bad in (44100, 36000, 240000):
        with pytest.raises(ValueError, match="times the frontend"):
            StreamingLogMel(cfg, input_rate=bad)
