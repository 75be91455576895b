"""Atomic file writes: nothing half-written ever stands under the final name."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(
    path: str | os.PathLike, data: bytes | str | Callable[[Path], object], fsync: bool = True
) -> Path:
    """Write ``path`` through a temporary file in the same directory, then rename it into place.

    ``data`` is the content (bytes or UTF-8 text) or a function that writes the temporary path
    it is given (for libraries that write files themselves, e.g. a Parquet writer). On any
    failure the temporary file is removed and the old file, if any, is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        if callable(data):
            data(tmp)
        else:
            raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
            with open(tmp, "wb") as fh:
                fh.write(raw)
                if fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path
