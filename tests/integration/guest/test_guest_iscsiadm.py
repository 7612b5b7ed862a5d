"""The real open-iscsi initiator (iscsiadm + iscsid + udev) in the guest, against
the guest's own LIO on its loopback: the path the TM driver takes on a hypervisor.

Commands go over OpenSSH to the guest's sshd.  CHAP secrets reach iscsiadm through
the node record file (written from SSH's stdin), never through any argv.  The
bytes written through ``/dev/sdX`` are read back in the guest *and* from the
backing file on the host: LIO's fileio backstore writes them through virtio-9p, so
this proves the whole data path, not just the login.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
import time
from pathlib import Path

import pytest

from rig.guest.vm import GuestVM
from rig.targets.lio import LioBackend
from tests.integration.guest.conftest import GUEST_INITIATOR, chap, new_iqn

pytestmark = [pytest.mark.guest, pytest.mark.lio, pytest.mark.judge, pytest.mark.timeout(900)]

PORTAL = "127.0.0.1:3260"
OFFSET = 1024 * 1024
CHUNK = 64 * 1024


def sh(vm: GuestVM, script: str, *, input: str | None = None, check: bool = True) -> str:
    return vm.ssh(["sh", "-euc", script], input=input, check=check).stdout


def wait_for_device(vm: GuestVM, link: str, timeout: float = 60.0) -> str:
    """udev's by-path link for the LUN, resolved to /dev/sdX (bounded wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = vm.ssh(["readlink", "-f", link], check=False)
        if r.returncode == 0 and r.stdout.strip().startswith("/dev/sd"):
            return r.stdout.strip()
        time.sleep(1)
    pytest.fail(f"udev did not create {link} within {timeout:.0f} s")


def test_iscsiadm_chap_login_gives_a_working_disk(
    guest_vm: GuestVM, lio: LioBackend, new_volume: Path
) -> None:
    iqn = new_iqn()
    acct = chap("guest-user")
    lio.create_target(iqn, new_volume)
    lio.set_initiators(iqn, [GUEST_INITIATOR])
    lio.set_chap(iqn, acct, None)

    found = sh(guest_vm, f"iscsiadm -m discovery -t sendtargets -p {PORTAL}")
    assert f"{PORTAL},1 {iqn}" in found
    record = f"/etc/iscsi/nodes/{iqn}/{PORTAL.replace(':', ',')},1/default"
    creds = (
        "node.session.auth.authmethod = CHAP\n"
        f"node.session.auth.username = {acct.user}\n"
        f"node.session.auth.password = {acct.secret.reveal_str()}\n"
    )
    sh(guest_vm, f"cat >> {shlex.quote(record)}", input=creds)
    node = f"iscsiadm -m node -T {shlex.quote(iqn)} -p {PORTAL}"
    try:
        sh(guest_vm, f"{node} --login")
        assert lio.session_count(iqn) == 1
        dev = wait_for_device(
            guest_vm, f"/dev/disk/by-path/ip-{PORTAL}-iscsi-{iqn}-lun-{lio.lun_of(iqn)}"
        )
        assert int(sh(guest_vm, f"blockdev --getsize64 {dev}")) == new_volume.stat().st_size

        pattern = os.urandom(CHUNK)
        sh(
            guest_vm,
            f"base64 -d | dd of={dev} bs={CHUNK} seek={OFFSET // CHUNK} count=1 "
            "iflag=fullblock oflag=direct conv=fsync status=none",
            input=base64.b64encode(pattern).decode(),
        )
        back = sh(
            guest_vm,
            f"dd if={dev} bs={CHUNK} skip={OFFSET // CHUNK} count=1 iflag=direct status=none"
            " | sha256sum",
        )
        assert back.split()[0] == hashlib.sha256(pattern).hexdigest()
        with new_volume.open("rb") as fh:
            fh.seek(OFFSET)
            assert fh.read(CHUNK) == pattern
    finally:
        sh(guest_vm, f"{node} --logout; {node} -o delete", check=False)
    assert lio.session_count(iqn) == 0


def test_iscsiadm_wrong_secret_is_refused(
    guest_vm: GuestVM, lio: LioBackend, new_volume: Path
) -> None:
    iqn = new_iqn()
    lio.create_target(iqn, new_volume)
    lio.set_initiators(iqn, [GUEST_INITIATOR])
    lio.set_chap(iqn, chap("guest-user"), None)
    sh(guest_vm, f"iscsiadm -m discovery -t sendtargets -p {PORTAL}")
    record = f"/etc/iscsi/nodes/{iqn}/{PORTAL.replace(':', ',')},1/default"
    sh(
        guest_vm,
        f"cat >> {shlex.quote(record)}",
        input="node.session.auth.authmethod = CHAP\n"
        "node.session.auth.username = guest-user\n"
        "node.session.auth.password = not-the-secret-000\n",
    )
    node = f"iscsiadm -m node -T {shlex.quote(iqn)} -p {PORTAL}"
    try:
        r = guest_vm.ssh(["sh", "-c", f"{node} --login"], check=False)
        # iscsiadm exit status 24: ISCSI_ERR_LOGIN_AUTH_FAILED.
        assert r.returncode == 24, r.stderr
        assert "(24 - iSCSI login failed due to authorization failure)" in r.stderr
        assert lio.session_count(iqn) == 0
    finally:
        sh(guest_vm, f"{node} -o delete", check=False)


# RFC 7143 §12.1.3 lets CHAP_A name any IANA PPP algorithm; open-iscsi offers only
# what chap_algs lists, so a successful login with a one-element list proves LIO
# chose that algorithm (5 MD5, 6 SHA1, 7 SHA-256, 8 SHA3-256; the guest loads
# sha3_generic for the last).
@pytest.mark.parametrize("alg", ["MD5", "SHA1", "SHA256", "SHA3-256"])
def test_iscsiadm_chap_algorithm(
    guest_vm: GuestVM, lio: LioBackend, new_volume: Path, alg: str
) -> None:
    iqn = new_iqn()
    acct, mutual = chap("guest-user"), chap("lio-side")
    lio.create_target(iqn, new_volume)
    lio.set_initiators(iqn, [GUEST_INITIATOR])
    lio.set_chap(iqn, acct, mutual)
    sh(guest_vm, f"iscsiadm -m discovery -t sendtargets -p {PORTAL}")
    record = f"/etc/iscsi/nodes/{iqn}/{PORTAL.replace(':', ',')},1/default"
    sh(
        guest_vm,
        f"cat >> {shlex.quote(record)}",
        input="node.session.auth.authmethod = CHAP\n"
        f"node.session.auth.chap_algs = {alg}\n"
        f"node.session.auth.username = {acct.user}\n"
        f"node.session.auth.password = {acct.secret.reveal_str()}\n"
        f"node.session.auth.username_in = {mutual.user}\n"
        f"node.session.auth.password_in = {mutual.secret.reveal_str()}\n",
    )
    node = f"iscsiadm -m node -T {shlex.quote(iqn)} -p {PORTAL}"
    try:
        sh(guest_vm, f"{node} --login")
        assert lio.session_count(iqn) == 1
    finally:
        sh(guest_vm, f"{node} --logout; {node} -o delete", check=False)
    assert lio.session_count(iqn) == 0
