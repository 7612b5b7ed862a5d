"""A failed live migration with no failmigrate hook: the next action on the destination
logs the leaked login out, judged by oned's view, not by disk.N links.

No stock system TM calls an image TM's failmigrate (reference §6.3), so the login
premigrate made on the destination stays when the migration fails.  On a shared
system datastore the VM's ``disk.N`` is visible on both hosts, so "some link points
at the device" cannot tell that leaked login from the source's live one.  Here the
rig's premigrate leaves ``disk.0`` on h2 at the same path and target as on h1, which
is exactly what a shared directory shows the sweep; oned's history then places the
VM back on h1 (a failed migration copies the previous record), and the next
premigrate of another VM to h2 must close the leaked session and nothing else.
"""

from __future__ import annotations

import pytest

from rig.embedded import EmbeddedRig
from rig.oned import DiskSpec, VmSpec

from .helpers import SYS, link_target, make_image, read_block, session_volumes, write_marker

pytestmark = [pytest.mark.tgt, pytest.mark.slow]

LCM_MIGRATE = 4


def test_leaked_destination_login_closed_by_next_premigrate(rig: EmbeddedRig) -> None:
    sim = rig.simulator("6.6", name="stale-shared")
    source = make_image(sim, 70)
    a_id, b_id = 470, 471
    a_disk = DiskSpec(0, 70, source, size_mb=32)
    a_vol, b_vol = f"{source}-{a_id}-0", f"{source}-{b_id}-0"
    vm_a = VmSpec(a_id, disks=[a_disk], history=["h1"])
    vm_b = VmSpec(b_id, disks=[DiskSpec(0, 70, source, size_mb=32)], history=["h1"])
    for vm in (vm_a, vm_b):
        rig.put_vm(sim, vm)
        out = sim.run_tm("clone", [f"fe:{source}", f"h1:{SYS}/{vm.id}/disk.0", str(vm.id), "0"])
        assert out.ok, out.stderr
    marker = write_marker(rig, "h1", f"{SYS}/{a_id}/disk.0", offset_blocks=3)

    # VM A's live migration to h2: premigrate logs in there, then the migration fails.
    rig.put_vm(sim, VmSpec(a_id, disks=[a_disk], history=["h1", "h2"], lcm_state=LCM_MIGRATE))
    out = sim.run_migrate("premigrate", src="h1", dst="h2", vm_dir=f"{SYS}/{a_id}", vm=vm_a)
    assert out.ok, out.stderr
    assert session_volumes(rig, "h2") == [a_vol]
    # oned: "Fail to live migrate VM. Assuming that the VM is still RUNNING" — a new
    # history record copying h1.  No failmigrate runs: none is installed.
    rig.put_vm(sim, VmSpec(a_id, disks=[a_disk], history=["h1", "h2", "h1"]))
    assert not (sim.remotes / "tm" / "shared" / "failmigrate").exists()
    # Both hosts show disk.0 -> /dev/iscsi/<A's volume>, as a shared directory would.
    for host in ("h1", "h2"):
        assert link_target(rig, host, f"{SYS}/{a_id}/disk.0") == f"/dev/iscsi/{a_vol}"
    assert session_volumes(rig, "h2") == [a_vol]

    # The next eqliscsi action on h2: VM B's premigrate to h2.
    rig.put_vm(sim, VmSpec(b_id, disks=vm_b.disks, history=["h1", "h2"], lcm_state=LCM_MIGRATE))
    out = sim.run_migrate("premigrate", src="h1", dst="h2", vm_dir=f"{SYS}/{b_id}", vm=vm_b)
    assert out.ok, out.stderr
    assert f"closed stale session to {a_vol} on h2 (oned places VM {a_id}" in out.stderr
    assert session_volumes(rig, "h2") == [b_vol]
    out = sim.run_migrate("postmigrate", src="h1", dst="h2", vm_dir=f"{SYS}/{b_id}", vm=vm_b)
    assert out.ok, out.stderr
    rig.put_vm(sim, VmSpec(b_id, disks=vm_b.disks, history=["h1", "h2"]))

    # h1 is untouched: A's session, its link and its bytes.
    assert session_volumes(rig, "h1") == [a_vol]
    assert link_target(rig, "h1", f"{SYS}/{a_id}/disk.0") == f"/dev/iscsi/{a_vol}"
    assert read_block(rig, "h1", f"{SYS}/{a_id}/disk.0", 3)[: len(marker)] == marker

    for vm_id, host in ((a_id, "h1"), (b_id, "h2")):
        out = sim.run_tm("delete", [f"{host}:{SYS}/{vm_id}/disk.0", str(vm_id), "100"])
        assert out.ok, out.stderr
    assert session_volumes(rig, "h1") == [] and session_volumes(rig, "h2") == []
