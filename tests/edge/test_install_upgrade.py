"""tools/install_pi.sh update and rollback, run on fake releases in a temporary prefix.

The script is sourced (its functions only), with its paths moved into ``tmp_path`` and stubs for
``sudo``, ``systemctl`` and ``sleep``; a release is a directory whose ``venv/bin`` holds this
environment's ``python`` and either the real ``yh-edge`` or a stub that refuses the config. The
databases are real recorder databases; "written by a newer release" is one whose schema version
is above what this software knows.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge.adapters.store.schema import MIGRATIONS
from edge.adapters.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "install_pi.sh"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash not available")

# sourcing a script without this guard runs the real install (as root: apt, useradd, /opt, /etc):
# such a script is never sourced here
GUARD = 'if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then'


def assert_guarded() -> None:
    """The guard ends the script and is the only call of main (present as text, in a comment or
    followed by another call, it would not keep a test's ``source`` from installing for real)."""
    text = SCRIPT.read_text()
    assert text.rstrip().endswith(GUARD + '\n    main "$@"\nfi'), "install_pi.sh would install when sourced"
    assert len(re.findall(r"\bmain\b(?!\(\))", text)) == 1, "main is called only by the guard"


STUBS = r"""
for cmd in apt-get useradd usermod userdel python3 pip; do
    eval "$cmd() { echo 'test: $cmd refused' >&2; return 1; }"
done
sudo() { [[ "$1" == -u ]] && shift 2; env "$@"; }
systemctl() {
    echo "$*" >>"$T/systemctl.log"
    case "$1" in
        is-active) [[ -f "$T/active" ]] ;;
        stop) rm -f "$T/active" ;;
        start|restart) touch "$T/active" ;;
    esac
}
sleep() { :; }
"""
#: commands that change the machine: refused by executables first on PATH as well, for the child
#: processes (sudo's env, bash -c, xargs), which do not inherit the shell functions above
REFUSED = ("apt-get", "apt", "useradd", "usermod", "userdel", "groupadd", "systemctl")


def stub_env(d: Path) -> dict:
    """The environment for a test shell: ``PATH`` starts with ``d``, holding refusing stubs."""
    d.mkdir(exist_ok=True)
    for cmd in REFUSED:
        (d / cmd).write_text(f"#!/bin/sh\necho 'test: {cmd} refused' >&2\nexit 1\n")
        (d / cmd).chmod(0o755)
    return {**os.environ, "PATH": f"{d}{os.pathsep}{os.environ.get('PATH', '')}"}


REFUSES_CONFIG = """#!/usr/bin/env bash
if [[ "$1 $2" == "config validate" ]]; then
    echo "Error: $3: unknown config key 'mqtt.new_key'" >&2
    exit 1
fi
exec {real} "$@"
"""

NEWER = """#!/usr/bin/env bash
# a later release: knows every schema so far and one more
if [[ "$1 $2" == "db check" ]]; then
    echo "integrity: ok"
    echo "detections: 0, unsynced: 0, counters: {{}}"
    exit 0
fi
exec {real} "$@"
"""


class Box:
    """A prefix, config and data directory in ``root``, and ways to run the script's functions."""

    def __init__(self, root: Path):
        self.root = root
        self.opt, self.etc, self.data = root / "opt", root / "etc", root / "data"
        for d in (self.opt / "releases", self.etc, self.data, root / "systemd"):
            d.mkdir(parents=True)
        shutil.copy(ROOT / "edge" / "data" / "edge.toml", self.etc / "edge.toml")
        (root / "active").touch()  # the service runs
        self.db = self.data / "detections.sqlite"

    def release(self, name: str, yh_edge: str | None = None) -> Path:
        d = self.opt / "releases" / name
        (d / "venv" / "bin").mkdir(parents=True)
        (d / "src" / "systemd").mkdir(parents=True)
        shutil.copy(ROOT / "systemd" / "yellowhammer-edge.service", d / "src" / "systemd")
        (d / "venv" / "bin" / "python").symlink_to(sys.executable)
        exe = d / "venv" / "bin" / "yh-edge"
        if yh_edge is None:
            exe.symlink_to(BIN / "yh-edge")
        else:
            exe.write_text(yh_edge.format(real=BIN / "yh-edge"))
            exe.chmod(0o755)
        (d / ".complete").touch()
        return d

    def make_current(self, name: str) -> None:
        (self.opt / "current").symlink_to(f"releases/{name}")
        for link in ("venv", "src"):
            (self.opt / link).symlink_to(f"current/{link}")

    def current(self) -> str:
        return os.readlink(self.opt / "current").removeprefix("releases/")

    def systemctl(self) -> list[str]:
        log = self.root / "systemctl.log"
        return log.read_text().splitlines() if log.exists() else []

    def run(self, command: str) -> subprocess.CompletedProcess:
        assert_guarded()
        script = f"""
{STUBS}
source {SCRIPT}
PREFIX={self.opt} ETC={self.etc} DATA_DIR={self.data} SYSTEMD_DIR={self.root}/systemd
USER_NAME="$(id -un)"
{command}
"""
        env = {**stub_env(self.root / "stubs"), "T": str(self.root)}
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120, env=env)


