#!/usr/bin/env bash
# Set up a fresh Debian 12 machine (as root) for eqliscsi: system packages the tests
# and the rig use, then a virtual environment in .venv with the package and its test
# extras.  Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# One list, used by the demo, the tests and CI.  Each line: why it is needed.
APT_PACKAGES=(
  tgt               # userspace iSCSI target: the rig's data plane
  libiscsi-bin      # iscsi-ls / iscsi-inq: independent judges
  tshark            # dissects captured iSCSI: independent judge
  qemu-utils        # qemu-img convert to iscsi:// (DS cp)
  qemu-block-extra  # the iscsi block driver for qemu-img
  qemu-system-common  # qemu-storage-daemon: the iscsiadm stand-in's data path
  fuse3             # FUSE export of qemu-storage-daemon
  openssh-client    # OpenSSH ssh: independent judge of the fake shell
  openssh-server    # sshd for the embedded rig's hosts
  iproute2          # network namespaces for the embedded rig's hosts
  util-linux        # losetup, nsenter, unshare
  qemu-system-x86   # the kernel-guest tier: Debian's kernel with LIO and iscsi_tcp under TCG
  debootstrap       # the kernel guest's root filesystem (rig/guest/build.py)
  busybox-static    # the kernel guest's initramfs
  cpio              # packs that initramfs
  kmod              # depmod/modprobe --show-depends on the guest's module tree
  e2fsprogs         # mkfs.ext4 -d for the guest's root disk
  procps
  sudo              # the rig's non-root host user runs iscsiadm through sudo (remotes/tm/eqliscsi/sudoers)
  docker.io         # dockerd + containerd + runc: the containerized rig tier
  debootstrap       # builds the debian:bookworm-slim base image when no registry answers
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # tshark asks whether non-root users may capture; answer no.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.eqliscsi-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  touch "$stamp"
fi
