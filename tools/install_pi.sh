#!/usr/bin/env bash
# Install the Yellowhammer recorder on Raspberry Pi OS (Bookworm or later; 64-bit; see docs/deploy.md
# for 32-bit).
#
# Run from a checkout of the project (or an unpacked release):
#
#     sudo tools/install_pi.sh                 # install or update, enable and (re)start the service
#     sudo tools/install_pi.sh --no-start      # install but leave the service stopped
#     sudo tools/install_pi.sh --check         # change nothing: releases, config and `yh-edge doctor`
#     sudo tools/install_pi.sh --rollback      # switch back to the previous release and restart
#
# (--no-start on an update: a running service is stopped for the database copy and stays stopped;
# an update that fails once the service is stopped starts it again if it was running)
#
# What it does (every step is safe to repeat; an existing config is never overwritten):
#   1. apt packages: python3-venv, PortAudio (portaudio19-dev, to build pyaudio), ALSA tools,
#      libopenblas (numpy/scipy wheels), sqlite3 (to look at the database by hand)
#   2. a system user "yellowhammer" in the "audio" group, without login or home
#   3. a new release /opt/yellowhammer/releases/<date>-<version>/ (the source and a virtual
#      environment with the package and its 'mic' extra)
#   4. /etc/yellowhammer/edge.toml from the bundled default (device id = yh-<hostname>)
#      and an empty /etc/yellowhammer/mqtt-password (mode 0640, root:yellowhammer)
#   5. the new release checks the existing config (`config validate`) and database (`db check`);
#      only when it installed completely and accepts both does /opt/yellowhammer/current point to
#      it (/opt/yellowhammer/venv and src follow that link): a failed or refused update removes
#      the new release and leaves the running version alone; the last 3 releases are kept.
#      Before the switch the service is stopped and the database copied with its WAL to
#      <database>.backup-<old release> (kept while that release is; from the layout before
#      releases: <database>.backup-before-<new release>, kept while that one is); --rollback puts that copy
#      back when the older release cannot open the database (a newer schema), keeping the newer
#      file as <database>.rolled-back-<release>, or refuses and changes nothing when there is none;
#      an interrupted restore leaves <database>.rollback-in-progress and --rollback again finishes it
#   6. the systemd unit, enabled and (re)started; then `yh-edge doctor`
#
# Undo: systemctl disable --now yellowhammer-edge; rm -r /opt/yellowhammer /etc/yellowhammer
#       /etc/systemd/system/yellowhammer-edge.service; userdel yellowhammer
# (the detections in /var/lib/yellowhammer are kept unless you delete them too).
set -euo pipefail

PREFIX=/opt/yellowhammer
ETC=/etc/yellowhammer
DATA_DIR=/var/lib/yellowhammer  # the unit's StateDirectory (YH_DEVICE__DATA_DIR there)
SYSTEMD_DIR=/etc/systemd/system
USER_NAME=yellowhammer
UNIT=yellowhammer-edge.service
KEEP_RELEASES=3
START=1
MODE=install
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

step() { printf '\n==> %s\n' "$*"; }

