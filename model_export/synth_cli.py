"""``yh-model synth``: generate training data and measure the generator's realism.

Commands
--------
``synth generate``       write a dataset (WAV + songs.csv, distractors.csv, scenes.csv/jsonl, birds.csv)
``synth birdnet-check``  BirdNET V2.4 on generated songs and distractors
``synth compare-real``   statistics of generated vs real yellowhammer songs
``synth spectrograms``   PNGs: one generated song per dialect next to a real song
``synth baseline``       terminal-phrase features + logistic regression, split by bird
``synth speed``          songs rendered per second
``synth syllable-check`` initial-syllable features: real train-split songs vs base vs wide generator
"""

from __future__ import annotations

import json
import logging
import time

import click

logger = logging.getLogger(__name__)


def _dialects(value: str) -> tuple[str, ...]:
    from model_export.synth import DIALECTS

    ds = tuple(d.strip() for d in value.split(",") if d.strip())
    bad = [d for d in ds if d not in DIALECTS]
    if bad or not ds:
        raise click.BadParameter(
            f"unknown dialect(s) {', '.join(bad) or '(none)'}; choose from {','.join(DIALECTS)}"
        )
    return ds


def _range(value: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value.split(","))
    except ValueError as exc:
        raise click.BadParameter("expected LO,HI") from exc
    return lo, hi


@click.group("synth")
def synth() -> None:
    """Synthetic yellowhammer songs: datasets, fixtures and realism checks."""


@synth.command("generate")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--n-birds", default=40, show_default=True, help="Birds in the pool (dialects round-robin).")
@click.option("--dialects", default="XlB,XsB,BC,BE,BD,BhBl,BlBh,BBe", show_default=True, help="Comma list.")
@click.option("--hours", default=1.0, show_default=True, help="Total audio, hours.")
@click.option("--file-seconds", default=60.0, show_default=True, help="Length of each WAV, s.")
@click.option(
    "--background",
    "background_dir",
    type=click.Path(exists=True, file_okay=False),
    help="Directory of real background recordings (recursive wav/mp3/flac; a manifest.csv's "
    "'yellowhammer' rows are skipped). Synthetic noise when omitted.",
)
@click.option(
    "--distractors",
    "distractor_dir",
    type=click.Path(exists=True, file_okay=False),
    help="Directory of real other-species recordings used as extra distractors.",
)
@click.option("--seed", default=0, show_default=True)
@click.option("--sample-rate", default=24000, show_default=True, help="Hz (the models' rate).")
@click.option(
    "--incomplete-fraction",
    type=click.FloatRange(0, 1),
    default=None,
    help="Fraction of incomplete songs (default: each bird's own 10-40 %).",
)
@click.option("--distractor-rate", default=1.5, show_default=True, help="Distractors per minute.")
@click.option("--snr", "snr", default="0,30", show_default=True, help="SNR of farthest,nearest bird (dB).")
@click.option("--overwrite", is_flag=True, help="Write into a folder that already holds a dataset.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def generate(
    out_dir,
    n_birds,
    dialects,
    hours,
    file_seconds,
    background_dir,
    distractor_dir,
    seed,
    sample_rate,
    incomplete_fraction,
    distractor_rate,
    snr,
    overwrite,
    as_json,
) -> None:
    """Write a synthetic dataset of soundscapes with labelled songs."""
    from model_export.synth import AudioReadError, DatasetConfig, DatasetError, write_dataset

    cfg = DatasetConfig(
        out_dir=out_dir,
        n_birds=n_birds,
        dialects=_dialects(dialects),
        hours=hours,
        file_seconds=file_seconds,
        sample_rate=sample_rate,
        seed=seed,
        background_dir=background_dir,
        distractor_dir=distractor_dir,
        incomplete_fraction=incomplete_fraction,
        distractor_rate_per_min=distractor_rate,
        snr_db_range=_range(snr),
        overwrite=overwrite,
    )
    n_files = max(1, round(hours * 3600 / file_seconds))
    t0 = time.perf_counter()
    try:
        with click.progressbar(
            length=n_files, label="rendering", file=click.get_text_stream("stderr")
        ) as bar:
            summary = write_dataset(cfg, progress=bar.update)
    except (DatasetError, AudioReadError) as exc:
        raise click.ClickException(str(exc)) from exc
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(
            f"{summary['n_files']} files, {summary['n_songs']} songs ({summary['n_complete']} complete), "
            f"{summary['n_distractors']} distractors in {summary['seconds']} s -> {out_dir}"
        )


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) for r in rows)


