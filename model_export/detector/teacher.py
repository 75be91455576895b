"""BirdNET V2.4 as an offline teacher for the detector's real training windows (issue 13, item 3).

**Scores** (:func:`score_files`, cached as JSON): on every *train*-split recording
(:func:`teacher_files`; a test-split file is refused), BirdNET's yellowhammer score of

- ``s3``: 3-s windows every ``HOP3`` s (BirdNET's own view: is there a yellowhammer in these 3 s?);
- ``s1``: 1-s windows every ``HOP1`` s, each zero-padded to 3 s (BirdNET on the detector's own
  window; this is how BirdNET scores short clips). Only on files that may hold a yellowhammer
  (``yes``/``background``/``possible``): on clean negatives the hand label ``no`` is used.

**Soft labels** (:func:`soft_labels`): see its docstring.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

HOP3 = 0.5  # s between the 3-s BirdNET windows
HOP1 = 0.25  # s between the 1-s (zero-padded) BirdNET windows
TEACHER_VALUES = ("yes", "background", "possible")  # files whose windows get soft labels
HAND_CHECKED = ("yes", "background")  # every song in them is hand-marked (real_songs.csv)


def teacher_files(root=None, which: str = "all") -> list:
    """Train-split recordings the teacher reads: ``which`` = ``yh`` (yes/background/possible),
    ``neg`` (clean ``no`` files) or ``all``. Never a test-split file."""
    from model_export.labels import real_files

    out = [f for f in real_files(root) if f.split == "train"]
    if which == "yh":
        out = [f for f in out if f.yellowhammer in TEACHER_VALUES]
    elif which == "neg":
        out = [f for f in out if f.yellowhammer == "no"]
    assert all(f.split == "train" for f in out)
    return sorted(out, key=lambda f: f.file)


def _starts(n: int, win: int, hop: int) -> np.ndarray:
    """Window starts (samples) as ``BirdNET.windows`` cuts them: the last one may run past the end."""
    return np.arange(max(1, int(np.ceil(max(n - win, 0) / hop)) + 1)) * hop


def birdnet_series(bn, audio48: np.ndarray, seconds: float, hop_s: float, batch: int = 16) -> np.ndarray:
    """BirdNET yellowhammer score of ``seconds``-long windows (zero-padded to 3 s) every ``hop_s``
    s of 48-kHz audio, computed in batches (a whole file's windows would not fit in memory)."""
    from model_export.birdnet import WINDOW, YELLOWHAMMER_INDEX, sigmoid

    win = int(round(seconds * 48000))
    starts = _starts(len(audio48), win, int(round(hop_s * 48000)))
    out = []
    for i in range(0, len(starts), batch):
        chunk = np.zeros((len(starts[i : i + batch]), WINDOW), np.float32)
        for j, s in enumerate(starts[i : i + batch]):
            seg = audio48[s : s + win]
            chunk[j, : len(seg)] = seg
        out.append(sigmoid(bn.logits_of_windows(chunk, batch=batch)[:, YELLOWHAMMER_INDEX]))
    return np.concatenate(out).astype(np.float32)


def load_cache(path: Path) -> dict:
    return json.loads(Path(path).read_text()) if Path(path).exists() else {}


def score_files(files: list, cache: Path, progress=None) -> dict:
    """BirdNET ``s3`` (all files) and ``s1`` (``TEACHER_VALUES`` files) per file, cached in
    ``cache`` (JSON, rewritten after each file; files already there are not scored again)."""
    from model_export.birdnet import BirdNET
    from model_export.synth import load_audio

    cache = Path(cache)
    done = load_cache(cache)
    bn = None
    for f in files:
        if f.split != "train":
            raise ValueError(f"{f.file}: the teacher reads train-split files only")
        if f.file in done:
            continue
        bn = bn or BirdNET(num_threads=1)
        t0 = time.process_time()
        a = load_audio(f.path, 48000)
        row = {"hop3": HOP3, "s3": birdnet_series(bn, a, 3.0, HOP3).round(4).tolist(),
               "duration": round(len(a) / 48000, 3)}  # fmt: skip
        if f.yellowhammer in TEACHER_VALUES:
            row.update(hop1=HOP1, s1=birdnet_series(bn, a, 1.0, HOP1).round(4).tolist())
        row["cpu_s"] = round(time.process_time() - t0, 2)
        done[f.file] = row
        tmp = cache.with_name(cache.name + ".part")
        tmp.write_text(json.dumps(done))
        tmp.replace(cache)
        if progress:
            progress(1)
    return done


# ------------------------------------------------------------------------------------------
# soft labels
SONG_BAND = (2500.0, 9000.0)  # Hz: the yellowhammer's song band
FLOOR_PCT = 20  # a band's floor: this percentile of its level over the whole file
ACT_DB = (5.0, 11.0)  # window activity 0 at <= 5 dB above the floor, 1 at >= 11 dB
SMOOTH = 5  # frames (0.1 s): band levels are averaged over this long before the floor is taken


def song_band_excess(feats: np.ndarray, cfg) -> np.ndarray:
    """Per frame, the largest excess (dB) of a song-band mel band over that band's floor in the
    file (``FLOOR_PCT`` percentile), levels first averaged over ``SMOOTH`` frames (a narrow band's
    level in one frame of noise scatters by several dB): a narrow-band note above the background
    counts, noise does not."""
    from scipy.ndimage import uniform_filter1d

    from edge.core.frontend import mel_frequencies

    f = mel_frequencies(cfg)
    b = (f >= SONG_BAND[0]) & (f <= SONG_BAND[1])
    x = uniform_filter1d(feats[:, b].astype(np.float32), SMOOTH, axis=0, mode="nearest")
    return np.max(x - np.percentile(x, FLOOR_PCT, axis=0), axis=1) if len(x) else np.zeros(0)


def window_activity(excess: np.ndarray, n: int, hop: int, frames: int) -> np.ndarray:
    """Song-band activity of ``n`` windows (``frames`` long, ``hop`` apart) in [0, 1]: the 90th
    percentile of the frames' excess, mapped linearly from ``ACT_DB[0]`` (0) to ``ACT_DB[1]`` (1)."""
    if n <= 0:
        return np.zeros(0, np.float32)
    idx = np.arange(n)[:, None] * hop + np.arange(frames)[None, :]
    p90 = np.percentile(excess[idx], 90, axis=1)
    return np.clip((p90 - ACT_DB[0]) / (ACT_DB[1] - ACT_DB[0]), 0, 1).astype(np.float32)


def covering_scores(row: dict, t0: np.ndarray, length: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """For windows [t0, t0 + length]: (``s3``: mean BirdNET score of the 3-s windows that contain
    the window, ``s1``: BirdNET's score of the window itself, zero-padded; 0 when not scored)."""
    s3, h3 = np.asarray(row["s3"], np.float32), row.get("hop3", HOP3)
    starts = np.arange(len(s3)) * h3
    inside = (starts[None, :] <= t0[:, None] + 1e-6) & (starts[None, :] + 3.0 >= t0[:, None] + length - 1e-6)
    none = ~inside.any(axis=1)  # near a file's end: the nearest window instead
    inside[none, np.clip(np.round(t0[none] / h3).astype(int), 0, len(s3) - 1)] = True
    cov = (inside * s3[None, :]).sum(axis=1) / inside.sum(axis=1)
    if "s1" not in row:
        return cov.astype(np.float32), np.zeros(len(t0), np.float32)
    s1 = np.asarray(row["s1"], np.float32)
    one = s1[np.clip(np.round(t0 / row.get("hop1", HOP1)).astype(int), 0, len(s1) - 1)]
    return cov.astype(np.float32), one


def file_parts(row: dict, audio24: np.ndarray, frames: int, hop: int, cfg=None):
    """(log-mel windows, their start times in s, s3 cover, s1, activity) of one file at 24 kHz."""
    from edge.core.frontend import FrontendConfig, logmel
    from model_export.detector.realdata import _cut

    cfg = cfg or FrontendConfig()
    feats = logmel(audio24, cfg)
    x = _cut(feats, frames, hop)
    t0 = np.arange(len(x)) * hop * cfg.hop_length / cfg.sample_rate
    cov, one = covering_scores(row, t0, frames * cfg.hop_length / cfg.sample_rate)
    act = window_activity(song_band_excess(feats, cfg), len(x), hop, frames)
    return x, t0, cov, one, act


def teacher_windows(frames: int, scores: dict, root=None, progress=None, hand_wins: bool = True):
    """(fit, val) windows (0.24-s hop) of every ``yes``/``background``/``possible`` train file,
    native and through 16 kHz (stratum ``teach`` / ``teach_16k``), labelled:

    - ``possible`` files (no yellowhammer recognisable by eye, BirdNET >= 0.1 somewhere): the
      teacher's soft label (:func:`soft_label`) on every window;
    - ``yes``/``background`` files (``HAND_CHECKED``: every song was marked by hand, and every
      stretch where BirdNET scored >= 0.1 was looked at): the hand marks win -- 1 on a marked song,
      0 where no song comes within 0.05 s -- and the teacher labels the windows partly on a song
      (left out before). BirdNET's highs clear of marked songs there are calls (XC390027 holds only
      calls), echoes and song edges: the detector detects songs.

    ``hand_wins=False`` (``--teacher birdnet-all``, the ablation): the teacher labels every window
    except those on a marked song (1), in all three kinds of file.

    Clean ``no`` files keep their hard 0 (elsewhere): BirdNET scored < 0.1 everywhere in them
    (that is how they were labelled). Files without BirdNET scores in ``scores`` are skipped
    (logged). Files of the val part (``_is_val``) go to val, as elsewhere; training uses fit only."""
    from edge.core.frontend import FrontendConfig, logmel
    from model_export.detector.chain import band_limit
    from model_export.detector.realdata import SR, WindowSet, _cut, _is_val, _overlap_labels, train_files
    from model_export.synth import load_audio

    cfg = FrontendConfig()
    _, songs, _ = train_files(root)
    hop = frames // 4
    out = {"fit": [], "val": []}
    missing = []
    for f in teacher_files(root, "yh"):
        if f.file not in scores:
            missing.append(f.file)
            continue
        audio = load_audio(f.path, SR)
        x, _t0, cov, one, act = file_parts(scores[f.file], audio, frames, hop, cfg)
        y = soft_label(cov, one, act)
        marks = [(s.onset_s, s.offset_s) for s in songs.get(f.file, [])]
        hand = _overlap_labels(len(x), hop, frames, cfg, marks)
        if hand_wins and f.yellowhammer in HAND_CHECKED:  # hand marks win; the teacher labels song edges
            y[hand >= 0] = hand[hand >= 0]
        y[hand == 1] = 1.0
        part = out["val" if _is_val(f.file) else "fit"]
        part.append(WindowSet(x, y, np.full(len(y), "teach")))
        x16 = _cut(logmel(band_limit(audio, SR, 16000), cfg), frames, hop)[: len(y)]
        part.append(WindowSet(x16, y[: len(x16)], np.full(len(x16), "teach_16k")))
        if progress:
            progress(1)
    if missing:
        log.warning("teacher: %d files without BirdNET scores skipped: %s", len(missing), missing[:5])
    return WindowSet.concat(*out["fit"]), WindowSet.concat(*out["val"])


LABEL_VERSION = 1  # bump when soft_label changes (the cached teacher windows depend on it)


def soft_label(cov: np.ndarray, one: np.ndarray, act: np.ndarray) -> np.ndarray:
    """The teacher's label of a 1-s window: ``max(s1, s3_cover * activity)``.

    - ``s1`` (BirdNET on the window itself, zero-padded to 3 s) is BirdNET's own localised
      answer; it is specific (a clear song's 1-s piece often scores > 0.9) but misses many
      song windows (one second of initial syllables is little to go on).
    - ``s3_cover`` (the mean score of every 3-s window containing the window) says a yellowhammer
      sings in or around this second; it cannot tell which second of the 3 s. ``activity``
      (song-band level above the file's floor, :func:`window_activity`) localises it: a window of
      silence between two songs, inside 3-s windows that all score high, has activity 0 and so
      gets the label 0, a window on the song keeps the 3-s score.
    - the max: either view is evidence enough; their product would be too timid on true song
      windows (mean 0.56 on hand-marked song windows against 0.76 for the max, at about the same
      ROC-AUC against the hand marks, 0.96 and 0.95; docs/models.md).
    """
    return np.maximum(one, cov * act).astype(np.float32)


def agreement(scores: dict, root=None, frames: int = 50) -> dict:
    """How the soft labels (and their parts) agree with the hand marks on the train files that
    have hand-marked songs (``real_songs.csv``; their songs are all marked): ROC-AUC of each score
    for windows a marked song overlaps (:func:`.realdata._overlap_labels` 1) against windows no
    song comes within 0.05 s of (0); windows partly on a song are left out. Native rate only."""
    from edge.core.frontend import FrontendConfig
    from model_export.detector.realdata import SR, _overlap_labels, train_files
    from model_export.eval_detector import roc_auc
    from model_export.synth import load_audio

    cfg = FrontendConfig()
    _, songs, by_file = train_files(root)
    hop = frames // 4
    parts: dict = {"hand": [], "s3 cover": [], "s1": [], "activity": [], "soft label": []}
    for rel in sorted(songs):
        if rel not in scores:
            continue
        _x, _t0, cov, one, act = file_parts(scores[rel], load_audio(by_file[rel].path, SR), frames, hop, cfg)
        y = _overlap_labels(len(cov), hop, frames, cfg, [(s.onset_s, s.offset_s) for s in songs[rel]])
        for k, v in zip(parts, (y, cov, one, act, soft_label(cov, one, act))):
            parts[k].append(v)
    y = np.concatenate(parts.pop("hand"))
    out = {"files": sum(r in scores for r in songs), "song_windows": int((y == 1).sum()),
           "other_windows": int((y == 0).sum())}  # fmt: skip
    for k, v in parts.items():
        v = np.concatenate(v)
        p, n = v[y == 1], v[y == 0]
        out[k] = {"auc": round(roc_auc(p, n), 3), "mean_song": round(float(p.mean()), 3),
                  "mean_other": round(float(n.mean()), 3), "song_ge_0.5": round(float(np.mean(p >= 0.5)), 3),
                  "other_ge_0.5": round(float(np.mean(n >= 0.5)), 3)}  # fmt: skip
    return out
