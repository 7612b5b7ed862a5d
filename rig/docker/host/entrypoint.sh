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
# A start after the first is this host's reboot: a real host comes back with an empty
# /run and a kernel without the old sessions, but here the loop devices the iscsiadm
# stand-in attached belong to the Docker host's kernel, which outlived us.  Forget the
# stand-in's sessions as a reboot would (rig/docker/host_reset.py).
/opt/eqliscsi/bin/python -m rig.docker.host_reset --boot
# One initiator name per host, as open-iscsi's postinst would generate.
echo "InitiatorName=iqn.2026-11.org.eqliscsi.rig:docker-$(hostname)" > /etc/iscsi/initiatorname.iscsi
echo "eqliscsi-host: $(hostname) starting sshd"
exec /usr/sbin/sshd -D -e