@synth.command("birdnet-check")
@click.option("--n-birds", default=8, show_default=True, help="Birds per dialect.")
@click.option("--songs-per-bird", default=4, show_default=True)
@click.option("--snr", default="10,20", show_default=True, help="SNR range, dB (2-9 kHz band).")
@click.option(
    "--background",
    "background_dir",
    type=click.Path(exists=True, file_okay=False),
    help="Real background recordings (default: synthetic noise).",
)
@click.option("--distractors-per-kind", default=20, show_default=True)
@click.option(
    "--real",
    "real_dir",
    type=click.Path(exists=True, file_okay=False),
    help="Also score the real yellowhammer files below this folder (manifest.csv label) as a reference.",
)
@click.option("--sample-rate", default=48000, show_default=True, help="Render rate (24000 = models' rate).")
@click.option(
    "--variant",
    type=click.Choice(["full", "no-buzz", "no-harmonics", "plain"]),
    default="full",
    show_default=True,
    help="Remove a realism feature from the songs (ablation).",
)
@click.option("--variety", type=click.Choice(["base", "wide"]), default="base", show_default=True,
              help="Generator variety (wide: measured syllable library from --real's train split).")  # fmt: skip
@click.option(
    "--families", default="", help="wide only: comma list of syllable families to draw (default all)."
)
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def birdnet_check_cmd(
    n_birds,
    songs_per_bird,
    snr,
    background_dir,
    distractors_per_kind,
    real_dir,
    sample_rate,
    variant,
    variety,
    families,
    seed,
    as_json,
) -> None:
    """Fraction of generated songs BirdNET V2.4 takes for a yellowhammer (and of distractors)."""
    if variety != "base":
        _set_wide(real_dir, families=tuple(f for f in families.split(",") if f))
    from model_export.birdnet import BirdNETUnavailable
    from model_export.synth.distractors import DISTRACTOR_KINDS
    from model_export.synth.evaluate import birdnet_check

    total = 8 * n_birds * (songs_per_bird + 1) + len(DISTRACTOR_KINDS) * distractors_per_kind
    try:
        with click.progressbar(length=total, label="BirdNET", file=click.get_text_stream("stderr")) as bar:
            res = birdnet_check(
                n_birds,
                songs_per_bird,
                _range(snr),
                seed,
                background_dir,
                distractors_per_kind,
                real_dir,
                sample_rate,
                variant=variant,
                progress=bar.update,
            )
    except BirdNETUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    click.echo(_birdnet_table(res))


def _birdnet_table(res: dict) -> str:
    """The text table of :func:`model_export.synth.evaluate.birdnet_check`'s result."""
    rows = [
        [
            "group",
            "n",
            "YH top1",
            "top2",
            "top5",
            "pine top1",
            "YH|pine top1",
            "YH>=0.5",
            "median YH",
            "most common top-1",
        ]
    ]
    for name, r in res.items():
        rows.append(
            [
                name,
                str(r["n"]),
                f"{r['top1']:.2f}",
                f"{r['top2']:.2f}",
                f"{r['top5']:.2f}",
                f"{r['pine_top1']:.2f}",
                f"{r['yh_or_pine_top1']:.2f}",
                f"{r['yh_score_ge_0.5']:.2f}",
                f"{r['yh_score_median']:.3f}",
                ", ".join(f"{s} {c}" for s, c in r["top_species"]),
            ]
        )
    return _table(rows)


@synth.command("compare-real")
@click.option(
    "--real",
    "real_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Folder with real yellowhammer recordings (manifest.csv label 'yellowhammer' if present).",
)
@click.option("--dialects", default="XlB,XsB", show_default=True, help="Dialects of the generated songs.")
@click.option("--n-birds", default=6, show_default=True, help="Generated birds per dialect.")
@click.option("--songs-per-bird", default=5, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def compare_real_cmd(real_dir, dialects, n_birds, songs_per_bird, seed, as_json) -> None:
    """Table of song statistics: generated vs real (same segmenter on both)."""
    import numpy as np

    from model_export.synth.evaluate import compare_real

    res = compare_real(real_dir, n_birds, songs_per_bird, _dialects(dialects), seed=seed)
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    rows = [["statistic", "real median [IQR]", "n", "generated median [IQR]", "n"]]
    for k in res["real"]:
        cells = [k]
        for src in ("real", "generated"):
            v = np.asarray(res[src][k])
            cells += (
                [f"{np.median(v):.2f} [{np.percentile(v, 25):.2f}-{np.percentile(v, 75):.2f}]", str(v.size)]
                if v.size
                else ["-", "0"]
            )
        rows.append(cells)
    click.echo(f"real files: {res['n_real_files']}")
    click.echo(_table(rows))


@synth.command("spectrograms")
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the PNGs."
)
@click.option(
    "--real",
    "real_dir",
    type=click.Path(exists=True, file_okay=False),
    help="Folder with real yellowhammer recordings to show next to the generated songs.",
)
@click.option("--seed", default=0, show_default=True)
def spectrograms_cmd(out_dir, real_dir, seed) -> None:
    """One PNG per dialect: generated song next to a real song (PNGs of real audio: do not commit)."""
    from model_export.synth.evaluate import spectrogram_pngs

    for p in spectrogram_pngs(out_dir, real_dir, seed):
        click.echo(str(p))


