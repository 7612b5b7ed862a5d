#!/bin/bash
# Entrypoint of the host image: a fresh host key per container (so known_hosts checks
# in the tests mean something), oneadmin's authorized_keys as the rig put it there
# before start, then sshd in the foreground.
set -euo pipefail
[ -f /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
install -d -m 0755 /run/sshd
if [ -f /var/lib/one/.ssh/authorized_keys ]; then
  chown oneadmin:oneadmin /var/lib/one/.ssh/authorized_keys
  chmod 0600 /var/lib/one/.ssh/authorized_keys
fi
# A start after the first is this host's reboot.  A real host comes back with an empty
# /run (tmpfs) and a kernel without the old sessions; here /run is in the container's
# layer and the loop devices belong to the Docker host's kernel, which outlived us.  So
# forget what the iscsiadm stand-in recorded, detaching each loop device it attached
# that is still bound to its session's FUSE file (qemu-storage-daemon died with the old
# container).  /dev/iscsi is new at every start (Docker's /dev tmpfs).  The node
# database in /etc/iscsi stays, as on a real host's disk.
state=/run/eqliscsi-standin
if [ -d "$state/sessions" ]; then
  /opt/eqliscsi/bin/python - "$state" <<'EOF'
import json, pathlib, subprocess, sys
state = pathlib.Path(sys.argv[1])
for record in sorted((state / "sessions").glob("*.json")):
    s = json.loads(record.read_text())
    back = subprocess.run(
        ["losetup", "--noheadings", "--output", "BACK-FILE", s["loop"]],
        capture_output=True, text=True, check=False,
    ).stdout.strip()
    if back.startswith(f"{state}/session{s['sid']}/lun"):
        subprocess.run(["losetup", "--detach", s["loop"]], check=False)
        print(f"eqliscsi-host: detached {s['loop']}, left by session {s['sid']} before this start")
EOF
fi
rm -rf "$state"
# One initiator name per host, as open-iscsi's postinst would generate.
echo "InitiatorName=iqn.2026-11.org.eqliscsi.rig:docker-$(hostname)" > /etc/iscsi/initiatorname.iscsi
echo "eqliscsi-host: $(hostname) starting sshd"
exec /usr/sbin/sshd -D -e
