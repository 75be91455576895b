#!/usr/bin/env python3
"""Regenerate the bundled demo recording edge/data/demo.wav (and its labels demo.csv).

30 s of generated field audio at 24 kHz: two yellowhammers of different dialects at different
distances, other-bird distractors and synthetic wind/noise. Made by the project's own
synthesiser (never from the licensed recordings), deterministic for the seed.

    python tools/make_demo.py
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from model_export.synth import make_bird, make_scene, write_wav

OUT = Path(__file__).resolve().parents[1] / "edge" / "data"
SEED = 20261123


def main() -> None:
    rng = np.random.default_rng(SEED)
    birds = [
        make_bird("XlB", rng, bird_id=1, incomplete_prob=0.1),
        make_bird("BC", rng, bird_id=2, incomplete_prob=0.1),
    ]
    onsets = {1: [1.0, 9.5, 18.0, 26.0], 2: [5.5, 14.0, 22.5]}
    scene = make_scene(
        birds,
        rng,
        duration_s=30.0,
        onsets=onsets,
        snr_db_range=(12.0, 25.0),
        distance_range_m=(10.0, 60.0),
        distractor_rate_per_min=4.0,
        clip_prob=0.0,
    )
    OUT.mkdir(parents=True, exist_ok=True)
    write_wav(OUT / "demo.wav", scene.audio, scene.sample_rate)
    with open(OUT / "demo.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "onset_s", "offset_s", "dialect", "complete", "bird_id", "snr_db"])
        for s in scene.songs:
            e = s.event
            w.writerow(
                [
                    "demo.wav",
                    f"{e.onset_s:.3f}",
                    f"{e.offset_s:.3f}",
                    e.dialect,
                    e.complete,
                    e.bird_id,
                    f"{s.snr_db:.1f}",
                ]
            )
    print(f"wrote {OUT / 'demo.wav'} with {len(scene.songs)} songs and {len(scene.distractors)} distractors")


if __name__ == "__main__":
    main()
