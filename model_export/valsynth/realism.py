"""Realism guards: BirdNET V2.4 on generated songs, and measured statistics against the table.

``birdnet_check``
    Songs of fresh birds (all eight dialects), propagated 8-40 m and mixed at 10-20 dB SNR
    over test-split soundscapes (or synthetic noise), one 3-s BirdNET window each (centred on
    the song; the last 3 s when longer). Reports the share whose top-1 species is the
    yellowhammer, the share whose top-1 is the yellowhammer or its sister species the pine
    bunting, and the mean/median yellowhammer score, overall, per dialect and for complete vs
    incomplete songs. ``compare_training=True`` also runs the training synthesiser's own check
    (``model_export.synth.evaluate.birdnet_check``, called, not copied) at the same SNR.
``statistics_check``
    Dry songs of fresh birds measured from their spectrograms (:mod:`.measure`): terminal
    element durations and pitches per dialect next to the table's ranges, syllable rate, song
    length, and the share inside each range.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .acoustics import band_power, draw_path, propagate
from .bird import render_song
from .dialects import DIALECTS, TABLE
from .measure import measure_song
from .sets import SNR_BAND_HZ, make_birds

BIRDNET_RATE = 48000


def _window_around(song: np.ndarray, onset: int, offset: int, n: int) -> int:
    """Start of an ``n``-sample window centred on ``[onset, offset)``, or ending at its offset
    when the song is longer than the window."""
    if offset - onset >= n:
        return offset + int(0.05 * BIRDNET_RATE) - n
    return (onset + offset) // 2 - n // 2


def birdnet_songs(
    n_songs: int = 64,
    seed: int = 12345,
    snr_db: tuple[float, float] = (10.0, 20.0),
    backgrounds=None,
    incomplete_share: float = 0.2,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, list[dict]]:
    """3-s windows (48 kHz) of generated songs over backgrounds, and a description of each."""
    from .backgrounds import NoiseBackgrounds

    bg = backgrounds or NoiseBackgrounds(BIRDNET_RATE)
    sr = BIRDNET_RATE
    n = 3 * sr
    per_bird = 2
    birds = make_birds(seed, int(math.ceil(n_songs / per_bird)))
    rng = np.random.default_rng([seed, 99])
    wins, info = [], []
    for b in birds:
        for _ in range(per_bird):
            if len(wins) >= n_songs:
                break
            complete = rng.random() >= incomplete_share
            dry, tr = render_song(b, rng, sr, complete=complete)
            dist = float(rng.uniform(8, 40))
            wet = propagate(dry, sr, draw_path(rng, dist), rng)
            on, off = int(tr.onset_s * sr), int(tr.offset_s * sr)
            s0 = _window_around(wet, on, off, n)
            song = np.zeros(n)
            src = np.arange(s0, s0 + n)
            ok = (src >= 0) & (src < wet.size)
            song[ok] = wet[src[ok]]
            back, _ = bg.soundscape(rng, n)
            a, z = max(0, on - s0), min(n, off - s0)
            ps = band_power(song[a:z], sr, SNR_BAND_HZ)
            pb = max(band_power(back[a:z], sr, SNR_BAND_HZ), 1e-14)
            snr = float(rng.uniform(*snr_db))
            mix = back + song * math.sqrt(pb * 10 ** (snr / 10) / max(ps, 1e-20))
            mix *= 0.3 / (np.max(np.abs(mix)) or 1.0)
            wins.append(mix.astype(np.float32))
            info.append({"dialect": b.dialect, "complete": complete, "snr_db": snr, "bird_id": b.bird_id})
            if progress:
                progress(1)
    return np.stack(wins), info


def _rates(scores: np.ndarray, yh: int, pine: int) -> dict:
    top = np.argmax(scores, axis=1)
    return {
        "n": int(len(scores)),
        "top1_yellowhammer": round(float(np.mean(top == yh)), 3),
        "top1_yellowhammer_or_pine_bunting": round(float(np.mean((top == yh) | (top == pine))), 3),
        "yellowhammer_score_mean": round(float(np.mean(scores[:, yh])), 3),
        "yellowhammer_score_median": round(float(np.median(scores[:, yh])), 3),
    }


def birdnet_check(
    n_songs: int = 64,
    seed: int = 12345,
    snr_db: tuple[float, float] = (10.0, 20.0),
    backgrounds=None,
    compare_training: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """BirdNET V2.4 on ``n_songs`` generated songs (see the module docstring)."""
    from collections import Counter

    from model_export.birdnet import PINE_BUNTING, YELLOWHAMMER_INDEX, BirdNET

    bn = BirdNET(num_threads=2)
    pine = bn.labels.index(PINE_BUNTING)
    wins, info = birdnet_songs(n_songs, seed, snr_db, backgrounds, progress=progress)
    logits = bn.logits_of_windows(wins)
    s = 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))
    out = {"valsynth": _rates(s, YELLOWHAMMER_INDEX, pine)}
    comp = np.array([i["complete"] for i in info])
    out["valsynth_complete"] = _rates(s[comp], YELLOWHAMMER_INDEX, pine)
    if (~comp).any():
        out["valsynth_incomplete"] = _rates(s[~comp], YELLOWHAMMER_INDEX, pine)
    dial = np.array([i["dialect"] for i in info])
    out["per_dialect"] = {
        d: _rates(s[dial == d], YELLOWHAMMER_INDEX, pine) for d in DIALECTS if (dial == d).any()
    }
    out["top_species"] = Counter(bn.labels[i] for i in np.argmax(s, axis=1)).most_common(5)
    out["backgrounds"] = getattr(backgrounds, "kind", "synthetic")
    out["snr_db"] = list(snr_db)
    if compare_training:
        # the training synthesiser's own check, called as a reference (its code is not used here)
        from model_export.synth.evaluate import birdnet_check as training_check

        per_bird = 4  # its n_birds is per dialect
        res = training_check(
            n_birds=max(1, math.ceil(n_songs / (8 * per_bird))),
            songs_per_bird=per_bird,
            snr_db=snr_db,
            seed=seed,
            background_dir=str(backgrounds.root) if getattr(backgrounds, "root", None) else None,
            distractors_per_kind=0,
        )
        out["training_synth"] = res
    return out


def statistics_check(
    birds_per_dialect: int = 8,
    songs_per_bird: int = 3,
    seed: int = 4242,
    sample_rate: int = 48000,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Measured statistics of dry complete plain songs against :data:`.dialects.TABLE`."""
    birds = make_birds(seed, birds_per_dialect * len(DIALECTS))
    rng = np.random.default_rng([seed, 98])
    meas: dict[str, list[dict]] = {d: [] for d in DIALECTS}
    overall = {"syllable_rate_hz": [], "song_length_s": [], "n_syllables": []}
    for b in birds:
        for _ in range(songs_per_bird):
            audio, tr = render_song(b, rng, sample_rate, complete=True, variant="plain")
            m = measure_song(audio, sample_rate, n_terminal=len(TABLE[b.dialect]))
            if progress:
                progress(1)
            if m is None:
                continue
            meas[b.dialect].append(m)
            overall["syllable_rate_hz"].append(m["syllable_rate_hz"])
            overall["song_length_s"].append(m["song_length_s"])
    out: dict = {"dialects": {}}
    for d in DIALECTS:
        rows = meas[d]
        per = []
        for k, spec in enumerate(TABLE[d]):
            dur = np.array([r["terminal"][k]["dur_s"] for r in rows if len(r["terminal"]) > k])
            f0 = np.array([r["terminal"][k]["f_start_hz"] for r in rows if len(r["terminal"]) > k])
            f1 = np.array([r["terminal"][k]["f_end_hz"] for r in rows if len(r["terminal"]) > k])
            per.append(
                {
                    "kind": spec.kind,
                    "dur_s_table": list(spec.dur_s),
                    "dur_s_p10_50_90": _p(dur),
                    "dur_in_table": _inside(dur, spec.dur_s),
                    "f_start_table": list(spec.f_start_hz),
                    "f_start_p10_50_90": _p(f0),
                    "f_start_in_table": _inside(f0, spec.f_start_hz, 0.03),
                    "f_end_table": list(spec.f_end_hz),
                    "f_end_p10_50_90": _p(f1),
                    "f_end_in_table": _inside(f1, spec.f_end_hz, 0.03),
                }
            )
        out["dialects"][d] = {"songs": len(rows), "elements": per}
    rate = np.array(overall["syllable_rate_hz"])
    length = np.array(overall["song_length_s"])
    out["syllable_period_s_p10_50_90"] = _p(1.0 / rate[rate > 0])
    out["syllable_period_in_0.09_0.13"] = _inside(1.0 / rate[rate > 0], (0.09, 0.13))
    out["song_length_s_p10_50_90"] = _p(length)
    out["song_length_in_1.8_2.8"] = _inside(length, (1.8, 2.8))
    return out


