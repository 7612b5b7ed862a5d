"""``delete`` of a *persistent* disk on the stand-in hosts: logout, link gone, volume kept.

oned runs the image TM's ``delete`` for a persistent disk when a VM is terminated
from a state where the disk is on a host but ``mvds`` is not run (``onevm recover
--delete``, a failed deploy cleaned up): the driver must log the host out and
remove ``disk.N`` without touching the volume, which is the image itself.  The
lifecycle suite ends persistent disks with ``mvds``; this covers the stand-in cell
that docs/interop.md §2.1 lists (the real host runs the same step in
tests/integration/guest/test_tm_real_host.py).

The judges: the host's own ``iscsiadm -m session``, its ``disk.N`` and
``/dev/iscsi/<volume>`` links, the group's saved model, and the bytes, read back
from the volume's backing file after the delete.
"""

from __future__ import annotations

import pytest

from rig.embedded import EmbeddedRig
from rig.oned import DiskSpec, VmSpec

from .helpers import (
    SYS,
    link_target,
    make_image,
    session_volumes,
    volumes,
    write_marker,
)

pytestmark = [pytest.mark.tgt, pytest.mark.slow]


def test_delete_of_a_persistent_disk_logs_out_and_keeps_the_volume(rig: EmbeddedRig) -> None:
    sim = rig.simulator("7.0", name="delete-persistent")
    image_id, vm_id = 80, 480
    source = make_image(sim, image_id)
    disk = f"{SYS}/{vm_id}/disk.0"
    vm = VmSpec(vm_id, disks=[DiskSpec(0, image_id, source, persistent=True)], history=["h1"])
    rig.put_vm(sim, vm)
    out = sim.run_tm("ln", [f"fe:{source}", f"h1:{disk}", str(vm_id), "0"])
    assert out.ok, out.stderr
    assert link_target(rig, "h1", disk) == f"/dev/iscsi/{source}"
    assert link_target(rig, "h1", f"/dev/iscsi/{source}").startswith("/dev/loop")
    marker = write_marker(rig, "h1", disk, offset_blocks=2)
    assert session_volumes(rig, "h1") == [source]

    out = sim.run_tm("delete", [f"h1:{disk}", str(vm_id), "100"])
    assert out.ok, out.stderr
    assert session_volumes(rig, "h1") == []
    assert link_target(rig, "h1", disk) == ""
    assert link_target(rig, "h1", f"/dev/iscsi/{source}") == ""
    # The persistent image's volume stays on the group, at its size ...
    assert volumes(rig)[source]["size_mb"] == 32
    # ... and oned retrying the delete is still success (nothing to log out of).
    out = sim.run_tm("delete", [f"h1:{disk}", str(vm_id), "100"])
    assert out.ok, out.stderr
    assert source in volumes(rig)

    # The bytes written through the host are in the volume's backing file (the group's
    # LUN file that tgtd serves), which the delete left alone.
    lun = rig.san_state / "luns" / f"{volumes(rig)[source]['uid']}.img"
    with lun.open("rb") as fh:
        fh.seek(2 * 4096)
        assert fh.read(len(marker)) == marker
