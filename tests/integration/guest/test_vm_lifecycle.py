"""Boot failures are reported in one sentence and leave no QEMU behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rig.guest.build import GuestImage
from rig.guest.vm import GuestBootError, GuestVM

pytestmark = [pytest.mark.guest, pytest.mark.timeout(900)]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_boot_timeout_kills_and_reaps_qemu(guest_image: GuestImage, tmp_path: Path) -> None:
    vm = GuestVM(guest_image, share_dir=tmp_path / "share", workdir=tmp_path, boot_timeout=2)
    pids: list[int] = []
    real_wait = vm._wait_ready

    def spy(t0: float) -> None:
        assert vm.pid is not None
        pids.append(vm.pid)
        real_wait(t0)

    vm._wait_ready = spy  # type: ignore[method-assign]
    with pytest.raises(GuestBootError, match=r"not ready within 2 s; read .*console\.log"):
        vm.start()
    assert len(pids) == 1
    assert gone(pids[0]), "QEMU outlived a failed boot"
    assert not vm.running


def test_qemu_failure_is_reported(guest_image: GuestImage, tmp_path: Path) -> None:
    broken = GuestImage(
        directory=guest_image.directory,
        kernel_version=guest_image.kernel_version,
        vmlinuz=tmp_path / "no-such-kernel",
        initrd=guest_image.initrd,
        rootfs=guest_image.rootfs,
        ssh_key=guest_image.ssh_key,
        ssh_host_key_pub=guest_image.ssh_host_key_pub,
    )
    vm = GuestVM(broken, share_dir=tmp_path / "share", workdir=tmp_path, boot_timeout=60)
    with pytest.raises(
        GuestBootError, match="QEMU exited with status 1 before the guest was ready"
    ):
        vm.start()
    assert not vm.running
