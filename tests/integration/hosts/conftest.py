"""Fixtures: a two-host embedded rig and a real tgtd reachable from its namespaces.

tgtd listens on the rig's bridge address in the root namespace (10.254.x.1), the
only address the hosts can reach; nothing here talks to any other address.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from eqliscsi.secret import Secret
from rig.hosts import HostRig
from rig.need import need, need_executable


def need_host_rig() -> None:
    need(os.geteuid() == 0, "the host rig needs root")
    need_executable("ip", "iproute2")
    need_executable("unshare", "util-linux")
    need_executable("nsenter", "util-linux")
    need_executable("losetup", "util-linux")
    need_executable("sshd", "openssh-server")
    need_executable("ssh", "openssh-client")
    need_executable("qemu-storage-daemon", "qemu-system-common")
    need_executable("iscsi-ls", "libiscsi-bin")
    need(Path("/dev/fuse").exists(), "/dev/fuse is missing (FUSE)")
    need(Path("/dev/loop-control").exists(), "/dev/loop-control is missing (loop)")


@dataclass
class Tgt:
    address: str
    port: int
    control_port: int
    workdir: Path
    proc: subprocess.Popen[bytes]
    next_tid: int = 1

    def adm(self, *args: str) -> None:
        subprocess.run(
            ["tgtadm", "-C", str(self.control_port), "--lld", "iscsi", *args],
            check=True,
            capture_output=True,
            timeout=10,
        )

    def add_volume(self, volume: str, user: str, secret: Secret, size_mb: int = 16) -> str:
        """An EqualLogic-shaped target (IQN ends in -<volume>) with one disk, CHAP only."""
        tid = self.next_tid
        self.next_tid += 1
        iqn = (
            "iqn.2001-05.com.equallogic:0-8a0906-"
            f"{secrets.token_hex(5)[:9]}-{secrets.token_hex(8)}-{volume}"
        )
        backing = self.workdir / f"{volume}.img"
        with open(backing, "wb") as f:
            f.truncate(size_mb * 1024 * 1024)
        self.adm("--op", "new", "--mode", "target", "--tid", str(tid), "-T", iqn)
        self.adm("--op", "new", "--mode", "logicalunit", "--tid", str(tid), "--lun", "1",
                 "-b", str(backing))  # fmt: skip
        self.adm("--op", "bind", "--mode", "target", "--tid", str(tid), "-I", "ALL")
        # tgtadm takes the password in argv; it is the rig's throwaway test secret,
        # never a user's (the driver-side code is what must keep secrets out of argv).
        self.adm("--op", "new", "--mode", "account", "--user", user,
                 "--password", secret.reveal_str())  # fmt: skip
        self.adm("--op", "bind", "--mode", "account", "--tid", str(tid), "--user", user)
        return iqn

    def backing(self, volume: str) -> Path:
        return self.workdir / f"{volume}.img"


def _free_port(address: str) -> int:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def host_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostRig]:
    need_host_rig()
    rig = HostRig(tmp_path_factory.mktemp("hostrig"), count=2, data_lun=1)
    rig.up()
    try:
        yield rig
    finally:
        rig.down()


@contextlib.contextmanager
def start_tgt(address: str, workdir: Path, *, netns: str | None = None) -> Iterator[Tgt]:
    """A tgtd of our own on ``address`` (a rig bridge address), free port, own control port.

    ``netns``: run it inside that network namespace (a rig host's, to serve the
    host's own loopback, e.g. ``::1``); its control socket is a file, so ``tgtadm``
    still reaches it from here.
    """
    tgtd = need_executable("tgtd", "tgt")
    need_executable("tgtadm", "tgt")
    port = _free_port(address)
    listen = f"[{address}]" if ":" in address else address
    prefix = ["ip", "netns", "exec", netns] if netns else []
    control = 20000 + secrets.randbelow(10000)
    while Path(f"/var/run/tgtd/socket.{control}").exists():
        control = 20000 + secrets.randbelow(10000)
    with open(workdir / "tgtd.log", "wb") as log:
        proc = subprocess.Popen(
            [*prefix, tgtd, "-f", "--iscsi", f"portal={listen}:{port}", "-C", str(control)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            r = subprocess.run(
                ["tgtadm", "-C", str(control), "--lld", "iscsi", "--op", "show",
                 "--mode", "target"], capture_output=True, check=False, timeout=5,
            )  # fmt: skip
            if r.returncode == 0:
                break
            assert proc.poll() is None, (workdir / "tgtd.log").read_text()
            assert time.monotonic() < deadline, "tgtd did not come up"
            time.sleep(0.05)
        yield Tgt(address, port, control, workdir, proc)
    finally:
        # tgtd ignores SIGTERM while it has targets; it is ours, so SIGKILL it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def tgt(host_rig: HostRig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tgt]:
    with start_tgt(host_rig.gateway, tmp_path_factory.mktemp("tgt")) as t:
        yield t
