"""``yh-model train all``: both shipped models with the recipes that made them, in one command.

The recipes are :data:`SHIPPED_RECIPE`; ``tests/model_export/test_train_all.py`` checks them against
the ``reproduce`` lines of the shipped manifests (``edge/models/*.json``), so that the one command
keeps making what is shipped. Three steps, each the command of its own (same code, same manifest):

1. ``train detector-real``: the detector on synthetic scenes, real train-split recordings,
   composites through recorder chains and mined hard negatives;
2. ``train encoder-dr``: the dialect encoder with domain randomisation;
3. ``complete-head``: the encoder's complete head, fitted on the training generator's songs and
   stored in its manifest;
4. ``support-threshold --write``: the detector's support threshold, chosen on its real
   validation files and stored in its manifest.

``--labels`` adds a researcher's own labelled recordings to steps 1 and 2.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click

from model_export.geometry import EDGE_MODELS
from model_export.runkit import labels_option

#: The options of the shipped models' commands that differ from the commands' defaults.
SHIPPED_RECIPE = {
    "detector-real": {"width": 2.0, "synth_variety": "wide", "codec": 0.2},
    "encoder-dr": {"epochs": 18, "synth_variety": "wide-glide"},
}


def recipe_params(step: str, **overrides) -> dict:
    """The keyword arguments of a recipe step: the shipped options, then ``overrides`` where not None."""
    return {**SHIPPED_RECIPE[step], **{k: v for k, v in overrides.items() if v is not None}}


@click.command("all")
@click.option(
    "--out", default=str(EDGE_MODELS), show_default=True, type=click.Path(file_okay=False, path_type=Path)
)
@click.option("--cache", default="runs/cache", show_default=True, type=click.Path(path_type=Path))
@click.option("--real", default=None, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of real recordings (default $YH_REALAUDIO or ../shared/realaudio); needed by the detector.")  # fmt: skip
@click.option("--labels", "labels_csv", default=None, callback=labels_option,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Label CSV of your own recordings (file,onset_s,offset_s,dialect[,complete,bird_id,split]), "
              "added to both models' training and validation.")  # fmt: skip
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--det-epochs", default=None, type=int, help="Detector epochs (recipe: 8, then 4 after mining)."
)
@click.option("--det-hard-epochs", default=None, type=int)
@click.option("--det-steps", default=None, type=int, help="Detector batches per epoch (recipe: 250).")
@click.option("--det-scale", default=None, type=float, help="Synthetic scene set size (recipe: 0.4).")
@click.option("--composites", default=None, type=int, help="Composite clips (recipe: 3000).")
@click.option("--enc-epochs", default=None, type=int, help="Encoder epochs (recipe: 18).")
@click.option("--enc-scale", default=None, type=float, help="Encoder set size (recipe: 1.0).")
@click.pass_context
def train_all_cmd(ctx, out, cache, real, labels_csv, seed, det_epochs, det_hard_epochs, det_steps, det_scale,
                  composites, enc_epochs, enc_scale):  # fmt: skip
    """Train and export both shipped models with their shipped recipes (detector-real, encoder-dr,
    complete-head, support-threshold; docs/models.md "Reproduce"): about 1.5 h on two cores, most of it building the
    datasets the first time (cached in CACHE). The options change a recipe for a quicker or bigger run."""
    from model_export.complete_head import complete_head_cmd
    from model_export.detector.cli import train_detector_real_cmd
    from model_export.detector.support import support_threshold_cmd
    from model_export.encoder_dr import train_encoder_dr_cmd

    if real is not None:  # every step reads the real recordings from here
        os.environ["YH_REALAUDIO"] = str(Path(real).resolve())
    t0, out = time.time(), Path(out)
    det = recipe_params("detector-real", out=out, cache=cache, real=real, labels_csv=labels_csv, seed=seed,
                        epochs=det_epochs, hard_epochs=det_hard_epochs, steps=det_steps, scale=det_scale,
                        composites=composites)  # fmt: skip
    click.echo(f"train all 1/4: detector-real {_show(det)}", err=True)
    ctx.invoke(train_detector_real_cmd, **det)
    enc = recipe_params("encoder-dr", out=out, cache=cache, labels_csv=labels_csv, seed=seed, epochs=enc_epochs,
                        scale=enc_scale)  # fmt: skip
    click.echo(f"train all 2/4: encoder-dr {_show(enc)}", err=True)
    ctx.invoke(train_encoder_dr_cmd, **enc)
    click.echo("train all 3/4: complete-head", err=True)
    ctx.invoke(complete_head_cmd, encoder_path=out / "encoder.tflite", cache=cache, seed=seed,
               scale=enc.get("scale", 1.0))  # fmt: skip
    click.echo("train all 4/4: support-threshold", err=True)
    ctx.invoke(support_threshold_cmd, models=out, sets=(), write=True)
    versions = {
        k: json.loads((out / f"{k}.json").read_text(encoding="utf-8"))["version"]
        for k in ("detector", "encoder")
    }
    click.echo(json.dumps({"out": str(out), **versions, "total_seconds": round(time.time() - t0)}))


def _show(params: dict) -> str:
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in params.items() if v is not None)
