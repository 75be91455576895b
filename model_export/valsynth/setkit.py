"""What the two validation-set builders (:mod:`.sets` clips, :mod:`.scenes` scenes) share: the
truth columns and rows, levels (distance, SNR in ``SNR_BAND_HZ``, the recorder's response),
the seeded birds, writing CSVs and summaries, and reading a ``truth.csv`` back.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .acoustics import apply_mic, band_power, draw_mic
from .bird import Bird, SongTruth, make_bird
from .dialects import DIALECTS
from .syllables import region_pool

log = logging.getLogger(__name__)


TRUTH_COLUMNS = (
    "file",
    "onset_s",
    "offset_s",
    "dialect",
    "bird_id",
    "song_type",
    "complete",
    "snr_db",
    "distance_m",
    "background_file",
    # beyond the required columns
    "variant",
    "terminal_onset_s",
    "syllable_type",
    "region",
    "n_syllables",
    "syllable_period_s",
    "overlap",
)
SNR_BAND_HZ = (2500.0, 8500.0)


class SetError(RuntimeError):
    """A set cannot be built as asked (bad options, output exists)."""


def snr_for_distance(rng: np.random.Generator, distance_m: float) -> float:
    """Target SNR (dB) of a song ``distance_m`` away."""
    return float(np.clip(rng.normal(30.0 - 13.0 * math.log10(distance_m / 4.0), 5.0), -3.0, 38.0))


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _song_span(truth: SongTruth, sample_rate: int, start: int) -> slice:
    """Samples of a song placed with its dry audio starting at sample ``start``."""
    return slice(
        start + int(round(truth.onset_s * sample_rate)), start + int(round(truth.offset_s * sample_rate))
    )


def _scale_to_snr(song: np.ndarray, bg: np.ndarray, sample_rate: int, snr_db: float) -> tuple[float, float]:
    """Gain that puts ``song`` at ``snr_db`` over ``bg`` (equal-length arrays) and the SNR it gives."""
    ps = band_power(song, sample_rate, SNR_BAND_HZ)
    pb = max(band_power(bg, sample_rate, SNR_BAND_HZ), 1e-14)
    if ps <= 0:
        return 0.0, -99.0
    g = math.sqrt(pb * 10 ** (snr_db / 10) / ps)
    return g, 10 * math.log10(ps * g * g / pb)


def _fade(x: np.ndarray, n: int) -> np.ndarray:
    n = min(n, x.size // 2)
    if n > 1:
        w = np.sin(0.5 * np.pi * np.linspace(0, 1, n)) ** 2
        x = x.copy()
        x[:n] *= w
        x[-n:] *= w[::-1]
    return x


def _finish(
    mix: np.ndarray, sample_rate: int, rng: np.random.Generator, peak_dbfs: tuple[float, float]
) -> np.ndarray:
    """Recorder response and gain: the loudest sample lands in ``peak_dbfs``."""
    mix = apply_mic(mix, sample_rate, draw_mic(rng))
    peak = float(np.max(np.abs(mix))) or 1.0
    return mix * (10 ** (rng.uniform(*peak_dbfs) / 20) / peak)


def _row(file: str, tr: SongTruth, snr: float, dist: float, bg: str, overlap: bool = False) -> dict:
    return {
        "file": file,
        "onset_s": f"{tr.onset_s:.3f}",
        "offset_s": f"{tr.offset_s:.3f}",
        "dialect": tr.dialect,
        "bird_id": tr.bird_id,
        "song_type": tr.song_type,
        "complete": int(tr.complete),
        "snr_db": f"{snr:.1f}",
        "distance_m": f"{dist:.1f}",
        "background_file": bg,
        "variant": tr.variant,
        "terminal_onset_s": "" if tr.terminal_onset_s is None else f"{tr.terminal_onset_s:.3f}",
        "syllable_type": tr.syllable_type,
        "region": tr.region,
        "n_syllables": tr.n_syllables,
        "syllable_period_s": f"{tr.syllable_period_s:.4f}",
        "overlap": int(overlap),
    }


def _write_csv(path: Path, rows: list[dict], columns: Sequence[str]) -> None:
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns))
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


def _prepare_out(out: Path, overwrite: bool) -> Path:
    out = Path(out)
    if (out / "truth.csv").exists() and not overwrite:
        raise SetError(f"{out} already holds a set (truth.csv); pass overwrite to rebuild it")
    (out / "audio").mkdir(parents=True, exist_ok=True)
    if overwrite:
        for p in (out / "audio").glob("*.wav"):
            p.unlink()
    return out


def make_birds(
    seed: int,
    n: int,
    dialects: Sequence[str] = DIALECTS,
    n_regions: int = 4,
    first_index: int = 0,
    dialect_offset: int = 0,
) -> list[Bird]:
    """``n`` birds numbered from ``first_index``, dialects in turn (starting ``dialect_offset``
    into ``dialects``); bird ``i`` comes from its own ``(seed, i)`` stream."""
    birds = []
    for k, i in enumerate(range(first_index, first_index + n)):
        rng = np.random.default_rng([int(seed), 1, i])
        region = int(rng.integers(n_regions))
        dialect = dialects[(dialect_offset + k) % len(dialects)]
        birds.append(make_bird(dialect, rng, _pool(seed, region), f"v{seed}-{i:04d}", region))
    return birds


_POOLS: dict[tuple[int, int], tuple] = {}


def _pool(seed: int, region: int) -> tuple:
    key = (int(seed), int(region))
    if key not in _POOLS:
        _POOLS[key] = region_pool(seed, region)
    return _POOLS[key]


def bird_index(bird: Bird) -> int:
    """The index a bird of :func:`make_birds` was drawn with (from its id ``v<seed>-<index>``)."""
    return int(bird.bird_id.rsplit("-", 1)[1])


# -- bookkeeping ----------------------------------------------------------------------------------
def _write_birds(path: Path, birds: list[Bird]) -> None:
    rows = []
    for b in birds:
        rows.append(
            {
                "bird_id": b.bird_id,
                "dialect": b.dialect,
                "region": b.region,
                "n_song_types": len(b.song_types),
                "syllable_types": " ".join(t.syllable.type_id for t in b.song_types),
                "terminal": " ".join(
                    f"{e.kind}:{e.dur_s:.3f}s@{e.parts[0].f_start:.0f}-{e.parts[0].f_end:.0f}Hz"
                    for e in b.terminal
                ),
                "incomplete_prob": f"{b.incomplete_prob:.2f}",
                "variant": b.variant,
                "variant_prob": f"{b.variant_prob:.2f}",
            }
        )
    _write_csv(path, rows, list(rows[0]))


def _summary(rows: list[dict], birds: list[Bird] | None, seconds: float) -> dict:
    snr = np.array([float(r["snr_db"]) for r in rows]) if rows else np.zeros(1)
    per = {d: sum(r["dialect"] == d for r in rows) for d in DIALECTS}
    return {
        "songs": len(rows),
        "birds": len({r["bird_id"] for r in rows}),
        "songs_per_dialect": per,
        "incomplete_share": round(float(np.mean([r["complete"] == 0 for r in rows])) if rows else 0.0, 3),
        "variants": {v: sum(r["variant"] == v for r in rows) for v in sorted({r["variant"] for r in rows})},
        "snr_db_percentiles_10_50_90": [round(float(v), 1) for v in np.percentile(snr, [10, 50, 90])],
        "seconds": round(seconds, 1),
    }


def _bg_info(backgrounds) -> dict:
    return {
        "kind": backgrounds.kind,
        "soundscapes": len(backgrounds.soundscapes),
        "others": len(backgrounds.others),
        "root": str(getattr(backgrounds, "root", "")),
    }


def _jsonable(d: dict) -> dict:
    return {
        k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v) for k, v in d.items()
    }


def load_truth(path: str | Path) -> list[dict]:
    """Rows of a ``truth.csv`` with numeric columns converted and ``path`` (absolute) added."""
    path = Path(path)
    rows = []
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            r["path"] = str((path.parent / r["file"]).resolve())
            for k in ("onset_s", "offset_s", "snr_db", "distance_m", "syllable_period_s"):
                r[k] = float(r[k])
            r["terminal_onset_s"] = float(r["terminal_onset_s"]) if r["terminal_onset_s"] else None
            for k in ("song_type", "complete", "region", "n_syllables", "overlap"):
                r[k] = int(r[k])
            rows.append(r)
    return rows
