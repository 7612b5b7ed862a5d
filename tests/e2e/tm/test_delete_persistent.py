"""``delete`` of a *persistent* disk on the stand-in hosts: logout, link gone, volume kept;
and the same disk's ``ln``/``delete`` through ``EQL_IFACE`` (an iface other than default).

oned runs the image TM's ``delete`` for a persistent disk when a VM is terminated
from a state where the disk is on a host but ``mvds`` is not run (``onevm recover
--delete``, a failed deploy cleaned up): the driver must log the host out and
remove ``disk.N`` without touching the volume, which is the image itself.  The
shared lifecycle suite runs that step too (on every rig, the real host included);
this file adds what it does not judge: the bytes in the LUN file after the delete,
a second ``delete``, and the same disk through ``EQL_IFACE``.

The judges: the host's own ``iscsiadm -m session``, its ``disk.N`` and
``/dev/iscsi/<volume>`` links, the group's saved model, and the bytes, read back
from the volume's backing file after the delete.
"""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Iterator

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


IMAGE_ID = 80


@pytest.fixture(scope="module")
def image(rig: EmbeddedRig) -> str:
    """One persistent image for this module (its DS mkfs costs seconds)."""
    return make_image(rig.simulator("7.0", name="delete-persistent"), IMAGE_ID)


def test_delete_of_a_persistent_disk_logs_out_and_keeps_the_volume(
    rig: EmbeddedRig, image: str
) -> None:
    sim = rig.simulator("7.0", name="delete-persistent")
    image_id, vm_id, source = IMAGE_ID, 480, image
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


@pytest.fixture
def iface_on_h1(rig: EmbeddedRig) -> Iterator[str]:
    """An iface made by the admin on h1 and bound to its NIC (docs/host-iscsi.md)."""
    name = f"eql{secrets.token_hex(2)}"
    admin = f"iscsiadm -m iface -I {name}"
    r = rig.ssh("h1", f"{admin} --op new && {admin} --op update -n iface.net_ifacename -v eth0")
    assert r.returncode == 0, r.stderr
    yield name
    rig.ssh("h1", f"{admin} --op delete")


def test_persistent_disk_through_eql_iface(rig: EmbeddedRig, image: str, iface_on_h1: str) -> None:
    """EQL_IFACE reaches every iscsiadm form the TM actions send: the node records are
    the iface's, and an iface the host lacks fails ln with an error naming EQL_IFACE."""
    sim = rig.simulator(
        "7.0", name=f"iface-{iface_on_h1}", conf=rig.conf_text(EQL_IFACE=iface_on_h1)
    )
    vm_id = 490
    disk = f"{SYS}/{vm_id}/disk.0"
    vm = VmSpec(vm_id, disks=[DiskSpec(0, IMAGE_ID, image, persistent=True)], history=["h1"])
    rig.put_vm(sim, vm)
    iqn = volumes(rig)[image]["iqn"]
    nodes = f"/etc/iscsi/nodes/{shlex.quote(iqn)}"
    out = sim.run_tm("ln", [f"fe:{image}", f"h1:{disk}", str(vm_id), "0"])
    assert out.ok, out.stderr
    assert session_volumes(rig, "h1") == [image]
    assert link_target(rig, "h1", disk) == f"/dev/iscsi/{image}"
    found = rig.ssh("h1", f"cd {nodes} && find . -type f").stdout.decode().split()
    assert found and all(path.endswith(f"/{iface_on_h1}") for path in found), found
    out = sim.run_tm("delete", [f"h1:{disk}", str(vm_id), "100"])
    assert out.ok, out.stderr
    assert session_volumes(rig, "h1") == []
    assert rig.ssh("h1", f"test -d {nodes}/ && find {nodes} -type f").stdout == b""

    absent = rig.simulator("7.0", name="iface-absent", conf=rig.conf_text(EQL_IFACE="eqlnone"))
    rig.put_vm(absent, vm)
    out = absent.run_tm("ln", [f"fe:{image}", f"h1:{disk}", str(vm_id), "0"])
    assert not out.ok
    assert "EQL_IFACE" in out.stderr
    assert session_volumes(rig, "h1") == []
    assert image in volumes(rig)
