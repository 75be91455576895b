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