# the complete releases (an install that was interrupted never gets its .complete mark), oldest first
releases() {
    local d
    for d in "$PREFIX"/releases/*/; do
        [[ -f "$d.complete" ]] && basename "$d"
    done | sort
    return 0
}
current_release() { [[ -L "$PREFIX/current" ]] && basename "$(readlink "$PREFIX/current")"; return 0; }

# point current (and venv, src through it) at a release, atomically (rename of a new symlink)
switch_to() {
    ln -sfn "releases/$1" "$PREFIX/current.new"
    mv -T "$PREFIX/current.new" "$PREFIX/current"
    local link
    for link in venv src; do
        if [[ ! -L "$PREFIX/$link" ]]; then
            rm -rf "${PREFIX:?}/$link"  # the layout before releases: replaced by the link
            ln -s "current/$link" "$PREFIX/$link"
        fi
    done
    echo "current release: $1"
}

restart_service() {
    systemctl daemon-reload
    systemctl enable "$UNIT"
    if [[ $START -eq 1 ]]; then
        systemctl restart "$UNIT"
        sleep 5
        systemctl --no-pager --lines=5 status "$UNIT" || true
    fi
}

# yh-edge of the release in directory $1 (its venv), as the service user with the service's data
# directory: a database opened as root could leave files behind that the service cannot write
yh_as_service() {
    local dir="$1"
    shift
    sudo -u "$USER_NAME" YH_DEVICE__DATA_DIR="$DATA_DIR" "$dir/venv/bin/yh-edge" "$@"
}

doctor() { yh_as_service "$PREFIX" doctor --config "$ETC/edge.toml"; }

# a value of the config ($2: a Python expression of the loaded config c), as the service sees it,
# by the release in directory $1
config_value() {
    sudo -u "$USER_NAME" YH_DEVICE__DATA_DIR="$DATA_DIR" "$1/venv/bin/python" -c \
        "import sys; from edge.app.config import load_config; c = load_config(sys.argv[1]); print($2)" \
        "$ETC/edge.toml"
}

# the database file of the config, by the release in directory $1
db_file() { config_value "$1" c.db_path; }

# does the release in directory $1 accept the config and the database (if there is one)? if not,
# print why; nothing is written (the database is opened read-only)
release_accepts() {
    local dir="$1" out db
    out="$(yh_as_service "$dir" config validate "$ETC/edge.toml" 2>&1)" || { printf '%s\n' "$out"; return 1; }
    db="$(db_file "$dir" 2>&1)" || { printf '%s\n' "$db"; return 1; }
    if [[ -e "$db" ]]; then
        out="$(yh_as_service "$dir" db check --config "$ETC/edge.toml" 2>&1)" || { printf '%s\n' "$out"; return 1; }
    fi
    return 0
}

# store.min_free_mb of the config, by the release in directory $1
min_free_mb() { config_value "$1" 'int(c.store.min_free_mb)'; }

# the copy of database $1 made when release $2 stopped being current (what --rollback to $2 restores)
backup_of() { printf '%s.backup-%s' "$1" "$2"; }

# room beside database $1 for a copy of it (and its WAL) that still leaves $2 MB (+16) free
room_for_copy() {
    local kb have
    kb=$(( $(stat -c %s "$1") / 1024 ))
    [[ ! -e "$1-wal" ]] || kb=$(( kb + $(stat -c %s "$1-wal") / 1024 ))
    have="$(df -Pk "$(dirname "$1")" | awk 'NR == 2 { print $4 }')"
    (( have >= kb + ($2 + 16) * 1024 ))
}

# copy database $1 with its WAL (the service stopped) to $2 (and $2-wal), mode and owner kept
backup_db() {
    local bak="$2"
    rm -f "$bak" "$bak-wal" "$bak-shm" "$bak.partial"
    if [[ -e "$1-wal" ]]; then
        cp -p "$1-wal" "$bak-wal" || return 1
    fi
    cp -p "$1" "$bak.partial" && sync && mv "$bak.partial" "$bak" && sync
}

# 1 while an install has the service stopped (for the database copy) that ran before: any failure
# from then on starts it again (start_again, from refuse_update and the EXIT trap)
WAS_ACTIVE=0
START_AGAIN=""  # how start_again went: "" (nothing to do), started, failed

start_again() {
    [[ $WAS_ACTIVE -eq 1 ]] || return 0
    WAS_ACTIVE=0
    if systemctl is-active --quiet "$UNIT"; then
        START_AGAIN=started
    elif systemctl start "$UNIT"; then
        START_AGAIN=started
        echo "$UNIT started again (it was stopped for the database copy)" >&2
    else
        START_AGAIN=failed
        echo "$UNIT did not start again: systemctl status $UNIT" >&2
    fi
    return 0
}

# the install ends: after a failure, the service runs again if it ran before the install stopped it
on_exit() {
    local rc=$?
    if [[ $rc -ne 0 && $WAS_ACTIVE -eq 1 ]]; then
        echo "install failed (status $rc) with $UNIT stopped; current: $(current_desc)" >&2
        start_again
    fi
}

# stop the service and copy database $1 to $2 for a rollback (the update to $3 is refused, the
# service started again, if that fails); $4: what the copy is for
backup_before_switch() {
    local db="$1" bak="$2" rel="$3"
    if systemctl is-active --quiet "$UNIT"; then
        WAS_ACTIVE=1
        trap on_exit EXIT
    fi
    systemctl stop "$UNIT"
    if ! backup_db "$db" "$bak"; then
        rm -f "$bak" "$bak-wal" "$bak.partial"
        refuse_update "$rel" "could not back up $db (above)"
    fi
    echo "database copied, service stopped, to $bak ($4)"
}

# what is current: a release, the install from before releases, or nothing
current_desc() {
    local cur
    cur="$(current_release)"
    if [[ -n "$cur" ]]; then
        printf '%s' "$cur"
    elif [[ -e "$PREFIX/venv" ]]; then
        printf 'the install in %s from before releases' "$PREFIX"
    else
        printf 'nothing (no earlier install)'
    fi
}

# the update to release $1 is not made: remove it, start the service again if the update stopped it,
# and say what is current and whether the service runs (asked of systemctl)
refuse_update() {
    rm -rf "${PREFIX:?}/releases/$1"
    start_again
    if systemctl is-active --quiet "$UNIT"; then
        printf 'update refused: %s\nnothing changed: still current and running: %s (release %s removed)\n' \
            "$2" "$(current_desc)" "$1" >&2
    else
        local why="it was not running before the update either"
        case "$START_AGAIN" in
            failed) why="it was stopped for the database copy and did not start again" ;;
            started) why="it was stopped for the database copy, started again, and is not active now" ;;
        esac
        printf 'update refused: %s\nstill current: %s (release %s removed), but %s is NOT running: %s;\nsee: systemctl status %s; journalctl -u %s\n' \
            "$2" "$(current_desc)" "$1" "$UNIT" "$why" "$UNIT" "$UNIT" >&2
    fi
    exit 1
}

# make the complete release $1 current, but only if it accepts the existing config and database;
# the database is copied first (with the service stopped) for a rollback
activate() {
    local rel="$1" why cur db free_mb bak what
    step "release $rel: checking $ETC/edge.toml and the database with it"
    if ! why="$(release_accepts "$PREFIX/releases/$rel")"; then
        printf '%s\n' "$why" >&2
        refuse_update "$rel" "release $rel does not accept $ETC/edge.toml or the database (above);
fix the config (docs/config.md) or the database (docs/deploy.md, doctor), then run $0 again"
    fi
    cur="$(current_release)"
    db="$(db_file "$PREFIX/releases/$rel")"
    [[ ! -e "$(restore_mark "$db")" ]] || refuse_update "$rel" "a --rollback did not finish restoring $db \
($(restore_mark "$db")): run $0 --rollback to finish it first"
    if [[ -e "$db" ]]; then
        if [[ -n "$cur" ]]; then
            bak="$(backup_of "$db" "$cur")" what="restored by --rollback to $cur if needed"
        else
            # the layout before releases (or no install at all): nothing --rollback can go back to,
            # but the copy is still the database as it was before $rel (kept while $rel is)
            bak="$(backup_of "$db" "before-$rel")"
            what="the install before $rel cannot be rolled back to: this copy is the database as it was before \
$rel, to put back by hand if needed (docs/deploy.md); kept while $rel is"
        fi
        free_mb="$(min_free_mb "$PREFIX/releases/$rel")"
        room_for_copy "$db" "$free_mb" || refuse_update "$rel" "no room beside $db for a copy of it that \
leaves store.min_free_mb ($free_mb MB) free: the copy is what --rollback needs; free some space, then run $0 again"
        backup_before_switch "$db" "$bak" "$rel" "$what"
    fi
    switch_to "$rel"
}

do_check() {
    step "releases in $PREFIX/releases (current: $(current_release))"
    releases | sed 's/^/  /'
    "$PREFIX/venv/bin/yh-edge" --version
    "$PREFIX/venv/bin/yh-edge" config validate "$ETC/edge.toml"
    step "doctor"
    doctor
}

refuse_rollback() {
    printf 'rollback refused: %s\nnothing changed: still current: %s\n' "$1" "$(current_release)" >&2
    exit 1
}

# the mark of a restore of database $1 under way: while it exists the restore is unfinished and
# --rollback finishes it (lines: phase "aside" or "back", the older release, the newer one, the path
# the newer database is kept as)
restore_mark() { printf '%s.rollback-in-progress' "$1"; }

mark_restore() {
    local m
    m="$(restore_mark "$1")"
    printf '%s\n' "$2" "$3" "$4" "$5" >"$m.new" && sync && mv -f "$m.new" "$m" && sync
}

# a restore that cannot go on by itself: say exactly what is where and what to do by hand
refuse_restore() {
    printf 'rollback refused: %s\nthe restore of %s is not finished; %s stays (it says how far it got); still current: %s\n' \
        "$1" "$2" "$(restore_mark "$2")" "$(current_release)" >&2
    printf 'to finish by hand, with the service stopped (systemctl stop %s): move any %s, %s-wal, %s-shm\n' \
        "$UNIT" "$2" "$2" "$2" >&2
    printf 'to a new name beside it (they hold songs: never delete them), move %s (and %s-wal if there is one)\n' \
        "$3" "$3" >&2
    printf 'to %s (and %s-wal), delete %s, then run %s --rollback again\n' "$2" "$2" "$(restore_mark "$2")" "$0" >&2
    exit 1
}

# database $1 back to its copy from before the update to release $2 (phase "aside": the newer files
# moved to the kept path, then phase "back": the copy moved into place); an interrupted restore
# goes on from where it stopped, by the mark
finish_restore() {
    local db="$1" cur="$2" prev="$3" m phase=x mprev=x mcur=x kept="" bak sfx
    m="$(restore_mark "$db")"
    bak="$(backup_of "$db" "$prev")"
    { read -r phase; read -r mprev; read -r mcur; IFS= read -r kept; } <"$m" || true
    [[ "$mprev" == "$prev" && "$mcur" == "$cur" && -n "$kept" && ( "$phase" == aside || "$phase" == back ) ]] \
        || refuse_restore "$m is of a rollback $mcur -> $mprev (phase $phase), not of $cur -> $prev" "$db" "$bak"
    if [[ "$phase" == aside ]]; then
        for sfx in "" -wal -shm; do
            [[ ! -e "$db$sfx" || ! -e "$kept$sfx" ]] || refuse_restore "both $db$sfx and $kept$sfx exist \
(the service started on its own after the database was moved aside?)" "$db" "$bak"
        done
    fi
    if [[ "$phase" == back || -e "$bak" ]]; then
        [[ -e "$bak" || -e "$db" ]] || refuse_restore "neither $db nor its copy $bak exists" "$db" "$bak"
    else
        refuse_restore "its copy $bak is missing" "$db" "$bak"
    fi
    if [[ "$phase" == back && -e "$bak" ]] && [[ -e "$db" || ( -e "$bak-wal" && -e "$db-wal" ) ]]; then
        refuse_restore "$db appeared after it was moved aside to $kept (the service started on its own?)" "$db" "$bak"
    fi
    systemctl stop "$UNIT"
    if [[ "$phase" == aside ]]; then
        for sfx in "" -wal -shm; do
            [[ ! -e "$db$sfx" ]] || mv "$db$sfx" "$kept$sfx"
        done
        sync
        mark_restore "$db" back "$prev" "$cur" "$kept"
    fi
    if [[ -e "$bak" ]]; then
        rm -f "$bak-shm"
        [[ ! -e "$bak-wal" ]] || mv "$bak-wal" "$db-wal"
        mv "$bak" "$db"
        sync
    fi
    rm -f "$m"
    sync
    echo "restored $db as it was before the update to $cur; the database $cur used is kept as $kept:"
    yh_as_service "$PREFIX/releases/$cur" db check --config "$ETC/edge.toml" --db "$kept" || true
    echo "songs recorded since the update to $cur are only in that file: send it to the coordinator" \
        "(yh-server import skips what the server has), then delete it"
}

# database $1 as it was when release $3 was current comes back from its backup; the file release $2
# wrote is kept beside it as <database>.rolled-back-$2 (never deleted)
restore_backup() {
    local db="$1" cur="$2" prev="$3" bak kept why
    bak="$(backup_of "$db" "$prev")"
    yh_as_service "$PREFIX/releases/$cur" db check --config "$ETC/edge.toml" >/dev/null 2>&1 \
        || refuse_rollback "the database fails 'yh-edge db check' with $cur as well: it may be damaged (docs/deploy.md, doctor)"
    [[ -f "$bak" ]] || refuse_rollback "$prev cannot open the database $cur has used, and there is no copy \
of it from before the update to $cur ($bak)"
    why="$(yh_as_service "$PREFIX/releases/$prev" db check --config "$ETC/edge.toml" --db "$bak" 2>&1)" \
        || refuse_rollback "$prev cannot open the backup $bak either: $why"
    kept="$db.rolled-back-$cur"
    [[ ! -e "$kept" && ! -e "$kept-wal" && ! -e "$kept-shm" ]] || kept="$kept.$(date -u +%Y%m%dT%H%M%SZ)"
    systemctl stop "$UNIT"
    mark_restore "$db" aside "$prev" "$cur" "$kept"
    finish_restore "$db" "$cur" "$prev"
}

do_rollback() {
    local cur prev why db
    cur="$(current_release)"
    prev="$(releases | awk -v c="$cur" '$0 == c { print last; exit } { last = $0 }')"
    if [[ -z "$cur" || -z "$prev" ]]; then
        echo "no earlier release to roll back to (releases: $(releases | tr '\n' ' '))" >&2
        exit 1
    fi
    step "rollback: $cur -> $prev"
    why="$(yh_as_service "$PREFIX/releases/$prev" config validate "$ETC/edge.toml" 2>&1)" \
        || refuse_rollback "$prev does not accept $ETC/edge.toml: $why"
    db="$(db_file "$PREFIX/releases/$prev")"
    if [[ -e "$(restore_mark "$db")" ]]; then
        # an earlier rollback stopped half-way (the database moved aside, its copy not yet back)
        echo "an earlier --rollback $cur -> $prev did not finish restoring $db: finishing it"
        finish_restore "$db" "$cur" "$prev"
    elif [[ -e "$db" ]] && ! why="$(yh_as_service "$PREFIX/releases/$prev" db check --config "$ETC/edge.toml" 2>&1)"; then
        printf '%s cannot open the database:\n%s\n' "$prev" "$why"
        restore_backup "$db" "$cur" "$prev"
    fi
    switch_to "$prev"
    install -m 0644 "$PREFIX/src/systemd/$UNIT" "$SYSTEMD_DIR/$UNIT"  # that release's unit
    restart_service
    echo "rolled back; $cur stays in $PREFIX/releases until the next install removes old releases"
}

install_system() {
    if [[ ! -f "$SRC/pyproject.toml" || ! -d "$SRC/edge" ]]; then
        echo "$SRC does not look like the yellowhammer source tree" >&2
        exit 1
    fi
    case "$(uname -m)" in
        armv6l|armv7l)
            echo "this is 32-bit Raspberry Pi OS ($(uname -m)): PyPI has no TensorFlow Lite interpreter for it;" \
                "install Raspberry Pi OS (64-bit) instead (docs/deploy.md, 'Supported systems')" >&2
            exit 1 ;;
    esac

    step "system packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends \
        python3 python3-venv python3-dev build-essential \
        portaudio19-dev libportaudio2 alsa-utils \
        libopenblas0 sqlite3 ca-certificates

    step "user $USER_NAME (groups: audio)"
    if ! id "$USER_NAME" >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir "$DATA_DIR" \
            --shell /usr/sbin/nologin --groups audio "$USER_NAME"
    else
        usermod -a -G audio "$USER_NAME"
    fi
}

# a new complete release from $SRC; sets REL
build_release() {
    local version new
    version="$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$SRC/pyproject.toml" | head -n1)"
    if git -C "$SRC" rev-parse --short HEAD >/dev/null 2>&1; then
        version="$version-$(git -C "$SRC" rev-parse --short HEAD)"
    fi
    REL="$(date -u +%Y%m%dT%H%M%SZ)-$version"
    new="$PREFIX/releases/$REL"
    step "release $REL: virtual environment in $new/venv"
    install -d -m 0755 "$PREFIX" "$PREFIX/releases"
    trap 'rm -rf "$PREFIX/releases/$REL"; echo "install failed: $REL removed, still current: $(current_release)" >&2' ERR
    install -d -m 0755 "$new"
    cp -a "$SRC" "$new/src"
    rm -rf "$new/src/.venv" "$new/src/.git"
    python3 -m venv "$new/venv"
    "$new/venv/bin/pip" install -q --upgrade pip wheel
    # the Pi runtime only: numpy, scipy, TFLite interpreter, paho-mqtt, sqlite-utils, click, pyaudio
    "$new/venv/bin/pip" install -q "$new/src[mic]"
    "$new/venv/bin/yh-edge" --version
    touch "$new/.complete"
    trap - ERR
}

# the config (written by the release in directory $1 when there is none) and the password file
ensure_config() {
    step "configuration in $ETC"
    install -d -m 0755 "$ETC"
    if [[ ! -f "$ETC/edge.toml" ]]; then
        local host
        host="$(hostname -s | tr '[:upper:]' '[:lower:]')"
        "$1/venv/bin/yh-edge" config default \
            | sed -e "s/^id = \"\"/id = \"yh-$host\"/" >"$ETC/edge.toml"
        chmod 0644 "$ETC/edge.toml"
        echo "wrote $ETC/edge.toml (device id yh-$host): edit it, then: systemctl restart yellowhammer-edge"
    else
        echo "keeping the existing $ETC/edge.toml"
    fi
    # systemd's LoadCredential= needs the file to exist even when sync is off
    if [[ ! -f "$ETC/mqtt-password" ]]; then
        install -m 0640 -o root -g "$USER_NAME" /dev/null "$ETC/mqtt-password"
    fi
}

# keep the newest $KEEP_RELEASES complete ones (the current one always); drop interrupted installs
prune_releases() {
    local d old
    for d in "$PREFIX"/releases/*/; do
        old="$(basename "$d")"
        if [[ "$old" != "$(current_release)" && ( ! -f "$d.complete" || -z "$(releases | tail -n "$KEEP_RELEASES" | grep -Fx "$old")" ) ]]; then
            rm -rf "${PREFIX:?}/releases/$old"
            echo "removed old release $old"
        fi
    done
}

