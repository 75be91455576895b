"""The domain exception hierarchy.

Every error a user can cause (bad audio, bad config, bad model, full disk) derives from
:class:`YellowhammerError`; the CLI turns these into one-line messages without a traceback.
"""

from __future__ import annotations


class YellowhammerError(Exception):
    """Base class of every expected, user-facing error."""


class AudioFormatError(YellowhammerError):
    """An audio file is empty, truncated, not a WAV, or in a format we refuse."""


class AudioDeviceError(YellowhammerError):
    """The capture device is missing, busy or failed."""


class ConfigError(YellowhammerError):
    """The configuration file or an environment override is malformed."""


class ModelError(YellowhammerError):
    """A model file is missing, corrupt, or does not match its manifest or the frontend."""


class StoreError(YellowhammerError):
    """The detection store cannot be opened or written (read-only, full disk, corrupt)."""


class SyncError(YellowhammerError):
    """The MQTT publisher cannot reach or authenticate with the broker."""
