"""The driver's iscsiadm steps through a named iface and to an IPv6 portal, on the real
open-iscsi in the kernel guest, and the native client over IPv6 against LIO.

The guest is reached from this machine only through 127.0.0.1 forwards, so the IPv6
cells run *inside* it: LIO serves the test's target on ``[::1]:3260`` as well (the
agent adds that network portal to the target's TPG; LIO's default ``0.0.0.0``
portal takes no IPv6 connection), and both initiators connect to it from the guest:

* open-iscsi, driven by the scripts of ``eqliscsi.opennebula.iscsiadm`` exactly as
  the TM actions send them (``ssh host sh -s``);
* the project's native client, run by the guest's python3 from the project tree the
  VM shares read-only (``/opt/eqliscsi``).

The named iface is bound to the guest's NIC, ``eth0``: LIO's wildcard portal is
reached through it at the guest's own address, 10.0.2.15, which is also what
SendTargets advertises there.  The bodies are shared with the stand-in tier
(tests/integration/host_net_cases.py).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest

from eqliscsi.opennebula import iscsiadm as ia
from eqliscsi.secret import Secret
from rig.guest.vm import GuestVM
from rig.targets.lio import LioBackend
from tests.integration import host_cases as cases
from tests.integration import host_net_cases as net
from tests.integration.guest.conftest import GUEST_INITIATOR, new_iqn
from tests.integration.guest.test_driver_iscsiadm import (
    GuestHost,
    LioExporter,
    install_remotes,
)

pytestmark = [pytest.mark.guest, pytest.mark.lio, pytest.mark.judge, pytest.mark.timeout(900)]

NIC = "eth0"
NIC_PORTAL = ia.TargetPortal("10.0.2.15", 3260)  # QEMU user networking: the guest's address
V6_PORTAL = ia.TargetPortal("::1", 3260)


class LioV6Exporter(LioExporter):
    """The guest's LIO, each target also on ``[::1]:3260``, exported at that portal."""

    def export(self, volume: str, user: str, secret: Secret) -> cases.Export:
        exp = super().export(volume, user, secret)
        self.lio.add_portal(exp.node.iqn, V6_PORTAL.address, V6_PORTAL.port)
        return cases.Export(volume, ia.Node(exp.node.iqn, V6_PORTAL), user, secret, exp.backing)


@pytest.fixture(scope="module")
def hv_net(guest_vm: GuestVM) -> Iterator[GuestVM]:
    """The guest as a hypervisor host with the driver's remotes installed."""
    install_remotes(guest_vm)
    yield guest_vm
    guest_vm.ssh(["sh", "-c", "iscsiadm -m node --logoutall=all; iscsiadm -m node -o delete"],
                 check=False)  # fmt: skip


def _exporter(cls: type[LioExporter], vm: GuestVM, lio: LioBackend) -> Iterator[LioExporter]:
    exp = cls(vm, lio)
    yield exp
    for f in exp.files:
        f.unlink(missing_ok=True)


@pytest.fixture
def lio_target(hv_net: GuestVM, lio: LioBackend) -> Iterator[LioExporter]:
    yield from _exporter(LioExporter, hv_net, lio)


@pytest.fixture
def lio_v6_target(hv_net: GuestVM, lio: LioBackend) -> Iterator[LioExporter]:
    yield from _exporter(LioV6Exporter, hv_net, lio)


def test_driver_login_through_a_named_iface_bound_to_the_nic(
    hv_net: GuestVM, lio_target: LioExporter
) -> None:
    net.case_login_through_a_named_iface(GuestHost(hv_net), lio_target, nic=NIC, portal=NIC_PORTAL)


def test_driver_login_to_an_ipv6_portal(hv_net: GuestVM, lio_v6_target: LioExporter) -> None:
    net.case_ipv6_portal(GuestHost(hv_net), lio_v6_target)


# The native client in the guest: discovery, login and probe over [::1].  It prints
# one JSON object; the test judges it against LIO's own view (backing file size,
# session count).
_NATIVE = """\
import asyncio, json, sys
from eqliscsi.iscsi_discovery import discover, probe
iqn, init = sys.argv[1], sys.argv[2]
async def main():
    found = await discover("[::1]:3260", initiator_name=init)
    mine = [t for t in found if t.name == iqn]
    portals = [str(p) for p in mine[0].portals] if mine else []
    result = await probe(mine[0].portals[0], iqn, initiator_name=init)
    lun = result.luns[0]
    print(json.dumps({"portals": portals, "lun": lun.lun, "size": lun.size_bytes,
                      "block": lun.block_size, "vendor": lun.vendor.strip(),
                      "via": str(result.portal)}))
asyncio.run(main())
"""


def test_native_client_discovers_and_probes_lio_over_ipv6(
    guest_vm: GuestVM, lio: LioBackend
) -> None:
    iqn = new_iqn()
    size = 24 << 20
    backing = guest_vm.share_dir / f"v6-{secrets.token_hex(4)}.img"
    with backing.open("wb") as fh:
        fh.truncate(size)
    try:
        lio.create_target(iqn, backing)
        lio.set_initiators(iqn, [GUEST_INITIATOR])
        lio.add_portal(iqn, V6_PORTAL.address, V6_PORTAL.port)
        r = guest_vm.ssh(
            ["env", "PYTHONPATH=/opt/eqliscsi", "python3", "-c", _NATIVE, iqn, GUEST_INITIATOR],
            timeout=120,
            check=False,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        got = json.loads(r.stdout)
        # LIO lists the target's two portals (the wildcard one answers with the
        # connection's own address): both are [::1]:3260,1, kept once (RFC 7143 §13.8).
        assert got["portals"] == ["[::1]:3260,1"]
        assert got["via"] == "[::1]:3260,1"
        assert (got["lun"], got["size"], got["block"], got["vendor"]) == (0, size, 512, "LIO-ORG")
        # The probe logged out: LIO has no session left for the target.
        assert lio.session_count(iqn) == 0
    finally:
        lio.delete_target(iqn)
        backing.unlink(missing_ok=True)
