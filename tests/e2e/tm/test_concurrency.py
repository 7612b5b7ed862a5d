"""16 VMs deployed and terminated at once on two hosts: no lost logins, no cross-talk.

oned runs transfer actions in parallel; the host-side lock serializes node-database
changes per host and the CLI-session slots cap the group's sessions (EQL_MAX_SESSIONS).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from rig.embedded import EmbeddedRig
from rig.oned import DiskSpec, VmSpec

from .helpers import SYS, make_image, read_block, session_volumes, volumes, write_marker

pytestmark = [pytest.mark.tgt, pytest.mark.slow]

VMS = 16


def test_sixteen_vms_on_two_hosts(rig: EmbeddedRig) -> None:
    sim = rig.simulator("6.6", name="concurrent")
    sim.timeout = 600.0
    source = make_image(sim, 70)
    ids = [600 + i for i in range(VMS)]
    host = {vm: ("h1", "h2")[i % 2] for i, vm in enumerate(ids)}
    for vm in ids:
        rig.put_vm(sim, VmSpec(vm, disks=[DiskSpec(0, 70, source, size_mb=32)]))

    def deploy(vm: int) -> str:
        out = sim.run_tm("clone", [f"fe:{source}", f"{host[vm]}:{SYS}/{vm}/disk.0", str(vm), "0"])
        return "" if out.ok else f"VM {vm}: {out.reason}"

    def terminate(vm: int) -> str:
        out = sim.run_tm("delete", [f"{host[vm]}:{SYS}/{vm}/disk.0", str(vm), "100"])
        return "" if out.ok else f"VM {vm}: {out.reason}"

    with ThreadPoolExecutor(VMS) as pool:
        errors = [e for e in pool.map(deploy, ids) if e]
    assert errors == []
    for h in ("h1", "h2"):
        assert session_volumes(rig, h) == sorted(f"{source}-{vm}-0" for vm in ids if host[vm] == h)
    markers = {vm: write_marker(rig, host[vm], f"{SYS}/{vm}/disk.0") for vm in ids}
    for vm in ids:
        assert read_block(rig, host[vm], f"{SYS}/{vm}/disk.0")[: len(markers[vm])] == markers[vm]

    with ThreadPoolExecutor(VMS) as pool:
        errors = [e for e in pool.map(terminate, ids) if e]
    assert errors == []
    assert session_volumes(rig, "h1") == [] and session_volumes(rig, "h2") == []
    left = [v for v in volumes(rig) if v.startswith(f"{source}-")]
    assert left == []
