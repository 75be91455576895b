"""Where the songs of a region are, once its loud frames are known: runs joined across
syllable gaps (the weak tail of a group dropped, a late terminal phrase kept with its song) and
a run longer than a song cut where overlapping songs meet, keeping only the pieces the
detector heard. Functions of a
:class:`~edge.core.segmenter.SongSegmenter`, whose frame counts they use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edge.core.segmenter import SongSegmenter

_TAIL_SHARE = 0.3  # a joined song's trailing runs weaker than this share of its peak (dB above
# the floor) are not part of it
_TAIL_DROP_DB = 3.0  # a run past the detector's windows is cut where its level drops this much
_HEARD_S = 0.5  # a piece of a split run needs this much of its own time in active detector windows


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


def _steps(seg: SongSegmenter, env: np.ndarray, s: int, e: int) -> tuple[np.ndarray, np.ndarray]:
    """For every frame of run ``[s, e)``: how far the slow envelope drops for good there (mean
    level of the ``_STEP_BEFORE_S`` before less the maximum of the ``_STEP_AFTER_S`` after) and
    how far it rises for good (the mirror image), dB."""
    n = e - s
    power = np.power(10.0, env[s:e].astype(np.float64) / 10.0)
    slow = 10.0 * np.log10(np.convolve(power, np.ones(seg._slow) / seg._slow, mode="same") + 1e-30)
    pre, post = seg._step_before, seg._step_after
    padded = np.concatenate([np.full(post, slow[0]), slow, np.full(post, slow[-1])])
    mean_before = np.convolve(padded, np.ones(pre) / pre, mode="valid")[post - pre : post - pre + n]
    win = np.lib.stride_tricks.sliding_window_view(padded, post)
    max_after = win.max(axis=1)[post : post + n]
    max_before = win.max(axis=1)[:n]
    mean_after = np.convolve(padded, np.ones(pre) / pre, mode="valid")[post : post + n]
    return mean_before - max_after, mean_after - max_before


def unheard_tail(seg: SongSegmenter, env: np.ndarray, s: int, e: int, heard_end: int) -> int:
    """Where run ``[s, e)`` should end when it runs past ``heard_end`` (the end of the last
    active detector window) to the end of what was examined: at the largest drop for good
    ``_HEAD_MAX_S`` or more after its start, if the level falls there by at least
    ``_TAIL_DROP_DB`` (the song ended and other sound went on); else ``e``. Never earlier: a
    terminal phrase is often weaker than the syllables and may lie outside the active windows."""
    first = max(seg.min_frames, seg._head_frames)  # never before a terminal phrase could start
    if e - heard_end <= seg.hop_frames // 2 or e - s <= first + 1:
        return e
    drop, _ = _steps(seg, env, s, e)
    t = first + int(np.argmax(drop[first:]))
    return s + t if drop[t] >= _TAIL_DROP_DB and s + t < heard_end + seg.hop_frames else e


def split_run(seg: SongSegmenter, env: np.ndarray, s: int, e: int) -> list[tuple[int, int, bool]]:
    """Cut a run longer than a song into overlapping songs.

    The first song ends where the slow envelope drops *for good* (its level before exceeds
    anything in the next half second; a dip inside a song, such as the pause before the
    terminal phrase, comes back up and does not count). The next song starts where the
    level rises for good: after the drop when the rest of the run is long enough to be a song
    (the pause between two songs was filled by other sound), else under the first song or,
    when the louder first song hides that, a typical song length before the run's end. Songs
    that overlap get the ``overlap`` flag.
    """
    if e - s <= seg.max_frames:
        return [(s, e, False)]
    n = e - s
    drop, rise = _steps(seg, env, s, e)
    lo, hi = seg.piece_frames, min(seg.max_frames, n - seg.piece_frames)
    t_drop = lo + int(np.argmax(drop[lo:hi])) if hi > lo else lo
    t_rise = lo + int(np.argmax(rise[lo:hi])) if hi > lo else lo
    d, r = (float(drop[t_drop]), float(rise[t_rise])) if hi > lo else (0.0, 0.0)
    if r > max(d, 2.0):  # a louder bird starts and hides the end of the first song
        t1 = t2 = t_rise
    elif d > 1.0:  # the first song ends
        t1 = t_drop
        after = rise[t1 : min(n, t1 + seg.max_frames)]
        lo2, hi2 = max(seg.min_frames, t1 - seg.max_frames + seg.min_frames), t1 + seg.gap_frames
        if n - t1 >= seg.min_frames and after.max() > 2.0:
            # the next song starts after it (the pause between them was bridged by other sound)
            t2 = t1 + int(np.argmax(after))
        elif hi2 > lo2 and rise[lo2:hi2].max() > 2.0:  # it started somewhere under the first
            t2 = lo2 + int(np.argmax(rise[lo2:hi2]))
        elif n - t1 <= seg.max_frames:  # one song left: assume a typical length
            t2 = min(t1, max(1, n - seg.typical_frames))
        else:
            t2 = t1
    else:
        t1 = t2 = max(lo, min(seg.typical_frames, n - seg.piece_frames))
    overlap = t2 <= t1  # songs after one another (the pause filled by other sound) do not overlap
    rest = split_run(seg, env, s + t2, e)
    return [(s, s + t1, overlap), (rest[0][0], rest[0][1], overlap or rest[0][2])] + rest[1:]


def heard_pieces(
    seg: SongSegmenter, pieces: list[tuple[int, int, bool]], region: list[tuple[int, float]], lo: int
) -> list[tuple[int, int, bool]]:
    """The pieces of a split run (``[start, stop)`` relative to frame ``lo``) that the detector
    heard: the part of a piece not shared with the piece kept before it must lie in active
    windows (``region``) for ``_HEARD_S`` (or half of it, if shorter). A run is often one song
    joined to other sound across the pause after it (a bird of another species, wind, the
    next song's reverberation): cutting it as two overlapping songs invented a second song,
    a false detection overlapping the real one. If one piece is left it is not an overlap."""
    if len(pieces) < 2:
        return pieces
    stop = max(pe for _, pe, _ in pieces)
    active = np.zeros(stop, dtype=bool)
    for w, _ in region:
        active[max(0, w - lo) : max(0, min(stop, w + seg.window_frames - lo))] = True
    need = seg.cfg.frames_for(_HEARD_S)
    keep: list[tuple[int, int, bool]] = []
    for ps, pe, overlap in pieces:
        own = max(ps, keep[-1][1]) if keep else ps
        if pe > own and int(active[own:pe].sum()) >= min(need, (pe - own) / 2):
            keep.append((ps, pe, overlap))
    keep = keep or pieces[:1]  # the run as a whole overlaps the active windows
    return [(keep[0][0], keep[0][1], False)] if len(keep) == 1 else keep
