#!/usr/bin/env python3
"""Benchmark the audio front end: CPU milliseconds per second of audio.

Measures, on the same synthetic audio in the same run:
- the streaming log-mel frontend (as the daemon runs it, in 0.5 s chunks),
- the batch log-mel,
- the 48 kHz -> 24 kHz streaming resampler, and the streaming frontend fed 48 kHz directly
  (1024-point FFT, 480-sample hop: what yh-edge does with a 48 kHz microphone), against
  resampling plus the 24 kHz frontend,
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

from edge.core.frontend import FrontendConfig, StreamingLogMel, logmel
from edge.core.resample import Resampler


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

    def streaming_48k():  # what yh-edge does with a 48 kHz microphone: no resampler
        fe = StreamingLogMel(cfg, input_rate=48000)
        for i in range(0, len(x48), 24000):
            fe.process(x48[i : i + 24000])

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
        "stream_logmel_fed_48k_ms_per_audio_s": _cpu_ms(streaming_48k, repeat) / seconds,
        "reference_scipy_stft_ms_per_audio_s": _cpu_ms(reference, repeat) / seconds,
    }
    figures["stream_logmel_vs_scipy_stft"] = (
        figures["stream_logmel_ms_per_audio_s"] / figures["reference_scipy_stft_ms_per_audio_s"]
    )
    figures["stream_plus_resample_ms_per_audio_s"] = (
        figures["stream_logmel_ms_per_audio_s"] + figures["resample_48k_ms_per_audio_s"]
    )
    figures["fed_48k_vs_stream_plus_resample"] = (
        figures["stream_logmel_fed_48k_ms_per_audio_s"] / figures["stream_plus_resample_ms_per_audio_s"]
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
