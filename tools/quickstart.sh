#!/usr/bin/env bash
# Quick start: install the Pi runtime into ./.venv and run the recorder's main job on the bundled
# demo recording (no microphone, no broker): detections are printed and stored in ./var/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
demo=$(.venv/bin/python -c 'import edge, pathlib; print(pathlib.Path(edge.__file__).parent / "data" / "demo.wav")')
YH_DEVICE__DATA_DIR="$PWD/var" .venv/bin/yh-edge analyze "$demo"
