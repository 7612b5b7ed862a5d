"""Boot failures are reported in one sentence and leave no QEMU behind."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from rig.guest.build import GuestImage
from rig.guest.vm import GuestBootError, GuestPorts, GuestVM

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
        vmlinux=tmp_path / "no-such-kernel",
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


def test_guest_runs_the_project_with_its_dependencies(guest_vm: GuestVM) -> None:
    # The tree comes over 9p (read-only), the PyPI dependencies from the build:
    # the guest can run eqliscsi code such as the fake EqualLogic shell.
    out = guest_vm.ssh(
        [
            "env",
            "PYTHONPATH=/opt/eqliscsi",
            "python3",
            "-c",
            "import asyncssh, construct, eqliscsi.iscsi_discovery as d, rtslib_fb; "
            "print(d.ChapAlgorithm.SHA3_256.value, construct.version_string)",
        ]
    ).stdout.split()
    assert out[0] == "8"
    assert out[1].startswith("2.10.")
    touched = guest_vm.ssh(["touch", "/opt/eqliscsi/x"], check=False)
    assert touched.returncode != 0, "the project tree must be read-only in the guest"


def test_taken_forward_port_is_retried(guest_image: GuestImage, tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        vm = GuestVM(guest_image, share_dir=tmp_path / "share", workdir=tmp_path)
        vm.ports = GuestPorts(iscsi=taken, ssh=vm.ports.ssh, agent=vm.ports.agent)
        # The first QEMU exits at once on the taken port; the retry must come up.
        try:
            vm.start()
            assert vm.agent("ping")["kernel"] == guest_image.kernel_version
        finally:
            vm.close()
    assert vm.ports.iscsi != taken
    assert not vm.running


def test_plain_openssh_reaches_the_guest_by_alias(guest_vm: GuestVM) -> None:
    cfg = guest_vm.write_ssh_config("hv1")
    guest_vm.install_file("/etc/eqliscsi/probe.txt", "hello from the host\n", mode=0o600)
    r = subprocess.run(
        ["ssh", "-F", str(cfg), "hv1", "hostname; stat -c %a /etc/eqliscsi/probe.txt;"
         " cat /etc/eqliscsi/probe.txt; iscsiadm --version"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:3] == ["eqlguest", "600", "hello from the host"]
    assert lines[3].startswith("iscsiadm version ")