def _p(x: np.ndarray) -> list[float]:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    return [round(float(v), 3) for v in np.percentile(x, [10, 50, 90])] if x.size else []


def _inside(x: np.ndarray, rng: tuple[float, float], rel_tol: float = 0.0) -> float | None:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if not x.size:
        return None
    lo, hi = rng[0] * (1 - rel_tol), rng[1] * (1 + rel_tol)
    return round(float(np.mean((x >= lo) & (x <= hi))), 3)


def format_birdnet(res: dict) -> str:
    """A plain-text table of :func:`birdnet_check`'s result."""
    lines = [
        f"BirdNET V2.4 on generated songs ({res['backgrounds']} backgrounds, SNR {res['snr_db']} dB)",
        f"{'group':<22}{'n':>5}{'top1 YH':>9}{'top1 YH|pine':>14}{'mean YH':>9}{'median YH':>11}",
    ]

    def line(name, r):
        lines.append(
            f"{name:<22}{r['n']:>5}{r['top1_yellowhammer']:>9.2f}{r['top1_yellowhammer_or_pine_bunting']:>14.2f}"
            f"{r['yellowhammer_score_mean']:>9.3f}{r['yellowhammer_score_median']:>11.3f}"
        )

    line("valsynth (all)", res["valsynth"])
    line("  complete", res["valsynth_complete"])
    if "valsynth_incomplete" in res:
        line("  incomplete", res["valsynth_incomplete"])
    for d, r in res["per_dialect"].items():
        line(f"  {d}", r)
    if "training_synth" in res:
        for name, r in res["training_synth"].items():
            if "yh_or_pine_top1" in r:
                lines.append(
                    f"{'training synth ' + name:<22}{r['n']:>5}{r['top1']:>9.2f}{r['yh_or_pine_top1']:>14.2f}"
                    f"{'':>9}{r['yh_score_median']:>11.3f}"
                )
    lines.append("top species: " + ", ".join(f"{k} ({v})" for k, v in res["top_species"]))
    return "\n".join(lines)


