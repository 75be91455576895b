"""BirdNET as the detector's offline teacher: soft labels, soft-target BCE, train split only.

No real audio and no BirdNET: BirdNET's scores are made up, the audio is the generator's song."""

import numpy as np
import pytest

from edge.core.frontend import FrontendConfig
from model_export.detector import teacher as T
from model_export.detector.realdata import SR
from model_export.synth import make_bird, render_song
from model_export.synth.audio_io import load_audio, write_wav

FRAMES, HOP = 50, 12  # the detector's 1-s window and the teacher windows' hop (0.24 s)


def _scene(tmp_path):
    """8 s at 24 kHz: faint noise, one rendered song from 1.0 s, nothing after 4.5 s; written as
    a WAV and read back the way training reads recordings. Returns (audio, song on, song off)."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(8 * SR) * 1e-3).astype(np.float32)
    song, ev = render_song(make_bird("XlB", rng, 0), rng, SR)
    song = song[: int(3.4 * SR)]
    x[SR : SR + len(song)] += 0.3 * song / np.abs(song).max()
    path = tmp_path / "scene.wav"
    write_wav(path, x, SR)
    return load_audio(path, SR), 1.0 + ev.onset_s, min(1.0 + ev.offset_s, 4.4)


def _labels(audio, row):
    x, t0, cov, one, act = T.file_parts(row, audio, FRAMES, HOP, FrontendConfig())
    return t0, T.soft_label(cov, one, act), act


def test_silence_inside_a_high_scoring_birdnet_window_gets_a_low_label(tmp_path):
    audio, on, off = _scene(tmp_path)
    n3 = int((8 - 3) / T.HOP3) + 1
    # BirdNET is sure about every 3-s window (the song is in all of those touching 1-4.4 s) and
    # gives no 1-s score: all localisation must come from the song band
    row = {"hop3": T.HOP3, "s3": [0.97] * n3}
    t0, y, act = _labels(audio, row)
    song = (t0 >= on) & (t0 + 1 <= off)
    silent = t0 >= off + 0.3
    assert song.sum() >= 3 and silent.sum() >= 3
    assert y[song].min() > 0.7, y[song]
    assert y[silent].max() < 0.1, y[silent]
    assert act[silent].max() < 0.1


def test_a_loud_window_without_birdnet_support_stays_low(tmp_path):
    audio, on, off = _scene(tmp_path)
    n3 = int((8 - 3) / T.HOP3) + 1
    row = {"hop3": T.HOP3, "s3": [0.01] * n3, "hop1": T.HOP1, "s1": [0.0] * 29}
    t0, y, act = _labels(audio, row)
    song = (t0 >= on) & (t0 + 1 <= off)
    assert act[song].min() > 0.7  # the song is loud...
    assert y.max() < 0.05  # ...but BirdNET says it is no yellowhammer


def test_birdnet_on_the_window_itself_counts_where_the_3s_windows_do_not():
    t0 = np.array([0.0, 2.0, 4.0])
    row = {"hop3": 0.5, "s3": [0.0] * 5, "hop1": 0.25, "s1": [0.0] * 8 + [0.9] + [0.0] * 8}
    cov, one = T.covering_scores(row, t0)
    assert np.allclose(cov, 0) and np.allclose(one, [0, 0.9, 0])
    assert T.soft_label(cov, one, np.ones(3)).argmax() == 1


def test_covering_scores_average_only_the_3s_windows_that_contain_the_window():
    s3 = np.zeros(11)
    s3[3] = 1.0  # the window 1.5-4.5 s
    cov, one = T.covering_scores({"hop3": 0.5, "s3": s3.tolist()}, np.array([0.0, 2.0, 3.5, 4.0]))
    # [0, 1] lies in 0-3 only; [2, 3] in the five windows starting 0-2 s; [3.5, 4.5] in the five
    # starting 1.5-3.5 s; [4, 5] in those starting 2-4 s (not 1.5)
    assert np.allclose(cov, [0.0, 0.2, 0.2, 0.0]) and not one.any()


def test_bce_takes_soft_targets():
    from model_export.detector.fit import loss_fn

    bce = loss_fn()
    z = np.linspace(-4, 4, 801).astype(np.float32)[:, None]
    for target in (0.0, 0.3, 0.8):
        loss = [float(bce(np.full((1, 1), target, np.float32), zi[None])) for zi in z]
        best = 1 / (1 + np.exp(-z[int(np.argmin(loss)), 0]))
        assert abs(best - max(target, 1 / (1 + np.exp(4)))) < 0.01, (target, best)


def test_the_teacher_never_reads_a_test_split_file():
    from model_export.labels import real_files

    test = {f.file for f in real_files() if f.split == "test"}
    for which in ("all", "yh", "neg"):
        files = T.teacher_files(None, which)
        assert files and not ({f.file for f in files} & test)
    yh = {f.yellowhammer for f in T.teacher_files(None, "yh")}
    assert yh == set(T.TEACHER_VALUES)
    bad = [f for f in real_files() if f.split == "test"][:1]
    with pytest.raises(ValueError, match="train-split"):  # refused before BirdNET is loaded
        T.score_files(bad, "/nonexistent/cache.json")
