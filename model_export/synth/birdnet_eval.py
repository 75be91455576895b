"""BirdNET V2.4 on the generator's output (``yh-model synth birdnet-check``): generated songs
at moderate SNR per dialect (top-1/2/5 rates, pine-bunting rate), incomplete songs and
distractors (yellowhammer top-1 and score >= 0.5 rates), optionally real yellowhammer
recordings as a reference; ``ablate`` removes one realism feature from a bird to measure what
it is worth; ``clip_at_snr`` places a sound in a clip at a given SNR (the other measurements
use it too). Re-exported by :mod:`.evaluate`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from .audio_io import AudioLibrary, list_audio_files, load_audio
from .distractors import DISTRACTOR_KINDS, render_distractor
from .scene import band_power, mic_colour, propagate, synthetic_background
from .song import DIALECTS, Bird, make_bird, render_song

# --------------------------------------------------------------------------------------------------
# clips at a given SNR


def clip_at_snr(
    sig: np.ndarray,
    rng: np.random.Generator,
    sr: int,
    snr_db: float,
    length_s: float = 3.0,
    background: AudioLibrary | None = None,
    distance_m: float = 20.0,
) -> tuple[np.ndarray, float]:
    """Place ``sig`` (after propagation) at a random offset in a ``length_s`` clip at ``snr_db``.

    Returns the clip (peak-normalised to 0.5) and the sound's onset in it, s.
    """
    n = int(length_s * sr)
    wet = propagate(sig, sr, distance_m, rng)[:n]
    if background is not None:
        bg, _ = background.excerpt(rng, n)
        bg = bg - bg.mean()
    else:
        bg, _ = synthetic_background(rng, n, sr)
    bg = bg / (np.sqrt(np.mean(bg.astype(np.float64) ** 2)) + 1e-9)
    slack = max(0, n - sig.size)
    i0 = int(rng.integers(0, slack + 1)) if slack else 0
    seg = bg[i0 : i0 + min(sig.size, n)]
    g = np.sqrt(band_power(seg, sr) * 10 ** (snr_db / 10) / max(band_power(wet[: sig.size], sr), 1e-20))
    x = bg.astype(np.float32).copy()
    m = min(wet.size, n - i0)
    x[i0 : i0 + m] += np.float32(g) * wet[:m]
    x = mic_colour(x, sr, rng)
    return (0.5 * x / (np.max(np.abs(x)) + 1e-9)).astype(np.float32), i0 / sr


def ablate(bird: Bird, variant: str) -> Bird:
    """A bird with one realism feature removed (for measuring what each feature is worth).

    ``full`` (unchanged), ``no-buzz`` (no rapid FM/AM on syllables or elements),
    ``no-harmonics`` (fundamental only), ``plain`` (neither buzz nor harmonics).
    """
    if variant == "full":
        return bird
    if variant not in ("no-buzz", "no-harmonics", "plain"):
        raise ValueError(f"unknown variant {variant!r}")
    buzz = variant in ("no-buzz", "plain")
    harm = variant in ("no-harmonics", "plain")
    types = []
    for st in bird.song_types:
        syl = st.syllable
        if buzz:
            syl = replace(syl, fm_depth_hz=0.0, am_depth=0.0)
        if harm:
            syl = replace(syl, h2=0.0, h3=0.0)
        term = tuple(
            replace(
                e,
                fm_depth_hz=0.0 if buzz else e.fm_depth_hz,
                am_depth=0.0 if buzz else e.am_depth,
                pulse_hz=0.0 if buzz else e.pulse_hz,
                h2=0.0 if harm else e.h2,
                h3=0.0 if harm else e.h3,
            )
            for e in st.terminal
        )
        types.append(replace(st, syllable=syl, terminal=term))
    return replace(bird, song_types=tuple(types))


def birdnet_check(
    n_birds: int = 8,
    songs_per_bird: int = 4,
    snr_db: tuple[float, float] = (10.0, 20.0),
    seed: int = 0,
    background_dir: str | None = None,
    distractors_per_kind: int = 20,
    real_dir: str | None = None,
    sample_rate: int = 48000,
    variant: str = "full",
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Run BirdNET on generated songs, incomplete songs and distractors; return rates per group.

    Songs are rendered at ``sample_rate`` (48 kHz by default, BirdNET's rate; use 24000
    to see what the models' rate keeps), placed in 3 s clips at an SNR drawn from
    ``snr_db`` at 10-40 m, and scored as one BirdNET window each. ``variant`` removes a
    realism feature from every bird (see ``ablate``).
    """
    from ..birdnet import PINE_BUNTING, BirdNET

    bn = BirdNET(num_threads=2)
    pine = bn.labels.index(PINE_BUNTING)
    rng = np.random.default_rng(seed)
    bg = AudioLibrary(background_dir, sample_rate) if background_dir else None
    groups: dict[str, list[np.ndarray]] = {}

    def score(name: str, sig: np.ndarray) -> None:
        clip, _ = clip_at_snr(
            sig, rng, sample_rate, rng.uniform(*snr_db), background=bg, distance_m=rng.uniform(10, 40)
        )
        groups.setdefault(name, []).append(bn.scores(clip, sample_rate)[0])
        if progress is not None:
            progress(1)

    for d in DIALECTS:
        for b in range(n_birds):
            bird = ablate(make_bird(d, rng, bird_id=b), variant)
            for _ in range(songs_per_bird):
                audio, _ev = render_song(bird, rng, sample_rate, complete=True)
                score(d, audio)
            audio, _ev = render_song(bird, rng, sample_rate, complete=False)
            score("incomplete", audio)
    for kind in DISTRACTOR_KINDS:
        for _ in range(distractors_per_kind):
            audio, _ev = render_distractor(kind, rng, sample_rate)
            score("distractor:" + kind, audio)
    if real_dir:
        _add_real_windows(groups, bn, real_dir)
    return {name: _rates(np.stack(rows), bn, pine) for name, rows in groups.items()}


