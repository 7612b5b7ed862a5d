"""The TM driver's iSCSI scripts against a real hypervisor stack: open-iscsi's
iscsiadm + iscsid, the kernel's iscsi_tcp + sd, udev with the shipped rule.

The guest plays the hypervisor host and its own LIO plays the EqualLogic group
(on the guest's loopback, 127.0.0.1:3260).  Every command that touches the node
database is a script built by ``eqliscsi.opennebula.iscsiadm`` and sent the way the
TM actions send it: ``ssh host sh -s`` with the script on stdin.  The shipped
``eqliscsi-node-auth``, ``eqliscsi-udev-name`` and ``99-eqliscsi.rules`` are
installed where the install guide puts them.  The disk must appear as a real
``/dev/iscsi/<volume>`` -> ``/dev/sdX``; bytes written there are read back through
udev's by-path link and from LIO's backing file on the host (virtio-9p).

The behaviours both host kinds must share are the bodies in
tests/integration/host_cases.py; the stand-in tier (tests/integration/hosts) calls
the same functions with its own fixtures.  The first test here adds what only a
real host has (udev's by-path link, the record file as open-iscsi writes it).
docs/interop.md lists both side by side.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shlex
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from eqliscsi.opennebula import iscsiadm as ia
from eqliscsi.secret import Secret
from rig.guest.vm import GuestVM
from rig.targets.base import ChapAccount
from rig.targets.lio import LioBackend
from tests.integration import host_cases as cases
from tests.integration.guest.conftest import GUEST_INITIATOR

pytestmark = [pytest.mark.guest, pytest.mark.lio, pytest.mark.judge, pytest.mark.timeout(900)]

_REMOTES = Path(__file__).resolve().parents[3] / "remotes" / "tm" / "eqliscsi"
# Where docs/host-iscsi.md installs the pieces on a host.
_INSTALL = {
    "eqliscsi-node-auth": (ia.DEFAULT_AUTH_HELPER, 0o755),
    "eqliscsi-udev-name": ("/usr/lib/udev/eqliscsi-udev-name", 0o755),
    "99-eqliscsi.rules": ("/etc/udev/rules.d/99-eqliscsi.rules", 0o644),
}
PORTAL = ia.TargetPortal("127.0.0.1", 3260)
CHUNK = 64 * 1024
OFFSET = 2 * 1024 * 1024


def install_remotes(vm: GuestVM) -> None:
    """Put the driver's host-side files where docs/host-iscsi.md installs them."""
    for name, (dest, mode) in _INSTALL.items():
        vm.install_file(dest, (_REMOTES / name).read_text(), mode=mode)
    vm.ssh(["udevadm", "control", "--reload"])


@pytest.fixture(scope="module")
def hv(guest_vm: GuestVM) -> Iterator[GuestVM]:
    """The guest as a hypervisor host with the driver's remotes installed."""
    install_remotes(guest_vm)
    yield guest_vm
    guest_vm.ssh(["sh", "-c", "iscsiadm -m node --logoutall=all; iscsiadm -m node -o delete"],
                 check=False)  # fmt: skip


def eql_iqn(volume: str) -> str:
    """An IQN of EqualLogic's shape, the only kind the udev helper names."""
    return (
        "iqn.2001-05.com.equallogic:0-8a0906-"
        f"{secrets.token_hex(5)[:9]}-{secrets.token_hex(8)}-{volume}"
    )


def volume_name() -> str:
    # A dot and a "-lun" inside: names the old ID_PATH cut got wrong.
    return f"one-{secrets.token_hex(3)}-lun-7.disk"


def run_script(vm: GuestVM, script: ia.RemoteScript, what: str = "") -> None:
    r = subprocess.run(
        vm.ssh_argv(["sh", "-s"]),
        input=script.stdin_bytes(),
        capture_output=True,
        timeout=180,
        check=False,
    )
    ia.check_script_result(
        script, r.returncode, r.stderr.decode(errors="replace"), host="eqlguest", what=what
    )


def sh(vm: GuestVM, script: str, *, input: str | None = None) -> str:
    return vm.ssh(["sh", "-euc", script], input=input, timeout=120).stdout


def sessions(vm: GuestVM) -> list[ia.SessionInfo]:
    r = vm.ssh(list(ia.session_argv()), check=False)
    return ia.parse_sessions(r.stdout, status=r.returncode)


