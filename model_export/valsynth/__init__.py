"""Validation synthesiser: a second, independently written yellowhammer song generator.

Used ONLY to judge models (detector, segmenter, encoder, thresholds) on songs they were not
built from; nothing under ``model_export/train*.py``, ``model_export/data.py`` or
``model_export/synth/`` may import it (``tests/model_export/test_valsynth.py`` checks). It shares
no code with the training synthesiser (``model_export/synth``): element models, buzz, harmonics,
envelopes, pitch and duration draws and propagation are its own (see ``docs/valsynth.md``).

Modules
-------
``voice``        sound production (cycle-built buzz, pulse-train grains, noise bands, harmonics)
``parts``        one sound element as data and its rendering
``syllables``    per-region pools of initial-phrase syllable types (eight families)
``dialects``     the dialect table and a bird's terminal phrase
``bird``         birds and songs: ``make_bird``, ``render_song`` -> (audio, ``SongTruth``)
``acoustics``    propagation (ISO 9613-1 absorption, foliage, ground, reverberation) and recorders
``backgrounds``  real test-split backgrounds, or synthetic noise
``sets``         clip and scene set builders writing WAVs + ``truth.csv``
``measure``      measurements on rendered spectrograms (element durations and pitches, rates)
``realism``      realism guards: BirdNET V2.4 and measured statistics against the table
"""

from .bird import Bird, Element, SongTruth, SongType, make_bird, render_song
from .dialects import DIALECTS, TABLE, VARIANTS
from .syllables import FAMILIES, region_pool

__all__ = [
    "DIALECTS",
    "FAMILIES",
    "TABLE",
    "VARIANTS",
    "Bird",
    "Element",
    "SongTruth",
    "SongType",
    "make_bird",
    "region_pool",
    "render_song",
]
