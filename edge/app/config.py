"""The edge configuration: one typed tree (:mod:`edge.core.config`), loaded from TOML, with
environment overrides.

- Unknown keys are rejected with their dotted path (a typo never passes silently).
- ``YH_<SECTION>__<KEY>=value`` overrides a key (e.g. ``YH_MQTT__HOST=broker.lan``); values are
  parsed as TOML scalars, falling back to a plain string.
- Every number must be finite: ``nan`` and ``inf`` (valid TOML) pass comparisons such as
  ``<= 0`` and would break the daemon later, so they are refused here, naming the key.
- Secrets are never inline: ``mqtt.password_file`` names a file, resolved against systemd's
  ``$CREDENTIALS_DIRECTORY`` when relative (``LoadCredential=``); outside systemd (``doctor``,
  ``sync``, ``status`` run by hand from any directory) a relative name is the file beside the
  config file (``/etc/yellowhammer/mqtt-password``, the file ``LoadCredential=`` loads).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path

from edge.core.config import Config
from edge.core.errors import ConfigError
from edge.kit.config import ConfigFileError, load_tree, to_toml

ENV_PREFIX = "YH_"

__all__ = ["ENV_PREFIX", "Config", "load_config", "to_toml"]


def load_config(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> Config:
    """Load a config file (or defaults when ``path`` is None) and apply environment overrides.

    Raises
    ------
    ConfigError
        Unreadable file, TOML syntax error, unknown key, wrong type or invalid value; the
        message is one line naming the file and the key.
    """
    try:
        cfg = load_tree(Config, path, env, ENV_PREFIX)
    except ConfigFileError as exc:
        raise ConfigError(str(exc)) from None
    bad = _non_finite(cfg)
    if bad:
        key, value = bad
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{key} = {value}: must be a finite number")
    return _beside_config(cfg, path, os.environ if env is None else env)


SECRET_FILES = ("password_file", "ca_file", "cert_file", "key_file")


def _beside_config(cfg: Config, path: str | os.PathLike | None, env: Mapping[str, str]) -> Config:
    """Relative mqtt secret files resolved beside the config file, unless systemd hands them
    over (``CREDENTIALS_DIRECTORY`` set in ``env``, the environment the overrides came from: the
    client resolves them there at connect time)."""
    if path is None or env.get("CREDENTIALS_DIRECTORY"):
        return cfg
    here = Path(path).resolve().parent
    moved = {
        k: str(here / v) for k in SECRET_FILES if (v := getattr(cfg.mqtt, k)) and not Path(v).is_absolute()
    }
    return dataclasses.replace(cfg, mqtt=dataclasses.replace(cfg.mqtt, **moved)) if moved else cfg


def _non_finite(cfg: Config) -> tuple[str, float] | None:
    """The first number in the tree that is NaN or infinite, as (dotted key, value)."""
    for section in dataclasses.fields(cfg):
        values = getattr(cfg, section.name)
        for f in dataclasses.fields(values):
            v = getattr(values, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                return f"{section.name}.{f.name}", v
    return None