def wait_for(vm: GuestVM, link: str, *, present: bool, timeout: float = 60.0) -> str:
    """``readlink -f link`` once udev made (or removed) it; bounded in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = vm.ssh(["sh", "-c", f"udevadm settle -t 5; readlink -e {link}"], check=False)
        target = r.stdout.strip()
        if present and r.returncode == 0 and target.startswith("/dev/sd"):
            return target
        if not present and r.returncode != 0:
            return ""
        time.sleep(1)
    pytest.fail(f"udev did not {'create' if present else 'remove'} {link} within {timeout:.0f} s")


def restart_iscsid(vm: GuestVM) -> None:
    """Stop the guest's iscsid by its pid file and start it again (bounded wait)."""
    sh(
        vm,
        "pid=$(cat /run/iscsid.pid); kill $pid; i=0; "
        "while kill -0 $pid 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; "
        "iscsid",
    )


def export(lio: LioBackend, vm: GuestVM, volume: str, secret: Secret) -> tuple[ia.Node, Path]:
    backing = vm.share_dir / f"{volume}.img"
    with backing.open("wb") as fh:
        fh.truncate(32 << 20)
    iqn = eql_iqn(volume)
    lio.create_target(iqn, backing)
    lio.set_initiators(iqn, [GUEST_INITIATOR])
    lio.set_chap(iqn, ChapAccount("oneadmin-chap", secret), None)
    return ia.Node(iqn, PORTAL), backing


def test_driver_login_makes_dev_iscsi_link_and_data_round_trips(
    hv: GuestVM, lio: LioBackend
) -> None:
    vol = volume_name()
    secret = Secret(secrets.token_hex(8).encode(), origin="test")
    node, backing = export(lio, hv, vol, secret)
    chap = ia.ChapCredentials("oneadmin-chap", secret)
    link = f"/dev/iscsi/{vol}"
    try:
        run_script(hv, ia.login_script(node, chap=chap), what=vol)
        dev = wait_for(hv, link, present=True)
        assert lio.session_count(node.iqn) == 1
        assert [(s.iqn, s.portal) for s in sessions(hv)] == [(node.iqn, PORTAL)]
        assert int(sh(hv, f"blockdev --getsize64 {link}")) == 32 << 20
        # The secret reached iscsiadm through the node record only: never an argv.
        cmdlines = sh(hv, "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '; true")
        assert secret.reveal_str() not in cmdlines
        record = f"/etc/iscsi/nodes/{node.iqn}/127.0.0.1,3260,1/default"
        assert sh(hv, f"stat -c %a {record}").strip() == "600"
        assert f"node.session.auth.password = {secret.reveal_str()}" in sh(hv, f"cat {record}")

        # Idempotent: a second login (status 15) is success and adds no session.
        run_script(hv, ia.login_script(node, chap=chap), what=vol)
        assert len(sessions(hv)) == 1

        pattern = os.urandom(CHUNK)
        sh(
            hv,
            f"base64 -d | dd of={link} bs={CHUNK} seek={OFFSET // CHUNK} count=1 "
            "iflag=fullblock oflag=direct conv=fsync status=none",
            input=base64.b64encode(pattern).decode(),
        )
        by_path = f"/dev/disk/by-path/ip-{PORTAL}-iscsi-{node.iqn}-lun-{lio.lun_of(node.iqn)}"
        assert wait_for(hv, by_path, present=True) == dev
        back = sh(hv, f"dd if={by_path} bs={CHUNK} skip={OFFSET // CHUNK} count=1 "
                      "iflag=direct status=none | sha256sum")  # fmt: skip
        assert back.split()[0] == hashlib.sha256(pattern).hexdigest()
        with backing.open("rb") as fh:
            fh.seek(OFFSET)
            assert fh.read(CHUNK) == pattern

        run_script(hv, ia.logout_script(node), what=vol)
        assert wait_for(hv, link, present=False) == ""
        assert sessions(hv) == []
        assert lio.session_count(node.iqn) == 0
        # The record is gone (-o delete after logout).
        left = hv.ssh(["sh", "-c", f"ls /etc/iscsi/nodes/{node.iqn}/*/default"], check=False)
        assert left.returncode != 0 and not left.stdout.strip()
        # Idempotent: logging out again (status 21) is success.
        run_script(hv, ia.logout_script(node), what=vol)
    finally:
        run_script(hv, ia.logout_script(node), what=vol)
        backing.unlink(missing_ok=True)


