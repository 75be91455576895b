"""The ``yh-server`` group: its global options (config file, database, verbosity), the
configuration and storage every command opens through the click context, and ``config``.

Logging is configured here and only here. Expected errors become one-line
``click.ClickException`` messages. The commands are in :mod:`.data`, :mod:`.clusters` and
:mod:`.research`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from edge.kit.cli import Group, json_option, setup_logging, verbosity_options
from edge.kit.config import to_toml
from edge.kit.version import __version__

from ..config import ServerConfig, load_server_config
from ..errors import ServerError
from ..storage import Storage, open_storage


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


@click.group(cls=Group, expected=(ServerError,), context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="yh-server")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              envvar="YH_SERVER_CONFIG", default=None, help="Server config (TOML); also $YH_SERVER_CONFIG.")  # fmt: skip
@click.option("--db", "db_path", type=str, envvar="YH_SERVER_DB", default=None,
              help="Server database: a SQLite file or a postgresql://user@host:port/db URL (overrides storage.db; "
              "default yh-server.sqlite); also $YH_SERVER_DB.")  # fmt: skip
@verbosity_options
@click.pass_context
def main(
    ctx: click.Context, config_path: Path | None, db_path: str | None, verbose: int, quiet: bool
) -> None:
    """Yellowhammer dialect monitor: the server side (ingest, clustering, researcher access)."""
    setup_logging(verbose, quiet)
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path
    ctx.obj["db"] = db_path


def server_config(ctx: click.Context) -> ServerConfig:
    if "config" not in ctx.obj:
        cfg = load_server_config(ctx.obj["config_path"])
        if ctx.obj["db"] is not None:
            cfg = dataclasses.replace(cfg, storage=dataclasses.replace(cfg.storage, db=str(ctx.obj["db"])))
        ctx.obj["config"] = cfg
    return ctx.obj["config"]


def db_address(ctx: click.Context) -> str:
    return server_config(ctx).storage.db


def open_db(ctx: click.Context, readonly: bool = False) -> Storage:
    return open_storage(db_address(ctx), readonly=readonly)


@main.group("config")
def config_group() -> None:
    """Check and show the server configuration."""


@config_group.command("validate")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def config_validate(file: Path) -> None:
    """Check FILE (with environment overrides) and report the first problem."""
    load_server_config(file)
    click.echo(f"{file}: OK")


@config_group.command("show")
@json_option
@click.pass_context
def config_show(ctx, as_json: bool) -> None:
    """Print the effective configuration (file + environment + defaults + --db)."""
    cfg = server_config(ctx)
    click.echo(json.dumps(dataclasses.asdict(cfg), indent=2) if as_json else to_toml(cfg))
