"""The driver's host iSCSI steps through a named iface and to an IPv6 portal, as test
bodies shared by the real iscsiadm (kernel guest) and the rig's stand-in.

The same idea as :mod:`tests.integration.host_cases` (whose protocols and helpers
these reuse): each tier calls these functions with its own host and exporter, so a
difference between open-iscsi and the stand-in fails one of the two tiers.

The expectations were measured on open-iscsi 2.1.8 in the kernel guest:

* ``-I IFACE``: discovery files the node records under ``<portal>/<IFACE>`` only;
  the session belongs to that iface (a logout through ``default`` finds no session,
  21); the record carries the iface's ``iface.net_ifacename``;
* an iface with no file under ``/etc/iscsi/ifaces``: discovery exits 21, and login,
  logout and ``-o delete`` exit 3 ("Could not read iface info for ...");
* an iface bound to a NIC the host does not have: every connection fails
  ("Could not bind connection 0 to ...") and discovery exits 11 after its retries;
* an IPv6 portal: records under ``<address>,<port>,<tpgt>`` without brackets, the
  session listed as ``[address]:port,tpgt``.
"""

from __future__ import annotations

import secrets
import shlex

import pytest

from eqliscsi.opennebula import iscsiadm as ia
from tests.integration.host_cases import (
    Exporter,
    IscsiHost,
    new_secret,
    volume_name,
)

__all__ = ["case_ipv6_portal", "case_login_through_a_named_iface", "records"]

# A NIC name no host has (IFNAMSIZ allows 15 characters).
ABSENT_NIC = "eqlnonic0"


def _user() -> str:
    return f"oneadmin-{secrets.token_hex(3)}"


def records(host: IscsiHost, iqn: str) -> list[str]:
    """The node records of ``iqn`` on ``host``: ``<portal dir>/<iface>`` paths."""
    out = host.sh(
        f"cd /etc/iscsi/nodes/{shlex.quote(iqn)} 2>/dev/null && find . -type f | sort; true"
    )
    return [line.removeprefix("./") for line in out.split()]


def _iscsiadm_status(host: IscsiHost, argv: tuple[str, ...]) -> int:
    out = host.sh(f"{ia.render(argv)} >/dev/null 2>&1; echo rc=$?", check=False)
    return int(out.strip().rsplit("rc=", 1)[1])


