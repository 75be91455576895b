"""The hand-made labels of the real recordings are well-formed (runs without the audio)."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from model_export.data import _is_test_file
from model_export.labels import (
    DIALECTS,
    FILES_CSV,
    YELLOWHAMMER_VALUES,
    LabelError,
    real_files,
    real_songs,
)

HANSEN = set(DIALECTS) - {"incomplete", "unsure"}


@pytest.fixture(scope="module")
def songs():
    return real_songs()


@pytest.fixture(scope="module")
def files():
    return real_files()


def test_songs_times_and_values(songs):
    assert len(songs) >= 40
    for s in songs:
        where = f"{s.file} {s.onset_s}"
        assert 0.0 <= s.onset_s < s.offset_s, where
        # whole complete songs are 1-4 s; cut, incomplete and unsure fragments may be shorter
        if s.complete and not s.cut and s.dialect in HANSEN:
            assert 1.0 <= s.duration_s <= 4.0, where
        else:
            assert 0.5 <= s.duration_s <= 4.5, where
        assert s.dialect in DIALECTS, where
        assert s.quality in ("A", "B", "C"), where
        assert s.song_type.startswith("t") and s.song_type[1:].isdigit(), where
        assert s.complete == (s.dialect != "incomplete"), where
        if s.dialect in HANSEN:
            assert s.b_start_s is not None and s.b_khz is not None, where
            if s.dialect.startswith("X"):
                assert s.x_start_s is not None and s.x_khz is not None, where
        elements = [(s.x_start_s, s.x_end_s), (s.b_start_s, s.b_end_s)]
        for t0, t1 in elements:
            assert (t0 is None) == (t1 is None), where
            if t0 is not None:
                assert s.onset_s <= t0 < t1 <= s.offset_s + 1e-9, where
        if s.x_start_s is not None and s.b_start_s is not None:
            assert s.x_end_s <= s.b_start_s + 1e-9, where  # X before B
        for khz in (s.x_khz, s.b_khz):
            assert khz is None or 2.0 <= khz <= 11.0, where


def test_songs_in_time_order_and_not_overlapping(songs):
    by_file = defaultdict(list)
    for s in songs:
        by_file[s.file].append(s)
    for f, ss in by_file.items():
        for a, b in zip(ss, ss[1:]):
            assert a.onset_s < b.onset_s, f
            if b.onset_s < a.offset_s:
                assert a.overlap and b.overlap, f"{f}: songs at {a.onset_s} and {b.onset_s} overlap unmarked"


def test_files_cover_manifest_with_splits(files, songs):
    names = [f.file for f in files]
    assert len(names) == len(set(names))
    assert {f.split for f in files} <= {"train", "test"}
    test = {f.file for f in files if f.split == "test"}
    train = {f.file for f in files if f.split == "train"}
    assert test and train and not (test & train)
    for f in files:
        assert f.yellowhammer in YELLOWHAMMER_VALUES, f.file
        assert f.recordist, f.file
    n = defaultdict(int)
    for s in songs:
        n[s.file] += 1
    known = set(names)
    assert set(n) <= known, set(n) - known
    for f in files:
        assert f.n_songs == n[f.file], f.file
        if f.yellowhammer == "yes":
            assert f.n_songs >= 1, f.file
        if f.n_songs:
            assert f.yellowhammer in ("yes", "background"), f.file
        # the files the manifest says carry a yellowhammer are never clean negatives
        if f.label not in ("other", "soundscape") or f.n_songs:
            assert not f.clean_negative, f.file


def test_split_rule_frozen(files):
    """Other-species and soundscape files follow the hash rule; yellowhammer files are about half test,
    with UK-Ryedale files on both sides and another recordist in the test half."""
    for f in files:
        if f.label not in ("yellowhammer",):
            assert (f.split == "test") == _is_test_file(f.file), f.file
    yh = [f for f in files if f.label == "yellowhammer"]
    n_test = sum(f.split == "test" for f in yh)
    assert abs(n_test - len(yh) / 2) <= 1
    ryedale = {f.split for f in yh if f.recordist == "david m"}
    assert ryedale == {"train", "test"}
    assert any(f.split == "test" and f.recordist != "david m" for f in yh)


def test_manifest_matches_when_audio_present(files):
    root = files[0].path.parents[len(Path(files[0].file).parts) - 1]
    manifest = root / "manifest.csv"
    if not manifest.exists():
        pytest.skip("real recordings not present")
    with open(manifest, newline="") as fh:
        rows = {r["file"]: r["label"] for r in csv.DictReader(fh)}
    present = {f for f in rows if (root / f).exists()}
    assert present <= {f.file for f in files}
    for f in files:
        if f.file in rows:
            assert rows[f.file] == f.label, f.file


def test_missing_recording_is_a_clear_error(tmp_path):
    with pytest.raises(LabelError, match="not found"):
        real_songs(root=tmp_path)
    with pytest.raises(LabelError, match="not found"):
        real_files(root=tmp_path)


def test_files_csv_header():
    with open(FILES_CSV, newline="") as fh:
        assert next(csv.reader(fh)) == ["file", "label", "yellowhammer", "n_songs", "recordist", "split"]
