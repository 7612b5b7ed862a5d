#!/bin/bash
# Entrypoint of the frontend image: fix the ownership of what the rig copied into
# oneadmin's ~/.ssh before start, then idle (the oned simulator will run here).
set -euo pipefail
chown -R oneadmin:oneadmin /var/lib/one/.ssh
chmod 0700 /var/lib/one/.ssh
find /var/lib/one/.ssh -type f -name 'id_*' ! -name '*.pub' -exec chmod 0600 {} +
echo "eqliscsi-frontend: ready"
exec sleep infinity
