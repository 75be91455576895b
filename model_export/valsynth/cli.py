"""``yh-model valsynth``: build validation sets with the independent generator, and check it.

``valsynth clips``          one song per ~4-s clip over real test-split backgrounds (+ truth.csv)
``valsynth scenes``         long scenes: several birds in bouts, overlaps, other species
``valsynth birdnet-check``  BirdNET V2.4 top-1 on generated songs (and the training synth's)
``valsynth stats``          measured element durations/pitches, syllable period, song length
                            against DESIGN.md section 3's table
``valsynth spectrograms``   PNGs of one song per dialect (dry), for looking at
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

log = logging.getLogger(__name__)

DEFAULT_REAL = Path(__file__).resolve().parents[3] / "shared" / "realaudio"


def _bar(length: int, label: str):
    return click.progressbar(length=length, label=label, file=click.get_text_stream("stderr"))


def _backgrounds(kind: str, real: Path | None, rate: int, screen: bool, cache: Path | None):
    from .backgrounds import (
        SCREEN_THRESHOLD,
        BackgroundError,
        NoiseBackgrounds,
        RealBackgrounds,
        screen_birdnet,
        test_split_files,
    )

    if kind == "synthetic":
        return NoiseBackgrounds(rate)
    root = real or DEFAULT_REAL
    if not (root / "manifest.csv").exists():
        raise click.ClickException(f"{root}: no manifest.csv (pass --real DIR, or --background synthetic)")
    exclude: list[str] = []
    if screen:
        from model_export.birdnet import BirdNETUnavailable

        sc, ot = test_split_files(root)
        try:
            with _bar(len(sc) + len(ot), "BirdNET screen of backgrounds") as bar:
                scores = screen_birdnet(root, sc + ot, cache, progress=bar.update)
        except BirdNETUnavailable as exc:
            raise click.ClickException(f"{exc} (or pass --no-screen)") from None
        exclude = [f for f, s in scores.items() if s >= SCREEN_THRESHOLD]
        log.info(
            "BirdNET screen: %d of %d background files left out (yellowhammer >= %.2f)",
            len(exclude),
            len(scores),
            SCREEN_THRESHOLD,
        )
    try:
        return RealBackgrounds(root, rate, exclude=exclude)
    except BackgroundError as exc:
        raise click.ClickException(str(exc)) from None


_bg_options = [
    click.option(
        "--background",
        type=click.Choice(["real", "synthetic"]),
        default="real",
        show_default=True,
        help="Real test-split recordings (never used in training) or synthetic noise.",
    ),
    click.option(
        "--real",
        "real",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=f"realaudio folder with manifest.csv [default: {DEFAULT_REAL}]",
    ),
    click.option(
        "--screen/--no-screen",
        default=True,
        show_default=True,
        help="Leave out background files in which BirdNET hears a yellowhammer (>= 0.1); "
        "scores cached in OUT/background_screen.csv.",
    ),
]


def _with_bg(f):
    for opt in reversed(_bg_options):
        f = opt(f)
    return f


@click.group("valsynth")
def valsynth() -> None:
    """Independent validation generator: sets for judging models (never for training)."""


@valsynth.command("clips")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--birds-per-dialect", default=12, show_default=True, type=click.IntRange(1))
@click.option("--songs-per-bird", default=6, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--rate", default="24000", type=click.Choice(["24000", "48000"]), show_default=True)
@click.option(
    "--clip-s",
    default=4.0,
    show_default=True,
    type=click.FloatRange(2.0, 30.0),
    help="Clip length (longer songs get a longer clip).",
)
@click.option("--overwrite", is_flag=True, help="Replace a set already in --out.")
@_with_bg
def clips_cmd(
    out, birds_per_dialect, songs_per_bird, seed, rate, clip_s, overwrite, background, real, screen
):
    """One song per clip over real backgrounds: OUT/audio/*.wav, truth.csv, birds.csv, info.json."""
    from .sets import ClipSetConfig, SetError, build_clips

    try:
        cfg = ClipSetConfig(
            Path(out), birds_per_dialect, songs_per_bird, seed, int(rate), clip_s, overwrite=overwrite
        )
        if (cfg.out / "truth.csv").exists() and not overwrite:
            raise SetError(f"{cfg.out} already holds a set (truth.csv); pass --overwrite to rebuild it")
        cfg.out.mkdir(parents=True, exist_ok=True)
        bg = _backgrounds(
            background, real, int(rate), screen and background == "real", cfg.out / "background_screen.csv"
        )
        with _bar(birds_per_dialect * 8 * songs_per_bird, "clips") as bar:
            info = build_clips(cfg, bg, progress=bar.update)
    except SetError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({k: v for k, v in info.items() if k != "config"}, indent=1))


@valsynth.command("scenes")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--hours", default=2.0, show_default=True, type=click.FloatRange(0.0, min_open=True))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--rate", default="24000", type=click.Choice(["24000", "48000"]), show_default=True)
@click.option("--scene-minutes", default=5.0, show_default=True, type=click.FloatRange(0.5, 60.0))
@click.option("--overwrite", is_flag=True, help="Replace a set already in --out.")
@_with_bg
def scenes_cmd(out, hours, seed, rate, scene_minutes, overwrite, background, real, screen):
    """Long scenes (several birds, bouts of 6-9 songs/min, overlaps, other species): OUT/audio/*.wav,
    truth.csv (songs), others.csv (other-species inserts), info.json."""
    import math

    from .sets import SceneSetConfig, SetError, build_scenes

    try:
        cfg = SceneSetConfig(Path(out), hours, seed, int(rate), scene_minutes, overwrite=overwrite)
        if (cfg.out / "truth.csv").exists() and not overwrite:
            raise SetError(f"{cfg.out} already holds a set (truth.csv); pass --overwrite to rebuild it")
        cfg.out.mkdir(parents=True, exist_ok=True)
        bg = _backgrounds(
            background, real, int(rate), screen and background == "real", cfg.out / "background_screen.csv"
        )
        with _bar(max(1, math.ceil(hours * 60 / scene_minutes - 1e-9)), "scenes") as bar:
            info = build_scenes(cfg, bg, progress=bar.update)
    except SetError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({k: v for k, v in info.items() if k != "config"}, indent=1))


@valsynth.command("birdnet-check")
@click.option("--n-songs", default=96, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=12345, show_default=True, type=int)
@click.option("--snr", default="10,20", show_default=True, help="SNR range, dB (2.5-8.5 kHz).")
@click.option(
    "--compare-training",
    is_flag=True,
    help="Also run the training synthesiser's BirdNET check (model_export.synth.evaluate).",
)
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@_with_bg
def birdnet_cmd(n_songs, seed, snr, compare_training, as_json, background, real, screen):
    """BirdNET V2.4 top-1 share (yellowhammer, or pine bunting) and yellowhammer score on generated songs."""
    from model_export.birdnet import BirdNETUnavailable

    from .realism import birdnet_check, format_birdnet

    lo, hi = (float(v) for v in snr.split(","))
    bg = _backgrounds(background, real, 48000, False, None)
    try:
        with _bar(n_songs, "rendering") as bar:
            res = birdnet_check(n_songs, seed, (lo, hi), bg, compare_training, progress=bar.update)
    except BirdNETUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(res, indent=1, default=str) if as_json else format_birdnet(res))


@valsynth.command("stats")
@click.option("--birds-per-dialect", default=8, show_default=True, type=click.IntRange(1))
@click.option("--songs-per-bird", default=3, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=4242, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def stats_cmd(birds_per_dialect, songs_per_bird, seed, as_json):
    """Statistics measured on rendered spectrograms against DESIGN.md section 3's table."""
    from .realism import format_statistics, statistics_check

    with _bar(birds_per_dialect * 8 * songs_per_bird, "measuring") as bar:
        res = statistics_check(birds_per_dialect, songs_per_bird, seed, progress=bar.update)
    click.echo(json.dumps(res, indent=1) if as_json else format_statistics(res))


@valsynth.command("spectrograms")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True, type=int)
def spectrograms_cmd(out, seed):
    """One dry song per dialect as a PNG spectrogram (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from .bird import render_song
    from .measure import spectrogram
    from .sets import make_birds

    out.mkdir(parents=True, exist_ok=True)
    for b in make_birds(seed, 8):
        audio, tr = render_song(b, np.random.default_rng(seed), 48000, complete=True)
        f, t, P = spectrogram(audio, 48000)
        db = 10 * np.log10(P + 1e-14)
        fig, ax = plt.subplots(figsize=(10, 3.5))
        ax.pcolormesh(t, f / 1000, db, vmin=db.max() - 70, vmax=db.max(), cmap="magma", shading="auto")
        ax.set_ylim(1, 12)
        ax.set_xlabel("s")
        ax.set_ylabel("kHz")
        ax.set_title(f"{b.dialect} ({tr.syllable_type}, {tr.n_syllables} syllables, {tr.variant})")
        fig.tight_layout()
        path = out / f"{b.dialect}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        click.echo(str(path))
