"""Typed configuration trees loaded from TOML with environment overrides (recorder and server).

A tree is a frozen dataclass whose fields are sections (frozen dataclasses of scalars).

- Unknown keys are rejected with their dotted path (a typo never passes silently).
- ``<PREFIX><SECTION>__<KEY>=value`` overrides a key (e.g. ``YH_MQTT__HOST=broker.lan``); values
  are parsed as TOML scalars, falling back to a plain string; ``str`` fields stay strings.
- Values are checked by type here and by each section's ``__post_init__``; every problem is one
  line naming the file and the key.
- The objects do no I/O (secrets are file names, read by whoever needs them).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")


class ConfigFileError(ValueError):
    """A configuration problem; ``str()`` is one line naming the file and the key."""


def _coerce(value: Any, typ: Any, where: str) -> Any:
    """Check/convert a TOML value to a field type."""
    allow_none = False
    if getattr(typ, "__args__", None) and type(None) in typ.__args__:
        allow_none = True
        typ = next(a for a in typ.__args__ if a is not type(None))
    if value is None and allow_none:
        return None
    if typ is bool:
        if isinstance(value, bool):
            return value
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif typ is str:
        if isinstance(value, str):
            return value
    raise ConfigFileError(f"{where}: expected {typ.__name__}, got {type(value).__name__} {value!r}")


def _build(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise ConfigFileError(f"{where or 'config'}: expected a table, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigFileError(f"unknown config key {key!r} (known: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in data.items():
        sub = f"{where}.{name}" if where else name
        typ = hints[name]
        if dataclasses.is_dataclass(typ):
            kwargs[name] = _build(typ, value, sub)
        else:
            kwargs[name] = _coerce(value, typ, sub)
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ConfigFileError(str(exc)) from None


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _apply_env(root: type, data: dict, env: dict[str, str], prefix: str) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for key, raw in sorted(env.items()):
        if not key.startswith(prefix) or "__" not in key:
            continue
        section, _, name = key[len(prefix) :].lower().partition("__")
        if section not in {f.name for f in fields(root)}:
            raise ConfigFileError(f"environment {key}: unknown config section {section!r}")
        table = out.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigFileError(f"config: {section} must be a table")
        hints = get_type_hints(get_type_hints(root)[section])
        # strings stay strings (a device id of "007" is not a number)
        table[name] = raw if hints.get(name) is str else _parse_env_value(raw)
    return out


def load_tree(root: type[T], path: str | os.PathLike | None, env: dict[str, str] | None, prefix: str) -> T:
    """Load ``root`` from a TOML file (defaults when ``path`` is None) plus environment overrides."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigFileError(f"{p}: config file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigFileError(f"{p}: cannot read config ({exc})") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigFileError(f"{p}: TOML syntax error: {exc}") from None
    try:
        data = _apply_env(root, data, dict(os.environ) if env is None else env, prefix)
        return _build(root, data, "")
    except ConfigFileError as exc:
        raise ConfigFileError(f"{path}: {exc}" if path else str(exc)) from None


def to_toml(cfg) -> str:
    """Render a config as TOML (for ``config show`` and the installer's default file)."""
    lines = []
    for section, values in dataclasses.asdict(cfg).items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if value is None:
                lines.append(f"# {key} =")
            elif isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif isinstance(value, (int, float)):
                lines.append(f"{key} = {value}")
            else:
                lines.append(f'{key} = "{_escape(str(value))}"')
        lines.append("")
    return "\n".join(lines)


def _escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')
