"""LIO in the kernel guest, judged from the host by libiscsi's own tools.

libiscsi (``iscsi-ls``, ``iscsi-inq``, ``iscsi-readcapacity16``) is an initiator we
did not write; it reaches the guest's LIO through QEMU's 127.0.0.1 forward.  CHAP
credentials go to it through its ``LIBISCSI_CHAP_*`` environment variables, never
through argv.

``iscsi-ls`` runs without ``-s``: with ``-s`` it logs in to each target at the
address SendTargets returned, which is the guest's 10.0.2.15 - a non-loopback
address the rig must never send traffic to.  LUNs are checked with
``iscsi-inq``/``iscsi-readcapacity16`` on the forwarded portal instead.

Login status codes are RFC 7143 §11.13.5: 0x0201 authentication failure, 0x0202
authorization failure (not in the ACL); libiscsi prints them in decimal (513, 514).
For a TargetName it does not serve, LIO answers 0x0301 "Service Unavailable" (769)
rather than 0x0203 "Not Found" - a LIO quirk the native client must map.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from eqliscsi.errors import RigError
from eqliscsi.secret import Secret
from rig.guest.vm import GuestVM
from rig.need import need_executable
from rig.targets.base import ChapAccount, Portal
from rig.targets.lio import LioBackend, LioError
from tests.integration.guest.conftest import (
    HOST_INITIATOR,
    OTHER_INITIATOR,
    VOLUME_BYTES,
    chap,
    new_iqn,
)

pytestmark = [pytest.mark.guest, pytest.mark.lio, pytest.mark.judge, pytest.mark.timeout(900)]


def libiscsi(
    tool: str,
    url: str,
    *,
    initiator: str = HOST_INITIATOR,
    incoming: ChapAccount | None = None,
    outgoing: ChapAccount | None = None,
) -> subprocess.CompletedProcess[str]:
    exe = need_executable(tool, "libiscsi-bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIBISCSI_")}
    if incoming is not None:
        env["LIBISCSI_CHAP_USERNAME"] = incoming.user
        env["LIBISCSI_CHAP_PASSWORD"] = incoming.secret.reveal_str()
    if outgoing is not None:
        env["LIBISCSI_CHAP_TARGET_USERNAME"] = outgoing.user
        env["LIBISCSI_CHAP_TARGET_PASSWORD"] = outgoing.secret.reveal_str()
    return subprocess.run(
        [exe, "-i", initiator, url],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def lun_url(lio: LioBackend, iqn: str) -> str:
    return f"iscsi://{lio.portal}/{iqn}/{lio.lun_of(iqn)}"


def test_guest_runs_debian_kernel_with_lio(guest_vm: GuestVM) -> None:
    assert guest_vm.agent("ping")["kernel"] == guest_vm.image.kernel_version
    out = guest_vm.ssh(["cat", "/sys/kernel/config/target/version"]).stdout
    assert "Target Engine Core" in out


def test_open_discovery_lists_target(lio: LioBackend, new_volume: Path) -> None:
    iqn = new_iqn()
    lio.create_target(iqn, new_volume)
    r = libiscsi("iscsi-ls", f"iscsi://{lio.portal}")
    assert r.returncode == 0, r.stderr
    assert f"Target:{iqn} Portal:10.0.2.15:3260,1" in r.stdout


def test_unknown_target_fails_0x0301(lio: LioBackend, new_volume: Path) -> None:
    iqn = new_iqn()
    lio.create_target(iqn, new_volume)
    r = libiscsi("iscsi-inq", f"iscsi://{lio.portal}/{iqn}.missing/0")
    assert r.returncode != 0
    assert "Service unavailable(769)" in r.stderr


def test_chap_login_reports_lio_disk_of_the_right_size(lio: LioBackend, new_volume: Path) -> None:
    iqn = new_iqn()
    acct = chap("host-user")
    lio.create_target(iqn, new_volume)
    lio.set_chap(iqn, acct, None)
    inq = libiscsi("iscsi-inq", lun_url(lio, iqn), incoming=acct)
    assert inq.returncode == 0, inq.stderr
    assert "LIO-ORG" in inq.stdout
    cap = libiscsi("iscsi-readcapacity16", lun_url(lio, iqn), incoming=acct)
    assert cap.returncode == 0, cap.stderr
    assert f"Total size:{VOLUME_BYTES}\n" in cap.stdout


@dataclass(frozen=True)
class LoginCase:
    id: str
    allowed: list[str] | None  # the ACL, None for demo mode
    initiator: str
    offer_user: str | None  # what the initiator sends; None sends no CHAP at all
    offer_right_secret: bool
    expect: str  # text in libiscsi's stderr


LOGIN_CASES = [
    LoginCase("wrong-secret", None, HOST_INITIATOR, "u1", False, "Authentication failure(513)"),
    LoginCase("wrong-user", None, HOST_INITIATOR, "nobody", True, "Authentication failure(513)"),
    LoginCase("no-chap-offered", None, HOST_INITIATOR, None, True, "Authentication failure(513)"),
    LoginCase("not-in-acl", [OTHER_INITIATOR], HOST_INITIATOR, "u1", True,
              "Authorization failure(514)"),
]  # fmt: skip


@pytest.mark.parametrize("case", LOGIN_CASES, ids=[c.id for c in LOGIN_CASES])
def test_login_refused(lio: LioBackend, new_volume: Path, case: LoginCase) -> None:
    iqn = new_iqn()
    acct = chap("u1")
    lio.create_target(iqn, new_volume)
    lio.set_initiators(iqn, case.allowed)
    lio.set_chap(iqn, acct, None)
    offered = None
    if case.offer_user is not None:
        secret = acct.secret if case.offer_right_secret else Secret(b"wrong-secret-0000")
        offered = ChapAccount(case.offer_user, secret)
    r = libiscsi("iscsi-inq", lun_url(lio, iqn), initiator=case.initiator, incoming=offered)
    assert r.returncode != 0
    assert case.expect in r.stderr
    # The same target still admits the right initiator with the right secret, so
    # the refusal above was about the case, not a broken target.
    good_init = case.allowed[0] if case.allowed else case.initiator
    ok = libiscsi("iscsi-inq", lun_url(lio, iqn), initiator=good_init, incoming=acct)
    assert ok.returncode == 0, ok.stderr


def test_acl_admits_listed_initiator(lio: LioBackend, new_volume: Path) -> None:
    iqn = new_iqn()
    lio.create_target(iqn, new_volume)
    lio.set_initiators(iqn, [HOST_INITIATOR])
    assert libiscsi("iscsi-inq", lun_url(lio, iqn)).returncode == 0
    denied = libiscsi("iscsi-inq", lun_url(lio, iqn), initiator=OTHER_INITIATOR)
    assert "Authorization failure(514)" in denied.stderr


def test_mutual_chap(lio: LioBackend, new_volume: Path) -> None:
    iqn = new_iqn()
    inc, out = chap("initiator-side"), chap("target-side")
    lio.create_target(iqn, new_volume)
    lio.set_chap(iqn, inc, out)
    good = libiscsi("iscsi-inq", lun_url(lio, iqn), incoming=inc, outgoing=out)
    assert good.returncode == 0, good.stderr
    # libiscsi checks the target's CHAP_R against the secret it was given.
    liar = ChapAccount(out.user, Secret(b"not-the-target-secret"))
    bad = libiscsi("iscsi-inq", lun_url(lio, iqn), incoming=inc, outgoing=liar)
    assert bad.returncode != 0
    assert "Invalid CHAP_R" in bad.stderr


@pytest.mark.parametrize("offer", ["right", "wrong", "none"])
def test_discovery_chap_enforced(lio: LioBackend, new_volume: Path, offer: str) -> None:
    iqn = new_iqn()
    acct = chap("disc-user")
    lio.create_target(iqn, new_volume)
    lio.set_discovery_chap(acct, None)
    creds = {
        "right": acct,
        "wrong": ChapAccount(acct.user, Secret(b"wrong-secret-0000")),
        "none": None,
    }[offer]
    r = libiscsi("iscsi-ls", f"iscsi://{lio.portal}", incoming=creds)
    if offer == "right":
        assert r.returncode == 0, r.stderr
        assert f"Target:{iqn}" in r.stdout
    else:
        assert r.returncode != 0
        assert iqn not in r.stdout
        assert "Authentication failure(513)" in r.stderr


def test_redirect_is_refused_by_lio(lio: LioBackend) -> None:
    with pytest.raises(LioError, match="cannot redirect"):
        lio.set_redirect(new_iqn(), Portal("127.0.0.1", 1))


def test_backing_file_outside_share_is_refused(lio: LioBackend, tmp_path: Path) -> None:
    outside = tmp_path / "v.img"
    outside.write_bytes(b"\0" * 4096)
    with pytest.raises(RigError, match="outside the guest's shared directory"):
        lio.create_target(new_iqn(), outside)
