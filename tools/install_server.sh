#!/usr/bin/env bash
# Install the Yellowhammer server (ingest workers, nightly clustering, web app) on Debian 12 /
# Ubuntu 22.04 or later, with PostgreSQL and mosquitto on the same machine by default.
#
# Run from a checkout of the project:
#
#     sudo tools/install_server.sh                       # 2 ingest workers, local PostgreSQL + mosquitto
#     sudo tools/install_server.sh --workers 4           # more workers (see docs/server.md for sizing)
#     sudo tools/install_server.sh --db postgresql://yh@db.lan/yellowhammer --no-broker
#                                                       # a worker machine: remote database and broker
#     sudo tools/install_server.sh --no-start            # install, leave the services stopped
#
# What it does (every step is safe to repeat; an existing config is never overwritten):
#   1. apt packages: python3-venv, libopenblas; postgresql (unless --db names another server),
#      mosquitto (unless --no-broker)
#   2. a system user "yhserver" without login or home
#   3. a virtual environment in /opt/yellowhammer/venv with the package and its 'server' extra
#   4. local PostgreSQL: a role "yhserver" (peer authentication over the Unix socket, no password)
#      and its database "yellowhammer"; the schema is created by the first worker
#   5. /etc/yellowhammer/server.env (database URL, broker host) and an empty
#      /etc/yellowhammer/server-mqtt-password (mode 0640, root:yhserver)
#   6. systemd: yellowhammer-ingest@1..N, yellowhammer-serve, yellowhammer-cluster.timer (nightly
#      cluster + report), yellowhammer-assign.timer (new songs every 15 min); then `yh-server status`
#
# Undo: systemctl disable --now 'yellowhammer-ingest@*' yellowhammer-serve yellowhammer-cluster.timer
#       yellowhammer-assign.timer; rm /etc/systemd/system/yellowhammer-{ingest@,serve,cluster,assign}.*;
#       userdel yhserver (the database is kept: sudo -u postgres dropdb yellowhammer to delete it).
set -euo pipefail

PREFIX=/opt/yellowhammer
ETC=/etc/yellowhammer
USER_NAME=yhserver
WORKERS=2
DB=""
BROKER=1
START=1
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

while [[ $# -gt 0 ]]; do
    case "$1" in
        --workers) WORKERS="$2"; shift ;;
        --db) DB="$2"; shift ;;
        --no-broker) BROKER=0 ;;
        --no-start) START=0 ;;
        -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done
[[ "$WORKERS" =~ ^[1-9][0-9]*$ ]] || { echo "--workers needs a number >= 1" >&2; exit 2; }
if [[ $EUID -ne 0 ]]; then
    echo "run as root: sudo $0 $*" >&2
    exit 1
fi
if [[ ! -f "$SRC/pyproject.toml" || ! -d "$SRC/server" ]]; then
    echo "$SRC does not look like the yellowhammer source tree" >&2
    exit 1
fi
step() { printf '\n==> %s\n' "$*"; }

step "system packages"
export DEBIAN_FRONTEND=noninteractive
pkgs=(python3 python3-venv python3-dev build-essential libopenblas0 ca-certificates)
[[ -z "$DB" ]] && pkgs+=(postgresql)
[[ $BROKER -eq 1 ]] && pkgs+=(mosquitto)
apt-get update -q
apt-get install -y -q --no-install-recommends "${pkgs[@]}"

step "user $USER_NAME"
if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /var/lib/yellowhammer-server --shell /usr/sbin/nologin "$USER_NAME"
fi

step "virtual environment in $PREFIX/venv"
install -d -m 0755 "$PREFIX"
rm -rf "$PREFIX/src"
cp -a "$SRC" "$PREFIX/src"
rm -rf "$PREFIX/src/.venv" "$PREFIX/src/.git"
[[ -x "$PREFIX/venv/bin/python" ]] || python3 -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install -q --upgrade pip wheel
"$PREFIX/venv/bin/pip" install -q "$PREFIX/src[server]"
"$PREFIX/venv/bin/yh-server" --version

if [[ -z "$DB" ]]; then
    step "PostgreSQL: role $USER_NAME, database yellowhammer"
    systemctl enable --now postgresql
    if ! runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$USER_NAME'" | grep -q 1; then
        runuser -u postgres -- createuser "$USER_NAME"
    fi
    if ! runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_database WHERE datname = 'yellowhammer'" | grep -q 1; then
        runuser -u postgres -- createdb -O "$USER_NAME" yellowhammer
    fi
    DB="postgresql:///yellowhammer?host=/run/postgresql"
fi

step "configuration in $ETC"
install -d -m 0755 "$ETC"
if [[ ! -f "$ETC/server.env" ]]; then
    install -m 0640 -o root -g "$USER_NAME" /dev/null "$ETC/server.env"
    cat >"$ETC/server.env" <<EOF
# Yellowhammer server settings (environment overrides of the server config, docs/config.md)
YH_SERVER_DB=$DB
YH_SERVER_MQTT__HOST=localhost
YH_SERVER_MQTT__PORT=1883
# YH_SERVER_MQTT__USERNAME=yh-server
EOF
    echo "wrote $ETC/server.env: edit the broker address and user, then restart the services"
else
    echo "keeping the existing $ETC/server.env"
fi
[[ -f "$ETC/server-mqtt-password" ]] || install -m 0640 -o root -g "$USER_NAME" /dev/null "$ETC/server-mqtt-password"

step "systemd units"
units=(yellowhammer-ingest@.service yellowhammer-serve.service yellowhammer-cluster.service
       yellowhammer-cluster.timer yellowhammer-assign.service yellowhammer-assign.timer)
for u in "${units[@]}"; do
    install -m 0644 "$PREFIX/src/systemd/$u" "/etc/systemd/system/$u"
done
systemctl daemon-reload
enable=(yellowhammer-serve.service yellowhammer-cluster.timer yellowhammer-assign.timer)
for i in $(seq 1 "$WORKERS"); do enable+=("yellowhammer-ingest@$i.service"); done
systemctl enable "${enable[@]}"
if [[ $START -eq 1 ]]; then
    systemctl restart "${enable[@]}"
    sleep 5
    systemctl --no-pager --lines=3 status 'yellowhammer-ingest@*' || true
fi

step "checks"
set -a; . "$ETC/server.env"; set +a
runuser -u "$USER_NAME" -- env YH_SERVER_DB="$YH_SERVER_DB" "$PREFIX/venv/bin/yh-server" status || {
    echo "the database is not ready yet (the first worker creates the schema); try again in a minute"
}
echo
echo "done: $WORKERS ingest workers in the shared group yh-ingest; web app on 127.0.0.1:8080"
echo "      (login link: journalctl -u yellowhammer-serve | grep login)"
