"""The driver's host-side iSCSI steps as test bodies shared by every host kind.

One function per behaviour; each takes an :class:`IscsiHost` (where the scripts run)
and an :class:`Exporter` (what serves the volumes).  Two tiers call them with their
own fixtures, so the real initiator and the rig's stand-in are held to the same
expectations:

- stand-in: tests/integration/hosts (namespaced hosts, ``iscsiadm_standin.py``, tgt);
- real: tests/integration/guest/test_driver_iscsiadm.py (open-iscsi, iscsid, udev in
  the kernel guest, its LIO).

Every script is built by ``eqliscsi.opennebula.iscsiadm`` and judged by its
``check_script_result``, exactly as the TM actions do.
"""

from __future__ import annotations

import secrets
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from eqliscsi.opennebula import iscsiadm as ia
from eqliscsi.secret import Secret

__all__ = [
    "RELAY_PY",
    "Export",
    "Exporter",
    "IscsiHost",
    "case_login_is_idempotent_and_data_lands_on_the_target",
    "case_logout_of_mounted_disk_is_busy_then_retried",
    "case_records_are_filed_under_the_advertised_portal",
    "case_refused_portal_fails_discovery",
    "case_unknown_target_has_no_record",
    "case_wrong_secret_is_auth_error",
    "new_secret",
    "volume_name",
]


@dataclass(frozen=True)
class Export:
    volume: str
    node: ia.Node
    user: str
    secret: Secret
    backing: Path

    def chap(self, secret: Secret | None = None) -> ia.ChapCredentials:
        return ia.ChapCredentials(self.user, secret or self.secret)


class IscsiHost(Protocol):
    name: str
    link_prefix: str  # what /dev/iscsi/<volume> resolves to: "/dev/sd" or "/dev/loop"

    def run(self, script: ia.RemoteScript, what: str = "") -> None: ...

    def sh(self, command: str, *, check: bool = True) -> str: ...

    def sessions(self) -> list[ia.SessionInfo]: ...

    def wait_link(self, volume: str, *, present: bool) -> str:
        """``/dev/iscsi/<volume>`` resolved once it exists (or "" once it is gone)."""
        ...

    def argv_of_all_processes(self) -> bytes: ...

    def set_safe_logout(self, on: bool) -> None: ...


class Exporter(Protocol):
    def export(self, volume: str, user: str, secret: Secret) -> Export: ...

    def refused_portal(self) -> ia.TargetPortal:
        """A portal the host can reach where nothing listens."""
        ...

    def relayed_portal(self, exp: Export) -> AbstractContextManager[ia.TargetPortal]:
        """Another address of the same target, where SendTargets still advertises
        ``exp.node.portal`` (a TCP relay), while the context lasts."""
        ...


# A TCP relay for ``relayed_portal``: ``python3 -c RELAY_PY LISTEN_HOST 0 HOST PORT``
# prints "ready <port>" and relays every connection until killed.  The same text runs
# on this machine (stand-in tier) and in the guest (real tier).
RELAY_PY = """\
import asyncio, sys
lh, th, tp = sys.argv[1], sys.argv[3], int(sys.argv[4])
async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    finally:
        w.close()
async def handle(r, w):
    try:
        tr, tw = await asyncio.open_connection(th, tp)
    except OSError:
        w.close()
        return
    await asyncio.gather(pipe(r, tw), pipe(tr, w), return_exceptions=True)
async def main():
    srv = await asyncio.start_server(handle, lh, int(sys.argv[2]))
    print("ready", srv.sockets[0].getsockname()[1], flush=True)
    await srv.serve_forever()
asyncio.run(main())
"""


def volume_name() -> str:
    # "-lun-" and "." inside: names the old ID_PATH cut got wrong.
    return f"one-{secrets.token_hex(3)}-lun-7.disk"


def new_secret() -> Secret:
    return Secret(secrets.token_hex(8).encode(), origin="test CHAP secret")


def _user() -> str:
    # tgt's accounts are global to a tgtd: one per volume keeps tests independent.
    return f"oneadmin-{secrets.token_hex(3)}"


def case_login_is_idempotent_and_data_lands_on_the_target(
    host: IscsiHost, target: Exporter
) -> Export:
    """Login (discovery, CHAP via the helper), the link, idempotence both ways, data.

    Returns the export, logged out, for tier-specific follow-ups.
    """
    exp = target.export(volume_name(), _user(), new_secret())
    marker = f"eqliscsi-marker-{secrets.token_hex(8)}"
    link = f"/dev/iscsi/{exp.volume}"
    host.run(ia.login_script(exp.node, chap=exp.chap()), what=exp.volume)
    dev = host.wait_link(exp.volume, present=True)
    assert dev.startswith(host.link_prefix), dev
    assert host.sh(f"test -b {link} && echo block").strip() == "block"
    assert [(s.iqn, s.portal) for s in host.sessions()] == [(exp.node.iqn, exp.node.portal)]
    # The secret went through stdin and the node record, never through an argv.
    assert exp.secret.reveal() not in host.argv_of_all_processes()

    # Logging in again is success (status 15) and makes no second session.
    host.run(ia.login_script(exp.node, chap=exp.chap()), what=exp.volume)
    assert len(host.sessions()) == 1

    host.sh(f"printf '%s' {marker} | dd of={link} bs=4096 conv=sync,fsync oflag=direct status=none")
    host.run(ia.logout_script(exp.node), what=exp.volume)
    assert host.wait_link(exp.volume, present=False) == ""
    assert host.sessions() == []
    # Logging out again is success (status 21: nothing to log out of, no record).
    host.run(ia.logout_script(exp.node), what=exp.volume)
    with exp.backing.open("rb") as fh:
        assert fh.read(len(marker)) == marker.encode()
    return exp


