"""Measurement summary of the hand-labelled real yellowhammer songs (model_export/labels/real_songs.csv).

Reads the labels and, where the recordings are present (``--root``, default ``../shared/realaudio``),
measures from the audio:

- song duration (from the labels);
- initial-phrase syllable rate: the period of the 2.5-10 kHz band envelope between the onset and
  the start of the terminal phrase (autocorrelation peak between 0.05 and 0.3 s);
- terminal elements: durations from the labels, frequency of each element as the peak of its mean
  power spectrum (X: 6.5-10 kHz, B: 3.3-6.5 kHz).

This calibrates the training synthesiser. Usage::

    python tools/real_song_stats.py [--root /work/shared/realaudio] [--json]
    python tools/real_song_stats.py --fill-khz model_export/labels/real_songs.csv   # rewrite x_khz / b_khz
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

X_BAND = (6500.0, 10000.0)
B_BAND = (3300.0, 6500.0)
SONG_BAND = (2500.0, 10000.0)


def _spec(x: np.ndarray, sr: int, n_fft: int = 1024, hop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Power spectrogram (frames, bins) and bin frequencies."""
    hop = hop or n_fft // 4
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    n = 1 + (x.size - n_fft) // hop
    idx = np.arange(n)[:, None] * hop + np.arange(n_fft)[None, :]
    p = np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft), axis=1)) ** 2
    return p, np.fft.rfftfreq(n_fft, 1.0 / sr)


def peak_khz(x: np.ndarray, sr: int, t0: float, t1: float, band: tuple[float, float]) -> float:
    """Frequency (kHz) of the strongest bin of the mean spectrum of ``x[t0:t1]`` inside ``band``."""
    seg = x[int(t0 * sr) : max(int(t1 * sr), int(t0 * sr) + 256)]
    p, f = _spec(seg, sr, n_fft=2048 if seg.size >= 2048 else 1024, hop=256)
    m = (f >= band[0]) & (f <= band[1])
    return float(f[m][np.argmax(p.mean(axis=0)[m])] / 1000.0)


def syllable_period(x: np.ndarray, sr: int, t0: float, t1: float) -> float | None:
    """Syllable period (s) of the initial phrase in ``[t0, t1]`` from the band envelope's autocorrelation."""
    if t1 - t0 < 0.4:
        return None
    hop = int(0.002 * sr)
    p, f = _spec(x[int(t0 * sr) : int(t1 * sr)], sr, n_fft=512, hop=hop)
    m = (f >= SONG_BAND[0]) & (f <= SONG_BAND[1])
    env = 10 * np.log10(p[:, m].sum(axis=1) + 1e-12)
    env = env - env.mean()
    ac = np.correlate(env, env, mode="full")[env.size - 1 :]
    ac = ac / (ac[0] + 1e-12)
    lags = np.arange(ac.size) * hop / sr
    ok = (lags >= 0.05) & (lags <= 0.3)
    if not ok.any():
        return None
    k = np.argmax(np.where(ok, ac, -np.inf))
    return float(lags[k]) if ac[k] > 0.2 else None


def _f(v: str) -> float | None:
    return float(v) if v not in ("", None) else None


def _q(vals: list[float]) -> str:
    if not vals:
        return "-"
    a = np.asarray(vals)
    return f"n={a.size:3d} median {np.median(a):.3f} (p10 {np.percentile(a, 10):.3f}, p90 {np.percentile(a, 90):.3f})"


def fill_khz(csv_path: Path, root: Path) -> int:
    """Rewrite ``x_khz``/``b_khz`` of every row with marked X/B times from the audio (kept if no audio)."""
    from model_export.synth.audio_io import _read_soundfile

    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    cache: dict[str, tuple[np.ndarray, int]] = {}
    n = 0
    for r in rows:
        p = root / r["file"]
        if not p.exists():
            continue
        if r["file"] not in cache:
            cache[r["file"]] = _read_soundfile(p)
        x, sr = cache[r["file"]]
        for pre, band in (("x", X_BAND), ("b", B_BAND)):
            t0, t1 = _f(r[f"{pre}_start_s"]), _f(r[f"{pre}_end_s"])
            if t0 is not None and t1 is not None:
                r[f"{pre}_khz"] = f"{peak_khz(x, sr, t0, t1, band):.2f}"
                n += 1
    tmp = csv_path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    tmp.replace(csv_path)
    return n


def _measure(songs, root: Path, have_audio: bool):
    """Per dialect: durations of the songs not cut by a file edge, initial-phrase syllable
    periods (quality A/B songs, from the audio when present) and terminal element figures."""
    from model_export.synth.audio_io import _read_soundfile

    dur: dict[str, list[float]] = defaultdict(list)
    period: dict[str, list[float]] = defaultdict(list)
    el: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    cache: dict[str, tuple[np.ndarray, int]] = {}
    for s in songs:
        whole = "cut" not in s.note
        if whole:
            dur[s.dialect].append(s.offset_s - s.onset_s)
        for name, t0, t1, khz in (
            ("X", s.x_start_s, s.x_end_s, s.x_khz),
            ("B", s.b_start_s, s.b_end_s, s.b_khz),
        ):
            if t0 is not None and t1 is not None:
                el[(s.dialect, name, "dur_s")].append(t1 - t0)
            if khz is not None:
                el[(s.dialect, name, "khz")].append(khz)
        if have_audio and whole and s.quality in ("A", "B") and (root / s.file).exists():
            if s.file not in cache:
                cache[s.file] = _read_soundfile(root / s.file)
            x, sr = cache[s.file]
            end = next((t for t in (s.x_start_s, s.b_start_s) if t is not None), s.offset_s) - 0.02
            per = syllable_period(x, sr, s.onset_s, end)
            if per is not None:
                period[s.dialect].append(per)
    return dur, period, el


def _print_summary(summary: dict, root: Path) -> None:
    """The summary as text."""
    print(
        f"{summary['songs']} songs; audio {'measured' if summary['audio'] else 'not present (labels only)'} at {root}"
    )
    print("\nsong duration (s), songs not cut by the file edges:")
    for d, v in summary["duration_s"].items():
        print(f"  {d:11s} {v}")
    print("\ninitial-phrase syllable period (s), quality A/B songs:")
    for d, v in summary["syllable_period_s"].items():
        print(f"  {d:11s} {v}   ({summary['syllables_per_s'].get(d, '-')} syllables/s)")
    print("\nterminal elements (durations from the labels, kHz measured from the audio):")
    for k, v in summary["terminal"].items():
        print(f"  {k:22s} {v}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=None, help="realaudio folder (default ../shared/realaudio)")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    ap.add_argument("--fill-khz", type=Path, help="rewrite x_khz / b_khz of this CSV from the audio and stop")
    args = ap.parse_args(argv)

    from model_export.labels import default_root, real_songs

    root = args.root or default_root()
    if args.fill_khz:
        print(f"{fill_khz(args.fill_khz, root)} element frequencies measured", file=sys.stderr)
        return 0
    songs = real_songs()
    have_audio = (root / "manifest.csv").exists()
    dur, period, el = _measure(songs, root, have_audio)
    summary = {
        "songs": len(songs),
        "audio": have_audio,
        "duration_s": {d: _q(v) for d, v in sorted(dur.items())},
        "syllable_period_s": {d: _q(v) for d, v in sorted(period.items())},
        "syllables_per_s": {d: f"{1.0 / np.median(v):.1f}" for d, v in sorted(period.items()) if v},
        "terminal": {f"{d} {n} {k}": _q(v) for (d, n, k), v in sorted(el.items())},
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    _print_summary(summary, root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
