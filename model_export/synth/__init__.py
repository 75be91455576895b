"""Synthetic yellowhammer songs, distractors and soundscapes for training and tests.

The generator is numpy/scipy only. Main entry points (see each module's docstring):

- ``song``: ``DIALECTS``, ``make_bird``, ``render_song``, records ``Bird``, ``SongEvent``.
- ``distractors``: ``DISTRACTOR_KINDS``, ``render_distractor``.
- ``scene``: ``make_scene``, ``propagate``, ``synthetic_background``, ``mic_colour``.
- ``dataset``: ``DatasetConfig``, ``write_dataset``, ``make_birds``, ``SONG_COLUMNS``.
- ``audio_io``: ``AudioLibrary``, ``load_audio``, ``write_wav``.
"""

from .audio_io import AudioLibrary, AudioReadError, load_audio, resample, write_wav
from .dataset import SONG_COLUMNS, DatasetConfig, DatasetError, make_birds, write_dataset
from .distractors import DISTRACTOR_KINDS, DistractorEvent, render_distractor
from .scene import Scene, SceneDistractor, SceneSong, make_scene, mic_colour, propagate, synthetic_background
from .song import (
    DIALECTS,
    SONG_PEAK,
    Bird,
    ElementEvent,
    SongEvent,
    SongType,
    make_bird,
    render_song,
    terminal_band,
    terminal_duration,
)

__all__ = [
    "DIALECTS",
    "DISTRACTOR_KINDS",
    "SONG_COLUMNS",
    "SONG_PEAK",
    "AudioLibrary",
    "AudioReadError",
    "Bird",
    "DatasetConfig",
    "DatasetError",
    "DistractorEvent",
    "ElementEvent",
    "Scene",
    "SceneDistractor",
    "SceneSong",
    "SongEvent",
    "SongType",
    "load_audio",
    "make_bird",
    "make_birds",
    "make_scene",
    "mic_colour",
    "propagate",
    "render_distractor",
    "render_song",
    "resample",
    "synthetic_background",
    "terminal_band",
    "terminal_duration",
    "write_dataset",
    "write_wav",
]