# copies of the database for releases no longer kept are deleted (no rollback can go there)
prune_backups() {
    local db f rel
    db="$(db_file "$PREFIX/current")" || return 0
    for f in "$db".backup-*; do
        [[ -f "$f" && "$f" != *-wal && "$f" != *-shm ]] || continue
        rel="${f#"$db.backup-"}"
        rel="${rel#before-}"  # the copy from before the first release, $rel: kept while $rel is
        if [[ ! -f "$PREFIX/releases/$rel/.complete" ]]; then
            rm -f "$f" "$f-wal" "$f-shm"
            echo "removed $f (release $rel is gone)"
        fi
    done
}

do_install() {
    install_system
    build_release
    ensure_config "$PREFIX/releases/$REL"
    activate "$REL"
    prune_releases
    prune_backups

    step "systemd unit $UNIT"
    install -m 0644 "$PREFIX/src/systemd/$UNIT" "$SYSTEMD_DIR/$UNIT"
    if command -v systemd-analyze >/dev/null; then
        systemd-analyze verify "$SYSTEMD_DIR/$UNIT" || true
    fi
    restart_service
    WAS_ACTIVE=0  # the service is as the install wants it (--no-start: stopped)

    step "checks"
    doctor || {
        echo
        echo "doctor found problems (see 'likely cause' above); the service keeps retrying."
    }
    echo
    echo "done. Status: sudo -u $USER_NAME $PREFIX/venv/bin/yh-edge status -c $ETC/edge.toml"
    echo "      Check: sudo $0 --check    Roll back: sudo $0 --rollback"
}

main() {
    local arg
    for arg in "$@"; do
        case "$arg" in
            --no-start) START=0 ;;
            --check) MODE=check ;;
            --rollback) MODE=rollback ;;
            -h|--help) sed -n '2,/^set -euo pipefail/{/^#/p}' "$0"; exit 0 ;;
            *) echo "unknown option: $arg" >&2; exit 2 ;;
        esac
    done
    if [[ $EUID -ne 0 ]]; then
        echo "run as root: sudo $0 $*" >&2
        exit 1
    fi
    case "$MODE" in
        check) do_check ;;
        rollback) do_rollback ;;
        *) do_install ;;
    esac
}

# sourced (tests): only the functions above; run: the installer
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