class GuestHost:
    """The guest as an :class:`~tests.integration.host_cases.IscsiHost`."""

    name = "eqlguest"
    link_prefix = "/dev/sd"

    def __init__(self, vm: GuestVM) -> None:
        self.vm = vm

    def run(self, script: ia.RemoteScript, what: str = "") -> None:
        run_script(self.vm, script, what)

    def sh(self, command: str, *, check: bool = True) -> str:
        return self.vm.ssh(["sh", "-c", command], check=check, timeout=120).stdout

    def sessions(self) -> list[ia.SessionInfo]:
        return sessions(self.vm)

    def wait_link(self, volume: str, *, present: bool) -> str:
        return wait_for(self.vm, f"/dev/iscsi/{volume}", present=present)

    def argv_of_all_processes(self) -> bytes:
        out = self.vm.ssh(["sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null; true"])
        return out.stdout.encode()

    def set_safe_logout(self, on: bool) -> None:
        conf = "/etc/iscsi/iscsid.conf"
        if on:
            sh(self.vm, f"cp {conf} {conf}.eqliscsi-saved && "
                        f"echo 'iscsid.safe_logout = Yes' >> {conf}")  # fmt: skip
        else:
            sh(
                self.vm,
                f"if [ -e {conf}.eqliscsi-saved ]; then mv {conf}.eqliscsi-saved {conf}; fi",
            )
        # iscsid (not iscsiadm) enforces safe_logout and reads iscsid.conf only when
        # it starts: a real host needs an iscsid restart (sessions survive it).
        restart_iscsid(self.vm)


class LioExporter:
    """The guest's own LIO as an :class:`~tests.integration.host_cases.Exporter`."""

    def __init__(self, vm: GuestVM, lio: LioBackend) -> None:
        self.vm, self.lio = vm, lio
        self.files: list[Path] = []

    def export(self, volume: str, user: str, secret: Secret) -> cases.Export:
        backing = self.vm.share_dir / f"{volume}.img"
        with backing.open("wb") as fh:
            fh.truncate(32 << 20)
        self.files.append(backing)
        iqn = eql_iqn(volume)
        self.lio.create_target(iqn, backing)
        self.lio.set_initiators(iqn, [GUEST_INITIATOR])
        self.lio.set_chap(iqn, ChapAccount(user, secret), None)
        return cases.Export(volume, ia.Node(iqn, PORTAL), user, secret, backing)

    def refused_portal(self) -> ia.TargetPortal:
        return ia.TargetPortal("127.0.0.1", 3261)  # LIO listens on 3260 only

    @contextmanager
    def relayed_portal(self, exp: cases.Export) -> Iterator[ia.TargetPortal]:
        # A relay in the guest: LIO's wildcard portal advertises the address the
        # relay's connection arrived on, 127.0.0.1:3260, not the relay's port.
        out = "/run/eqliscsi-relay.out"
        pid = sh(self.vm, f"setsid python3 -c {shlex.quote(cases.RELAY_PY)} 127.0.0.1 0 "
                          f"127.0.0.1 3260 > {out} 2>&1 < /dev/null & echo $!").strip()  # fmt: skip
        try:
            line = ""
            for _ in range(100):
                line = self.vm.ssh(["cat", out], check=False).stdout
                if line.startswith("ready "):
                    break
                time.sleep(0.3)
            assert line.startswith("ready "), f"the relay did not start: {line!r}"
            yield ia.TargetPortal("127.0.0.1", int(line.split()[1]))
        finally:
            self.vm.ssh(["kill", pid], check=False)


@pytest.fixture
def host(hv: GuestVM) -> GuestHost:
    return GuestHost(hv)


@pytest.fixture
def target(hv: GuestVM, lio: LioBackend) -> Iterator[LioExporter]:
    exp = LioExporter(hv, lio)
    yield exp
    for f in exp.files:
        f.unlink(missing_ok=True)


# The shared bodies (tests/integration/host_cases.py); the stand-in tier calls the same.


def test_driver_login_idempotent_and_data_on_target(host: GuestHost, target: LioExporter) -> None:
    cases.case_login_is_idempotent_and_data_lands_on_the_target(host, target)


def test_driver_wrong_chap_secret_is_a_typed_auth_error(
    host: GuestHost, target: LioExporter
) -> None:
    cases.case_wrong_secret_is_auth_error(host, target)


def test_driver_login_to_unknown_target_has_no_record(host: GuestHost, target: LioExporter) -> None:
    cases.case_unknown_target_has_no_record(host, target)


def test_driver_discovery_of_a_refused_portal_is_a_typed_error(
    host: GuestHost, target: LioExporter
) -> None:
    cases.case_refused_portal_fails_discovery(host, target)


def test_driver_records_are_filed_under_the_advertised_portal(
    host: GuestHost, target: LioExporter
) -> None:
    cases.case_records_are_filed_under_the_advertised_portal(host, target)


def test_driver_logout_of_mounted_disk_with_safe_logout_is_busy(
    host: GuestHost, target: LioExporter
) -> None:
    cases.case_logout_of_mounted_disk_is_busy_then_retried(host, target)
