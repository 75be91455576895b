"""The benchmark's audio (:mod:`tools.bench`): ``hours`` of generated soundscape written once as a
48 kHz 16-bit WAV, one minute at a time (what a USB microphone delivers). Scenes of the
``model_export.synth`` generator (1-3 singing yellowhammers per minute, distractors, wind/pink
noise); without the generator, the test fixtures tiled over noise.
"""

from __future__ import annotations

import json
import os
import sys
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

MIC_RATE = 48000
SEED = 777


def _write_pcm(w: wave.Wave_write, x: np.ndarray) -> None:
    w.writeframes(np.clip(np.round(x * 32767.0), -32768, 32767).astype("<i2").tobytes())


def make_audio(path: Path, hours: float) -> dict:
    """Write the benchmark WAV (streaming, one minute at a time); returns what it contains."""
    n_min = max(1, int(round(hours * 60)))
    tmp = path.with_name(path.name + ".part")
    info = {"minutes": n_min, "generator": "", "songs": 0}
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(MIC_RATE)
        try:
            from model_export.synth import DatasetConfig, make_birds
            from model_export.synth.dataset import render_file

            cfg = DatasetConfig(
                out_dir=str(path.parent), hours=hours, file_seconds=60.0, sample_rate=MIC_RATE, seed=SEED
            )
            birds = make_birds(cfg.n_birds, cfg.dialects, cfg.seed)
            info["generator"] = "model_export.synth scenes"
            for i in range(n_min):
                scene = render_file(cfg, birds, i)
                info["songs"] += len(scene.songs)
                _write_pcm(w, scene.audio)
                print(f"\rgenerating audio: {i + 1}/{n_min} min", end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
        except ImportError:
            from edge.adapters.audio.wavfile import read_wav, to_mono
            from edge.core.resample import resample

            fx = sorted((ROOT / "tests" / "fixtures" / "synth").glob("*.wav"))
            clips = [resample(to_mono(read_wav(f)[0]), 24000, MIC_RATE) for f in fx]
            rng = np.random.default_rng(SEED)
            info["generator"] = "test fixtures tiled over noise"
            for _ in range(n_min):
                minute = (10 ** (-55 / 20) * rng.standard_normal(60 * MIC_RATE)).astype(np.float32)
                t = 0
                while True:
                    c = clips[int(rng.integers(len(clips)))]
                    t += int(rng.uniform(3, 8) * MIC_RATE)
                    if t + c.size > minute.size:
                        break
                    minute[t : t + c.size] += c
                    t += c.size
                    info["songs"] += 1
                _write_pcm(w, minute)
    os.replace(tmp, path)
    path.with_suffix(".json").write_text(json.dumps(info))
    return info
