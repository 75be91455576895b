"""Song segmenter logic on synthetic log-mel frames with a pure-Python stand-in detector."""

from __future__ import annotations

import numpy as np
import pytest

from edge.core.frontend import FrontendConfig
from edge.core.segmenter import SongSegmenter, band_mask

CFG = FrontendConfig()
FPS = int(CFG.frame_rate)  # the shipped frontend's frame rate
W, HOP = FPS, FPS // 2  # detector window 1 s every 0.5 s
MASK = band_mask(CFG)


SONG_BANDS = np.flatnonzero(MASK)


def frames_with(
    songs: list[tuple[float, float, float]], total_s: float, seed: int = 0, gaps=(), clicks=()
) -> np.ndarray:
    """Frames of -80 dB noise with a song at ``level`` dB for each (on, off, level): like a real
    one, narrow at any instant (3 mel bands) and sweeping down in 100-ms syllables.
    ``gaps`` are (start, end) silences cut into the songs (syllable pauses); ``clicks`` are
    (start, end, level) spans of 20-ms broadband transients every 60 ms (rain, a crackle)."""
    rng = np.random.default_rng(seed)
    n = int(total_s * CFG.frame_rate)
    x = (-80.0 + rng.normal(0, 1.0, (n, CFG.n_mels))).astype(np.float32)
    nb = SONG_BANDS.size
    for on, off, level in songs:
        per = FPS // 10  # frames per 100-ms syllable
        for j in range(int(on * FPS), int(off * FPS)):
            c = nb // 4 + (per - 1 - (j - int(on * FPS)) % per) * (nb // 2) // per
            bands = SONG_BANDS[c - 1 : c + 2]
            x[j, bands] = 10 * np.log10(10 ** (x[j, bands] / 10) + 10 ** (level / 10))
    for a, b in gaps:
        x[int(a * FPS) : int(b * FPS), MASK] = -80.0
    for a, b, level in clicks:
        step, width = max(1, round(0.06 * FPS)), max(1, round(0.02 * FPS))
        for j in range(int(a * FPS), int(b * FPS), step):
            x[j : j + width, :] = np.maximum(x[j : j + width, :], level)
    return x


def fake_probs(frames: np.ndarray, starts: list[int]) -> list[tuple[int, float]]:
    """A detector stand-in: probability = share of frames with a loud song band in the window."""
    loud = frames[:, MASK].max(axis=1) > -70
    return [(s, float(loud[s : s + W].mean() * 1.6)) for s in starts]


def run(frames: np.ndarray, chunk: int = 37, probs=None, **kw) -> list:
    """The segmenter over ``frames`` in chunks; ``probs(frames, starts)`` is the detector
    (default :func:`fake_probs`)."""
    probs = probs or fake_probs
    seg = SongSegmenter(CFG, W, HOP, threshold=0.5, **kw)
    out, nxt = [], 0
    for i in range(0, frames.shape[0], chunk):
        part = frames[i : i + chunk]
        seg.add_frames(part)
        starts = []
        while nxt + W <= seg.n_frames:
            starts.append(nxt)
            nxt += HOP
        out += seg.add_windows(probs(frames, starts))
    n = seg.n_frames
    if nxt - HOP + W < n:
        out += seg.add_windows(probs(frames, [n - W]))
    return out + seg.flush()


def secs(song) -> tuple[float, float]:
    return song.start_sample / CFG.sample_rate, song.end_sample / CFG.sample_rate


def test_one_song_onset_offset_within_a_frame_or_two():
    songs = run(frames_with([(2.0, 4.3, -50)], 8.0))
    assert len(songs) == 1
    on, off = secs(songs[0])
    assert abs(on - 2.0) <= 0.02 and abs(off - 4.3) <= 0.02
    assert not songs[0].truncated and not songs[0].overlap
    # the SNR figure is the song-band power over the noise: 30 dB in 3 of the song bands
    assert songs[0].snr_db == pytest.approx(30 - 10 * np.log10(SONG_BANDS.size / 3), abs=1.5)


@pytest.mark.parametrize("chunk", [1, 7, 50, 333, 10_000])
def test_chunking_does_not_change_the_songs(chunk):
    frames = frames_with([(1.3, 3.6, -55), (7.05, 9.2, -45), (12.0, 13.9, -60)], 16.0, seed=3)
    ref = run(frames, chunk=10_000)
    assert len(ref) == 3
    assert run(frames, chunk=chunk) == ref


