"""Session fixtures of the kernel-guest tier, shared by every test directory.

One QEMU guest per pytest session, whoever asks first: the guest tier's own tests,
the native client's backend-parametrized suite (its ``lio`` backend) and the
real-iscsiadm host tests and the TM lifecycle suite's ``rig=guest`` all use the
same booted VM.  A fixture defined in two conftest files would be two session
fixtures and two boots, so these live here and are registered as one plugin
(:func:`register`, from the ``pytest_configure`` of ``tests/integration/conftest.py``
and ``tests/e2e/conftest.py``, whichever pytest loads first): a plugin's fixtures
are visible everywhere, once.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.guest.build import GuestImage, build
from rig.guest.fake_group import InGuestGroup, in_guest_group
from rig.guest.vm import GuestVM
from rig.need import need, need_executable
from rig.targets.lio import LioBackend

__all__ = [
    "guest_eql",
    "guest_image",
    "guest_vm",
    "lio",
    "new_volume",
    "register",
    "share_file",
]

VOLUME_BYTES = 64 * 1024 * 1024


def register(config: pytest.Config) -> None:
    """Register this module's fixtures once per session, for every directory."""
    # register(), not import_plugin(): the conftest that calls this has imported the
    # module already, and pytest would warn that it cannot rewrite its asserts.
    if not config.pluginmanager.has_plugin(__name__):
        config.pluginmanager.register(sys.modules[__name__], __name__)


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


@pytest.fixture(scope="session")
def guest_eql(
    guest_vm: GuestVM, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InGuestGroup]:
    """The fake EqualLogic group with the LIO data plane, running in the guest; one per
    session (its start costs the emulated guest tens of seconds)."""
    t0 = time.monotonic()
    with in_guest_group(guest_vm, tmp_path_factory.mktemp("guest-eql")) as group:
        print(f"\nguest: fake group ready in {time.monotonic() - t0:.1f} s")
        yield group


@pytest.fixture
def lio(guest_vm: GuestVM) -> Iterator[LioBackend]:
    """LIO in the shared guest; the targets this test made are deleted afterwards."""
    backend = LioBackend(guest_vm)
    try:
        yield backend
    finally:
        backend.close()


def share_file(vm: GuestVM, size_bytes: int, stem: str = "vol") -> Path:
    """A sparse file in the guest's shared directory (LIO's fileio opens it over 9p)."""
    path = vm.share_dir / f"{stem}-{secrets.token_hex(4)}.img"
    with path.open("wb") as fh:
        fh.truncate(size_bytes)
    return path


@pytest.fixture
def new_volume(guest_vm: GuestVM) -> Iterator[Path]:
    """A sparse backing file in the shared directory, removed afterwards."""
    path = share_file(guest_vm, VOLUME_BYTES)
    yield path
    path.unlink(missing_ok=True)
