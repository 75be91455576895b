"""A real mosquitto broker for tests, on a free loopback port.

Used through the ``mqtt_broker`` fixture in ``conftest.py``; ``stop()``/``start()`` restart it on
the same port for fault tests.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )


class MosquittoBroker:
    """A mosquitto process on 127.0.0.1:<free port>, with persistence in ``workdir``.

    ``user`` is set to whoever runs the tests: started as root (CI containers), mosquitto would
    otherwise drop privileges to the ``mosquitto`` user, fail to write ``mosquitto.db`` into a
    root-owned ``workdir`` ("Error: Permission denied" in the log) and lose every persistent
    session and queued message on a restart. ``autosave_interval`` can be raised for tests that
    need a known, forced save point (:meth:`save`).
    """

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "",
                 autosave_interval: int = 1) -> None:  # fmt: skip
        self.binary = mosquitto_binary()
        if self.binary is None:
            raise RuntimeError("mosquitto is not installed (apt install mosquitto)")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.conf = self.workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.workdir}/\n"
            f"autosave_interval {autosave_interval}\n"
            f"user {getpass.getuser()}\n"
            "max_queued_messages 100000\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\n" + extra_conf
        )
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "mosquitto.log", "ab"),  # noqa: SIM115
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {(self.workdir / 'mosquitto.log').read_text()[-500:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    @property
    def db_file(self) -> Path:
        return self.workdir / "mosquitto.db"

    def saved_at(self) -> float:
        """mtime of the persistence file (0 if none yet)."""
        try:
            return os.stat(self.db_file).st_mtime
        except FileNotFoundError:
            return 0.0

    def save(self) -> None:
        """Ask mosquitto to write its persistence file now (SIGUSR1)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGUSR1)

    def kill(self) -> None:
        """SIGKILL: no shutdown save, the broker restarts from its last autosave."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def log_text(self) -> str:
        try:
            return (self.workdir / "mosquitto.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