def test_syllable_gaps_are_bridged_but_long_pauses_split():
    gaps = [(2.0 + 0.11 * k + 0.07, 2.0 + 0.11 * k + 0.11) for k in range(12)]  # 40 ms syllable gaps
    songs = run(frames_with([(2.0, 4.2, -50), (5.0, 7.0, -50)], 10.0, gaps=gaps))
    assert [tuple(round(t, 1) for t in secs(s)) for s in songs] == [(2.0, 4.2), (5.0, 7.0)]


def test_song_cut_by_stream_start_and_end_is_truncated():
    songs = run(frames_with([(0.0, 1.5, -50), (5.2, 6.0, -50)], 6.0))
    assert len(songs) == 2
    assert songs[0].truncated and secs(songs[0])[0] == 0.0
    assert songs[1].truncated and secs(songs[1])[1] == pytest.approx(6.0, abs=0.03)


def test_song_that_begins_and_ends_inside_the_stream_is_not_truncated():
    # a quarter second of quiet at each edge: longer than any pause inside a song, so these songs
    # were not cut by the stream (4-s clips put many songs this close to an edge)
    songs = run(frames_with([(0.25, 1.9, -50), (4.0, 5.75, -50)], 6.0))
    assert [tuple(round(t, 1) for t in secs(s)) for s in songs] == [(0.2, 1.9), (4.0, 5.7)]
    assert not songs[0].truncated and not songs[1].truncated
    cut = run(frames_with([(0.08, 1.9, -50), (4.0, 5.93, -50)], 6.0))
    assert len(cut) == 2 and cut[0].truncated and cut[1].truncated


def test_short_blip_is_not_a_song():
    assert run(frames_with([(2.0, 2.3, -45)], 6.0)) == []


def test_overlapping_birds_give_two_songs():
    # a loud bird 1.0-3.3 s, a quieter one 2.8-5.2 s: one continuous run of 4.2 s
    songs = run(frames_with([(1.0, 3.3, -45), (2.8, 5.2, -58)], 8.0))
    assert len(songs) == 2
    assert all(s.overlap for s in songs)
    (a_on, a_off), (b_on, b_off) = secs(songs[0]), secs(songs[1])
    assert abs(a_on - 1.0) < 0.03 and abs(a_off - 3.3) < 0.1
    assert abs(b_off - 5.2) < 0.03 and 2.5 < b_on < 3.4


def test_louder_second_bird_starting_under_the_first():
    songs = run(frames_with([(1.0, 3.3, -60), (3.0, 5.4, -45)], 8.0))
    assert len(songs) == 2
    assert abs(secs(songs[1])[0] - 3.0) < 0.1 and abs(secs(songs[1])[1] - 5.4) < 0.03


def test_clicks_after_a_song_do_not_extend_it():
    # broadband transients as loud as the song right after it: the band contrast envelope
    # (loudest bands less the median band) does not count them
    songs = run(frames_with([(2.0, 4.3, -50)], 8.0, clicks=[(4.35, 6.5, -50)]))
    assert len(songs) == 1
    on, off = secs(songs[0])
    assert abs(on - 2.0) <= 0.02 and abs(off - 4.3) <= 0.05


