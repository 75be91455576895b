"""``yh-model``: synthesise data, train, export and evaluate the models."""

from __future__ import annotations

import logging
import sys

import click

from edge.kit.version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="yh-model")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
def main(verbose: int) -> None:
    """Yellowhammer dialect monitor: model building (synthesis, training, export, evaluation)."""
    level = logging.DEBUG if verbose > 1 else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def _register() -> None:
    """Attach the sub-commands whose modules exist (each imports its heavy deps lazily)."""
    import importlib

    for module, attr in (
        ("model_export.synth_cli", "synth"),
        ("model_export.train_cli", "commands"),
        ("model_export.detector.cli", "commands"),
        ("model_export.valsynth.cli", "valsynth"),
        ("model_export.embed_songs", "embed_cmd"),
        ("model_export.complete_head", "complete_head_cmd"),
        ("model_export.verifier", "verifier_cmd"),
    ):
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            if exc.name and exc.name.startswith("model_export"):
                continue
            raise
        obj = getattr(mod, attr, None)
        if isinstance(obj, click.Command):
            main.add_command(obj)
        elif isinstance(obj, (list, tuple)):
            for cmd in obj:
                main.add_command(cmd)


_register()
