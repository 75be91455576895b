#!/bin/sh
# Add (or re-key) a broker account: creates its password and prints it (for a device: the
# credential file to copy to the Pi as /etc/yellowhammer/mqtt-password, loaded with systemd
# LoadCredential=).
# A name that has no `user` block in the ACL yet is a device: its block (write its own data
# topics, read the server's requests to it) is appended to the ACL. Server accounts
# (yh-ingest-1, yh-ingest-2, yh-monitor) already have theirs in the template.
# usage: add-device.sh DEVICE_ID [PASSWD_FILE [ACL_FILE]]   (topic prefix: $YH_TOPIC_PREFIX, default yh/v1)
set -eu
dev="${1:?usage: add-device.sh DEVICE_ID [PASSWD_FILE [ACL_FILE]]}"
passwd_file="${2:-/etc/mosquitto/yh/passwd}"
acl_file="${3:-/etc/mosquitto/yh/acl}"
prefix="${YH_TOPIC_PREFIX:-yh/v1}"
case "$dev" in
  *[!A-Za-z0-9._:-]*|"") echo "device id may only use letters, digits and . _ : -" >&2; exit 2;;
esac
[ -f "$acl_file" ] || { echo "no ACL file at $acl_file: copy deploy/mosquitto/acl there first" >&2; exit 2; }
pw="$(head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 32)"
[ -f "$passwd_file" ] || { touch "$passwd_file"; chmod 0640 "$passwd_file"; }
mosquitto_passwd -b "$passwd_file" "$dev" "$pw"
if grep -qx "user $dev" "$acl_file"; then
  echo "$dev already has its block in $acl_file" >&2
else
  {
    echo
    echo "user $dev"
    for kind in detections status stats digest clip; do echo "topic write $prefix/$dev/$kind"; done
    for kind in resend clip_request; do echo "topic read $prefix/$dev/$kind"; done
  } >> "$acl_file"
  echo "added the device block of $dev to $acl_file" >&2
fi
echo "added $dev to $passwd_file; reload the broker: systemctl reload mosquitto" >&2
echo "password for $dev (put it alone in the secret file):" >&2
printf '%s\n' "$pw"