def _add_real_windows(groups: dict, bn, real_dir: str) -> None:
    """The reference group: the windows of real yellowhammer recordings in which BirdNET finds
    any yellowhammer at all (score >= 0.1)."""
    from ..birdnet import YELLOWHAMMER_INDEX

    for path in list_audio_files(real_dir, exclude_labels=(), include_labels=("yellowhammer",)):
        x = load_audio(path, 48000)
        s = bn.scores(x, 48000)
        s = s[s[:, YELLOWHAMMER_INDEX] >= 0.1]
        if len(s):
            groups.setdefault("real yellowhammer (windows with score>=0.1)", []).extend(list(s))


def _rates(s: np.ndarray, bn, pine: int) -> dict:
    """One group's BirdNET figures from its score rows."""
    from ..birdnet import YELLOWHAMMER_INDEX

    rank = bn.rank_of(s)
    top = np.argmax(s, axis=1)
    return {
        "n": len(s),
        "top1": float(np.mean(rank == 1)),
        "top2": float(np.mean(rank <= 2)),
        "top5": float(np.mean(rank <= 5)),
        "pine_top1": float(np.mean(top == pine)),
        "yh_or_pine_top1": float(np.mean((top == pine) | (top == YELLOWHAMMER_INDEX))),
        "yh_score_ge_0.5": float(np.mean(s[:, YELLOWHAMMER_INDEX] >= 0.5)),
        "yh_score_median": float(np.median(s[:, YELLOWHAMMER_INDEX])),
        "top_species": _most_common([bn.labels[i] for i in top]),
    }


def _most_common(items: Sequence[str], k: int = 3) -> list[tuple[str, int]]:
    vals, counts = np.unique(np.asarray(items), return_counts=True)
    order = np.argsort(-counts)[:k]
    return [(str(vals[i]).split("_")[-1], int(counts[i])) for i in order]
