#!/usr/bin/env python3
"""Regenerate the synthetic WAV fixtures in ``tests/fixtures/synth/``.

Usage::

    .venv/bin/python tools/make_synth_fixtures.py [--out tests/fixtures/synth] [--seed 2024]

Writes (24 kHz, 16-bit mono):

- ``song_<dialect>.wav``: one clean, complete song per dialect (a faint white noise floor at -80 dBFS);
- ``song_incomplete.wav``: a clean song without terminal phrase;
- ``scene_noisy.wav``: 8 s, two birds at 5-15 dB SNR over synthetic wind/pink noise, plus a distractor;
- ``scene_distractors.wav``: 8 s, distractors only (no yellowhammer);
- ``labels.csv``: one row per song (columns of ``model_export.synth.SONG_COLUMNS``);
- ``distractors.csv`` and ``scenes.jsonl``: distractor rows and full scene descriptions.

Only the project's own generator is used; no real recordings go into fixtures.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model_export.synth import (  # noqa: E402
    DIALECTS,
    SONG_COLUMNS,
    make_bird,
    make_scene,
    render_distractor,
    render_song,
    write_wav,
)
from model_export.synth.dataset import song_rows  # noqa: E402
from model_export.synth.scene import SceneSong  # noqa: E402

SR = 24000


def _song_file(out: Path, name: str, bird, rng, complete: bool, rows: list) -> None:
    audio, ev = render_song(bird, rng, SR, song_type=0, complete=complete)
    pad = int(0.2 * SR)
    x = np.concatenate([np.zeros(pad, np.float32), audio, np.zeros(pad, np.float32)])
    x += (1e-4 * rng.standard_normal(x.size)).astype(np.float32)
    write_wav(out / name, x, SR)
    ev = ev.shifted(pad / SR)
    rows.append(
        {
            "file": name,
            "onset_s": f"{ev.onset_s:.4f}",
            "offset_s": f"{ev.offset_s:.4f}",
            "terminal_onset_s": "" if ev.terminal_onset_s is None else f"{ev.terminal_onset_s:.4f}",
            "dialect": ev.dialect,
            "complete": str(ev.complete).lower(),
            "bird_id": ev.bird_id,
            "song_type": ev.song_type,
            "distance_m": "1.0",
            "snr_db": "60.00",
            "n_syllables": ev.n_syllables,
        }
    )


def _distractor_scene(quiet, rng) -> tuple[np.ndarray, list[dict]]:
    """The distractor-only scene: a fixed set of kinds over ``quiet``'s background (every kind is
    covered somewhere); its audio and distractor rows."""
    mix = quiet.audio.copy()
    dis = []
    t = 0.3
    for kind in ("cirl_rattle", "chaffinch", "two_note_call"):
        a, ev = render_distractor(kind, rng, SR)
        i0 = int(t * SR)
        n = min(a.size, mix.size - i0)
        mix[i0 : i0 + n] += 0.6 * a[:n]
        dis.append(
            {
                "file": "scene_distractors.wav",
                "kind": kind,
                "onset_s": f"{ev.onset_s + t:.4f}",
                "offset_s": f"{ev.offset_s + t:.4f}",
                "source": "synthetic",
                "distance_m": "",
                "snr_db": "",
            }
        )
        t += ev.offset_s + 0.3
    mix = np.clip(mix, -1.0, 1.0)
    return mix, dis


def _write_tables(out: Path, rows: list[dict], dist_rows: list[dict], scenes: list[dict]) -> None:
    """``labels.csv``, ``distractors.csv`` and ``scenes.jsonl``."""
    with open(out / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(SONG_COLUMNS))
        w.writeheader()
        w.writerows(rows)
    with open(out / "distractors.csv", "w", newline="") as fh:
        w = csv.DictWriter(
            fh, fieldnames=["file", "kind", "onset_s", "offset_s", "source", "distance_m", "snr_db"]
        )
        w.writeheader()
        w.writerows(dist_rows)
    with open(out / "scenes.jsonl", "w") as fh:
        for s in scenes:
            fh.write(json.dumps(s) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "tests/fixtures/synth"))
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    rows: list[dict] = []
    birds = [make_bird(d, rng, bird_id=i) for i, d in enumerate(DIALECTS)]
    for b in birds:
        _song_file(out, f"song_{b.dialect}.wav", b, rng, True, rows)
    _song_file(out, "song_incomplete.wav", birds[0], rng, False, rows)

    scenes = []
    dist_rows = []
    noisy = make_scene(
        [birds[0], birds[2]],
        rng,
        SR,
        duration_s=8.0,
        snr_db_range=(5.0, 15.0),
        distance_range_m=(20.0, 80.0),
        distractor_rate_per_min=7.5,
        clip_prob=0.0,
        onsets={0: [0.4, 4.6], 2: [2.2]},
        incomplete_fraction=0.0,
    )
    quiet = make_scene([], rng, SR, duration_s=8.0, distractor_rate_per_min=0.0, clip_prob=0.0)
    mix, dis = _distractor_scene(quiet, rng)
    write_wav(out / "scene_noisy.wav", noisy.audio, SR)
    write_wav(out / "scene_distractors.wav", mix, SR)
    rows += song_rows("scene_noisy.wav", noisy)
    for d in noisy.distractors:
        dist_rows.append(
            {
                "file": "scene_noisy.wav",
                "kind": d.event.kind,
                "onset_s": f"{d.event.onset_s:.4f}",
                "offset_s": f"{d.event.offset_s:.4f}",
                "source": d.event.source,
                "distance_m": f"{d.distance_m:.1f}",
                "snr_db": f"{d.snr_db:.2f}",
            }
        )
    dist_rows += dis
    scenes.append({"file": "scene_noisy.wav", **noisy.description()})
    scenes.append(
        {"file": "scene_distractors.wav", "background": quiet.background, "songs": [], "distractors": dis}
    )
    assert all(isinstance(s, SceneSong) for s in noisy.songs)

    _write_tables(out, rows, dist_rows, scenes)
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f"wrote {len(list(out.iterdir()))} files, {total / 1e6:.2f} MB to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
