#!/bin/bash
# Entrypoint of the san image.  Chooses the target backend, says which on stdout, then
# runs the fake EqualLogic shell (python -m rig.fake_eql) when the installed package
# has it; until then (or with EQLISCSI_SAN_SMOKE=1) it serves one smoke target with
# tgt so the image is testable on its own.
#   EQLISCSI_TARGET_BACKEND=auto|tgt|lio   (auto: LIO when the kernel has it)
set -euo pipefail
say() { echo "eqliscsi-san: $*"; }
die() { echo "eqliscsi-san: $*" >&2; exit 1; }

requested="${EQLISCSI_TARGET_BACKEND:-auto}"
# LIO needs target_core_mod and configfs on the Docker host (a container shares its
# kernel) plus rtslib-fb in the image; without them tgt serves the same LUNs from
# userspace.
lio_usable() { [ -d /sys/kernel/config/target ] && python -c 'import rtslib_fb' 2>/dev/null; }
case "$requested" in
  auto) if lio_usable; then backend=lio; else backend=tgt; fi ;;
  tgt) backend=tgt ;;
  lio) lio_usable || die "EQLISCSI_TARGET_BACKEND=lio but this kernel has no LIO (configfs + target_core_mod) or rtslib-fb is missing; use tgt or run on a host with LIO."
       backend=lio ;;
  *) die "EQLISCSI_TARGET_BACKEND=$requested is not one of auto, tgt, lio; set one of those." ;;
esac
say "target backend $backend (requested $requested)"
export EQLISCSI_TARGET_BACKEND="$backend"

if [ "${EQLISCSI_SAN_SMOKE:-0}" != 1 ] && python -c 'import rig.fake_eql' 2>/dev/null; then
  say "starting rig.fake_eql"
  exec python -m rig.fake_eql "$@"
fi

[ "$backend" = tgt ] || die "smoke mode serves its target with tgt only; set EQLISCSI_TARGET_BACKEND=tgt."
say "rig.fake_eql is not installed; serving the smoke target"
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
