#!/usr/bin/env python3
"""Benchmark the audio front end: CPU milliseconds per second of audio.

Measures, on the same synthetic audio in the same run:
- the streaming log-mel frontend (as the daemon runs it, in 0.5 s chunks),
- the batch log-mel,
- the 48 kHz -> 24 kHz streaming resampler (what a USB microphone at 48 kHz costs),
- a reference: scipy.signal.spectrogram with the same FFT size and hop (power STFT only,
  no mel, no log), so the ratio is meaningful on a noisy machine.

    python tools/bench_frontend.py [--seconds 120] [--repeat 5] [--json]
"""

# ruff: noqa: I001  (edge must load before numpy; see below)
from __future__ import annotations

import json
import time

import edge  # noqa: F401  (first: sets single-threaded BLAS before numpy loads, as the daemon does)
import click
import numpy as np
from scipy.signal import spectrogram

from edge.frontend import FrontendConfig, StreamingLogMel, logmel
from edge.resample import Resampler


def _cpu_ms(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best * 1000.0


@click.command()
@click.option("--seconds", default=120.0, show_default=True, help="Audio length per run.")
@click.option("--repeat", default=5, show_default=True, help="Runs per measurement (best is kept).")
@click.option("--json", "as_json", is_flag=True)
def main(seconds: float, repeat: int, as_json: bool) -> None:
    cfg = FrontendConfig()
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(int(seconds * cfg.sample_rate))).astype(np.float32)
    x48 = (0.1 * rng.standard_normal(int(seconds * 48000))).astype(np.float32)
    chunk = cfg.sample_rate // 2

    def streaming():
        fe = StreamingLogMel(cfg)
        for i in range(0, len(x), chunk):
            fe.process(x[i : i + chunk])

    def resampling():
        r = Resampler(48000, cfg.sample_rate)
        for i in range(0, len(x48), 24000):
            r.process(x48[i : i + 24000])

    def reference():
        spectrogram(
            x,
            fs=cfg.sample_rate,
            window="hann",
            nperseg=cfg.n_fft,
            noverlap=cfg.n_fft - cfg.hop_length,
            mode="psd",
        )

    figures = {
        "stream_logmel_ms_per_audio_s": _cpu_ms(streaming, repeat) / seconds,
        "batch_logmel_ms_per_audio_s": _cpu_ms(lambda: logmel(x, cfg), repeat) / seconds,
        "resample_48k_ms_per_audio_s": _cpu_ms(resampling, repeat) / seconds,
        "reference_scipy_stft_ms_per_audio_s": _cpu_ms(reference, repeat) / seconds,
    }
    figures["stream_logmel_vs_scipy_stft"] = (
        figures["stream_logmel_ms_per_audio_s"] / figures["reference_scipy_stft_ms_per_audio_s"]
    )
    figures["stream_plus_resample_ms_per_audio_s"] = (
        figures["stream_logmel_ms_per_audio_s"] + figures["resample_48k_ms_per_audio_s"]
    )
    if as_json:
        click.echo(json.dumps({k: round(v, 4) for k, v in figures.items()}))
        return
    click.echo(
        f"audio: {seconds:.0f} s, frontend {cfg.n_fft}-pt FFT, hop {cfg.hop_length}, {cfg.n_mels} mels; "
        f"best of {repeat}, CPU time"
    )
    for k, v in figures.items():
        click.echo(f"  {k:40s} {v:8.4f}")


if __name__ == "__main__":
    main()
