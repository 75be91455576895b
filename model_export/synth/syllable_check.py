"""The syllable distribution check (``yh-model synth syllable-check``): initial-phrase syllable
features of the real train-split songs (the measured library) against the base and the wide
generator, all measured by the same :func:`.syllable_library.measure_syllables`.

Generated songs are complete songs of every song type of ``n_birds`` birds per dialect, moved to
10-40 m (:func:`.acoustics.propagate`) over synthetic background noise at 15-25 dB in the song
band, so that they meet the measurement roughly as field recordings do.
"""

from __future__ import annotations

import numpy as np

from .syllable_library import FEATURES, SR, measure_syllables

# feature -> (printed name, scale to the printed unit)
UNITS = {"duration_s": ("duration (ms)", 1000.0), "period_s": ("period (ms)", 1000.0),
         "f_start_hz": ("start frequency (kHz)", 1e-3), "f_peak_hz": ("peak frequency (kHz)", 1e-3),
         "f_end_hz": ("end frequency (kHz)", 1e-3), "bandwidth_hz": ("5-95 % bandwidth (kHz)", 1e-3),
         "slope_khz_s": ("contour slope (kHz/s)", 1.0), "h2": ("2nd-harmonic ratio h2", 1.0)}  # fmt: skip


def generated_syllables(variety: str, n_birds: int = 6, seed: int = 0) -> list[dict]:
    """Measured syllables of generated songs (``variety`` ``base`` or ``wide``)."""
    from .acoustics import band_power, propagate, synthetic_background
    from .song import DIALECTS, make_bird, render_song

    rng = np.random.default_rng(seed)
    out = []
    for d in DIALECTS:
        for b in range(n_birds):
            bird = make_bird(d, rng, bird_id=b, variety=variety)
            for t in range(len(bird.song_types)):
                audio, ev = render_song(bird, rng, SR, song_type=t, complete=True)
                x = propagate(audio, SR, float(rng.uniform(10.0, 40.0)), rng)
                noise, _ = synthetic_background(rng, len(x), SR)
                snr = float(rng.uniform(15.0, 25.0))
                song = x[int(ev.onset_s * SR) : int(ev.offset_s * SR)]
                g = np.sqrt(band_power(song, SR) / (band_power(noise, SR) + 1e-20)) / 10 ** (snr / 20)
                end = (ev.terminal_onset_s or ev.offset_s) - 0.01
                out += measure_syllables(x + g * noise, SR, ev.onset_s - 0.03, end)
    return out


def _stats(v: np.ndarray) -> dict:
    v = v[np.isfinite(v)]
    if not len(v):
        return {"n": 0}
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"n": len(v), "median": float(med), "q1": float(q1), "q3": float(q3)}


def compare(real: list[dict], groups: dict[str, list[dict]]) -> dict:
    """Per feature: real stats, and per generator group its stats and KS statistic vs real."""
    from scipy.stats import ks_2samp

    res = {}
    for f in (*FEATURES, "h2"):
        rv = np.array([d.get(f, np.nan) for d in real], float)
        row = {"real": _stats(rv)}
        for name, syl in groups.items():
            gv = np.array([d.get(f, np.nan) for d in syl], float)
            row[name] = _stats(gv)
            a, b = rv[np.isfinite(rv)], gv[np.isfinite(gv)]
            row[name]["ks"] = float(ks_2samp(a, b).statistic) if len(a) and len(b) else float("nan")
        res[f] = row
    return res


def table(res: dict) -> str:
    """Text table: feature, then median [IQR] (n) per group and the KS statistic vs real."""
    groups = [g for g in next(iter(res.values())) if g != "real"]
    head = f"{'feature':28s} {'real (train-split songs)':>28s}" + "".join(
        f" {g:>28s} {'KS':>5s}" for g in groups
    )
    lines = [head]

    def cell(s: dict, k: float) -> str:
        if not s.get("n"):
            return "-"
        return f"{s['median'] * k:.3g} [{s['q1'] * k:.3g}-{s['q3'] * k:.3g}] ({s['n']})"

    for f, row in res.items():
        name, k = UNITS[f]
        line = f"{name:28s} {cell(row['real'], k):>28s}"
        for g in groups:
            line += f" {cell(row[g], k):>28s} {row[g]['ks']:5.2f}"
        lines.append(line)
    return "\n".join(lines)