def test_a_narrow_quiet_terminal_whistle_belongs_to_the_song():
    # syllables 2.0-3.8 s, then after a 0.1-s pause a whistle two bands wide and 12 dB weaker
    # to 4.4 s (in the mean power of all song bands it is 14 dB below the syllables)
    x = frames_with([(2.0, 3.8, -50)], 8.0)
    band = SONG_BANDS[SONG_BANDS.size // 3]
    x[int(3.9 * FPS) : int(4.4 * FPS), band : band + 2] = -62.0
    songs = run(x)
    assert len(songs) == 1
    assert abs(secs(songs[0])[1] - 4.4) <= 0.03


def test_a_quiet_song_beside_a_loud_one_is_placed_on_its_own_level():
    # 40 dB and 12 dB above the noise, 0.6 s apart: one threshold for both would be set by
    # the loud song and cut the quiet one to pieces
    songs = run(frames_with([(1.0, 3.3, -40), (3.9, 6.1, -68)], 9.0))
    assert [tuple(round(t, 1) for t in secs(s)) for s in songs] == [(1.0, 3.3), (3.9, 6.1)]


def test_noise_floor_tracks_the_background():
    seg = SongSegmenter(CFG, W, HOP, 0.5)
    seg.add_frames(frames_with([], 5.0))
    quiet = seg.noise_floor_db()
    assert -90 < quiet < -70
    assert seg.level_above_floor(0, FPS) < 6


def test_windows_out_of_order_are_refused():
    seg = SongSegmenter(CFG, W, HOP, 0.5)
    seg.add_frames(frames_with([], 3.0))
    seg.add_windows([(50, 0.1)])
    with pytest.raises(ValueError):
        seg.add_windows([(0, 0.1)])


def test_reset_starts_a_new_stream():
    seg = SongSegmenter(CFG, W, HOP, 0.5)
    seg.add_frames(frames_with([], 3.0))
    seg.add_windows([(0, 0.9)])
    seg.flush()
    seg.reset()
    assert seg.n_frames == 0
    assert seg.add_windows([]) == [] and seg.flush() == []


def test_a_long_bout_is_cut_between_songs_never_inside_one():
    # songs of 2.4 s every 3.1 s for a minute: the detector never goes quiet, the region is
    # closed by its length cap, and no song may be cut there
    songs_in = [(1.0 + 3.1 * k, 3.4 + 3.1 * k, -50) for k in range(19)]
    songs = run(frames_with(songs_in, 62.0, seed=4))
    assert [tuple(round(t, 1) for t in secs(s)) for s in songs] == [
        (round(a, 1), round(b, 1)) for a, b, _ in songs_in
    ]


def test_memory_stays_bounded_on_an_endless_stream():
    seg = SongSegmenter(CFG, W, HOP, 0.5)
    block = frames_with([(0.5, 2.8, -50)], 5.0)
    nxt = 0
    for _ in range(400):  # 2000 s of audio: a song every 5 s
        seg.add_frames(block)
        starts = []
        while nxt + W <= seg.n_frames:
            starts.append(nxt)
            nxt += HOP
        seg.add_windows([(s, 0.9 if (s % (5 * FPS)) < (5 * FPS) // 2 else 0.0) for s in starts])
    assert seg.history_frames <= 1.3 * seg._keep
    assert seg._hist.shape[0] <= 3 * seg._keep  # the band-level buffer is bounded too


def test_a_terminal_phrase_after_faded_last_syllables_is_not_a_second_song():
    # syllables 2.0-3.3 s, the last ones faded away (0.55 s of silence), then the terminal
    # phrase 3.85-4.5 s: one song, not a song and a 0.65-s "second song" (issue 14)
    x = frames_with([(2.0, 3.3, -50), (3.85, 4.5, -52)], 8.0)
    songs = run(x)
    assert len(songs) == 1
    on, off = secs(songs[0])
    assert abs(on - 2.0) <= 0.03 and abs(off - 4.5) <= 0.05


def test_two_songs_a_short_pause_apart_stay_two():
    # a whole song then another whole one 0.6 s later (two neighbours): the terminal-phrase
    # rule only joins a short piece after a piece shorter than a song
    songs = run(frames_with([(1.0, 3.2, -50), (3.8, 6.0, -50)], 8.0))
    assert [tuple(round(t, 1) for t in secs(s)) for s in songs] == [(1.0, 3.2), (3.8, 6.0)]


def test_a_long_song_is_not_split_before_its_terminal_phrase():
    # 3.3 s of song (longer than most, e.g. with an intro and a trailing note): one song
    songs = run(frames_with([(1.0, 4.3, -50)], 8.0))
    assert len(songs) == 1 and not songs[0].overlap


def test_a_weak_sound_after_the_song_does_not_extend_it():
    # syllables, a terminal phrase 10 dB weaker, and 0.25 s later a background bird 22 dB
    # weaker than the syllables: above the threshold next to the quieter terminal phrase
    x = frames_with([(2.0, 3.6, -50), (3.7, 4.3, -60), (4.55, 4.8, -72)], 8.0)
    songs = run(x)
    assert len(songs) == 1
    assert abs(secs(songs[0])[1] - 4.3) <= 0.05


def test_a_high_x_note_near_9_khz_belongs_to_the_song():
    from edge.core.frontend import mel_frequencies

    x = frames_with([(2.0, 3.9, -50)], 8.0)
    band = int(np.argmin(np.abs(mel_frequencies(CFG) - 9000.0)))
    x[int(3.9 * FPS) : int(4.0 * FPS), band - 1 : band + 2] = -50.0  # X, 0.1 s, near 9 kHz
    songs = run(x)
    assert len(songs) == 1
    assert abs(secs(songs[0])[1] - 4.0) <= 0.03


def _heard_only_in(spans):
    """A detector stand-in that scores a window 0.9 when most of it lies in one of ``spans``
    (seconds), else 0.1: it hears the yellowhammer, not the other sounds."""

    def probs(frames, starts):
        return [
            (st, 0.9 if any(min(st + W, b * FPS) - max(st, a * FPS) >= W / 2 for a, b in spans) else 0.1)
            for st in starts
        ]

    return probs


def test_other_sound_joined_to_a_song_is_not_a_second_song():
    # a song 1.0-3.3 s, then a weaker bird of another species in the song band, 3.45-6.0 s:
    # one loud run of 5 s, longer than a song. The detector hears only the song: one song, its
    # end where the song ends, not two overlapping songs of which the second is invented
    x = frames_with([(1.0, 3.3, -50), (3.45, 6.0, -60)], 9.0)
    songs = run(x, probs=_heard_only_in([(1.0, 3.3)]))
    assert len(songs) == 1, [secs(s) for s in songs]
    on, off = secs(songs[0])
    assert abs(on - 1.0) <= 0.05 and abs(off - 3.3) <= 0.1 and not songs[0].overlap


def test_a_song_after_a_pause_bridged_by_other_sound_starts_after_the_first_one():
    # two songs 1.0-3.3 s and 4.0-6.3 s, the pause between them filled by a weaker sound of
    # another species (one run of 5.3 s): two songs one after the other, the second starting
    # where it starts, not under the first as an overlapping song
    x = frames_with([(1.0, 3.3, -50), (3.35, 3.95, -62), (4.0, 6.3, -50)], 9.0)
    songs = run(x, probs=_heard_only_in([(1.0, 3.3), (4.0, 6.3)]))
    assert len(songs) == 2, [secs(s) for s in songs]
    (a_on, a_off), (b_on, b_off) = secs(songs[0]), secs(songs[1])
    assert abs(a_on - 1.0) <= 0.05 and abs(a_off - 3.3) <= 0.15
    assert abs(b_on - 4.0) <= 0.1 and abs(b_off - 6.3) <= 0.05
    assert not any(s.overlap for s in songs)


def _scored(score_of):
    """A detector stand-in scoring each window by ``score_of(start_s)``."""

    def probs(frames, starts):
        return [(st, score_of(st / FPS)) for st in starts]

    return probs


def test_consecutive_windows_at_the_support_threshold_make_a_song_one_alone_does_not():
    x = frames_with([(2.0, 4.3, -50)], 8.0)
    # the detector is fairly sure of the song (0.4) but never reaches the threshold (0.5)
    fairly_sure = _scored(lambda t: 0.4 if 1.5 <= t <= 3.5 else 0.05)
    assert run(x, probs=fairly_sure) == []
    songs = run(x, probs=fairly_sure, support_threshold=0.35)
    assert len(songs) == 1
    on, off = secs(songs[0])
    assert abs(on - 2.0) <= 0.04 and abs(off - 4.3) <= 0.04
    # the same song with only one window at 0.4 (a lone support window), or two of them with a
    # window below the support threshold between (a gated window scores 0): no song
    once = _scored(lambda t: 0.4 if t == 2.5 else 0.05)
    apart = _scored(lambda t: 0.4 if t in (2.0, 3.0) else 0.05)
    assert run(x, probs=once, support_threshold=0.35) == []
    assert run(x, probs=apart, support_threshold=0.35) == []
    # a window at the threshold makes a song as before, with or without support
    sure_once = _scored(lambda t: 0.6 if t == 2.5 else 0.05)
    assert len(run(x, probs=sure_once)) == len(run(x, probs=sure_once, support_threshold=0.35)) == 1


@pytest.mark.parametrize("chunk", [1, 50, 10_000])
def test_support_windows_give_the_same_songs_in_any_chunking(chunk):
    x = frames_with([(1.3, 3.6, -55), (7.05, 9.2, -45), (12.0, 13.9, -60)], 16.0, seed=3)
    probs = _scored(
        lambda t: 0.6 if 6.5 <= t <= 8.5 else 0.4 if (0.5 <= t <= 3.0 or 11.5 <= t <= 13.5) else 0.05
    )
    ref = run(x, chunk=10_000, probs=probs, support_threshold=0.35)
    assert len(ref) == 3
    assert run(x, chunk=chunk, probs=probs, support_threshold=0.35) == ref


def test_a_support_threshold_outside_0_1_is_refused():
    with pytest.raises(ValueError, match="support_threshold"):
        SongSegmenter(CFG, W, HOP, 0.5, support_threshold=1.5)
