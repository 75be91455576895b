"""``yh-model verifier --synth-variety``: the training candidates' composites draw their synthetic
songs from the chosen variety; the variety and the runtime code that proposes the candidates are
part of the candidate cache key. No models, no real audio: a stand-in runner and collection."""

from types import SimpleNamespace

import numpy as np
import pytest

import model_export.synth as synth
from model_export import verifier_candidates as vc
from model_export.synth import syllable_library
from model_export.synth.variety import default_variety

SHAPE = {"contour_hz": [5000.0] * 8, "envelope": [1.0] * 8, "duration_s": 0.07, "period_s": 0.12,
         "bandwidth_hz": 1500.0}  # fmt: skip


class _Runner:
    """Stands in for :class:`model_export.verifier_candidates.CandidateRunner`."""

    def __init__(self, models_dir, candidate_threshold) -> None:
        self.detector = SimpleNamespace(version="det-1", threshold=0.98)
        self.encoder = SimpleNamespace(version="enc-1", embedding_dim=32)


def test_the_key_follows_the_variety_and_the_runtime_code(monkeypatch):
    r = _Runner(None, None)
    base = vc.candidates_key(r, 3, 60, 0)
    assert base == vc.candidates_key(r, 3, 60, 0, "base")
    assert vc.candidates_key(r, 3, 60, 0, "wide") != base
    assert len(vc.pipeline_code()) == 12
    # candidates collected with another segmenter are not taken from the cache
    monkeypatch.setattr(vc, "pipeline_code", lambda: "another-code")
    assert vc.candidates_key(r, 3, 60, 0) != base


@pytest.mark.parametrize("variety", ["base", "wide"])
def test_composites_draw_the_chosen_variety_and_are_cached_apart(tmp_path, monkeypatch, variety):
    drawn, calls = [], []
    make_bird = synth.make_bird

    def recording_make_bird(*a, **k):
        bird = make_bird(*a, **k)
        drawn.append(bird.variety)
        return bird

    def fake_collect(runner, root, composites_per_file, synth_scenes, seed, progress):
        calls.append(default_variety())
        rng = np.random.default_rng(seed)
        bg = (0.003 * rng.standard_normal(20 * vc.SR)).astype(np.float32)
        for _ in range(3):
            x, spans, src = vc._composite(bg, rng, [])  # no real songs: every song synthetic
            assert src == "synth" and len(x) == 15 * vc.SR and spans[0][1] > spans[0][0]
        z = np.zeros(0)
        return {"x": np.zeros((0, 4), np.float32), "y": z.astype(np.int8), "group": z.astype(str),
                "kind": z.astype(str), "hours": {}, "detector_version": "det-1"}  # fmt: skip

    monkeypatch.setattr(synth, "make_bird", recording_make_bird)
    monkeypatch.setattr(vc, "CandidateRunner", _Runner)
    monkeypatch.setattr(vc, "collect", fake_collect)
    monkeypatch.setattr(syllable_library, "load_library", lambda cache, root=None: [SHAPE])
    d = vc.load_or_collect(tmp_path, None, 0.3, 3, 60, 0, variety=variety)
    assert calls == [variety] and drawn == [variety] * 3 and d["synth_variety"] == variety
    assert default_variety() == "base"  # the process default is restored
    vc.load_or_collect(tmp_path, None, 0.3, 3, 60, 0, variety=variety)  # from the cache
    assert len(calls) == 1
    key = vc.candidates_key(_Runner(None, None), 3, 60, 0, variety)
    assert [p.name for p in tmp_path.glob("verifier-candidates-*.npz")] == [f"verifier-candidates-{key}.npz"]
