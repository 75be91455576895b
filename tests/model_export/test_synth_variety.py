"""The wide song variety (issue 13 item 1), the syllable measurement it and the distribution check
use, and the MP3/Ogg round trip of the detector's recorder chain (item 2). No real audio needed."""

import hashlib

import numpy as np
import pytest

from model_export.detector.chain import codec_available, lossy_codec, random_chain
from model_export.synth import DIALECTS, make_bird, make_birds, make_scene, render_song, write_wav
from model_export.synth.song_render import _Tracks
from model_export.synth.song_spec import WIDE_TABLE
from model_export.synth.syllable_library import measure_syllables, train_songs
from model_export.synth.syllable_shapes import ShapedSyllable, SyllablePart, render_shaped
from model_export.synth.variety import FAMILY_WEIGHTS, default_variety, draw_shaped, set_variety

SR = 24000


def _q(a) -> bytes:
    return np.round(np.asarray(a, np.float64) * 32767).astype(np.int16).tobytes()


def test_base_generator_unchanged_with_the_option_off():
    """Hashes printed by the generator and chain of before the wide variety existed (commit 2660af5)
    for these seeds: the default (``base``) output must not move by one 16-bit step."""
    assert default_variety() == "base"
    h = hashlib.sha1()
    rng = np.random.default_rng(123)
    for d in DIALECTS:
        b = make_bird(d, rng, bird_id=3)
        h.update(repr(b.song_types).encode())
        for _ in range(2):
            a, ev = render_song(b, rng, SR)
            h.update(_q(a))
            h.update(repr(ev).encode())
    assert h.hexdigest() == "693090c7e2a3dbec7239c4788352c3adbc7f80e2"
    sc = make_scene(make_birds(2, DIALECTS, 5), np.random.default_rng(7), SR, duration_s=8.0)
    assert hashlib.sha1(_q(sc.audio) + repr(sc.songs).encode()).hexdigest() == (
        "19bb631cc13fa3d323bcbe763d9847e65c8c7aa1"
    )
    x = (np.sin(np.arange(48000) * 0.9) * 0.1).astype(np.float32)
    chained = b"".join(_q(random_chain(x, SR, np.random.default_rng(i))[0]) for i in range(8))
    assert hashlib.sha1(chained).hexdigest() == "576ac7ed08e8449969e32d419c72eb4bb879d6a1"


