"""The input's bandwidth (edge.core.level): a stream band-limited below the frontend's range is
named from its content, whatever its sample rate (issue 13: a 16-kHz recorder, a low-pass codec or
microphone behind a 48-kHz sound card)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from edge.adapters.audio.wavfile import read_wav
from edge.core.frontend import FrontendConfig, logmel, mel_frequencies
from edge.core.level import band_limit

DEMO = Path(__file__).resolve().parents[2] / "edge" / "data" / "demo.wav"
CFG = FrontendConfig()
HZ = mel_frequencies(CFG)


def _demo() -> np.ndarray:
    audio, sr = read_wav(DEMO)
    assert sr == 24000
    return audio.reshape(audio.shape[0], -1)[:, 0].astype(np.float32)


def _through(audio: np.ndarray, rate: int) -> np.ndarray:
    """The 24-kHz audio as a recorder at ``rate`` would have held it, back at 24 kHz."""
    g = np.gcd(24000, rate)
    low = resample_poly(audio, rate // g, 24000 // g)
    return resample_poly(low, 24000 // g, rate // g).astype(np.float32)


def _levels(audio: np.ndarray) -> np.ndarray:
    return 10 * np.log10(np.mean(10 ** (logmel(audio, CFG) / 10), axis=0))


def test_full_band_audio_is_not_band_limited_and_a_16_khz_recording_is():
    demo = _demo()
    assert band_limit(_levels(demo), HZ) is None
    lim16 = band_limit(_levels(_through(demo, 16000)), HZ)
    assert lim16 is not None and 7000 <= lim16 <= 9100, lim16
    lim22 = band_limit(_levels(_through(demo, 22050)), HZ)  # a 22.05-kHz recorder ends near 10-11 kHz
    assert lim22 is None or lim22 > lim16


def test_silence_and_quiet_input_are_not_judged():
    assert band_limit(np.full(len(HZ), -100.0), HZ) is None  # digital silence: the level check's job
    quiet = np.where(HZ < 8000, -90.0, -100.0)  # mid bands only 10 dB above the floor
    assert band_limit(quiet, HZ) is None
    loud = np.where(HZ < 8000, -60.0, -100.0)
    assert band_limit(loud, HZ) == pytest.approx(HZ[HZ < 8000][-1], abs=10)


@pytest.mark.parametrize(("rate", "limited"), [(24000, False), (16000, True)])
def test_the_pipeline_names_a_band_limited_stream_in_its_level_figures_and_warns_once(
    rate, limited, models, caplog
):
    from edge.app.compose import build_pipeline
    from edge.app.config import load_config
    from edge.core.records import AudioChunk

    audio = np.tile(_through(_demo(), rate) if rate != 24000 else _demo(), 5)  # 150 s: two periods
    pipe = build_pipeline(load_config(None), memory=True).pipeline
    caplog.set_level(logging.WARNING, logger="edge.core.level")
    step = 24000 * 3
    for i in range(0, audio.size, step):
        pipe.process(AudioChunk(audio[i : i + step], 24000, i, i / 24000, source="t", stream_start=i == 0))
    snap = pipe.level.snapshot()
    fig = snap["last_minute"]
    assert fig is not None and fig["frontend_top_hz"] == round(HZ[-1])
    warned = [r for r in caplog.records if "holds nothing above" in r.getMessage()]
    if limited:
        assert 7000 <= fig["band_limit_hz"] <= 9100
        assert "input holds nothing above" in snap["warning"] and "32 kHz" in snap["warning"]
        assert len(warned) == 1  # once, not every minute
    else:
        assert fig["band_limit_hz"] is None and snap["warning"] == "" and not warned
