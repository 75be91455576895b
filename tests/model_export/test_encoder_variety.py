"""``yh-model train encoder-dr --synth-variety`` and ``complete-head``: the synthetic sets come from
the chosen variety, made the process's variety before any set is built (the forked builders inherit
it), and are cached apart (``CACHE/variety-wide``); ``base`` keeps the cache of before. No training,
no real audio: the set loader is stopped at its first call."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from model_export import encoder_dr
from model_export.complete_head import complete_head_cmd, trained_variety
from model_export.synth import syllable_library
from model_export.synth.variety import default_variety, set_variety

SHAPE = {"contour_hz": [5000.0] * 8, "envelope": [1.0] * 8, "duration_s": 0.07, "period_s": 0.12,
         "bandwidth_hz": 1500.0}  # fmt: skip


class _Stop(Exception):
    pass


@pytest.fixture
def loads(monkeypatch):
    """The (cache, split, process variety) of each set load; the first load stops the command."""
    seen = []

    def fake_load(cache, split, scale, seed):
        seen.append((cache, split, default_variety()))
        raise _Stop

    monkeypatch.setattr(encoder_dr, "_load_split", fake_load)
    monkeypatch.setattr(syllable_library, "load_library", lambda cache, root=None: [SHAPE])
    yield seen
    set_variety("base")


@pytest.mark.parametrize("variety", ["base", "wide"])
def test_encoder_dr_builds_its_sets_from_the_chosen_variety_in_their_own_cache(tmp_path, loads, variety):
    args = ["--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), "--synth-variety", variety]
    result = CliRunner().invoke(encoder_dr.train_encoder_dr_cmd, args)
    assert isinstance(result.exception, _Stop)
    want = tmp_path / "cache" / "variety-wide" if variety == "wide" else tmp_path / "cache"
    assert loads == [(want, "train", variety)]


def test_the_default_is_base_and_its_cache_is_the_cache_of_before(tmp_path, loads):
    CliRunner().invoke(
        encoder_dr.train_encoder_dr_cmd, ["--out", str(tmp_path / "o"), "--cache", str(tmp_path)]
    )
    assert loads == [(tmp_path, "train", "base")]
    assert not (tmp_path / "variety-wide").exists()


def test_complete_head_fits_on_the_variety_the_encoder_was_trained_on(tmp_path, loads):
    enc = tmp_path / "encoder.tflite"
    enc.write_bytes(b"")
    (tmp_path / "encoder.json").write_text(json.dumps({"training": {"synth_variety": "wide"}}))
    assert trained_variety(enc) == "wide"
    result = CliRunner().invoke(complete_head_cmd, ["--encoder", str(enc), "--cache", str(tmp_path / "c")])
    assert isinstance(result.exception, _Stop)
    assert loads == [(tmp_path / "c" / "variety-wide", "train", "wide")]
    set_variety("base")
    CliRunner().invoke(
        complete_head_cmd, ["--encoder", str(enc), "--cache", str(tmp_path / "c"), "--synth-variety", "base"]
    )
    assert loads[1:] == [(tmp_path / "c", "train", "base")]  # an explicit variety wins
    (tmp_path / "encoder.json").write_text(json.dumps({"training": {"epochs": 18}}))  # before the option
    assert trained_variety(enc) == "base"
