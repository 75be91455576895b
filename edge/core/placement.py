"""Where the songs of a region are, once its loud frames are known: runs joined across
syllable gaps (the weak tail of a group dropped, a late terminal phrase kept with its song) and
a run longer than a song cut where overlapping songs meet. Functions of a
:class:`~edge.core.segmenter.SongSegmenter`, whose frame counts they use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edge.core.segmenter import SongSegmenter

_TAIL_SHARE = 0.3  # a joined song's trailing runs weaker than this share of its peak (dB above
# the floor) are not part of it


def join_runs(seg: SongSegmenter, runs: list[tuple[int, int]], level: np.ndarray) -> list[list[int]]:
    """Join runs across gaps up to ``merge_gap_s``; then drop the weak runs at a joined
    group's tail (a background bird or reverberation after the song: its peak above the
    floor is below ``_TAIL_SHARE`` of the group's loudest run)."""
    groups: list[list[tuple[int, int, float]]] = []
    for s, e in runs:
        peak = float(level[s:e].max())
        if groups and s - groups[-1][-1][1] <= seg.gap_frames:
            groups[-1].append((s, e, peak))
        else:
            groups.append([(s, e, peak)])
    joined: list[list] = []  # [start, stop, peak]
    for g in groups:
        ref = max(p for _, _, p in g)
        while len(g) > 1 and g[-1][2] < _TAIL_SHARE * ref:
            g.pop()
        s, e = g[0][0], g[-1][1]
        # a terminal phrase after a longer pause (the last syllables of a song shorter than
        # a whole one faded below the threshold) belongs to that song, not to a song of its
        # own; a weaker sound after it (a background bird) does not
        if (
            joined
            and s - joined[-1][1] <= seg._terminal_gap
            and e - s <= seg._terminal_frames
            and joined[-1][1] - joined[-1][0] <= seg._head_frames
            and e - joined[-1][0] <= seg.max_frames
            and ref >= _TAIL_SHARE * joined[-1][2]
        ):
            joined[-1][1] = e
            joined[-1][2] = max(joined[-1][2], ref)
        else:
            joined.append([s, e, ref])
    return [[s, e] for s, e, _ in joined]


def split_run(seg: SongSegmenter, env: np.ndarray, s: int, e: int) -> list[tuple[int, int, bool]]:
    """Cut a run longer than a song into overlapping songs.

    The first song ends where the slow envelope drops *for good* (its level before exceeds
    anything in the next half second; a dip inside a song, such as the pause before the
    terminal phrase, comes back up and does not count). The next song starts where the
    level rises for good, or, when the louder first song hides that, a typical song length
    before the run's end. Both get the ``overlap`` flag.
    """
    if e - s <= seg.max_frames:
        return [(s, e, False)]
    n = e - s
    power = np.power(10.0, env[s:e].astype(np.float64) / 10.0)
    slow = 10.0 * np.log10(np.convolve(power, np.ones(seg._slow) / seg._slow, mode="same") + 1e-30)
    pre, post = seg._step_before, seg._step_after
    padded = np.concatenate([np.full(post, slow[0]), slow, np.full(post, slow[-1])])
    # for every t: mean level of the `pre` frames before, max level of the `post` frames after
    mean_before = np.convolve(padded, np.ones(pre) / pre, mode="valid")[post - pre : post - pre + n]
    win = np.lib.stride_tricks.sliding_window_view(padded, post)
    max_after = win.max(axis=1)[post : post + n]
    max_before = win.max(axis=1)[:n]
    mean_after = np.convolve(padded, np.ones(pre) / pre, mode="valid")[post : post + n]
    drop = mean_before - max_after
    rise = mean_after - max_before
    lo, hi = seg.piece_frames, min(seg.max_frames, n - seg.piece_frames)
    t_drop = lo + int(np.argmax(drop[lo:hi])) if hi > lo else lo
    t_rise = lo + int(np.argmax(rise[lo:hi])) if hi > lo else lo
    d, r = (float(drop[t_drop]), float(rise[t_rise])) if hi > lo else (0.0, 0.0)
    if r > max(d, 2.0):  # a louder bird starts and hides the end of the first song
        t1 = t2 = t_rise
    elif d > 1.0:  # the first song ends; the next one started somewhere under it
        t1 = t_drop
        lo2, hi2 = max(seg.min_frames, t1 - seg.max_frames + seg.min_frames), t1 + seg.gap_frames
        if hi2 > lo2 and rise[lo2:hi2].max() > 2.0:
            t2 = lo2 + int(np.argmax(rise[lo2:hi2]))
        elif n - t1 <= seg.max_frames:  # one song left: assume a typical length
            t2 = min(t1, max(1, n - seg.typical_frames))
        else:
            t2 = t1
    else:
        t1 = t2 = max(lo, min(seg.typical_frames, n - seg.piece_frames))
    return [(s, s + t1, True)] + [(ps, pe, True) for ps, pe, _ in split_run(seg, env, s + t2, e)]
