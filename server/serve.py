"""``serve``: the researchers' web app (:mod:`server.web.app`, Flask) behind waitress, a small
pure-Python production WSGI server; 127.0.0.1 by default.

The write token (labels, cluster names, clip requests) comes from ``serve.token_file`` (a
relative name is looked up in systemd's ``$CREDENTIALS_DIRECTORY``); without one a random token
is made at each start and the login link is logged, as Jupyter does. ``serve.read_only`` refuses
every write.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
from pathlib import Path

from .config import ServeConfig
from .errors import ServerConfigError
from .storage import Storage

log = logging.getLogger(__name__)


def read_token(settings: ServeConfig) -> tuple[str, bool]:
    """The write token and whether it was generated now (no ``token_file``)."""
    if settings.read_only:
        return "", False
    if not settings.token_file:
        return secrets.token_urlsafe(24), True
    path = Path(settings.token_file)
    if not path.is_absolute() and os.environ.get("CREDENTIALS_DIRECTORY"):
        path = Path(os.environ["CREDENTIALS_DIRECTORY"]) / path
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ServerConfigError(f"serve.token_file {path}: cannot read ({exc.strerror or exc})") from None
    if len(token) < 16:
        raise ServerConfigError(f"serve.token_file {path}: the token must have at least 16 characters")
    return token, False


class WebServer:
    """The web app on a waitress server; :meth:`serve_forever` blocks until :meth:`shutdown`."""

    def __init__(self, storage: Storage, settings: ServeConfig, token: str, threads: int = 8) -> None:
        from waitress import create_server

        from .web.app import MAX_BODY_BYTES, create_app

        # a page with a montage asks for many pictures at once; waitress warns of each queued one
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        self.storage = storage
        self.settings = settings
        self.app = create_app(storage, settings, token)
        # waitress receives a whole body (beyond 512 KiB into a temporary file) before the app
        # refuses it above MAX_BODY_BYTES with a JSON 413; far above, waitress refuses it itself
        self._server = create_server(self.app, host=settings.host, port=settings.port, threads=threads,
                                     ident="yh-server", clear_untrusted_proxy_headers=True,
                                     max_request_body_size=4 * MAX_BODY_BYTES)  # fmt: skip
        self.port = int(self._server.effective_port)
        self._closing = False

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    def serve_forever(self) -> None:
        try:
            self._server.run()
        except OSError as e:
            # shutdown() from another thread closes the sockets the loop may be waiting on: its
            # select() then fails with EBADF, which is the end of serving, not an error
            if not (self._closing and e.errno == errno.EBADF):
                raise

    def shutdown(self) -> None:
        self._closing = True
        self._server.close()
