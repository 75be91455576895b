#!/usr/bin/env bash
# Install the Yellowhammer recorder on Raspberry Pi OS (Bookworm or later; 64- or 32-bit).
#
# Run from a checkout of the project (or an unpacked release):
#
#     sudo tools/install_pi.sh                 # install or upgrade, enable and start the service
#     sudo tools/install_pi.sh --no-start      # install but leave the service stopped
#
# What it does (every step is safe to repeat; an existing config is never overwritten):
#   1. apt packages: python3-venv, PortAudio (portaudio19-dev, to build pyaudio), ALSA tools,
#      libopenblas (numpy/scipy wheels), sqlite3 (to look at the database by hand)
#   2. a system user "yellowhammer" in the "audio" group, without login or home
#   3. a virtual environment in /opt/yellowhammer/venv with the package and its 'mic' extra
#   4. /etc/yellowhammer/edge.toml from the bundled default (device id = yh-<hostname>)
#      and an empty /etc/yellowhammer/mqtt-password (mode 0640, root:yellowhammer)
#   5. the systemd unit, enabled and started; then `yh-edge doctor`
#
# Undo: systemctl disable --now yellowhammer-edge; rm -r /opt/yellowhammer /etc/yellowhammer
#       /etc/systemd/system/yellowhammer-edge.service; userdel yellowhammer
# (the detections in /var/lib/yellowhammer are kept unless you delete them too).
set -euo pipefail

PREFIX=/opt/yellowhammer
ETC=/etc/yellowhammer
USER_NAME=yellowhammer
UNIT=yellowhammer-edge.service
START=1
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

for arg in "$@"; do
    case "$arg" in
        --no-start) START=0 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown option: $arg" >&2; exit 2 ;;
    esac
done

if [[ $EUID -ne 0 ]]; then
    echo "run as root: sudo $0 $*" >&2
    exit 1
fi
if [[ ! -f "$SRC/pyproject.toml" || ! -d "$SRC/edge" ]]; then
    echo "$SRC does not look like the yellowhammer source tree" >&2
    exit 1
fi

step() { printf '\n==> %s\n' "$*"; }

step "system packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
    python3 python3-venv python3-dev build-essential \
    portaudio19-dev libportaudio2 alsa-utils \
    libopenblas0 sqlite3 ca-certificates

step "user $USER_NAME (groups: audio)"
if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /var/lib/yellowhammer \
        --shell /usr/sbin/nologin --groups audio "$USER_NAME"
else
    usermod -a -G audio "$USER_NAME"
fi

step "virtual environment in $PREFIX/venv"
install -d -m 0755 "$PREFIX"
rm -rf "$PREFIX/src"
cp -a "$SRC" "$PREFIX/src"
rm -rf "$PREFIX/src/.venv" "$PREFIX/src/.git"
if [[ ! -x "$PREFIX/venv/bin/python" ]]; then
    python3 -m venv "$PREFIX/venv"
fi
"$PREFIX/venv/bin/pip" install -q --upgrade pip wheel
# the Pi runtime only: numpy, scipy, TFLite interpreter, paho-mqtt, sqlite-utils, click, pyaudio
"$PREFIX/venv/bin/pip" install -q "$PREFIX/src[mic]"
"$PREFIX/venv/bin/yh-edge" --version

step "configuration in $ETC"
install -d -m 0755 "$ETC"
if [[ ! -f "$ETC/edge.toml" ]]; then
    host="$(hostname -s | tr '[:upper:]' '[:lower:]')"
    "$PREFIX/venv/bin/yh-edge" config default \
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
"$PREFIX/venv/bin/yh-edge" config validate "$ETC/edge.toml"

step "systemd unit $UNIT"
install -m 0644 "$PREFIX/src/systemd/$UNIT" "/etc/systemd/system/$UNIT"
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify "/etc/systemd/system/$UNIT" || true
fi
systemctl daemon-reload
systemctl enable "$UNIT"
if [[ $START -eq 1 ]]; then
    systemctl restart "$UNIT"
    sleep 5
    systemctl --no-pager --lines=5 status "$UNIT" || true
fi

step "checks"
# as the service user, with the service's data directory
sudo -u "$USER_NAME" YH_DEVICE__DATA_DIR=/var/lib/yellowhammer \
    "$PREFIX/venv/bin/yh-edge" doctor --config "$ETC/edge.toml" || {
    echo
    echo "doctor found problems (see 'likely cause' above); the service keeps retrying."
}
echo
echo "done. Status: sudo -u $USER_NAME $PREFIX/venv/bin/yh-edge status -c $ETC/edge.toml"
