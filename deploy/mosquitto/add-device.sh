#!/bin/sh
# Add (or re-key) a device: creates its broker password and prints the credential file to copy
# to the Pi as /etc/yellowhammer/mqtt-password (loaded with systemd LoadCredential=).
# usage: add-device.sh DEVICE_ID [PASSWD_FILE]
set -eu
dev="${1:?usage: add-device.sh DEVICE_ID [PASSWD_FILE]}"
passwd_file="${2:-/etc/mosquitto/yh/passwd}"
case "$dev" in
  *[!A-Za-z0-9._:-]*|"") echo "device id may only use letters, digits and . _ : -" >&2; exit 2;;
esac
pw="$(head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 32)"
[ -f "$passwd_file" ] || { touch "$passwd_file"; chmod 0640 "$passwd_file"; }
mosquitto_passwd -b "$passwd_file" "$dev" "$pw"
echo "added $dev to $passwd_file; reload the broker: systemctl reload mosquitto" >&2
echo "password for $dev (put it alone in the device's credential file):" >&2
printf '%s\n' "$pw"
