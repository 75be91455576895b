"""The installed software's version (package metadata), for every side: edge, server, model tools."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("yellowhammer")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
