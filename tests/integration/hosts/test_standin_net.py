"""The stand-in iscsiadm through a named iface and to an IPv6 portal.

The bodies are those the real open-iscsi runs in the kernel guest
(tests/integration/host_net_cases.py, called from
tests/integration/guest/test_driver_iscsiadm_net.py), so the stand-in is held to
what was measured there:

* the iface is made and bound to the host's ``eth0`` with ``iscsiadm -m iface``
  (the admin's forms, which the stand-in implements for this; their statuses are
  checked in tests/unit/hosts/test_standin_iface.py), the target is tgtd
  on the rig's bridge, reached through ``eth0``;
* for IPv6, tgtd runs inside the host's own network namespace on ``[::1]``, so the
  stand-in's libiscsi discovery and qemu-storage-daemon's login connect over IPv6.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from eqliscsi.opennebula import iscsiadm as ia
from rig.hosts import HostRig
from rig.need import need
from tests.integration import host_net_cases as net

from .conftest import Tgt, start_tgt
from .test_rig_hosts import StandinHost, TgtExporter

pytestmark = [pytest.mark.tgt, pytest.mark.slow]


@pytest.fixture(scope="module")
def tgt_v6(host_rig: HostRig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tgt]:
    """tgtd on ``[::1]`` inside the second host's network namespace."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        need(False, "the IPv6 loopback address ::1 is not configured on lo")
    host = host_rig.hosts[1]
    with start_tgt("::1", tmp_path_factory.mktemp("tgt6"), netns=host.netns) as t:
        yield t


def test_standin_login_through_a_named_iface_bound_to_the_nic(host_rig: HostRig, tgt: Tgt) -> None:
    host = StandinHost(host_rig, host_rig.hosts[1])
    net.case_login_through_a_named_iface(
        host, TgtExporter(host_rig, tgt), nic="eth0", portal=ia.TargetPortal(tgt.address, tgt.port)
    )


def test_standin_login_to_an_ipv6_portal(host_rig: HostRig, tgt_v6: Tgt) -> None:
    host = StandinHost(host_rig, host_rig.hosts[1])
    net.case_ipv6_portal(host, TgtExporter(host_rig, tgt_v6))
