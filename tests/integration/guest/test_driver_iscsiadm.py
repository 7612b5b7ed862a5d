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

The stand-in tier (tests/integration/hosts/test_rig_hosts.py) runs the same steps
against rig/hosts/iscsiadm_standin.py; docs/interop.md lists both side by side.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eqliscsi.opennebula import iscsiadm as ia
from eqliscsi.secret import Secret
from rig.guest.vm import GuestVM
from rig.targets.base import ChapAccount
from rig.targets.lio import LioBackend
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


@pytest.fixture(scope="module")
def hv(guest_vm: GuestVM) -> Iterator[GuestVM]:
    """The guest as a hypervisor host with the driver's remotes installed."""
    for name, (dest, mode) in _INSTALL.items():
        guest_vm.install_file(dest, (_REMOTES / name).read_text(), mode=mode)
    guest_vm.ssh(["udevadm", "control", "--reload"])
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


def test_driver_wrong_chap_secret_is_a_typed_auth_error(hv: GuestVM, lio: LioBackend) -> None:
    vol = volume_name()
    right = Secret(secrets.token_hex(8).encode(), origin="test")
    node, backing = export(lio, hv, vol, right)
    wrong = ia.ChapCredentials("oneadmin-chap", Secret(b"wrong-secret-0123", origin="test"))
    try:
        with pytest.raises(ia.IscsiadmAuthError) as exc:
            run_script(hv, ia.login_script(node, chap=wrong), what=vol)
        assert exc.value.status == ia.IscsiadmStatus.LOGIN_AUTH_FAILED
        assert exc.value.op is ia.Op.LOGIN
        assert "wrong-secret-0123" not in str(exc.value)
        assert sessions(hv) == []
        # The helper rewrites the record, so the right secret then logs in.
        run_script(hv, ia.login_script(node, chap=ia.ChapCredentials("oneadmin-chap", right)))
        wait_for(hv, f"/dev/iscsi/{vol}", present=True)
    finally:
        run_script(hv, ia.logout_script(node), what=vol)
        backing.unlink(missing_ok=True)


def test_driver_login_to_unknown_target_has_no_record(hv: GuestVM, lio: LioBackend) -> None:
    # Another volume exists, so the portal answers (LIO listens on 3260 only while
    # some TPG has the portal); discovery then finds no record for this IQN.
    other = volume_name()
    _, backing = export(lio, hv, other, Secret(secrets.token_hex(8).encode(), origin="test"))
    node = ia.Node(eql_iqn("absent"), PORTAL)
    try:
        with pytest.raises(ia.IscsiadmNoRecordsError) as exc:
            run_script(hv, ia.login_script(node))
        assert exc.value.status == ia.IscsiadmStatus.NO_OBJS_FOUND
        assert sessions(hv) == []
    finally:
        backing.unlink(missing_ok=True)


def test_driver_discovery_of_a_silent_portal_is_a_typed_error(hv: GuestVM, lio: LioBackend) -> None:
    # No target at all: nothing listens on the guest's 3260.  Measured: iscsiadm
    # gives up discovery with status 11 (ISCSI_ERR_PDU_TIMEOUT is open-iscsi's
    # name for "connection refused" here), reported as the discovery step.
    node = ia.Node(eql_iqn("absent"), PORTAL)
    with pytest.raises(ia.IscsiadmError) as exc:
        run_script(hv, ia.login_script(node))
    assert exc.value.op is ia.Op.DISCOVERY
    assert exc.value.status == ia.IscsiadmStatus.PDU_TIMEOUT
    assert sessions(hv) == []


def test_driver_logout_of_mounted_disk_with_safe_logout_is_busy(
    hv: GuestVM, lio: LioBackend
) -> None:
    vol = volume_name()
    secret = Secret(secrets.token_hex(8).encode(), origin="test")
    node, backing = export(lio, hv, vol, secret)
    link = f"/dev/iscsi/{vol}"
    conf = "/etc/iscsi/iscsid.conf"
    # iscsid (not iscsiadm) enforces safe_logout and reads iscsid.conf only when it
    # starts: restart it around the change (sessions survive; iscsid resyncs).
    sh(hv, f"cp {conf} {conf}.eqliscsi-saved && echo 'iscsid.safe_logout = Yes' >> {conf}")
    restart_iscsid(hv)
    try:
        run_script(hv, ia.login_script(node, chap=ia.ChapCredentials("oneadmin-chap", secret)))
        wait_for(hv, link, present=True)
        sh(hv, f"mkfs.ext4 -q -F {link} && mkdir -p /mnt/busy && mount {link} /mnt/busy")
        started = time.monotonic()
        with pytest.raises(ia.IscsiadmBusyError):
            run_script(hv, ia.logout_script(node), what=vol)
        # Retried, one second apart, before giving up.
        assert time.monotonic() - started >= ia.LOGOUT_ATTEMPTS - 1.5
        assert [s.iqn for s in sessions(hv)] == [node.iqn]
        sh(hv, "umount /mnt/busy")
        run_script(hv, ia.logout_script(node), what=vol)
        assert sessions(hv) == []
    finally:
        hv.ssh(["sh", "-c", f"umount /mnt/busy; mv {conf}.eqliscsi-saved {conf}"], check=False)
        restart_iscsid(hv)
        run_script(hv, ia.logout_script(node), what=vol)
        backing.unlink(missing_ok=True)
