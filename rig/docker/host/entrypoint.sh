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
# One initiator name per host, as open-iscsi's postinst would generate.
echo "InitiatorName=iqn.2026-11.org.eqliscsi.rig:docker-$(hostname)" > /etc/iscsi/initiatorname.iscsi
echo "eqliscsi-host: $(hostname) starting sshd"
exec /usr/sbin/sshd -D -e
