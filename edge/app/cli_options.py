"""Click options shared by ``yh-edge`` and the stand-alone ``python -m edge.adapters.mqtt.publisher`` (which
must not import the whole CLI)."""

from __future__ import annotations

from pathlib import Path

import click

config_option = click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="YH_CONFIG",
    default=None,
    help="Config file (TOML); also $YH_CONFIG. Defaults apply when omitted.",
)
