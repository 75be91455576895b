"""``yh-edge doctor``: every component's own check, in the order a volunteer would look.

Each check is made by the component it concerns (``SqliteStore.check``, ``mic.check``,
``clock.check``, ...); this module only decides which apply to a configuration. Checks never
create state: a missing database is reported, not created.
"""

from __future__ import annotations

from pathlib import Path

from edge.core.config import Config
from edge.core.errors import YellowhammerError
from edge.core.records import Check


def check_config(config_path: Path | None) -> Check:
    return Check("config", "ok", str(config_path) if config_path else "defaults (no config file)")


def check_models(cfg: Config) -> Check:
    """The configured models load, match their manifests and each other's frontend."""
    from edge.app.compose import load_models

    try:
        det, enc = load_models(cfg)
    except YellowhammerError as exc:
        return Check("models", "fail", str(exc),
                     "model files missing, corrupt, or exported for another frontend: reinstall the package or "
                     "copy a matching .tflite/.json pair")  # fmt: skip
    v = getattr(enc, "verifier", None)
    cascade = ""
    if v is not None:
        cascade = (f", song verifier {'on' if cfg.models.verifier else 'off (models.verifier)'} (threshold "
                   f"{v.threshold:.2f})")  # fmt: skip
    return Check("models", "ok", f"detector {det.version} (window {det.window_frames}/{det.hop_frames} frames, "
                                 f"threshold {det.threshold:.2f}{_support(det)}), encoder {enc.version} "
                                 f"({enc.embedding_dim}-d)"
                                 + cascade)  # fmt: skip


def _support(det) -> str:
    sup = getattr(det, "support_threshold", None)
    return f", or two consecutive windows at {sup:.2f}" if sup else ""


def check_audio(cfg: Config) -> Check:
    if cfg.audio.source == "mic":
        from edge.adapters.audio import mic

        return mic.check(cfg.audio.device)
    from edge.adapters.audio import replay

    return replay.check(cfg.audio.replay_path)


def check_broker(cfg: Config) -> list[Check]:
    if not cfg.mqtt.enabled:
        return [Check("broker", "ok", "sync disabled (mqtt.enabled = false)")]
    from edge.adapters.mqtt.probe import check_connection, check_identity
    from edge.adapters.mqtt.publisher import MqttPublisher

    basic = MqttPublisher.check(cfg)
    out = [check_identity(cfg.device_id, cfg.mqtt.username), *basic]
    if all(c.status == "ok" for c in basic):
        out += check_connection(cfg)
    return out


def run_checks(cfg: Config, config_path: Path | None) -> list[Check]:
    """Every doctor check for this configuration."""
    from edge.adapters.store.sqlite import SqliteStore
    from edge.adapters.system import clock
    from edge.adapters.system.probes import check_disk
    from edge.app.health import check_daemon

    return [
        check_config(config_path),
        check_models(cfg),
        SqliteStore.check(cfg.db_path),
        check_disk(cfg.device.data_dir, cfg.store.min_free_mb * 1024 * 1024),
        clock.check(),
        check_audio(cfg),
        *check_broker(cfg),
        check_daemon(cfg.device.data_dir),
    ]
