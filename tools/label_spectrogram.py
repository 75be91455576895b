"""Render a high-resolution spectrogram of part of a recording, for labelling songs by eye.

The picture is for the labeller's screen only: spectrograms of the real recordings contain
their audio and are never committed (keep them in a scratch folder).

Usage::

    python tools/label_spectrogram.py FILE --start 3.0 --end 7.0 --out /tmp/a.png
    python tools/label_spectrogram.py FILE --start 0 --end 24 --rows 4 --out /tmp/overview.png
    python tools/label_spectrogram.py FILE --start 3 --end 7 --labels model_export/labels/real_songs.csv \
        --root /work/shared/realaudio --out /tmp/check.png     # draw the labelled songs on top

Time ticks every 0.1 s (labelled), every 0.05 s (unlabelled minor ticks) for ranges up to
``--fine-max`` seconds; frequency 0-12 kHz with 1-kHz grid lines; colour = dB relative to the
loudest bin of the shown range, clipped ``--range`` dB below it. With ``--labels`` the songs of
this file are drawn: onset (green) and offset (red) lines, X and B boxes (cyan / magenta).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def spectrogram(x: np.ndarray, sr: int, n_fft: int, hop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Power spectrogram in dB: (freqs Hz, frame centre times s, dB [freq, time])."""
    win = np.hanning(n_fft).astype(np.float32)
    pad = np.pad(x, (n_fft // 2, n_fft // 2))
    n = 1 + (pad.size - n_fft) // hop
    idx = np.arange(n)[:, None] * hop + np.arange(n_fft)[None, :]
    spec = np.abs(np.fft.rfft(pad[idx] * win, axis=1)) ** 2
    db = 10.0 * np.log10(spec.T + 1e-12)
    return np.fft.rfftfreq(n_fft, 1.0 / sr), np.arange(n) * hop / sr, db


def _songs_of(labels: Path, file_rel: str) -> list[dict]:
    with open(labels, newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["file"] == file_rel]


def _f(v: str) -> float | None:
    return float(v) if v not in ("", None) else None


def _panel(ax, args, times, freqs, db, vmax: float, t0: float, t1: float, span: float) -> None:
    from matplotlib.ticker import MultipleLocator

    sel = (times >= t0 - 0.01) & (times <= t1 + 0.01)
    ax.pcolormesh(times[sel], freqs / 1000, db[:, sel], vmin=vmax - args.range, vmax=vmax, cmap="magma",
                  shading="auto")  # fmt: skip
    ax.set_xlim(t0, t1)
    ax.set_ylim(args.fmin, args.fmax)
    ax.yaxis.set_major_locator(MultipleLocator(1.0))
    ax.grid(axis="y", color="w", alpha=0.15, lw=0.5)
    if span <= args.fine_max:
        ax.xaxis.set_major_locator(MultipleLocator(0.1))
        ax.xaxis.set_minor_locator(MultipleLocator(0.05))
        ax.tick_params(axis="x", labelsize=7, rotation=90)
        for t in np.arange(np.ceil(t0 * 2) / 2, t1, 0.5):
            ax.axvline(t, color="w", alpha=0.25, lw=0.6)
    else:
        ax.xaxis.set_major_locator(MultipleLocator(1.0))
        ax.xaxis.set_minor_locator(MultipleLocator(0.1))
        ax.grid(axis="x", color="w", alpha=0.2, lw=0.5)
    ax.set_ylabel("kHz")


def _draw_songs(ax, plt, songs: list[dict], t0: float, t1: float, fmax: float) -> None:
    """Onset (green) and offset (red) lines, the label, and boxes around the X and B elements."""
    for s in songs:
        on, off = float(s["onset_s"]), float(s["offset_s"])
        if off < t0 or on > t1:
            continue
        ax.axvline(on, color="lime", lw=1.0)
        ax.axvline(off, color="red", lw=1.0)
        ax.text(on, fmax - 0.6, f"{s['dialect']} {s['song_type']} {s['quality']}", color="w", fontsize=8)
        for pre, col in (("x", "cyan"), ("b", "magenta")):
            s0, s1, f = _f(s[f"{pre}_start_s"]), _f(s[f"{pre}_end_s"]), _f(s[f"{pre}_khz"])
            if s0 is not None and s1 is not None and f is not None:
                ax.add_patch(plt.Rectangle((s0, f - 0.4), s1 - s0, 0.8, fill=False, ec=col, lw=0.8, ls="--"))


def _parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", type=Path)
    ap.add_argument("--start", type=float, default=0.0)
    ap.add_argument("--end", type=float, default=None)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--fmax", type=float, default=12.0, help="top of the picture, kHz")
    ap.add_argument("--fmin", type=float, default=0.0, help="bottom of the picture, kHz")
    ap.add_argument("--n-fft", type=int, default=512, help="FFT length at 48 kHz (scaled for other rates)")
    ap.add_argument("--hop-ms", type=float, default=1.5)
    ap.add_argument("--range", type=float, default=70.0, help="dB shown below the loudest bin")
    ap.add_argument("--rows", type=int, default=1, help="split the range into this many stacked panels")
    ap.add_argument("--px-per-s", type=float, default=450.0)
    ap.add_argument("--fine-max", type=float, default=8.0, help="label 0.1-s ticks up to this panel length")
    ap.add_argument("--labels", type=Path, help="real_songs.csv to draw on top")
    ap.add_argument("--root", type=Path, help="realaudio root (to match FILE against the CSV's paths)")
    ap.add_argument(
        "--sheet",
        action="store_true",
        help="with --labels: one panel per labelled song (onset-0.3 to offset+0.3 s)",
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from model_export.synth.audio_io import _read_soundfile

    x, sr = _read_soundfile(args.file) if args.file.suffix != ".wav" else _read_wav(args.file)
    end = min(args.end if args.end is not None else x.size / sr, x.size / sr)
    start = max(0.0, args.start)
    n_fft = max(64, int(round(args.n_fft * sr / 48000)))
    hop = max(1, int(round(args.hop_ms * 1e-3 * sr)))
    # a little context either side so the first and last frames are whole
    a, b = int(start * sr), int(end * sr)
    freqs, times, db = spectrogram(x[a:b].astype(np.float32), sr, n_fft, hop)
    times = times + start
    keep = (freqs >= args.fmin * 1000) & (freqs <= args.fmax * 1000)
    freqs, db = freqs[keep], db[keep]
    vmax = float(np.percentile(db, 99.95))
    songs = []
    if args.labels:
        rel = str(args.file.resolve().relative_to(args.root.resolve())) if args.root else args.file.name
        songs = _songs_of(args.labels, rel)

    if args.sheet:
        if not songs:
            raise SystemExit(f"{args.file}: no labelled songs in {args.labels}")
        panels = [(max(0.0, float(s["onset_s"]) - 0.3), float(s["offset_s"]) + 0.3) for s in songs]
        panels = [(a, b) for a, b in panels if b > start and a < end]
        span = max(b - a for a, b in panels)
    else:
        span = (end - start) / max(1, args.rows)
        panels = [(start + k * span, start + (k + 1) * span) for k in range(max(1, args.rows))]
    rows = len(panels)
    width = min(60.0, max(6.0, span * args.px_per_s / 100.0))
    fig, axes = plt.subplots(rows, 1, figsize=(width, 3.2 * rows + 0.4), dpi=100, squeeze=False)
    for k, (t0, t1) in enumerate(panels):
        if args.sheet:
            t1 = t0 + span
        _panel(axes[k, 0], args, times, freqs, db, vmax, t0, t1, span)
        _draw_songs(axes[k, 0], plt, songs, t0, t1, args.fmax)
    axes[-1, 0].set_xlabel("s")
    axes[0, 0].set_title(f"{args.file.name}  {start:.2f}-{end:.2f} s  sr={sr}  nfft={n_fft}", fontsize=9)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    plt.close(fig)
    return 0


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    from edge.adapters.audio.wavfile import read_wav, to_mono

    x, sr = read_wav(path)
    return to_mono(x), sr


if __name__ == "__main__":
    raise SystemExit(main())