def _phrase(syl: ShapedSyllable, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tr = _Tracks(int((0.1 + n * syl.period_s) * SR))
    for i in range(n):
        render_shaped(tr, int((0.05 + i * syl.period_s) * SR), syl, SR, 1.0, rng)
    return tr.synthesize(SR, rng)


def test_measured_syllables_of_a_known_phrase(tmp_path):
    part = SyllablePart(0.0, 0.06, (6000.0, 5000.0, 4000.0), (1.0, 1.0), 200.0, 0.0, 0.0, 0.0)
    syl = ShapedSyllable("down", (part,), 0.11, 0.1, 0.0)
    x = _phrase(syl, 8)
    x = 0.3 * x / np.abs(x).max() + 0.001 * np.random.default_rng(1).standard_normal(len(x))
    write_wav(tmp_path / "phrase.wav", x.astype(np.float32), SR)
    from model_export.synth import load_audio

    found = measure_syllables(load_audio(tmp_path / "phrase.wav", SR), SR, 0.0, len(x) / SR)
    assert len(found) == 8
    for d in found:
        assert abs(d["duration_s"] - 0.06) < 0.012
        assert abs(d["f_start_hz"] - 5900) < 500 and abs(d["f_end_hz"] - 4100) < 500
        assert d["slope_khz_s"] < -20 and 0.0 <= d["h2"] < 0.3
        assert len(d["contour_hz"]) == 8 and max(d["envelope"]) == pytest.approx(1.0)
    periods = [d["period_s"] for d in found[:-1]]
    assert np.allclose(periods, 0.11, atol=0.004) and np.isnan(found[-1]["period_s"])


def test_library_reads_train_split_songs_only():
    from model_export.labels import real_files, real_songs

    split = {f.file: f.split for f in real_files()}
    songs = train_songs()
    assert songs and all(split[s.file] == "train" for s in songs)
    assert len(songs) < len(real_songs())  # the test split's songs are left out


@pytest.mark.parametrize("family", [f for f in FAMILY_WEIGHTS if f != "library"])
def test_families_render_in_band_and_in_time(family):
    rng = np.random.default_rng(5)
    for _ in range(5):
        syl = draw_shaped(rng, family)
        assert syl.family == family and 0.01 < syl.duration_s <= 0.13 < syl.period_s + 0.05
        x = _phrase(syl, 1, seed=int(rng.integers(1000)))
        assert np.isfinite(x).all() and np.abs(x).max() > 0
        e = x.astype(np.float64) ** 2
        t0, t1 = int(0.05 * SR), int((0.05 + syl.duration_s) * SR) + 2
        assert e[t0:t1].sum() > 0.99 * e.sum()  # nothing outside the syllable's span
        spec = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(len(x), 1 / SR)
        assert spec[(f > 2000) & (f < 11000)].sum() > 0.95 * spec.sum()


def test_library_family_draws_the_measured_shapes():
    shape = {"contour_hz": [5000.0] * 8, "envelope": [1.0] * 8, "duration_s": 0.07, "period_s": 0.12,
             "bandwidth_hz": 1500.0}  # fmt: skip
    set_variety("wide", [shape])
    try:
        syl = draw_shaped(np.random.default_rng(0), "library")
        assert abs(syl.duration_s - 0.07) <= 0.0071 and 0.1 < syl.period_s < 0.14
        assert 4400 < np.mean(syl.parts[0].contour_hz) < 5600
        assert make_bird("XlB", np.random.default_rng(0)).variety == "wide"  # the process default
    finally:
        set_variety("base")
    assert make_bird("XlB", np.random.default_rng(0)).variety == "base"
    with pytest.raises(ValueError):
        make_bird("XlB", np.random.default_rng(0), variety="narrow")


@pytest.mark.parametrize("dialect", DIALECTS)
def test_wide_birds_stay_in_the_wide_table(dialect):
    rng = np.random.default_rng(11)
    families = set()
    for b in range(10):
        bird = make_bird(dialect, rng, bird_id=b, variety="wide")
        families |= {st.syllable.family for st in bird.song_types}
        for _ in range(1 + b % 2):
            a, ev = render_song(bird, rng, SR, complete=True)
            assert np.isfinite(a).all() and 1.0 < ev.offset_s - ev.onset_s < 4.0
            terms = [e for e in ev.elements if e.kind != "intro"]
            for e, (kind, dur, f0, f1) in zip(terms, WIDE_TABLE[dialect], strict=True):
                assert e.kind == kind and dur[0] - 1e-9 <= e.offset_s - e.onset_s <= dur[1] + 1e-9
                assert f0[0] <= e.f_start_hz <= f0[1] and (f1 or f0)[0] <= e.f_end_hz <= (f1 or f0)[1]
    assert len(families) >= 2


def test_codec_round_trip_keeps_length_and_rate():
    if not codec_available("MP3") and not codec_available("OGG"):
        pytest.skip("soundfile/libsndfile writes neither MP3 nor Ogg here")
    t = np.arange(2 * SR) / SR
    x = (0.2 * np.sin(2 * np.pi * 4400 * t)).astype(np.float32)
    for fmt in ("MP3", "OGG"):
        if not codec_available(fmt):
            continue
        for kbps, rate in ((64, 44100), (192, 48000), (96, 22050)):
            y = lossy_codec(x, SR, fmt, kbps, rate)
            assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
            mid = slice(SR // 4, -SR // 4)
            assert np.corrcoef(x[mid], y[mid])[0, 1] > 0.95  # aligned, not delayed
    y, info = random_chain(x, SR, np.random.default_rng(0), codec=1.0)
    assert y.shape == x.shape and info.get("codec") in ("MP3", "OGG")


def test_codec_off_draws_nothing():
    x = np.zeros(SR, np.float32)
    r1, r2 = np.random.default_rng(4), np.random.default_rng(4)
    a, i1 = random_chain(x, SR, r1)
    b, i2 = random_chain(x, SR, r2, codec=0.0)
    assert np.array_equal(a, b) and i1 == i2 and r1.random() == r2.random()


def test_syllable_check_compares_distributions():
    from model_export.synth.syllable_check import compare, table
    from model_export.synth.syllable_library import FEATURES

    rng = np.random.default_rng(0)

    def syl(shift):
        return [{f: float(rng.normal(shift, 1.0)) for f in (*FEATURES, "h2")} for _ in range(200)]

    res = compare(syl(0.0), {"same": syl(0.0), "moved": syl(3.0)})
    for f in FEATURES:
        assert res[f]["same"]["ks"] < 0.2 < 0.8 < res[f]["moved"]["ks"]
        assert abs(res[f]["moved"]["median"] - res[f]["real"]["median"] - 3.0) < 0.5
    text = table(res)
    assert len(text.splitlines()) == 1 + len(FEATURES) + 1 and "duration (ms)" in text
