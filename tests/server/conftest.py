"""Fixtures shared by the server tests."""

from __future__ import annotations

import pytest

from server.storage.sqlite import SqliteStorage


@pytest.fixture()
def storage(tmp_path):
    """A fresh server database in the test's temporary directory."""
    s = SqliteStorage(tmp_path / "server.sqlite")
    yield s
    s.close()
