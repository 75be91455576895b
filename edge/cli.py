"""``yh-edge``: the command line of the recorder.

Logging is configured here and only here (stderr, so journald keeps it). Expected errors
(:class:`~edge.errors.YellowhammerError`) become one-line ``click.ClickException`` messages.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path

import click

from . import __version__
from .config import load_config, to_toml
from .errors import YellowhammerError

log = logging.getLogger(__name__)


def setup_logging(verbose: int, quiet: bool = False) -> None:
    """Configure the root logger once, for the CLI process."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def friendly_errors(fn):
    """Turn expected domain errors into one-line CLI errors (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except YellowhammerError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


config_option = click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="YH_CONFIG",
    default=None,
    help="Config file (TOML); also $YH_CONFIG. Defaults apply when omitted.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="yh-edge")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def main(verbose: int, quiet: bool) -> None:
    """Yellowhammer dialect monitor: the recorder (Raspberry Pi) side."""
    setup_logging(verbose, quiet)


@main.group("config")
def config_group() -> None:
    """Check and show the configuration."""


@config_group.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@friendly_errors
def config_validate(file: Path) -> None:
    """Check FILE (with environment overrides) and report the first problem."""
    load_config(file)
    click.echo(f"{file}: OK")


@config_group.command("show")
@config_option
@click.option("--json", "as_json", is_flag=True, help="JSON instead of TOML.")
@friendly_errors
def config_show(config_path: Path | None, as_json: bool) -> None:
    """Print the effective configuration (file + environment + defaults)."""
    cfg = load_config(config_path)
    click.echo(json.dumps(cfg.to_dict(), indent=2) if as_json else to_toml(cfg))


@main.command("features")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
@friendly_errors
def features(paths: tuple[Path, ...], as_json: bool) -> None:
    """Run the log-mel frontend on WAV files and summarise it (a check of audio input)."""
    import numpy as np

    from .frontend import FrontendConfig, StreamingLogMel, mel_frequencies
    from .sources import ReplaySource

    cfg = FrontendConfig()
    failed = []
    src = ReplaySource(paths, cfg.sample_rate, on_error=lambda p, e: failed.append(str(e)))
    fe = StreamingLogMel(cfg)
    current, frames, seconds = None, [], 0.0

    def report():
        if current is None:
            return
        m = np.concatenate(frames) if frames else np.zeros((0, cfg.n_mels), np.float32)
        peak = float(mel_frequencies(cfg)[int(m.mean(axis=0).argmax())]) if len(m) else 0.0
        row = {
            "file": current,
            "seconds": round(seconds, 3),
            "frames": int(m.shape[0]),
            "mean_db": round(float(m.mean()), 2) if len(m) else None,
            "peak_band_hz": round(peak),
        }
        click.echo(
            json.dumps(row)
            if as_json
            else f"{current}: {row['seconds']} s, {row['frames']} frames, mean {row['mean_db']} dB, "
            f"loudest band {row['peak_band_hz']} Hz"
        )

    for chunk in src.chunks():
        if chunk.stream_start:
            report()
            fe.reset()
            current, frames, seconds = chunk.source, [], 0.0
        frames.append(fe.process(chunk.samples))
        seconds += chunk.duration
    report()
    for msg in failed:
        click.echo(f"error: {msg}", err=True)
    if failed:
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
