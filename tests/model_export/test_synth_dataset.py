"""Scenes, dataset writer and the committed fixtures."""

from __future__ import annotations

import csv
import json
import wave
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from model_export.synth import (
    SONG_COLUMNS,
    DatasetConfig,
    DatasetError,
    load_audio,
    make_bird,
    make_scene,
    write_dataset,
    write_wav,
)
from model_export.synth.audio_io import AudioLibrary

FIXTURES = Path(__file__).parent.parent / "fixtures" / "synth"
SR = 24000


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_scene_labels_consistent():
    rng = np.random.default_rng(0)
    birds = [make_bird("XlB", rng, 0), make_bird("BC", rng, 1)]
    scene = make_scene(
        birds, rng, SR, duration_s=30.0, clip_prob=0.0, onsets={0: [1.0, 9.0, 17.0], 1: [4.0, 20.0]}
    )
    assert scene.audio.dtype == np.float32 and scene.audio.size == 30 * SR
    assert np.all(np.isfinite(scene.audio)) and np.max(np.abs(scene.audio)) <= 1.0
    assert len(scene.songs) == 5
    for s in scene.songs:
        ev = s.event
        assert 0 <= ev.onset_s < ev.offset_s <= 30.0
        assert (ev.terminal_onset_s is None) == (not ev.complete)
        assert 5.0 <= s.distance_m <= 150.0 and np.isfinite(s.snr_db)
    desc = json.loads(json.dumps(scene.description()))
    assert len(desc["songs"]) == 5 and {b["bird_id"] for b in desc["birds"]} == {0, 1}


def test_scene_with_real_background_dir(tmp_path):
    # a "recording" directory made by our own generator: short files get looped
    rng = np.random.default_rng(1)
    write_wav(tmp_path / "a.wav", 0.1 * rng.standard_normal(SR).astype(np.float32), SR)
    (tmp_path / "sub").mkdir()
    write_wav(tmp_path / "sub" / "b.wav", 0.1 * rng.standard_normal(3 * SR).astype(np.float32), 48000)
    lib = AudioLibrary(tmp_path, SR)
    assert len(lib) == 2
    scene = make_scene(
        [make_bird("BD", rng, 3)],
        rng,
        SR,
        duration_s=10.0,
        background=lib,
        distractors=lib,
        distractor_rate_per_min=12.0,
    )
    assert scene.background.split("@")[0] in ("a.wav", "sub/b.wav")
    assert np.all(np.isfinite(scene.audio))


@pytest.mark.slow
def test_dataset_writer(tmp_path):
    cfg = DatasetConfig(
        out_dir=str(tmp_path / "ds"),
        n_birds=4,
        dialects=("XlB", "BhBl"),
        hours=2 / 60,
        file_seconds=30.0,
        seed=7,
        incomplete_fraction=0.25,
    )
    summary = write_dataset(cfg)
    out = tmp_path / "ds"
    songs = _rows(out / "songs.csv")
    scenes = _rows(out / "scenes.csv")
    assert summary["n_files"] == 4 and len(scenes) == 4
    assert songs, "expected some songs"
    assert tuple(songs[0].keys()) == SONG_COLUMNS
    for r in songs:
        assert (out / r["file"]).exists()
        on, off = float(r["onset_s"]), float(r["offset_s"])
        assert 0 <= on < off <= 30.0
        assert r["dialect"] in ("XlB", "BhBl") and r["complete"] in ("true", "false")
        assert (r["terminal_onset_s"] == "") == (r["complete"] == "false")
        if r["terminal_onset_s"]:
            assert on < float(r["terminal_onset_s"]) < off
        assert float(r["distance_m"]) > 0 and np.isfinite(float(r["snr_db"]))
    birds = {r["bird_id"]: r["dialect"] for r in _rows(out / "birds.csv")}
    assert all(birds[r["bird_id"]] == r["dialect"] for r in songs)
    lines = (out / "scenes.jsonl").read_text().splitlines()
    assert [json.loads(x)["file"] for x in lines] == [s["file"] for s in scenes]
    for s in scenes:
        with wave.open(str(out / s["file"])) as w:
            assert w.getframerate() == SR and w.getsampwidth() == 2 and w.getnframes() == 30 * SR
    assert not list(out.rglob("*.part"))
    # deterministic: a second run gives identical files
    summary2 = write_dataset(replace(cfg, out_dir=str(tmp_path / "ds2")))
    assert summary2["n_songs"] == summary["n_songs"]
    assert (out / "songs.csv").read_text() == (tmp_path / "ds2" / "songs.csv").read_text()
    assert (out / "audio/scene_00001.wav").read_bytes() == (
        tmp_path / "ds2/audio/scene_00001.wav"
    ).read_bytes()
    with pytest.raises(DatasetError):
        write_dataset(cfg)


def test_dataset_rejects_bad_dialect(tmp_path):
    with pytest.raises(DatasetError):
        write_dataset(DatasetConfig(out_dir=str(tmp_path), dialects=("XlB", "nope")))


def test_fixtures_present_and_consistent():
    rows = _rows(FIXTURES / "labels.csv")
    assert tuple(rows[0].keys()) == SONG_COLUMNS
    files = {r["file"] for r in rows}
    for name in (
        "song_XlB.wav",
        "song_XsB.wav",
        "song_BC.wav",
        "song_BE.wav",
        "song_BD.wav",
        "song_BhBl.wav",
        "song_BlBh.wav",
        "song_BBe.wav",
        "song_incomplete.wav",
        "scene_noisy.wav",
    ):
        assert name in files
    assert (FIXTURES / "scene_distractors.wav").exists()
    assert sum(p.stat().st_size for p in FIXTURES.iterdir()) < 3_000_000
    for r in rows:
        x = load_audio(FIXTURES / r["file"], SR)
        assert float(r["offset_s"]) <= x.size / SR
        assert (r["complete"] == "false") == (r["terminal_onset_s"] == "")
    dis = _rows(FIXTURES / "distractors.csv")
    assert {d["kind"] for d in dis if d["file"] == "scene_distractors.wav"} >= {"cirl_rattle", "chaffinch"}
