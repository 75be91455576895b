"""Validation sets: one song per clip, and long scenes of several birds; WAVs plus ``truth.csv``.

Both builders are seeded and reproducible: bird ``i`` depends only on ``(seed, i)``, song ``j``
of bird ``i`` only on ``(seed, i, j)``, scene ``s`` only on ``(seed, s)``; region ``r``'s
syllable pool only on ``(seed, r)``. Regions are drawn independently of dialects.

Levels: each song's distance is log-uniform over ``distance_m``; its signal-to-noise ratio
(2.5-8.5 kHz power of the propagated song over that of the background during the song) is
drawn around a value falling with log-distance (about 30 dB at 4 m, 11 dB at 120 m,
+-5 dB, kept to -3...38 dB) and the song is scaled to it; the ratio actually obtained is what
``truth.csv`` reports in ``snr_db``.

The clip builder is here; the scene builder is :mod:`.scenes`, what both share :mod:`.setkit`
(all re-exported here).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge.adapters.audio.wavfile import write_wav

from .acoustics import band_power, draw_path, propagate
from .bird import PAD_S, Bird, render_song
from .dialects import DIALECTS
from .scenes import SceneSetConfig, build_scenes, render_scene
from .setkit import (
    SNR_BAND_HZ,
    TRUTH_COLUMNS,
    SetError,
    _bg_info,
    _fade,
    _finish,
    _jsonable,
    _prepare_out,
    _row,
    _scale_to_snr,
    _song_span,
    _summary,
    _write_birds,
    _write_csv,
    bird_index,
    load_truth,
    log_uniform,
    make_birds,
    snr_for_distance,
)

log = logging.getLogger(__name__)


# -- one song per clip --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClipSetConfig:
    """Options of :func:`build_clips` (durations s, distances m)."""

    out: Path
    birds_per_dialect: int = 12
    songs_per_bird: int = 6
    seed: int = 0
    sample_rate: int = 24000
    clip_s: float = 4.0
    dialects: tuple[str, ...] = DIALECTS
    n_regions: int = 4
    distance_m: tuple[float, float] = (4.0, 120.0)
    other_prob: float = 0.35
    edge_prob: float = 0.15
    peak_dbfs: tuple[float, float] = (-20.0, -2.0)
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.sample_rate not in (24000, 48000):
            raise SetError("sample_rate must be 24000 or 48000")
        if self.birds_per_dialect < 1 or self.songs_per_bird < 1:
            raise SetError("need at least one bird per dialect and one song per bird")
        unknown = set(self.dialects) - set(DIALECTS)
        if unknown:
            raise SetError(f"unknown dialect(s) {sorted(unknown)}; known: {', '.join(DIALECTS)}")


def render_clip(
    bird: Bird, song_index: int, cfg: ClipSetConfig, backgrounds, parts: dict | None = None
) -> tuple[np.ndarray, dict]:
    """One clip of one song over a background; returns the audio and its truth row (no file).

    ``parts``, when given, receives the unmixed components (``song`` scaled to its SNR,
    ``background``, ``other``), before the recorder response.
    """
    sr = cfg.sample_rate
    rng = np.random.default_rng([cfg.seed, 2, bird_index(bird), song_index])
    dry, tr = render_song(bird, rng, sr)
    dist = log_uniform(rng, *cfg.distance_m)
    wet = propagate(dry, sr, draw_path(rng, dist), rng)
    song_len = tr.offset_s - tr.onset_s
    clip_len = max(cfg.clip_s, song_len + 0.4)
    n = int(round(clip_len * sr))
    room = clip_len - song_len
    if rng.random() < cfg.edge_prob:  # close to a clip edge
        lead = rng.uniform(0.03, 0.15) if rng.random() < 0.5 else room - rng.uniform(0.03, 0.15)
    else:
        lead = rng.uniform(0.15, max(0.16, room - 0.15))
    lead = float(np.clip(lead, 0.02, room - 0.02))
    start = int(round((lead - tr.onset_s) * sr))  # where the dry audio's sample 0 goes
    song = np.zeros(n)
    src0, dst0 = max(0, -start), max(0, start)
    k = min(wet.size - src0, n - dst0)
    song[dst0 : dst0 + k] = wet[src0 : src0 + k]
    bg, bg_desc = backgrounds.soundscape(rng, n)
    span = _song_span(tr, sr, start)
    g, snr = _scale_to_snr(song[span], bg[span], sr, snr_for_distance(rng, dist))
    mix = bg + g * song
    desc = bg_desc
    other = np.zeros(n)
    if backgrounds.others and rng.random() < cfg.other_prob:
        m = int(rng.uniform(1.0, min(3.5, clip_len)) * sr)
        oth, o_desc = backgrounds.other(rng, m)
        oth = _fade(oth, int(0.05 * sr))
        po = band_power(oth, sr, SNR_BAND_HZ)
        if po > 0:
            level = rng.uniform(-15, 5)  # relative to the song's band power
            ps = band_power(g * song[span], sr, SNR_BAND_HZ)
            i0 = int(rng.integers(0, max(1, n - m)))
            other[i0 : i0 + m] = oth[: n - i0] * math.sqrt(ps * 10 ** (level / 10) / po)
            mix += other
            desc = f"{bg_desc}+{o_desc}"
    if parts is not None:
        parts.update(song=g * song, background=bg, other=other)
    mix = _finish(mix, sr, rng, cfg.peak_dbfs)
    tr = tr.shifted(start / sr)
    return mix.astype(np.float32), _row("", tr, snr, dist, desc)


def build_clips(cfg: ClipSetConfig, backgrounds, progress: Callable[[int], None] | None = None) -> dict:
    """Write ``cfg.out/audio/*.wav``, ``truth.csv``, ``birds.csv`` and ``info.json``; return a summary."""
    out = _prepare_out(cfg.out, cfg.overwrite)
    t0 = time.time()
    n_birds = cfg.birds_per_dialect * len(cfg.dialects)
    birds = make_birds(cfg.seed, n_birds, cfg.dialects, cfg.n_regions)
    rows = []
    for bird in birds:
        for j in range(cfg.songs_per_bird):
            audio, row = render_clip(bird, j, cfg, backgrounds)
            name = f"audio/{bird.bird_id}_{j:02d}.wav"
            write_wav(out / name, audio, cfg.sample_rate)
            row["file"] = name
            rows.append(row)
            if progress:
                progress(1)
    _write_csv(out / "truth.csv", rows, TRUTH_COLUMNS)
    _write_birds(out / "birds.csv", birds)
    summary = _summary(rows, birds, time.time() - t0)
    info = {
        "kind": "clips",
        "generator": "model_export.valsynth",
        "config": _jsonable(asdict(cfg)),
        "backgrounds": _bg_info(backgrounds),
        **summary,
    }
    (out / "info.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


__all__ = [
    "PAD_S",
    "SNR_BAND_HZ",
    "TRUTH_COLUMNS",
    "ClipSetConfig",
    "SceneSetConfig",
    "SetError",
    "bird_index",
    "build_clips",
    "build_scenes",
    "load_truth",
    "log_uniform",
    "make_birds",
    "render_clip",
    "render_scene",
    "snr_for_distance",
]