@synth.command("baseline")
@click.option("--n-birds", default=16, show_default=True, help="Birds per dialect (half train, half test).")
@click.option("--songs-per-bird", default=8, show_default=True)
@click.option("--snr", default="5,25", show_default=True)
@click.option("--background", "background_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def baseline_cmd(n_birds, songs_per_bird, snr, background_dir, seed, as_json) -> None:
    """Dialect separability: terminal-phrase features + logistic regression, split by bird."""
    from model_export.synth.evaluate import baseline

    with click.progressbar(
        length=8 * n_birds * songs_per_bird, label="features", file=click.get_text_stream("stderr")
    ) as bar:
        res = baseline(
            n_birds, songs_per_bird, _range(snr), seed, background_dir=background_dir, progress=bar.update
        )
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    click.echo(
        f"train {res['n_train']} songs / test {res['n_test']} songs (disjoint birds); "
        f"overall accuracy {res['overall_accuracy']:.3f}"
    )
    rows = [["class", "accuracy"]] + [[c, f"{a:.3f}"] for c, a in res["per_class_accuracy"].items()]
    click.echo(_table(rows))
    click.echo("confusion (rows true, cols predicted): " + " ".join(res["classes"]))
    for c, row in zip(res["classes"], res["confusion"], strict=False):
        click.echo(f"  {c:<10} " + " ".join(f"{v:3d}" for v in row))


@synth.command("speed")
@click.option("--n", default=200, show_default=True, help="Songs to render.")
@click.option("--sample-rate", default=24000, show_default=True)
def speed_cmd(n, sample_rate) -> None:
    """Songs rendered per second (one core) and realtime factor."""
    import numpy as np

    from model_export.synth import DIALECTS, make_bird, render_song

    rng = np.random.default_rng(0)
    birds = [make_bird(d, rng, i) for i, d in enumerate(DIALECTS)]
    t0 = time.perf_counter()
    samples = 0
    for i in range(n):
        a, _ = render_song(birds[i % len(birds)], rng, sample_rate)
        samples += a.size
    dt = time.perf_counter() - t0
    click.echo(f"{n / dt:.0f} songs/s, {samples / sample_rate / dt:.0f}x realtime at {sample_rate} Hz")


def _set_wide(real_dir, cache="runs/cache", families=None) -> list:
    """Make ``wide`` the process's variety, with the library measured from the train split."""
    from model_export.labels import default_root
    from model_export.synth.syllable_library import load_library
    from model_export.synth.variety import set_variety

    lib = load_library(cache, real_dir or default_root())
    set_variety("wide", lib, families)
    return lib


@synth.command("syllable-check")
@click.option("--real", "real_dir", type=click.Path(exists=True, file_okay=False), help="realaudio folder.")
@click.option(
    "--cache", default="runs/cache", show_default=True, help="Syllable library cache (as train --cache)."
)
@click.option("--n-birds", default=6, show_default=True, help="Generated birds per dialect and variety.")
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def syllable_check_cmd(real_dir, cache, n_birds, seed, as_json) -> None:
    """Initial-syllable features (duration, period, start/peak/end frequency, bandwidth, slope, h2):
    real train-split songs vs the base and the wide generator (median [IQR] (n), KS statistic)."""
    from model_export.synth.syllable_check import compare, generated_syllables, table

    real = _set_wide(real_dir, cache)
    groups = {v: generated_syllables(v, n_birds, seed) for v in ("base", "wide")}
    res = compare(real, groups)
    click.echo(json.dumps(res, indent=1) if as_json else table(res))


def main() -> None:
    """Stand-alone entry point (``python -m model_export.synth_cli``)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    synth()


if __name__ == "__main__":
    main()
