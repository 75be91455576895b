"""A real PostgreSQL server for tests, started by the tests on a free loopback port.

``initdb`` + ``pg_ctl`` from the Debian packages (``/usr/lib/postgresql/<major>/bin``) into a
temporary directory; never the machine's own cluster on 5432. ``initdb`` refuses to run as root,
so under root (CI containers) the server runs as the ``postgres`` OS user through ``runuser``,
with its directory handed to that user. :func:`unavailable` says why it cannot run, for a skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests.broker import free_port


def pg_bindir() -> Path | None:
    """The newest installed ``/usr/lib/postgresql/<major>/bin`` that has ``initdb`` (or ``$YH_PG_BINDIR``)."""
    env = os.environ.get("YH_PG_BINDIR")
    if env:
        return Path(env) if (Path(env) / "initdb").exists() else None
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    return Path(found[-1]).parent if found else None


def _run_as() -> list[str] | None:
    """The command prefix that runs the server as a non-root user ([] when not root), or None."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        return None
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        return None
    return ["runuser", "-u", "postgres", "--"]


def unavailable() -> str | None:
    """Why no test PostgreSQL can be started here (None: it can)."""
    if pg_bindir() is None:
        return "PostgreSQL server binaries not installed (apt install postgresql; tools/setup.sh dev does)"
    if _run_as() is None:
        return "running as root without runuser or a 'postgres' user: initdb refuses to run as root"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg not installed (pip install -e '.[server]')"
    return None


class PostgresServer:
    """``initdb`` a cluster in a temporary directory, serve it on 127.0.0.1:<free port>; ``url(db)``
    names a fresh database; ``stop()`` removes everything."""

    def __init__(self) -> None:
        why = unavailable()
        if why:
            raise RuntimeError(why)
        self.bindir = pg_bindir()
        self.prefix = _run_as()
        self.dir = Path(tempfile.mkdtemp(prefix="yh-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.host = "127.0.0.1"
        self.user = "postgres" if self.prefix else os.environ.get("USER", "postgres")
        self.proc_started = False

    def _cmd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.prefix, *args], capture_output=True, text=True, check=check, cwd=self.dir
        )

    def start(self) -> PostgresServer:
        if self.prefix:
            shutil.chown(self.dir, "postgres", "postgres")
        self.dir.chmod(0o700)
        self._cmd(str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust",
                  "-E", "UTF8", "--no-sync", "--locale=C.UTF-8")  # fmt: skip
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60")  # fmt: skip
        res = self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"),
                        "-o", opts, "-w", "-t", "30", "start", check=False)  # fmt: skip
        if res.returncode != 0:
            log = (self.dir / "log").read_text()[-800:] if (self.dir / "log").exists() else ""
            self.stop()
            raise RuntimeError(f"pg_ctl start failed: {res.stderr.strip()} {log}")
        self.proc_started = True
        return self

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def fresh_db(self) -> str:
        """A new empty database on this server; returns its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        if self.proc_started:
            self._cmd(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "-w",
                "stop",
                check=False,
            )
            self.proc_started = False
        for _ in range(20):
            shutil.rmtree(self.dir, ignore_errors=True)
            if not self.dir.exists():
                break
            time.sleep(0.1)
