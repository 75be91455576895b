"""Dataset writer: a folder of WAV scenes plus label tables.

Output layout (``write_dataset``)::

    OUT/
      audio/scene_00000.wav ...   16-bit mono at the requested rate
      songs.csv                   one row per song (columns: SONG_COLUMNS)
      distractors.csv             one row per distractor (DISTRACTOR_COLUMNS)
      scenes.csv                  one row per file (SCENE_COLUMNS)
      scenes.jsonl                full scene description per file (Scene.description() + "file")
      birds.csv                   bird_id, dialect, n_song_types, incomplete_prob
      dataset.json                parameters, seed, counts

Paths in the CSVs are relative to OUT. Times are seconds from the file's start.
Everything is deterministic for a seed: birds come from ``SeedSequence([seed, 0])``
and file ``i`` from ``SeedSequence([seed, 1, i])``, so any file can be
re-rendered alone. Label tables are written to ``*.part`` and renamed at the end.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .audio_io import AudioLibrary, write_wav
from .scene import Scene, make_scene
from .song import DIALECTS, Bird, make_bird
from .song_spec import _RECORD

logger = logging.getLogger(__name__)

SONG_COLUMNS = (
    "file",
    "onset_s",
    "offset_s",
    "terminal_onset_s",
    "dialect",
    "complete",
    "bird_id",
    "song_type",
    "distance_m",
    "snr_db",
    "n_syllables",
)
DISTRACTOR_COLUMNS = ("file", "kind", "onset_s", "offset_s", "source", "distance_m", "snr_db")
SCENE_COLUMNS = (
    "file",
    "duration_s",
    "background",
    "n_songs",
    "n_distractors",
    "bird_ids",
    "gain_db",
    "clipped",
)


class DatasetError(RuntimeError):
    """The dataset cannot be written as asked."""


@dataclass(**_RECORD)
class DatasetConfig:
    """Parameters of ``write_dataset``.

    Attributes
    ----------
    out_dir : str
        Output folder (created; must not already hold a dataset unless ``overwrite``).
    n_birds : int
        Birds in the pool, spread evenly over ``dialects``.
    dialects : tuple of str
        Dialects to use.
    hours : float
        Total audio, h.
    file_seconds : float
        Length of each WAV file, s.
    sample_rate : int
        Hz (24000 is the models' rate).
    seed : int
        Master seed.
    background_dir, distractor_dir : str or None
        Directories of real recordings (recursive wav/mp3/flac/ogg).
    incomplete_fraction : float or None
        Fraction of incomplete songs (None: each bird's own 10-40 %).
    birds_per_file : tuple of int
        Range (inclusive) of birds singing in one file.
    distractor_rate_per_min : float
        Mean distractors per minute.
    snr_db_range : (float, float)
        SNR of farthest and nearest birds, dB.
    empty_fraction : float
        Fraction of files without any yellowhammer.
    overwrite : bool
        Allow writing into a folder that already holds a dataset.
    """

    out_dir: str
    n_birds: int = 40
    dialects: tuple[str, ...] = DIALECTS
    hours: float = 1.0
    file_seconds: float = 60.0
    sample_rate: int = 24000
    seed: int = 0
    background_dir: str | None = None
    distractor_dir: str | None = None
    incomplete_fraction: float | None = None
    birds_per_file: tuple[int, int] = (1, 3)
    distractor_rate_per_min: float = 1.5
    snr_db_range: tuple[float, float] = (0.0, 30.0)
    empty_fraction: float = 0.1
    overwrite: bool = False


def make_birds(n_birds: int, dialects: Sequence[str], seed: int) -> list[Bird]:
    """The dataset's bird pool: ``n_birds`` birds, dialects assigned round-robin, ids 0..n-1."""
    for d in dialects:
        if d not in DIALECTS:
            raise DatasetError(f"unknown dialect {d!r}; expected some of {', '.join(DIALECTS)}")
    if n_birds < 1 or not dialects:
        raise DatasetError("need at least one bird and one dialect")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    return [make_bird(dialects[i % len(dialects)], rng, bird_id=i) for i in range(n_birds)]


def _file_birds(cfg: DatasetConfig, birds: list[Bird], i: int, rng: np.random.Generator) -> list[Bird]:
    if rng.random() < cfg.empty_fraction:
        return []
    k = int(rng.integers(cfg.birds_per_file[0], cfg.birds_per_file[1] + 1))
    k = min(max(k, 1), len(birds))
    # the i-th file always contains bird i mod n so that every bird appears
    first = birds[i % len(birds)]
    others = [b for b in birds if b.bird_id != first.bird_id]
    pick = rng.choice(len(others), size=min(k - 1, len(others)), replace=False) if k > 1 and others else []
    return [first] + [others[j] for j in pick]


def render_file(
    cfg: DatasetConfig,
    birds: list[Bird],
    i: int,
    background: AudioLibrary | None = None,
    distractors: AudioLibrary | None = None,
) -> Scene:
    """Render file ``i`` of the dataset described by ``cfg`` (no I/O except reading backgrounds)."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 1, i]))
    return make_scene(
        _file_birds(cfg, birds, i, rng),
        rng,
        sample_rate=cfg.sample_rate,
        duration_s=cfg.file_seconds,
        background=background,
        distractors=distractors,
        distractor_rate_per_min=cfg.distractor_rate_per_min,
        snr_db_range=cfg.snr_db_range,
        incomplete_fraction=cfg.incomplete_fraction,
    )


def _fmt(x: float | None, nd: int = 4) -> str:
    return "" if x is None else f"{x:.{nd}f}"


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def song_rows(file: str, scene: Scene) -> list[dict]:
    """``songs.csv`` rows of one scene."""
    return [
        {
            "file": file,
            "onset_s": _fmt(s.event.onset_s),
            "offset_s": _fmt(s.event.offset_s),
            "terminal_onset_s": _fmt(s.event.terminal_onset_s),
            "dialect": s.event.dialect,
            "complete": str(s.event.complete).lower(),
            "bird_id": s.event.bird_id,
            "song_type": s.event.song_type,
            "distance_m": _fmt(s.distance_m, 1),
            "snr_db": _fmt(s.snr_db, 2),
            "n_syllables": s.event.n_syllables,
        }
        for s in scene.songs
    ]


def distractor_rows(rel: str, scene) -> list[dict]:
    """``distractors.csv`` rows of one file."""
    return [
        {
            "file": rel,
            "kind": d.event.kind,
            "onset_s": _fmt(d.event.onset_s),
            "offset_s": _fmt(d.event.offset_s),
            "source": d.event.source,
            "distance_m": _fmt(d.distance_m, 1),
            "snr_db": _fmt(d.snr_db, 2),
        }
        for d in scene.distractors
    ]


def scene_row(rel: str, scene, sample_rate: int) -> dict:
    """The ``scenes.csv`` row of one file."""
    return {
        "file": rel,
        "duration_s": _fmt(scene.audio.size / sample_rate, 3),
        "background": scene.background,
        "n_songs": len(scene.songs),
        "n_distractors": len(scene.distractors),
        "bird_ids": " ".join(str(b["bird_id"]) for b in scene.birds),
        "gain_db": _fmt(scene.gain_db, 2),
        "clipped": str(scene.clipped).lower(),
    }


def _check(cfg: DatasetConfig, out: Path) -> None:
    """Refuse bad parameters and an existing dataset (unless ``overwrite``)."""
    if (out / "songs.csv").exists() and not cfg.overwrite:
        raise DatasetError(f"{out} already holds a dataset (songs.csv); choose another folder or overwrite")
    if cfg.hours <= 0 or cfg.file_seconds <= 5:
        raise DatasetError("hours must be > 0 and file_seconds > 5")
    if cfg.incomplete_fraction is not None and not 0.0 <= cfg.incomplete_fraction <= 1.0:
        raise DatasetError("incomplete_fraction must be within [0, 1]")


def _write_tables(out: Path, songs: list[dict], dists: list[dict], scenes: list[dict], birds) -> None:
    """``songs.csv``, ``distractors.csv``, ``scenes.csv`` and ``birds.csv``."""
    _write_csv(out / "songs.csv", SONG_COLUMNS, songs)
    _write_csv(out / "distractors.csv", DISTRACTOR_COLUMNS, dists)
    _write_csv(out / "scenes.csv", SCENE_COLUMNS, scenes)
    _write_csv(
        out / "birds.csv",
        ("bird_id", "dialect", "n_song_types", "incomplete_prob"),
        [
            {
                "bird_id": b.bird_id,
                "dialect": b.dialect,
                "n_song_types": len(b.song_types),
                "incomplete_prob": _fmt(b.incomplete_prob, 3),
            }
            for b in birds
        ],
    )


def write_dataset(cfg: DatasetConfig, progress: Callable[[int], None] | None = None) -> dict:
    """Render and write the whole dataset; returns the summary also saved as ``dataset.json``.

    Parameters
    ----------
    cfg : DatasetConfig
        What to write.
    progress : callable, optional
        Called with 1 after each file (e.g. a progress bar's ``update``).

    Raises
    ------
    DatasetError
        Bad parameters or an existing dataset in ``out_dir`` without ``overwrite``.
    """
    out = Path(cfg.out_dir)
    _check(cfg, out)
    birds = make_birds(cfg.n_birds, cfg.dialects, cfg.seed)
    bg = AudioLibrary(cfg.background_dir, cfg.sample_rate) if cfg.background_dir else None
    dis = (
        AudioLibrary(cfg.distractor_dir, cfg.sample_rate, exclude_labels=("yellowhammer",))
        if cfg.distractor_dir
        else None
    )
    n_files = max(1, int(round(cfg.hours * 3600.0 / cfg.file_seconds)))
    (out / "audio").mkdir(parents=True, exist_ok=True)
    songs, dists, scenes = [], [], []
    jsonl_tmp = out / "scenes.jsonl.part"
    with open(jsonl_tmp, "w") as jfh:
        for i in range(n_files):
            scene = render_file(cfg, birds, i, bg, dis)
            rel = f"audio/scene_{i:05d}.wav"
            write_wav(out / rel, scene.audio, cfg.sample_rate)
            songs += song_rows(rel, scene)
            dists += distractor_rows(rel, scene)
            scenes.append(scene_row(rel, scene, cfg.sample_rate))
            jfh.write(json.dumps({"file": rel, **scene.description()}) + "\n")
            if progress is not None:
                progress(1)
    os.replace(jsonl_tmp, out / "scenes.jsonl")
    _write_tables(out, songs, dists, scenes, birds)
    summary = {
        "generator": "model_export.synth",
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "n_files": n_files,
        "n_songs": len(songs),
        "n_complete": sum(r["complete"] == "true" for r in songs),
        "n_distractors": len(dists),
        "songs_per_dialect": {d: sum(r["dialect"] == d for r in songs) for d in cfg.dialects},
    }
    tmp = out / "dataset.json.part"
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, out / "dataset.json")
    logger.info("wrote %d files, %d songs, %d distractors to %s", n_files, len(songs), len(dists), out)
    return summary