def case_login_through_a_named_iface(
    host: IscsiHost, target: Exporter, *, nic: str, portal: ia.TargetPortal
) -> None:
    """EQL_IFACE other than ``default``: an iface made by the admin and bound to the
    host's ``nic``; ``portal`` is the target reached through that NIC."""
    iface = f"eql{secrets.token_hex(2)}"
    admin = f"iscsiadm -m iface -I {iface}"
    host.sh(f"{admin} --op new && {admin} --op update -n iface.net_ifacename -v {nic}")
    exp = target.export(volume_name(), _user(), new_secret())
    node = ia.Node(exp.node.iqn, portal, iface)
    link = f"/dev/iscsi/{exp.volume}"
    marker = f"eqliscsi-iface-{secrets.token_hex(8)}"
    try:
        host.run(ia.login_script(node, chap=exp.chap()), what=exp.volume)
        assert host.wait_link(exp.volume, present=True).startswith(host.link_prefix)
        assert [(s.iqn, s.portal) for s in host.sessions()] == [(node.iqn, portal)]
        # Records only for this iface (discovery -I files them per iface), holding
        # the iface's NIC binding and the CHAP settings the helper wrote there.
        record = f"{portal.address},{portal.port},1/{iface}"
        assert records(host, node.iqn) == [record]
        text = host.sh(f"cat /etc/iscsi/nodes/{node.iqn}/{shlex.quote(record)}")
        assert f"iface.net_ifacename = {nic}" in text
        assert f"node.session.auth.username = {exp.user}" in text
        # The session is the iface's: the same node through `default` has none (21).
        other = ia.Node(node.iqn, portal)
        assert _iscsiadm_status(host, ia.logout_argv(other)) == ia.IscsiadmStatus.NO_OBJS_FOUND
        assert len(host.sessions()) == 1

        host.sh(f"printf '%s' {marker} | dd of={link} bs=4096 conv=sync,fsync "
                "oflag=direct status=none")  # fmt: skip
        host.run(ia.logout_script(node), what=exp.volume)
        assert host.wait_link(exp.volume, present=False) == ""
        assert host.sessions() == []
        assert records(host, node.iqn) == []
        with exp.backing.open("rb") as fh:
            assert fh.read(len(marker)) == marker.encode()

        # An iface the host does not have: discovery finds nothing (21) ...
        absent = ia.Node(node.iqn, portal, f"eqlno{secrets.token_hex(2)}")
        with pytest.raises(ia.IscsiadmNoRecordsError) as no_iface:
            host.run(ia.login_script(absent, chap=exp.chap()), what=exp.volume)
        assert no_iface.value.op is ia.Op.DISCOVERY
        # ... and login, logout and delete through it exit 3, which the driver reports.
        assert _iscsiadm_status(host, ia.login_argv(absent)) == ia.IscsiadmStatus.NOMEM
        with pytest.raises(ia.IscsiadmError) as no_logout:
            host.run(ia.logout_script(absent), what=exp.volume)
        assert (no_logout.value.op, no_logout.value.status) == (ia.Op.LOGOUT, 3)
        assert host.sessions() == []

        # The binding is real: bound to a NIC the host lacks, no connection is made.
        host.sh(f"{admin} --op update -n iface.net_ifacename -v {ABSENT_NIC}")
        with pytest.raises(ia.IscsiadmError) as unbound:
            host.run(ia.login_script(node, chap=exp.chap()), what=exp.volume)
        assert (unbound.value.op, unbound.value.status) == (
            ia.Op.DISCOVERY,
            ia.IscsiadmStatus.PDU_TIMEOUT,
        )
        assert host.sessions() == []
    finally:
        host.sh(f"{admin} --op update -n iface.net_ifacename -v {nic}", check=False)
        host.run(ia.logout_script(node), what=exp.volume)
        host.sh(f"{admin} --op delete", check=False)
    assert records(host, node.iqn) == []


def case_ipv6_portal(host: IscsiHost, target: Exporter) -> None:
    """Discovery, CHAP, login, the link, data and logout with ``target`` serving an
    IPv6 portal; the node record sits under ``<address>,<port>,<tpgt>``, no brackets.
    (Idempotence and the error cases do not depend on the address family: the IPv4
    bodies in host_cases cover them.)"""
    exp = target.export(volume_name(), _user(), new_secret())
    portal = exp.node.portal
    assert ":" in portal.address, "the exporter must serve an IPv6 portal"
    link = f"/dev/iscsi/{exp.volume}"
    marker = f"eqliscsi-ipv6-{secrets.token_hex(8)}"
    try:
        host.run(ia.login_script(exp.node, chap=exp.chap()), what=exp.volume)
        assert host.wait_link(exp.volume, present=True).startswith(host.link_prefix)
        assert records(host, exp.node.iqn) == [f"{portal.address},{portal.port},1/default"]
        sessions = host.sessions()
        assert [(s.iqn, s.portal, s.tpgt) for s in sessions] == [(exp.node.iqn, portal, 1)]
        assert exp.secret.reveal() not in host.argv_of_all_processes()
        host.sh(f"printf '%s' {marker} | dd of={link} bs=4096 conv=sync,fsync "
                "oflag=direct status=none")  # fmt: skip
    finally:
        host.run(ia.logout_script(exp.node), what=exp.volume)
    assert host.wait_link(exp.volume, present=False) == ""
    assert records(host, exp.node.iqn) == []
    assert host.sessions() == []
    with exp.backing.open("rb") as fh:
        assert fh.read(len(marker)) == marker.encode()