def make_db(path: Path, newer: bool = False) -> None:
    """A real recorder database; ``newer``: as a later release with one more migration left it."""
    SqliteStore(path).close()
    if newer:
        with sqlite3.connect(path) as conn:
            conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")


def schema(path: Path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


@pytest.fixture
def box(tmp_path):
    b = Box(tmp_path)
    b.release("20250101T000000Z-0.1.0")
    b.make_current("20250101T000000Z-0.1.0")
    make_db(b.db)
    return b


def test_an_update_whose_release_refuses_the_config_changes_nothing(box):
    # the old installer switched first and validated after, without restarting: the old process
    # ran on until the next reboot, then the service failed at every start, for good
    box.release("20250202T000000Z-0.2.0", REFUSES_CONFIG)
    r = box.run("activate 20250202T000000Z-0.2.0")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "unknown config key 'mqtt.new_key'" in r.stderr
    assert "update refused" in r.stderr and "still current and running: 20250101T000000Z-0.1.0" in r.stderr
    assert box.current() == "20250101T000000Z-0.1.0"
    assert not (box.opt / "releases" / "20250202T000000Z-0.2.0").exists()
    assert not any(c.split()[0] in ("stop", "restart") for c in box.systemctl())
    assert (box.root / "active").exists()


def test_an_update_whose_release_cannot_open_the_database_changes_nothing(box):
    # e.g. `git checkout <older tag>` and install: that release refuses the newer database
    box.db.unlink()
    make_db(box.db, newer=True)
    box.release("20250202T000000Z-0.0.9")
    r = box.run("activate 20250202T000000Z-0.0.9")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "newer than this software" in r.stderr and "update refused" in r.stderr
    assert box.current() == "20250101T000000Z-0.1.0"
    assert (box.root / "active").exists() and schema(box.db) == len(MIGRATIONS) + 1


def test_an_update_the_new_release_accepts_switches_to_it(box):
    box.release("20250202T000000Z-0.2.0", NEWER)
    r = box.run("activate 20250202T000000Z-0.2.0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert box.current() == "20250202T000000Z-0.2.0"
    assert os.path.realpath(box.opt / "venv") == str(box.opt / "releases" / "20250202T000000Z-0.2.0" / "venv")


def test_the_installer_runs_when_executed_and_only_defines_functions_when_sourced(tmp_path):
    assert_guarded()
    r = subprocess.run(["bash", "-c", f"{STUBS}\nsource {SCRIPT}; declare -F activate do_rollback"],
                       capture_output=True, text=True, timeout=30, env=stub_env(tmp_path / "stubs"))  # fmt: skip
    assert r.returncode == 0 and "activate" in r.stdout and not r.stderr, r.stderr
    if os.geteuid() != 0:  # executed (not as root): it runs main, which wants root
        r = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "run as root" in r.stderr


# -- the database copy before an update, and --rollback ----------------------------------------
OLD, NEW = "20250101T000000Z-0.1.0", "20250202T000000Z-0.2.0"


def test_an_update_copies_the_database_with_the_service_stopped_first(box):
    box.release(NEW, NEWER)
    r = box.run(f"activate {NEW}")
    assert r.returncode == 0, r.stdout + r.stderr
    backup = box.data / f"detections.sqlite.backup-{OLD}"
    assert backup.exists() and schema(backup) == schema(box.db) == len(MIGRATIONS)
    assert SqliteStore.check(backup).status == "ok"
    assert "stop yellowhammer-edge.service" in box.systemctl() and not (box.root / "active").exists()
    assert box.current() == NEW


def test_an_update_without_room_for_the_database_copy_changes_nothing(box):
    box.release(NEW, NEWER)
    r = box.run(f"df() {{ printf 'Filesystem 1024-blocks Used Available Capacity Mounted\\nx 1 1 1000 99% /\\n'; }}\n"
                f"activate {NEW}")  # fmt: skip
    assert r.returncode == 1 and "no room" in r.stderr and "update refused" in r.stderr, r.stderr
    assert box.current() == OLD and (box.root / "active").exists()
    assert all(c.startswith("is-active ") for c in box.systemctl()), box.systemctl()  # only asked
    assert not list(box.data.glob("*.backup-*"))


FAILS_TO_START = """systemctl() {
    echo "$*" >>"$T/systemctl.log"
    case "$1" in
        is-active) [[ -f "$T/active" ]] ;;
        stop) rm -f "$T/active" ;;
        start|restart) return 1 ;;
    esac
}"""


@pytest.mark.parametrize("before", ["running", "stopped", "fails to start again"])
def test_a_failed_database_copy_says_truly_whether_the_service_runs(box, before):
    # before: "still current and running" whatever systemctl said
    box.release(NEW, NEWER)
    if before == "stopped":
        (box.root / "active").unlink()
    setup = FAILS_TO_START if before == "fails to start again" else ""
    r = box.run(f"{setup}\ncp() {{ echo 'cp: No space left on device' >&2; return 1; }}\nactivate {NEW}")
    assert r.returncode == 1 and "could not back up" in r.stderr and "update refused" in r.stderr, r.stderr
    assert box.current() == OLD and not list(box.data.glob("*.backup-*"))
    if before == "running":
        assert "still current and running: " + OLD in r.stderr and (box.root / "active").exists()
        assert box.systemctl()[-2:] == [
            "start yellowhammer-edge.service",
            "is-active --quiet yellowhammer-edge.service",
        ]
    else:
        assert "and running" not in r.stderr and "yellowhammer-edge.service is NOT running" in r.stderr
        assert not (box.root / "active").exists()
        why = "was not running before" if before == "stopped" else "did not start again"
        assert why in r.stderr
    assert ("start yellowhammer-edge.service" in box.systemctl()) == (before != "stopped")


#: do_install after the release is built: no apt, user, pip, config writing, doctor or systemd-analyze
INSTALL_STUBS = f"""install_system() {{ :; }}; build_release() {{ REL={NEW}; }}; ensure_config() {{ :; }}
doctor() {{ :; }}; systemd-analyze() {{ :; }}"""


@pytest.mark.parametrize(
    "failure",
    [
        "switch_to() { echo 'mv: cannot move' >&2; return 1; }",
        "prune_backups() { false; }",
        "install() { echo 'install: Read-only file system' >&2; return 1; }",
        'systemctl() { [[ $1 != daemon-reload ]] || return 1; systemctl_stub "$@"; }',
    ],
    ids=["switch", "prune", "unit file", "daemon-reload"],
)
def test_any_failure_after_the_service_was_stopped_for_the_copy_starts_it_again(box, failure):
    # before: the install ended there (set -e) and the recorder stayed stopped until someone noticed
    box.release(NEW, NEWER)
    r = box.run(
        'eval "$(declare -f systemctl | sed 1s/systemctl/systemctl_stub/)"\n'
        f"{INSTALL_STUBS}\n{failure}\ndo_install"
    )
    assert r.returncode != 0, r.stdout + r.stderr
    log = box.systemctl()
    assert "stop yellowhammer-edge.service" in log and (box.root / "active").exists(), r.stdout + r.stderr
    assert log.index("stop yellowhammer-edge.service") < log.index("start yellowhammer-edge.service")
    assert "started again" in r.stderr


def test_an_update_with_no_start_that_succeeds_leaves_the_service_stopped(box):
    box.release(NEW, NEWER)
    r = box.run(f"{INSTALL_STUBS}\nSTART=0\ndo_install")
    assert r.returncode == 0, r.stdout + r.stderr
    assert box.current() == NEW and not (box.root / "active").exists()
    assert "start yellowhammer-edge.service" not in box.systemctl()


@pytest.fixture
def updated(box):
    """``box`` after an update to NEW, which migrated the database to a schema OLD does not know;
    the copy from before the update is beside it."""
    box.release(NEW, NEWER)
    (box.opt / "current").unlink()
    (box.opt / "current").symlink_to(f"releases/{NEW}")
    box.db.rename(box.data / f"detections.sqlite.backup-{OLD}")
    make_db(box.db, newer=True)
    return box


def test_a_rollback_to_a_release_that_cannot_open_the_database_restores_the_copy(updated):
    # before: the rollback switched anyway and the service failed at every start
    box = updated
    r = box.run("do_rollback")
    assert r.returncode == 0, r.stdout + r.stderr
    assert box.current() == OLD and (box.root / "active").exists()
    assert schema(box.db) == len(MIGRATIONS)  # the copy, which OLD opens
    kept = box.data / f"detections.sqlite.rolled-back-{NEW}"
    assert schema(kept) == len(MIGRATIONS) + 1  # the newer file is kept, never deleted
    assert not (box.data / f"detections.sqlite.backup-{OLD}").exists()
    assert str(kept) in r.stdout and "send it to the coordinator" in r.stdout
    assert box.systemctl().index("stop yellowhammer-edge.service") < box.systemctl().index(
        "restart yellowhammer-edge.service"
    )


def test_a_rollback_without_a_copy_the_older_release_opens_is_refused(updated):
    box = updated
    (box.data / f"detections.sqlite.backup-{OLD}").unlink()
    r = box.run("do_rollback")
    assert r.returncode == 1 and "rollback refused" in r.stderr and "no copy" in r.stderr, r.stderr
    assert box.current() == NEW and (box.root / "active").exists() and box.systemctl() == []
    assert schema(box.db) == len(MIGRATIONS) + 1
    assert not list(box.data.glob("*.rolled-back-*"))


def interrupt_after_moving_to(path: Path) -> str:
    """Shell code: the script is killed (a power cut, a closed SSH session) right after it moves a
    file to ``path``."""
    return f'mv() {{ command mv "$@"; [[ "${{@: -1}}" != "{path}" ]] || kill -9 $$; }}'


def copy_with_wal(dst: Path) -> None:
    """``dst`` and ``dst``-wal: a recorder database whose last change (a table ``in_wal``) is only
    in its WAL, as the copy of a database with a WAL is."""
    src = dst.with_name("wal-source.sqlite")
    make_db(src)
    conn = sqlite3.connect(src)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE in_wal (x)")
    conn.commit()
    shutil.copy(src, dst)
    shutil.copy(f"{src}-wal", f"{dst}-wal")
    conn.close()
    src.unlink()


def assert_restored(box, r) -> None:
    assert r.returncode == 0, r.stdout + r.stderr
    assert box.current() == OLD and (box.root / "active").exists()
    assert schema(box.db) == len(MIGRATIONS)  # the copy, not a new empty database
    assert schema(box.data / f"detections.sqlite.rolled-back-{NEW}") == len(MIGRATIONS) + 1
    assert not (box.data / f"detections.sqlite.backup-{OLD}").exists()
    assert not (box.data / "detections.sqlite.rollback-in-progress").exists()
    assert "send it to the coordinator" in r.stdout


def test_a_rollback_interrupted_after_moving_the_database_aside_is_finished_by_the_next(updated):
    # before: the next --rollback found no database, switched, and the recorder began a new one
    box = updated
    kept = box.data / f"detections.sqlite.rolled-back-{NEW}"
    r = box.run(f"{interrupt_after_moving_to(kept)}\ndo_rollback")
    assert r.returncode == -9 and not box.db.exists() and kept.exists(), r.stdout + r.stderr
    assert box.current() == NEW
    r = box.run("do_rollback")
    assert "did not finish restoring" in r.stdout
    assert_restored(box, r)


def test_a_rollback_interrupted_while_putting_the_copy_back_is_finished_by_the_next(updated):
    # the copy's WAL is in place, the copy itself not yet: the WAL must stay the copy's
    box = updated
    copy_with_wal(box.data / f"detections.sqlite.backup-{OLD}")
    r = box.run(f"{interrupt_after_moving_to(Path(f'{box.db}-wal'))}\ndo_rollback")
    assert r.returncode == -9 and not box.db.exists() and Path(f"{box.db}-wal").exists(), r.stdout + r.stderr
    r = box.run("do_rollback")
    assert_restored(box, r)
    with sqlite3.connect(box.db) as conn:  # the change only the copy's WAL held
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'in_wal'").fetchone()[0] == 1


def test_an_unfinished_rollback_that_cannot_go_on_by_itself_is_refused_with_what_to_do(updated):
    box = updated
    kept = box.data / f"detections.sqlite.rolled-back-{NEW}"
    # killed once the newer files are all aside, before the copy goes back
    r = box.run('eval "$(declare -f mark_restore | sed 1s/mark_restore/mark_restore_0/)"\n'
                'mark_restore() { [[ $2 != back ]] || kill -9 $$; mark_restore_0 "$@"; }\ndo_rollback')  # fmt: skip
    assert r.returncode == -9 and not box.db.exists(), r.stdout + r.stderr
    make_db(box.db, newer=True)  # the service started after a reboot and began a new database
    r = box.run("do_rollback")
    assert r.returncode == 1 and "rollback refused" in r.stderr, r.stdout + r.stderr
    for path in (box.db, kept, box.data / f"detections.sqlite.backup-{OLD}"):
        assert str(path) in r.stderr and path.exists()
    assert box.current() == NEW and schema(kept) == schema(box.db) == len(MIGRATIONS) + 1
    # and an update meanwhile is refused: it would switch with the database half restored
    box.db.unlink()
    box.release("20250303T000000Z-0.3.0", NEWER)
    r = box.run("activate 20250303T000000Z-0.3.0")
    assert r.returncode == 1 and "did not finish restoring" in r.stderr and box.current() == NEW, r.stderr


def test_a_rollback_to_a_release_that_opens_the_database_leaves_it_alone(box):
    box.release(NEW, NEWER)
    (box.opt / "current").unlink()
    (box.opt / "current").symlink_to(f"releases/{NEW}")
    before = box.db.read_bytes()
    r = box.run("do_rollback")
    assert r.returncode == 0, r.stdout + r.stderr
    assert box.current() == OLD and box.db.read_bytes() == before
    assert not list(box.data.glob("*.rolled-back-*"))


def test_copies_for_releases_no_longer_kept_are_deleted(box):
    for rel in (OLD, "20240101T000000Z-0.0.1"):
        (box.data / f"detections.sqlite.backup-{rel}").write_bytes(b"x")
    (box.data / "detections.sqlite.backup-20240101T000000Z-0.0.1-wal").write_bytes(b"x")
    r = box.run("prune_backups")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(p.name for p in box.data.glob("*.backup-*")) == [f"detections.sqlite.backup-{OLD}"]


def test_an_update_from_the_layout_before_releases_copies_the_database_first(tmp_path):
    # before: no `current` link, so no copy and no stop before the switch replaced the old venv
    box = Box(tmp_path)
    (box.opt / "venv" / "bin").mkdir(parents=True)  # a plain venv and src, as installs before releases
    (box.opt / "src").mkdir()
    make_db(box.db)
    box.release(NEW, NEWER)
    r = box.run(f"activate {NEW}")
    assert r.returncode == 0, r.stdout + r.stderr
    backup = box.data / f"detections.sqlite.backup-before-{NEW}"
    assert backup.exists() and SqliteStore.check(backup).status == "ok" and str(backup) in r.stdout
    log = box.systemctl()
    assert "stop yellowhammer-edge.service" in log and not (box.root / "active").exists()
    assert box.current() == NEW and (box.opt / "venv").is_symlink()
    # kept while that release is, not removed as the copy of a release that is gone
    r = box.run("prune_backups")
    assert r.returncode == 0 and backup.exists(), r.stdout + r.stderr
    shutil.rmtree(box.opt / "releases" / NEW)
    box.release("20250404T000000Z-0.4.0")
    (box.opt / "current").unlink()
    (box.opt / "current").symlink_to("releases/20250404T000000Z-0.4.0")
    r = box.run("prune_backups")
    assert r.returncode == 0 and not backup.exists(), r.stdout + r.stderr


def test_commands_that_change_the_machine_are_stubs_in_child_processes_too(box):
    # the stubs above are shell functions, which a child process does not inherit: 'sudo' (env),
    # a subshell 'bash -c' or xargs would run the real apt-get, useradd or systemctl as root
    r = box.run(
        'for c in apt-get apt useradd usermod userdel groupadd systemctl; do env bash -c "command -v $c"; done'
    )
    paths = r.stdout.split()
    assert len(paths) == 7 and all(p.startswith(str(box.root)) for p in paths), r.stdout + r.stderr
    r = box.run("sudo -u nobody apt-get update")
    assert r.returncode != 0 and "test: apt-get refused" in r.stderr