def case_wrong_secret_is_auth_error(host: IscsiHost, target: Exporter) -> None:
    exp = target.export(volume_name(), _user(), new_secret())
    wrong = Secret(b"wrong-secret-0123", origin="test")
    with pytest.raises(ia.IscsiadmAuthError) as exc:
        host.run(ia.login_script(exp.node, chap=exp.chap(wrong)), what=exp.volume)
    assert exc.value.status == ia.IscsiadmStatus.LOGIN_AUTH_FAILED
    assert exc.value.op is ia.Op.LOGIN
    assert "wrong-secret-0123" not in str(exc.value)
    assert host.sessions() == []
    # The helper rewrites the record, so the right secret then logs in.
    host.run(ia.login_script(exp.node, chap=exp.chap()), what=exp.volume)
    host.wait_link(exp.volume, present=True)
    host.run(ia.logout_script(exp.node), what=exp.volume)
    assert host.sessions() == []


def case_unknown_target_has_no_record(host: IscsiHost, target: Exporter) -> None:
    # Another volume exists, so the portal answers (LIO listens only while some TPG
    # has the portal); discovery then finds no record for this IQN.
    other = target.export(volume_name(), _user(), new_secret())
    node = ia.Node(
        "iqn.2001-05.com.equallogic:0-8a0906-000000000-0000000000000000-absent",
        other.node.portal,
    )
    with pytest.raises(ia.IscsiadmNoRecordsError) as exc:
        host.run(ia.login_script(node))
    assert exc.value.status == ia.IscsiadmStatus.NO_OBJS_FOUND
    assert host.sessions() == []


def case_refused_portal_fails_discovery(host: IscsiHost, target: Exporter) -> None:
    # Measured on open-iscsi 2.1.8: the connection is retried, then discovery exits
    # 11 (ISCSI_ERR_PDU_TIMEOUT); check_status reports it as the discovery step.
    node = ia.Node(
        "iqn.2001-05.com.equallogic:0-8a0906-000000000-0000000000000000-silent",
        target.refused_portal(),
    )
    with pytest.raises(ia.IscsiadmError) as exc:
        host.run(ia.login_script(node))
    assert exc.value.op is ia.Op.DISCOVERY
    assert exc.value.status == ia.IscsiadmStatus.PDU_TIMEOUT
    assert host.sessions() == []


def case_logout_of_mounted_disk_is_busy_then_retried(host: IscsiHost, target: Exporter) -> None:
    exp = target.export(volume_name(), _user(), new_secret())
    link = f"/dev/iscsi/{exp.volume}"
    # A mount point in the datastores tree (the stand-in's hosts have a private
    # overlay there); the mount itself lives only in that host's mount namespace.
    mnt = f"/var/lib/one/datastores/mnt-{secrets.token_hex(3)}"
    host.set_safe_logout(True)
    try:
        host.run(ia.login_script(exp.node, chap=exp.chap()), what=exp.volume)
        host.wait_link(exp.volume, present=True)
        host.sh(f"mkfs.ext4 -q -F {link} && mkdir -p {mnt} && mount {link} {mnt}")
        started = time.monotonic()
        with pytest.raises(ia.IscsiadmBusyError):
            host.run(ia.logout_script(exp.node), what=exp.volume)
        # Retried, one second apart, before giving up.
        assert time.monotonic() - started >= ia.LOGOUT_ATTEMPTS - 1.5
        assert [s.iqn for s in host.sessions()] == [exp.node.iqn]
        host.sh(f"umount {mnt} && rmdir {mnt}")
        host.run(ia.logout_script(exp.node), what=exp.volume)
        assert host.sessions() == []
    finally:
        host.sh(f"umount {mnt}; rmdir {mnt}", check=False)
        host.set_safe_logout(False)
        host.run(ia.logout_script(exp.node), what=exp.volume)


def case_records_are_filed_under_the_advertised_portal(host: IscsiHost, target: Exporter) -> None:
    """Discovery through a portal whose answer names another address (NAT, a relay, a
    group portal known by another IP): open-iscsi files the node records under the
    advertised TargetAddress, so a login at the dialled portal finds no record (21)
    and the advertised one works.  Measured on open-iscsi 2.1.8; the stand-in filed
    them under the dialled portal until it was fixed to do the same."""
    exp = target.export(volume_name(), _user(), new_secret())
    with target.relayed_portal(exp) as relay:
        assert relay != exp.node.portal
        dialled = ia.Node(exp.node.iqn, relay)
        with pytest.raises(ia.IscsiadmNoRecordsError) as exc:
            host.run(ia.login_script(dialled), what=exp.volume)
        assert exc.value.op is ia.Op.LOGIN  # discovery itself succeeded
        assert host.sessions() == []
    try:
        # The record discovery made is the advertised portal's: CHAP and login work
        # there (-o new in this discovery leaves it as it is).
        host.run(ia.login_script(exp.node, chap=exp.chap()), what=exp.volume)
        assert [(s.iqn, s.portal) for s in host.sessions()] == [(exp.node.iqn, exp.node.portal)]
    finally:
        host.run(ia.logout_script(exp.node), what=exp.volume)
    assert host.sessions() == []
