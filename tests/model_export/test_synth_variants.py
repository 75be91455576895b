"""DESIGN.md §3's structural variants in the ``wide-variants`` song variety: a note after the
terminal phrase, songs ending on X, X and two B whistles. Drawn once per bird; the dialect label
stays the bird's; ``wide`` and ``base`` never draw them."""

from collections import Counter

import numpy as np
import pytest

from model_export.synth import make_bird, render_song
from model_export.synth.song_spec import WIDE_TABLE
from model_export.synth.variety import set_variety

SR = 24000


@pytest.fixture()
def variety():
    yield set_variety
    set_variety("base")


def _terminals(dialect: str, n: int) -> Counter:
    return Counter(
        tuple(e.kind for e in make_bird(dialect, np.random.default_rng(i), i).song_types[0].terminal)
        for i in range(n)
    )


def test_wide_variants_draw_each_structural_variant_and_render_it(variety):
    variety("wide-variants")
    xsb = _terminals("XsB", 200)
    assert xsb[("X", "B")] > 100  # most birds sing the plain phrase
    assert xsb[("X", "B", "P")] >= 20 and xsb[("X",)] >= 10 and xsb[("X", "B", "B")] >= 8, xsb
    bc = _terminals("BC", 200)  # other dialects: only the rarer note after the phrase
    assert set(bc) == {("B", "C"), ("B", "C", "P")} and bc[("B", "C", "P")] < 30, bc
    rng = np.random.default_rng(0)
    rendered = set()
    for d in ("XsB", "XlB", "BBe"):
        for i in range(60):
            b = make_bird(d, rng, i)
            kinds = tuple(e.kind for e in b.song_types[0].terminal)
            if kinds == tuple(k for k, *_ in WIDE_TABLE[d]) or kinds in rendered:
                continue
            audio, ev = render_song(b, rng, SR, song_type=0, complete=True)
            assert ev.dialect == d and ev.complete
            assert tuple(e.kind for e in ev.elements if e.kind != "intro") == kinds
            assert np.isfinite(audio).all() and np.abs(audio).max() > 0.05
            rendered.add(kinds)
    assert {("X",), ("X", "B", "P"), ("X", "B", "B")} <= rendered, rendered


def test_wide_and_base_never_draw_a_variant(variety):
    for v in ("wide", "base"):
        variety(v, None)
        for d in ("XsB", "XlB", "BBe"):
            table = tuple(k for k, *_ in WIDE_TABLE[d])
            assert set(_terminals(d, 60)) == {table}, (v, d)


def _peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    f = np.fft.rfftfreq(x.size, 1 / SR)
    band = (f > 3000) & (f < 7000)
    return float(f[band][spec[band].argmax()])


def test_wide_glide_whistles_settle_from_above_and_drift_and_nothing_else_moves(variety):
    from dataclasses import replace

    variety("wide-glide")
    birds = [make_bird("XlB", np.random.default_rng(i), i) for i in range(60)]
    glided = [b for b in birds if b.song_types[0].terminal[-1].glide is not None]
    assert 20 <= len(glided) <= 50  # 60 % of birds
    assert all(e.glide is None for b in birds for t in b.song_types for e in t.terminal if e.kind == "X")
    b = next(b for b in glided if b.song_types[0].terminal[-1].glide[2] < -0.03)
    over, settle_s, drift = b.song_types[0].terminal[-1].glide
    flat = replace(b, song_types=tuple(replace(t, terminal=tuple(replace(e, glide=None) for e in t.terminal))
                                       for t in b.song_types))  # fmt: skip
    a1, ev = render_song(b, np.random.default_rng(5), SR, song_type=0, complete=True)
    a0, _ = render_song(flat, np.random.default_rng(5), SR, song_type=0, complete=True)
    whistle = ev.elements[-1]
    assert whistle.kind == "B"
    on, off = int(whistle.onset_s * SR), int(whistle.offset_s * SR)
    # the same song up to the whistle (peak normalisation aside), then the whistle's pitch moves
    scale = np.abs(a0[: on - 1]).max() / np.abs(a1[: on - 1]).max()
    np.testing.assert_allclose(a1[: on - 1] * scale, a0[: on - 1], atol=1e-4)
    end = slice(off - int(0.1 * SR), off - int(0.02 * SR))
    assert _peak_hz(a1[end]) / _peak_hz(a0[end]) == pytest.approx(1 + 0.9 * drift, abs=0.012)
    start = slice(on + int(0.005 * SR), on + int(0.005 * SR) + int(min(settle_s, 0.05) * SR))
    assert _peak_hz(a1[start]) > _peak_hz(a0[start])  # from further above than the wide whistles


def test_other_varieties_never_glide(variety):
    for v in ("wide", "wide-variants", "base"):
        variety(v, None)
        for d in ("XlB", "BBe", "BhBl"):
            for i in range(20):
                b = make_bird(d, np.random.default_rng(i), i)
                assert all(e.glide is None for t in b.song_types for e in t.terminal), (v, d)
