"""Fixtures for the edge daemon tests (helpers live in ``helpers.py``)."""

from __future__ import annotations

import pytest

from tests.edge.helpers import _mount_tmpfs, _umount


@pytest.fixture(scope="session")
def models():
    """The shipped models (placeholders until the trained ones land) through the real adapters."""
    from edge.adapters.models.tflite import TFLiteDetector, TFLiteEncoder
    from edge.core.frontend import FrontendConfig

    cfg = FrontendConfig()
    return TFLiteDetector(frontend=cfg), TFLiteEncoder(frontend=cfg)


@pytest.fixture()
def tiny_fs(tmp_path):
    """A real 2 MB tmpfs (needs root and mount); tests fall back to a simulated failure without."""
    path = tmp_path / "tiny"
    if not _mount_tmpfs(path, "2m"):
        pytest.skip("cannot mount a tmpfs here (not root?)")
    yield path
    _umount(path)


@pytest.fixture()
def small_fs(tmp_path):
    """A real 8 MB tmpfs as the data directory (needs root and mount): the disk-full tests."""
    path = tmp_path / "small"
    if not _mount_tmpfs(path, "8m"):
        pytest.skip(
            "cannot mount a tmpfs here (needs root and mount(8)); the disk-full tests need a real one"
        )
    yield path
    _umount(path)
