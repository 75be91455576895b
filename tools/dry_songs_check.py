"""XlB / XsB / BBe on songs rendered alone: is a confusion in the encoder or in the recording?

Renders ``--birds`` birds of each dialect (three complete songs each) with the training generator's
wide variety (``--generator train``) or the independent generator (``valsynth``), dry or through the
independent generator's propagation at ``--distance`` m (no background, no noise), embeds each with
the int8 encoder on the runtime's end-aligned window, and prints 1-NN from another bird per dialect::

    python tools/dry_songs_check.py --generator valsynth --distance 20 [--encoder M/encoder.tflite]

Used for docs/models.md, "Where XlB and XsB are lost".
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_valsynth_encoder import one_nn_other_bird  # noqa: E402

SR = 24000
DIALECTS = ("XlB", "XsB", "BBe")


def _renderer(generator: str, seed: int):
    """``song(dialect, k, rng) -> list of dry float32 songs and their offsets`` of one new bird."""
    if generator == "valsynth":
        from model_export.valsynth.bird import make_bird, render_song
        from model_export.valsynth.syllables import region_pool

        pool = region_pool(seed, 0)

        def song(d, k, rng):
            bird = make_bird(d, rng, pool, bird_id=f"{d}{k}")
            out = [render_song(bird, rng, SR, complete=True, variant="plain") for _ in range(3)]
            return [(a, t.offset_s) for a, t in out]

        return song
    from model_export.runkit import real_folder
    from model_export.synth.song import make_bird
    from model_export.synth.song_render import render_song
    from model_export.synth.syllable_library import synth_cache

    synth_cache(Path("runs/cache"), "wide", real_folder(None))  # the wide variety and its library

    def song(d, k, rng):
        bird = make_bird(d, rng, bird_id=k, variety="wide")
        out = [render_song(bird, rng, SR, complete=True) for _ in range(3)]
        return [(a, e.offset_s) for a, e in out]

    return song


@click.command()
@click.option("--generator", type=click.Choice(["train", "valsynth"]), default="valsynth", show_default=True)
@click.option("--distance", default=0.0, show_default=True, help="m; 0 = dry.")
@click.option("--birds", default=30, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--encoder", "encoder_path", default="edge/models/encoder.tflite", show_default=True,
              type=click.Path(exists=True, path_type=Path))  # fmt: skip
def main(generator: str, distance: float, birds: int, seed: int, encoder_path: Path) -> None:
    from edge.adapters.models.tflite import TFLiteEncoder
    from model_export.embed_songs import encoder_margin, song_end_frame, stream_frames
    from model_export.valsynth.acoustics import draw_path, propagate

    enc = TFLiteEncoder(encoder_path)
    cfg, w, margin = enc.frontend, enc.window_frames, encoder_margin(enc)
    rng = np.random.default_rng(seed)  # the birds and songs: the same at every --distance
    path_rng = np.random.default_rng([seed, 1])  # the paths and the dither
    song = _renderer(generator, seed)
    z, labels, bird_ids = [], [], []
    pad = np.zeros(SR, np.float32)  # a second of quiet either side: the window fits
    for d in DIALECTS:
        for k in range(birds):
            for audio, offset_s in song(d, k, rng):
                x = np.concatenate([pad, audio.astype(np.float32), pad])
                if distance > 0:
                    x = propagate(x, SR, draw_path(path_rng, distance), path_rng).astype(np.float32)
                x = 0.5 * x / max(float(np.abs(x).max()), 1e-9) + path_rng.normal(0, 1e-4, x.size).astype(
                    np.float32
                )
                end = song_end_frame(1.0 + offset_s, cfg) + margin
                z.append(enc.embed(stream_frames(x, SR, cfg)[end - w : end]))
                labels.append(d)
                bird_ids.append(f"{d}{k}")
    per = one_nn_other_bird(np.array(z), labels, bird_ids)["per_label"]
    where = "dry" if distance <= 0 else f"propagated {distance:g} m"
    click.echo(f"{generator} generator, {where}, {birds} birds x 3 songs per dialect, {encoder_path}")
    for d in DIALECTS:
        click.echo(
            f"  {d}: 1-NN other bird {per[d]['accuracy']:.2f}  { {str(k): v for k, v in per[d]['neighbours'].items()} }"
        )


if __name__ == "__main__":
    main()