def format_statistics(res: dict) -> str:
    """A plain-text table of :func:`statistics_check`'s result (p10/p50/p90 and share in range)."""

    def trip(v):
        return "/".join(f"{x:g}" for x in v) if v else "-"

    lines = [
        f"{'dialect':<8}{'el':<4}{'dur s table':>13}{'measured p10/50/90':>22}{'in':>6}"
        f"{'f start table':>15}{'measured':>22}{'in':>6}{'f end table':>14}{'measured':>22}{'in':>6}"
    ]
    for d, r in res["dialects"].items():
        for e in r["elements"]:
            lines.append(
                f"{d:<8}{e['kind']:<4}{trip(e['dur_s_table']):>13}{trip(e['dur_s_p10_50_90']):>22}"
                f"{e['dur_in_table'] or 0:>6.2f}{trip(e['f_start_table']):>15}{trip(e['f_start_p10_50_90']):>22}"
                f"{e['f_start_in_table'] or 0:>6.2f}{trip(e['f_end_table']):>14}{trip(e['f_end_p10_50_90']):>22}"
                f"{e['f_end_in_table'] or 0:>6.2f}"
            )
    lines.append(
        f"syllable period s p10/50/90 {trip(res['syllable_period_s_p10_50_90'])} "
        f"(share in 0.09-0.13: {res['syllable_period_in_0.09_0.13']})"
    )
    lines.append(
        f"song length s p10/50/90 {trip(res['song_length_s_p10_50_90'])} "
        f"(share in 1.8-2.8: {res['song_length_in_1.8_2.8']})"
    )
    lines.append(
        "(frequencies count as inside within 3 % of the table's ends; measured on dry, complete, plain songs)"
    )
    return "\n".join(lines)
