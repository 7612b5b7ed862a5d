"""Host-side pieces of the kernel guest that need no QEMU: cache key, QEMU argv."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.guest import build as guest_build
from rig.guest.build import GuestImage, cache_key, cache_root
from rig.guest.vm import GuestAgentError, GuestVM


def fake_image(tmp_path: Path) -> GuestImage:
    pub = tmp_path / "host.pub"
    pub.write_text("ssh-ed25519 AAAAC3Nza eqlguest\n")
    return GuestImage(
        directory=tmp_path,
        kernel_version="6.1.0-0-amd64",
        vmlinuz=tmp_path / "vmlinuz",
        vmlinux=tmp_path / "vmlinux",
        initrd=tmp_path / "initrd.cpio.gz",
        rootfs=tmp_path / "rootfs.ext4",
        ssh_key=tmp_path / "id_ed25519",
        ssh_host_key_pub=pub,
    )


def test_cache_key_is_stable_and_follows_the_kernel() -> None:
    a = cache_key("linux-image-6.1.0-56-amd64", "6.1.192-2")
    assert a == cache_key("linux-image-6.1.0-56-amd64", "6.1.192-2")
    assert a != cache_key("linux-image-6.1.0-56-amd64", "6.1.192-3")
    assert a != cache_key("linux-image-6.1.0-57-amd64", "6.1.192-2")


def test_cache_key_follows_the_package_list(monkeypatch: pytest.MonkeyPatch) -> None:
    a = cache_key("k", "1")
    monkeypatch.setattr(guest_build, "ROOTFS_PACKAGES", (*guest_build.ROOTFS_PACKAGES, "vim"))
    assert cache_key("k", "1") != a


def test_cache_root_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EQLISCSI_CACHE", str(tmp_path))
    assert cache_root() == tmp_path / "guest"
    monkeypatch.delenv("EQLISCSI_CACHE")
    assert cache_root() == Path("/var/cache/eqliscsi/guest")


def test_qemu_listens_on_loopback_only_and_isolates_the_guest(tmp_path: Path) -> None:
    vm = GuestVM(fake_image(tmp_path), share_dir=tmp_path / "share", workdir=tmp_path / "w")
    argv = vm.argv()
    netdev = argv[argv.index("-netdev") + 1]
    fwds = [p for p in netdev.split(",") if p.startswith("hostfwd=")]
    assert sorted(fwds) == sorted(
        f"hostfwd=tcp:127.0.0.1:{port}-:{guest}"
        for port, guest in ((vm.ports.iscsi, 3260), (vm.ports.ssh, 22), (vm.ports.agent, 7000))
    )
    # restrict=on: the guest cannot open connections to anything outside.
    assert "restrict=on" in netdev.split(",")
    drive = argv[argv.index("-drive") + 1]
    assert "snapshot=on" in drive.split(",")


def test_guest_path_maps_share_and_refuses_outside(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    vm = GuestVM(fake_image(tmp_path), share_dir=share, workdir=tmp_path / "w")
    assert vm.guest_path(share / "a" / "v.img") == Path("/srv/share/a/v.img")
    with pytest.raises(GuestAgentError, match="outside the guest's shared directory"):
        vm.guest_path(tmp_path / "v.img")
    with pytest.raises(GuestAgentError, match="outside"):
        vm.guest_path(share / ".." / "v.img")


def test_ssh_command_is_quoted_word_by_word(tmp_path: Path) -> None:
    vm = GuestVM(fake_image(tmp_path), share_dir=tmp_path, workdir=tmp_path / "w")
    argv = vm.ssh_argv(["echo", "a b", "$(reboot)"])
    assert argv[-1] == "echo 'a b' '$(reboot)'"
    assert "BatchMode=yes" in argv  # never prompt for a password in a test


def test_ssh_config_pins_the_guest(tmp_path: Path) -> None:
    vm = GuestVM(fake_image(tmp_path), share_dir=tmp_path, workdir=tmp_path / "w")
    vm.workdir.mkdir()
    text = vm.write_ssh_config("h1").read_text()
    assert text.startswith("Host h1\n")
    assert f"  Port {vm.ports.ssh}\n" in text
    assert "  StrictHostKeyChecking yes\n" in text
    with pytest.raises(GuestAgentError, match="letters, digits"):
        vm.write_ssh_config("h1 ProxyCommand x")
