"""Fault run (issue 16): SIGKILL loops of the broker, the recorder daemon and the ingest, then a
full-disk run; prints what was created, stored at the server, lost and duplicated.

Not a test (no timing asserts): a script to run by hand or in a soak job, e.g.::

    nice -n 10 python tools/fault_run.py --rounds 20 --seed 16 --work /tmp/yh-fault

Each round copies the synthetic WAV fixtures under new names into a replay folder (new songs,
new detection ids), (re)starts the daemon on it (``yh-edge run --replay``, its own MQTT
publisher, throttled so that kills land mid-drain), and SIGKILLs a random choice of broker,
daemon and ingest (or all three) after a random delay, restarting them after another. Then
everything runs cleanly until the device has drained and the server holds what it will hold.

The full-disk runs (root only: they mount a tmpfs) put the daemon's data directory on a small
tmpfs that a filler file (someone else's data) makes almost full and replay songs into it:
"disk freed while running" deletes the filler once the daemon reports the full disk (what it
held meanwhile must reach the database and the server); "disk stays full" frees it only after
the daemon has stopped. Both then drain the outbox with ``edge.app.sync``.

created: distinct detection ids the device stored (polled during the run, so rows deleted on
the device before they were synced still count), plus those it could not store and sent from
memory (its "song ID is not stored on this device" log lines), plus those the daemon reports it
lost (its "N detections could not be stored before exit" log line); stored: those ids at the server; lost:
created but not stored at the server (of which "in transit": stored on the device, never at the
server); duplicated: server rows that are not a created id, plus the same song
(device, source, start time to 0.1 s) stored more than once. Exit status 1 if lost or
duplicated is not 0.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.broker import MosquittoBroker  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "synth"
PY = sys.executable


def _env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _rows(db: Path, sql: str) -> list[tuple]:
    if not db.exists():
        return []
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return c.execute(sql).fetchall()
        finally:
            c.close()
    except sqlite3.Error:
        return []


class Rig:
    """Broker, ingest and daemon processes of one run, with logs under ``work``."""

    def __init__(self, work: Path, device: str, data_dir: Path, rate: float) -> None:
        self.work, self.device, self.data_dir, self.rate = work, device, data_dir, rate
        self.broker = MosquittoBroker(work / "broker", autosave_interval=2)
        self.sdb = work / "server.sqlite"
        self.edb = data_dir / "detections.sqlite"
        self.ingest: subprocess.Popen | None = None
        self.daemon: subprocess.Popen | None = None
        self.replay: Path | None = None
        self.created: set[str] = set()
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, daemon=True)

    def _log(self, name: str):
        return open(self.work / f"{name}.log", "ab")  # noqa: SIM115

    def start_broker(self) -> None:
        self.broker.start()

    def start_ingest(self) -> None:
        cmd = [PY, "-m", "server.cli", "--db", str(self.sdb), "ingest", "--host", self.broker.host, "--port",
               str(self.broker.port), "--client-id", "fault-ingest"]  # fmt: skip
        self.ingest = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=self._log("ingest"))

    def start_daemon(self, once: bool = False) -> None:
        env = _env(YH_DEVICE__ID=self.device, YH_DEVICE__DATA_DIR=self.data_dir, YH_MQTT__ENABLED="true",
                   YH_MQTT__HOST=self.broker.host, YH_MQTT__PORT=self.broker.port, YH_MQTT__MAX_BACKOFF_S=2,
                   YH_MQTT__MAX_RATE_PER_S=self.rate, YH_MQTT__DIGEST_INTERVAL_S=3)  # fmt: skip
        cmd = [PY, "-m", "edge", "run", "--replay", str(self.replay), *(["--once"] if once else [])]
        self.daemon = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=self._log("daemon"))

    def kill(self, what: str) -> None:
        if what == "broker":
            self.broker.kill()
            return
        proc = getattr(self, what)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        setattr(self, what, None)

    def start(self, what: str) -> None:
        {"broker": self.start_broker, "ingest": self.start_ingest, "daemon": self.start_daemon}[what]()

    def stop(self, what: str) -> None:
        if what == "broker":
            self.broker.stop()
            return
        proc = getattr(self, what)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        setattr(self, what, None)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.created |= {r[0] for r in _rows(self.edb, "SELECT id FROM detections")}
            self._stop.wait(0.3)

    def begin(self) -> None:
        self._poller.start()

    def end(self) -> None:
        self._stop.set()
        self._poller.join(5)
        self.created |= {r[0] for r in _rows(self.edb, "SELECT id FROM detections")}
        for what in ("daemon", "ingest", "broker"):
            self.stop(what)

    def unsynced(self) -> int:
        rows = _rows(self.edb, "SELECT COUNT(*) FROM outbox")
        return rows[0][0] if rows else -1

    def server_ids(self) -> list[tuple]:
        return _rows(
            self.sdb, f"SELECT id, source, start_time FROM detections WHERE device_id = '{self.device}'"
        )


def _copy_wavs(dest: Path, tag: str, copies: int) -> int:
    dest.mkdir(parents=True, exist_ok=True)
    n = 0
    for k in range(copies):
        for wav in sorted(FIXTURES.glob("*.wav")):
            shutil.copy(wav, dest / f"{tag}_{k}_{wav.name}")
            n += 1
    return n


def _settle(rig: Rig, timeout: float) -> None:
    """Run cleanly until the device has nothing unsynced and the server count stops growing."""
    deadline, last, still = time.monotonic() + timeout, -1, 0
    while time.monotonic() < deadline:
        n = len(rig.server_ids())
        created = rig.created | {r[0] for r in _rows(rig.edb, "SELECT id FROM detections")}
        if rig.unsynced() == 0 and n == last and n >= len(created):
            still += 1
            if still >= 4:
                return
        else:
            still = 0
        last = n
        time.sleep(1.0)
    print(f"  (settle: timed out after {timeout:.0f} s; unsynced {rig.unsynced()})", flush=True)


def _dropped(rig: Rig) -> int:
    """Detections the daemon made but could not store (its own count, from its log)."""
    try:
        log = (rig.work / "daemon.log").read_text(errors="replace")
    except FileNotFoundError:
        return 0
    return sum(int(n) for n in re.findall(r"(\d+) detections could not be stored before exit", log))


def _sent_from_memory(rig: Rig) -> set[str]:
    """Detections the disk could not take that the daemon sent from memory (its log names each)."""
    try:
        log = (rig.work / "daemon.log").read_text(errors="replace")
    except FileNotFoundError:
        return set()
    return set(re.findall(r"song (\S+) is not stored on this device", log))


def _report(name: str, rig: Rig) -> dict:
    polled = set(rig.created)
    memory = _sent_from_memory(rig) - polled  # sent from memory and never stored on the device
    rig.created |= memory
    rows = rig.server_ids()
    stored_ids = {r[0] for r in rows}
    songs = collections.Counter((r[1], round(r[2], 1)) for r in rows)
    dropped = _dropped(rig)
    out = {"created": len(rig.created) + dropped, "stored": len(stored_ids & rig.created),
           "lost": len(rig.created - stored_ids) + dropped,
           "duplicated": len(stored_ids - rig.created) + sum(n - 1 for n in songs.values())}  # fmt: skip
    print(f"{name}: created {out['created']} (stored on the device {len(polled)}, sent from "
          f"memory and never stored there {len(memory)}, dropped by the device "
          f"{dropped}) / stored at server {out['stored']} / lost {out['lost']} "
          f"(in transit {len(rig.created - stored_ids)}) / duplicated {out['duplicated']}", flush=True)  # fmt: skip
    return out


def kill_loops(work: Path, rounds: int, seed: int, copies: int, rate: float) -> dict:
    rng = random.Random(seed)
    rig = Rig(work, "fault-dev", work / "edge", rate)
    rig.start_broker()
    rig.start_ingest()
    time.sleep(2.0)  # the ingest's persistent session exists before the device publishes
    rig.begin()
    kills = collections.Counter()
    for r in range(rounds):
        rig.stop("daemon")  # the next round's replay folder (a clean stop: its grace sends what it can)
        rig.replay = work / "replay" / f"r{r:03d}"
        _copy_wavs(rig.replay, f"r{r:03d}", copies)
        rig.start_daemon()
        victims = rng.choice([["broker"], ["daemon"], ["ingest"], ["broker", "daemon", "ingest"]])
        time.sleep(rng.uniform(0.5, 4.0))
        for v in victims:
            rig.kill(v)
            kills[v] += 1
        time.sleep(rng.uniform(0.0, 2.0))
        for v in ("broker", "ingest", "daemon"):
            if v in victims:
                rig.start(v)
        print(f"round {r + 1}/{rounds}: killed {', '.join(victims)}; device {len(rig.created)} created, "
              f"{rig.unsynced()} unsynced; server {len(rig.server_ids())}", flush=True)  # fmt: skip
    _settle(rig, 300)
    rig.end()
    print(f"kills: {dict(kills)}", flush=True)
    return _report(f"kill loops ({rounds} rounds, seed {seed})", rig)


def full_disk(work: Path, size_kb: int, copies: int, rate: float, freed: bool) -> dict | None:
    """The daemon's data directory on a tmpfs of ``size_kb`` that a filler file (someone else's
    data) fills up to 64 KB. ``freed``: the filler is deleted while the daemon runs (the space
    comes back; whatever the daemon held meanwhile must be stored); otherwise the disk stays full
    until the daemon has stopped, then the outbox is drained with ``edge.app.sync``."""
    if os.geteuid() != 0:
        print("full-disk run: skipped (needs root to mount a tmpfs)")
        return None
    tag = "freed" if freed else "full"
    mnt = work / f"tmpfs-{tag}"
    mnt.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mnt)], check=True)
    try:
        rig = Rig(work / f"disk-{tag}", f"disk-{tag}", mnt / "data", rate)
        rig.work.mkdir(parents=True, exist_ok=True)
        rig.data_dir.mkdir()
        rig.start_broker()
        rig.start_ingest()
        time.sleep(2.0)
        rig.begin()
        rig.replay = rig.work / "replay-a"  # a first replay creates the database on free space
        _copy_wavs(rig.replay, f"{tag}a", 1)
        rig.start_daemon(once=True)
        rig.daemon.wait(300)
        filler = mnt / "filler"
        with open(filler, "wb") as fh:  # leave ~64 KB: the next replay fills it
            fh.write(b"\0" * max(0, shutil.disk_usage(mnt).free - 64 * 1024))
        rig.replay = rig.work / "replay-b"
        _copy_wavs(rig.replay, f"{tag}b", copies)
        rig.start_daemon(once=not freed)
        code = _while_freed(rig, filler) if freed else _while_full(rig, mnt, filler)
        # drain what the daemon left unsynced, as `yh-edge sync` would after a restart
        sync = subprocess.run([PY, "-m", "edge.app.sync", "--db", str(rig.edb), "--host", rig.broker.host,
                               "--port", str(rig.broker.port), "--device-id", rig.device, "--timeout", "120"],
                              env=_env(), capture_output=True, text=True)  # fmt: skip
        print(f"{tag}: drain after the daemon stopped: exit {sync.returncode} {sync.stdout.strip()[-200:]}")
        _settle(rig, 120)
        rig.end()
        _say_errors(rig, tag, code)
        what = "disk freed while running" if freed else "disk stays full"
        return _report(f"full disk, {what} (tmpfs {size_kb} KB)", rig)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _while_freed(rig: Rig, filler: Path) -> str:
    """Free the disk once the daemon reports it full, let it finish its replay, stop it."""
    log = rig.work / "daemon.log"
    deadline = time.monotonic() + 120
    while "disk full" not in log.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)
    filler.unlink()  # the space comes back while the daemon runs
    while "audio source finished" not in log.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.5)
    _settle(rig, 60)
    stuck = rig.unsynced()
    rig.stop("daemon")
    crashed = "publisher crashed" in log.read_text(errors="replace")
    print(f"freed: {stuck} detections still unsynced on the device while the daemon ran"
          f"{' (its MQTT publisher thread had crashed)' if crashed else ''}", flush=True)  # fmt: skip
    return "stopped by SIGTERM"


def _while_full(rig: Rig, mnt: Path, filler: Path) -> str:
    """Let the daemon replay and stop on the full disk; free it only afterwards."""
    try:
        code = str(rig.daemon.wait(600))
    except subprocess.TimeoutExpired:
        rig.kill("daemon")
        code = "killed after 600 s"
    rig.daemon = None
    print(f"full: daemon exit status {code}; {shutil.disk_usage(mnt).free // 1024} KB free", flush=True)
    filler.unlink()
    return code


def _say_errors(rig: Rig, tag: str, code: str) -> None:
    text = (rig.work / "daemon.log").read_text(errors="replace")
    errors = [ln for ln in text.splitlines() if ln.startswith(("ERROR", "CRITICAL")) or " ERROR " in ln]
    print(f"{tag}: daemon {code}; its log has {len(errors)} error lines; last: "
          f"{errors[-1][:200] if errors else '-'}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=20, help="kill-loop rounds (0: only the full-disk runs)")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--copies", type=int, default=2, help="copies of the WAV fixtures per round")
    ap.add_argument("--rate", type=float, default=15.0, help="device publish rate cap, messages/s")
    ap.add_argument("--disk-kb", type=int, default=2048, help="size of the full-disk tmpfs")
    ap.add_argument("--no-disk", action="store_true", help="skip the full-disk run")
    ap.add_argument("--work", type=Path, default=Path("/tmp/yh-fault-run"))
    a = ap.parse_args(argv)
    if a.work.exists():
        shutil.rmtree(a.work)
    a.work.mkdir(parents=True)
    results = [kill_loops(a.work / "kills", a.rounds, a.seed, a.copies, a.rate)] if a.rounds > 0 else []
    if not a.no_disk:
        for freed in (True, False):
            results.append(full_disk(a.work, a.disk_kb, a.copies * 4, a.rate, freed))
    results = [r for r in results if r]
    bad = sum(r["lost"] + r["duplicated"] for r in results)
    print(f"total: created {sum(r['created'] for r in results)} / stored {sum(r['stored'] for r in results)} / "
          f"lost {sum(r['lost'] for r in results)} / duplicated {sum(r['duplicated'] for r in results)}")  # fmt: skip
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
