"""Fixtures of the kernel-guest tier: one QEMU guest per pytest session.

The guest (Debian's 6.1 kernel with LIO, open-iscsi, udev, sshd; see rig/guest)
is built once into the cache and booted once; each test gets a fresh
:class:`LioBackend` whose targets are deleted afterwards, so tests share the VM but
not its configuration.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eqliscsi.secret import Secret
from rig.guest.build import GuestImage, build
from rig.guest.vm import GuestVM
from rig.need import need, need_executable
from rig.targets.base import ChapAccount
from rig.targets.lio import LioBackend

# The guest's own initiator name (written by the build into initiatorname.iscsi).
GUEST_INITIATOR = "iqn.2026-11.test.eqliscsi:guest"
HOST_INITIATOR = "iqn.2026-11.test.eqliscsi:host"
OTHER_INITIATOR = "iqn.2026-11.test.eqliscsi:stranger"
VOLUME_BYTES = 64 * 1024 * 1024


@pytest.fixture(scope="session")
def guest_image() -> GuestImage:
    need_executable("qemu-system-x86_64", "qemu-system-x86")
    for exe, pkg in (
        ("debootstrap", "debootstrap"),
        ("busybox", "busybox-static"),
        ("cpio", "cpio"),
        ("depmod", "kmod"),
        ("mkfs.ext4", "e2fsprogs"),
        ("ssh", "openssh-client"),
    ):
        need_executable(exe, pkg)
    need(os.geteuid() == 0, "building the kernel guest needs root (debootstrap, dpkg-deb)")
    t0 = time.monotonic()
    image = build()
    print(f"\nguest: build or cache lookup {time.monotonic() - t0:.1f} s")
    return image


@pytest.fixture(scope="session")
def guest_vm(
    guest_image: GuestImage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GuestVM]:
    vm = GuestVM(
        guest_image,
        share_dir=tmp_path_factory.mktemp("guest-share"),
        workdir=tmp_path_factory.mktemp("guest-vm"),
    )
    with vm:
        print(f"\nguest: boot-to-ready {vm.boot_seconds:.1f} s")
        yield vm
    assert not vm.running


@pytest.fixture
def lio(guest_vm: GuestVM) -> Iterator[LioBackend]:
    backend = LioBackend(guest_vm)
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture
def new_volume(guest_vm: GuestVM) -> Iterator[Path]:
    """A sparse backing file in the shared directory, removed afterwards."""
    path = guest_vm.share_dir / f"vol-{secrets.token_hex(4)}.img"
    with path.open("wb") as fh:
        fh.truncate(VOLUME_BYTES)
    yield path
    path.unlink(missing_ok=True)


def new_iqn() -> str:
    return f"iqn.2001-05.com.equallogic:0-test-{secrets.token_hex(4)}"


def chap(user: str) -> ChapAccount:
    # 16 hex digits: LIO wants at least 12 bytes for a CHAP secret to be sane.
    return ChapAccount(user, Secret(secrets.token_hex(8).encode(), origin=f"test {user}"))
