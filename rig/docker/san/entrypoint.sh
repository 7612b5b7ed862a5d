#!/bin/bash
# Entrypoint of the san image.  Chooses the target backend, says which on stdout, then
# runs the fake EqualLogic group (python -m rig.fake_eql): the Group Manager CLI on
# port 22 and the iSCSI data plane.  With EQLISCSI_SAN_SMOKE=1 it serves one smoke
# target with tgt instead, so the image is testable on its own.
#   EQLISCSI_TARGET_BACKEND=auto|tgt|lio   (auto: LIO when the kernel has it)
#   EQLISCSI_SAN_GROUP, EQLISCSI_SAN_ACCOUNT   group name and CLI account
#   EQLISCSI_SAN_PASSWORD_FILE   the account's password (a file copied in; never env/argv)
#   EQLISCSI_SAN_MEMBER_PORT     the member tgtd's port (default 3261)
#   EQLISCSI_SAN_REDIRECT_ADDRESS  address the group portal (3260) redirects logins to
#                                  (default: this container's address on its network)
#   EQLISCSI_SAN_HOST_PORTAL_PORT  a second group portal (default 3262) whose logins go
#                                  to EQLISCSI_SAN_HOST_REDIRECT_ADDRESS (default
#                                  127.0.0.1): for initiators on the Docker host, which
#                                  reach the member through a port published 1:1
# See docs/docker-rig.md ("The group portal and the login redirect").
set -euo pipefail
say() { echo "eqliscsi-san: $*"; }
die() { echo "eqliscsi-san: $*" >&2; exit 1; }

requested="${EQLISCSI_TARGET_BACKEND:-auto}"
# LIO needs target_core_mod and configfs on the Docker host (a container shares its
# kernel) plus rtslib-fb in the image; without them tgt serves the same LUNs from
# userspace.
# The fake group also needs a LIO data plane of its own (rig.fake_eql.__main__.BACKENDS).
lio_usable() {
  [ -d /sys/kernel/config/target ] && python -c 'import rtslib_fb' 2>/dev/null || return 1
  [ "${EQLISCSI_SAN_SMOKE:-0}" = 1 ] && return 0
  python -c 'import sys; from rig.fake_eql.__main__ import BACKENDS; sys.exit("lio" not in BACKENDS)' 2>/dev/null
}
case "$requested" in
  auto) if lio_usable; then backend=lio; else backend=tgt; fi ;;
  tgt) backend=tgt ;;
  lio) lio_usable || die "EQLISCSI_TARGET_BACKEND=lio but this kernel has no LIO (configfs + target_core_mod), or rtslib-fb or the fake group's LIO data plane is missing; use tgt or run on a host with LIO."
       backend=lio ;;
  *) die "EQLISCSI_TARGET_BACKEND=$requested is not one of auto, tgt, lio; set one of those." ;;
esac
say "target backend $backend (requested $requested)"
export EQLISCSI_TARGET_BACKEND="$backend"

if [ "${EQLISCSI_SAN_SMOKE:-0}" != 1 ]; then
  python -c 'import rig.fake_eql' 2>/dev/null || die "rig.fake_eql is not installed in this image; rebuild it (python -m rig.docker build)."
  password_file="${EQLISCSI_SAN_PASSWORD_FILE:-/etc/eqliscsi/san-password}"
  [ -s "$password_file" ] || die "the password file $password_file is missing or empty; copy it into the container before starting it."
  member_port="${EQLISCSI_SAN_MEMBER_PORT:-3261}"
  host_port="${EQLISCSI_SAN_HOST_PORTAL_PORT:-3262}"
  # The address the private network knows this container by; hostname -i reads the
  # /etc/hosts line Docker writes at every start, so a restart that moved the
  # container to another address redirects to the new one.
  self_ip="$(hostname -i | awk '{print $1}')"
  redirect="${EQLISCSI_SAN_REDIRECT_ADDRESS:-$self_ip}"
  host_redirect="${EQLISCSI_SAN_HOST_REDIRECT_ADDRESS:-127.0.0.1}"
  say "starting rig.fake_eql: group portal 3260 -> $redirect:$member_port, host portal $host_port -> $host_redirect:$member_port"
  exec python -m rig.fake_eql \
    --state /var/lib/eqliscsi/san \
    --listen 0.0.0.0:22 \
    --target-backend "$backend" \
    --group-name "${EQLISCSI_SAN_GROUP:-rig-group}" \
    --account "${EQLISCSI_SAN_ACCOUNT:-grpadmin}" \
    --password-file "$password_file" \
    --iscsi-portal 0.0.0.0:3260 \
    --member-port "$member_port" \
    --redirect-to "$redirect:$member_port" \
    --extra-portal "$host_port=$host_redirect:$member_port" \
    --group-ip "$self_ip" \
    "$@"
fi

[ "$backend" = tgt ] || die "smoke mode serves its target with tgt only; set EQLISCSI_TARGET_BACKEND=tgt."
say "smoke mode (EQLISCSI_SAN_SMOKE=1): serving the smoke target"
iqn="${EQLISCSI_SMOKE_IQN:-iqn.2001-05.com.equallogic:0-8a0906-000000000-0000000000000001-smoke}"
tgtd -f --iscsi portal=0.0.0.0:3260 &
tgtd_pid=$!
trap 'kill -TERM "$tgtd_pid" 2>/dev/null; wait "$tgtd_pid"; exit 0' TERM INT
for _ in $(seq 100); do
  tgtadm --lld iscsi --op show --mode sys >/dev/null 2>&1 && break
  kill -0 "$tgtd_pid" 2>/dev/null || die "tgtd exited while starting; see the lines above."
  sleep 0.1
done
tgtadm --lld iscsi --op show --mode sys >/dev/null || die "tgtd did not answer tgtadm within 10 s."
truncate -s "${EQLISCSI_SMOKE_SIZE:-64M}" /var/lib/eqliscsi/smoke.img
tgtadm --lld iscsi --op new --mode target --tid 1 -T "$iqn"
tgtadm --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b /var/lib/eqliscsi/smoke.img
tgtadm --lld iscsi --op bind --mode target --tid 1 -I ALL
say "ready: target $iqn lun 1 on port 3260"
wait "$tgtd_pid"
