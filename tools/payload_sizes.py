"""Detection payload size with and without the spectrogram, on real or generated audio.

    python tools/payload_sizes.py FILE.wav|FILE.mp3 [...] [--db-step 1.5] [--margin 0.3]

Runs the recorder's pipeline (shipped models, the in-memory store) over each file and prints, per
file and in total, how many songs were found and the payload bytes of their detections as the
publisher sends them (float16 embedding), with and without the spectrogram. Nothing is written.
mp3 needs the ``soundfile`` package (train extra).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from edge.app.compose import build_pipeline  # noqa: E402
from edge.core.config import Config, SpectrogramConfig  # noqa: E402
from edge.core.records import AudioChunk  # noqa: E402


def _read(path: Path) -> tuple[np.ndarray, int]:
    if path.suffix.lower() == ".wav":
        from edge.adapters.audio.wavfile import read_wav, to_mono

        x, sr = read_wav(path)
        return to_mono(x), sr
    import soundfile

    x, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    return x.mean(axis=1), sr


def songs_of(path: Path, cfg: Config) -> list:
    from edge.core.resample import resample

    comp = build_pipeline(cfg, memory=True)
    x, sr = _read(path)
    rate = comp.pipeline.frontend_cfg.sample_rate
    if sr % rate or sr // rate > 4:
        x, sr = resample(x, sr, rate), rate
    step = int(3 * sr)
    chunks = [AudioChunk(x[i : i + step].astype(np.float32), sr, i, 1.7e9 + i / sr, True, str(path.name), i == 0)
              for i in range(0, len(x), step)]  # fmt: skip

    class Source:
        name = str(path)

        def chunks(self, stop):
            yield from chunks

        def stats(self):
            return {}

    return comp.analyze(Source(), threading.Event())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--db-step", type=float, default=SpectrogramConfig().db_step)
    ap.add_argument("--margin", type=float, default=SpectrogramConfig().margin_s)
    args = ap.parse_args()
    cfg = dataclasses.replace(
        Config(), spectrogram=SpectrogramConfig(margin_s=args.margin, db_step=args.db_step)
    )
    with_s, without_s, spec_b, frames = [], [], [], []
    for f in args.files:
        dets = songs_of(f, cfg)
        a = [len(d.to_payload()) for d in dets]
        b = [len(d.to_payload(with_spectrogram=False)) for d in dets]
        with_s += a
        without_s += b
        spec_b += [d.spectrogram.wire_bytes() for d in dets]
        frames += [d.spectrogram.frames for d in dets]
        if dets:
            print(f"{f.name}: {len(dets)} songs, payload median {statistics.median(b):.0f} B without, "
                  f"{statistics.median(a):.0f} B with the spectrogram (max {max(a)} B)")  # fmt: skip
        else:
            print(f"{f.name}: no songs")
    if with_s:
        q = np.percentile
        print(f"\nall {len(with_s)} songs (db_step {args.db_step} dB, margin {args.margin} s):")
        print(f"  payload without spectrogram: median {q(without_s, 50):.0f} B, max {max(without_s)} B")
        print(f"  payload with spectrogram:    median {q(with_s, 50):.0f} B, 90th pct {q(with_s, 90):.0f} B, "
              f"max {max(with_s)} B")  # fmt: skip
        print(
            f"  spectrogram alone: median {q(spec_b, 50):.0f} B for a median of {q(frames, 50):.0f} frames x 64 bands"
        )


if __name__ == "__main__":
    main()
