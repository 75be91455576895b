"""``yh-edge``: the command line of the recorder, a thin layer over the library.

Commands parse options and format output; the work is in ``edge.app`` (composition, checks,
status, output) and the components. Logging is configured here and only here (stderr, so
journald keeps it). Expected errors (:class:`~edge.core.errors.YellowhammerError`) become
one-line messages (:class:`edge.kit.cli.Group`). Commands live in :mod:`.analyze` (features,
analyze) and :mod:`.db` (database maintenance); ``sync`` in :mod:`edge.app.sync`.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from edge import __version__
from edge.app import runtime  # noqa: F401  (first: single-threaded BLAS before numpy loads)
from edge.app.cli_options import config_option
from edge.app.config import load_config, to_toml
from edge.app.sync import sync_command
from edge.core.errors import YellowhammerError
from edge.kit.cli import Group, json_option, setup_logging, verbosity_options

log = logging.getLogger(__name__)


@click.group(
    cls=Group, expected=(YellowhammerError,), context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="yh-edge")
@verbosity_options
def main(verbose: int, quiet: bool) -> None:
    """Yellowhammer dialect monitor: the recorder (Raspberry Pi) side."""
    setup_logging(verbose, quiet)


@main.group("config")
def config_group() -> None:
    """Check and show the configuration."""


@config_group.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def config_validate(file: Path) -> None:
    """Check FILE (with environment overrides) and report the first problem."""
    load_config(file)
    click.echo(f"{file}: OK")


@config_group.command("show")
@config_option
@click.option("--json", "as_json", is_flag=True, help="JSON instead of TOML.")
def config_show(config_path: Path | None, as_json: bool) -> None:
    """Print the effective configuration (file + environment + defaults)."""
    cfg = load_config(config_path)
    click.echo(json.dumps(cfg.to_dict(), indent=2) if as_json else to_toml(cfg))


# -- run -------------------------------------------------------------------------------
@main.command("run")
@config_option
@click.option("--once", is_flag=True, help="Exit when a replay source has been played through.")
@click.option(
    "--replay",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Replay these WAV files/folders instead of the configured source (repeatable).",
)
def run(config_path: Path | None, once: bool, replay: tuple[Path, ...]) -> None:
    """The recorder daemon: listen, detect, embed and store until SIGTERM/SIGINT.

    Uses the microphone or WAV replay of the config; syncs over MQTT when mqtt.enabled. Under
    systemd (Type=notify) it reports readiness and pings the watchdog.
    """
    import dataclasses

    from edge.app.daemon import Daemon

    cfg = load_config(config_path)
    if replay:
        audio = dataclasses.replace(cfg.audio, source="replay", replay_path=":".join(str(p) for p in replay))
        cfg = dataclasses.replace(cfg, audio=audio)
    sys.exit(Daemon(cfg, once=once).run())


# -- status ------------------------------------------------------------------------------
@main.command("status")
@config_option
@json_option
def status(config_path: Path | None, as_json: bool) -> None:
    """Counts, last detection, unsynced backlog, disk, input level and uptime of this recorder.

    Exit status: 0 running with nothing wrong, 1 a problem (listed: no audio input, silent or
    clipping input, damaged database, detections held in memory or lost), 3 not running."""
    from edge.app.status import collect_status, exit_code, format_status

    st = collect_status(load_config(config_path))
    click.echo(json.dumps(st, indent=1, default=str) if as_json else format_status(st))
    sys.exit(exit_code(st))


# -- doctor ------------------------------------------------------------------------------
@main.command("doctor")
@config_option
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
def doctor(config_path: Path | None, as_json: bool) -> None:
    """Check microphone, models, database, disk, clock and broker; exit 1 on any failure."""
    from edge.app.checks import run_checks

    cfg = load_config(config_path)
    checks = [c.as_dict() for c in run_checks(cfg, config_path)]
    if as_json:
        click.echo(json.dumps(checks, indent=1))
    else:
        for c in checks:
            click.echo(f"{c['status'].upper():4}  {c['check']}: {c['detail']}")
            if c["status"] != "ok" and c["cause"]:
                click.echo(f"      likely cause: {c['cause']}")
    if any(c["status"] == "fail" for c in checks):
        sys.exit(1)


@config_group.command("default")
def config_default() -> None:
    """Print the bundled, commented default config (a starting point for /etc/yellowhammer)."""
    click.echo(
        (Path(__file__).resolve().parents[2] / "data" / "edge.toml").read_text(encoding="utf-8"), nl=False
    )


main.add_command(sync_command)

from edge.app.cli import analyze as _analyze  # noqa: E402,F401  (registers features, analyze)
from edge.app.cli import db as _db  # noqa: E402,F401  (registers db)

if __name__ == "__main__":  # pragma: no cover
    main()
