"""Song generator: determinism, dialect table (measured on the audio), incomplete songs, sanity."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import stft

from model_export.synth import (
    DIALECTS,
    DISTRACTOR_KINDS,
    SONG_PEAK,
    make_bird,
    render_distractor,
    render_song,
    terminal_band,
    terminal_duration,
)

SR = 24000


def _spec(audio: np.ndarray):
    f, t, z = stft(audio, SR, nperseg=256, noverlap=256 - 48, nfft=1024, boundary=None, padded=False)
    # stft's times are frame centres
    return f, t, np.abs(z) ** 2


def _element_window(ev, k):
    els = [e for e in ev.elements if e.kind != "intro"]
    e = els[k]
    lo = e.onset_s - 0.008
    hi = e.offset_s + 0.008
    if k > 0:
        lo = max(lo, (els[k - 1].offset_s + e.onset_s) / 2)
    if k + 1 < len(els):
        hi = min(hi, (e.offset_s + els[k + 1].onset_s) / 2)
    return e, lo, hi


@pytest.mark.parametrize("dialect", DIALECTS)
def test_terminal_elements_match_table(dialect):
    rng = np.random.default_rng(11)
    for bird_id in range(3):
        bird = make_bird(dialect, rng, bird_id=bird_id)
        audio, ev = render_song(bird, rng, SR, complete=True)
        f, t, p = _spec(audio)
        sel_f = (f > 2500) & (f < 9500)
        kinds = [e.kind for e in ev.elements if e.kind != "intro"]
        assert len(kinds) == 2
        for k, kind in enumerate(kinds):
            e, lo, hi = _element_window(ev, k)
            dur_lo, dur_hi = terminal_duration(kind, dialect)
            assert dur_lo - 1e-9 <= e.offset_s - e.onset_s <= dur_hi + 1e-9
            band_lo, band_hi = terminal_band(kind, dialect)
            band = (f > band_lo - 500) & (f < band_hi + 500)
            frames = (t >= lo) & (t <= hi)
            energy = p[np.ix_(band, frames)].sum(axis=0)
            on = energy > energy.max() * 10 ** (-12 / 10)
            measured = on.sum() * 48 / SR
            assert dur_lo - 0.04 <= measured <= dur_hi + 0.02, (dialect, kind, measured)
            # carrier: spectral peak of the frames well inside the element
            inner = (t >= e.onset_s + 0.01) & (t <= e.offset_s - 0.01)
            peaks = f[sel_f][np.argmax(p[np.ix_(sel_f, inner)], axis=0)]
            n = peaks.size
            if kind in ("C", "D", "E"):
                head, tail = np.median(peaks[: max(1, n // 5)]), np.median(peaks[-max(1, n // 5) :])
                f0 = terminal_band(kind, dialect)
                assert f0[0] - 400 <= head <= f0[1] + 400 and f0[0] - 400 <= tail <= f0[1] + 400
                if kind == "E":
                    assert tail - head > 800, (dialect, head, tail)
                else:
                    assert head - tail > 500, (dialect, head, tail)
            else:
                med = float(np.median(peaks))
                assert band_lo - 250 <= med <= band_hi + 250, (dialect, kind, med)


def test_bh_higher_than_bl_in_named_order():
    rng = np.random.default_rng(3)
    for dialect in ("BhBl", "BlBh"):
        bird = make_bird(dialect, rng)
        _, ev = render_song(bird, rng, SR, complete=True)
        first, second = ev.elements[-2], ev.elements[-1]
        if dialect == "BhBl":
            assert first.f_start_hz > second.f_start_hz + 500
        else:
            assert second.f_start_hz > first.f_start_hz + 500


def test_deterministic_for_seed():
    def one(seed):
        rng = np.random.default_rng(seed)
        bird = make_bird("BE", rng, bird_id=5)
        return render_song(bird, rng, SR)

    a1, e1 = one(42)
    a2, e2 = one(42)
    a3, _ = one(43)
    assert np.array_equal(a1, a2) and e1 == e2
    assert a1.shape != a3.shape or not np.array_equal(a1, a3)


def test_incomplete_song_has_no_terminal():
    rng = np.random.default_rng(5)
    bird = make_bird("XlB", rng)
    audio, ev = render_song(bird, rng, SR, complete=False)
    assert not ev.complete and ev.terminal_onset_s is None
    assert all(e.kind == "intro" for e in ev.elements)
    # nothing long and flat after the syllables: energy ends with the last syllable
    f, t, p = _spec(audio)
    e = p.sum(axis=0)
    last_on = t[e > e.max() * 1e-3].max()
    assert last_on <= ev.offset_s + 0.02
    assert 0.5 < ev.offset_s - ev.onset_s < 2.5


def test_clean_songs_sane():
    rng = np.random.default_rng(9)
    for d in DIALECTS:
        bird = make_bird(d, rng)
        for _ in range(3):
            audio, ev = render_song(bird, rng, SR)
            assert audio.dtype == np.float32
            assert np.all(np.isfinite(audio))
            assert np.max(np.abs(audio)) <= SONG_PEAK + 1e-6
            assert 0 < ev.onset_s < ev.offset_s <= audio.size / SR
            assert 6 <= ev.n_syllables <= 18 or not ev.complete
            if ev.complete:
                assert ev.onset_s < ev.terminal_onset_s < ev.offset_s
                assert 1.4 <= ev.offset_s - ev.onset_s <= 3.3


def test_initial_syllables_in_band():
    rng = np.random.default_rng(21)
    bird = make_bird("BD", rng)
    audio, ev = render_song(bird, rng, SR, complete=False)
    f, t, p = _spec(audio)
    spec = p[:, (t > ev.onset_s) & (t < ev.offset_s)].sum(axis=1)
    share = spec[(f > 3000) & (f < 7000)].sum() / spec.sum()
    assert share > 0.75
    centroid = (f * spec).sum() / spec.sum()
    assert 4000 < centroid < 6500


def test_song_types_fixed_per_bird():
    rng = np.random.default_rng(8)
    bird = make_bird("XsB", rng, n_types=3)
    assert len(bird.song_types) == 3
    periods = []
    for _ in range(5):
        _, ev = render_song(bird, rng, SR, song_type=1)
        periods.append(ev.syllable_period_s)
    # renditions vary a little around the type's period
    p0 = bird.song_types[1].syllable.period_s
    assert all(abs(p - p0) / p0 <= 0.031 for p in periods)
    assert len(set(periods)) > 1


def test_other_sample_rates():
    rng = np.random.default_rng(1)
    bird = make_bird("BC", rng)
    for sr in (16000, 48000):
        audio, ev = render_song(bird, rng, sr)
        assert np.all(np.isfinite(audio)) and abs(audio.size / sr - (ev.offset_s + 0.02)) < 0.01
    with pytest.raises(ValueError):
        render_song(bird, rng, 8000)
    with pytest.raises(ValueError):
        make_bird("XYZ", rng)


@pytest.mark.parametrize("kind", DISTRACTOR_KINDS)
def test_distractors_render(kind):
    rng = np.random.default_rng(4)
    for _ in range(3):
        audio, ev = render_distractor(kind, rng, SR)
        assert audio.dtype == np.float32 and np.all(np.isfinite(audio))
        assert np.max(np.abs(audio)) <= SONG_PEAK + 1e-6
        assert ev.kind == kind and 0 <= ev.onset_s < ev.offset_s <= audio.size / SR + 1e-6
