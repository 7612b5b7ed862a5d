"""A VM disk's life through the TM remotes, run as each OpenNebula version runs them.

One suite, three rigs (``lifecycle_rig``: ``rig=embedded``, ``rig=docker`` and
``rig=guest``, see rig.lifecycle).  Real peers throughout: the remotes are
subprocesses with each version's argv/stdin (rig.oned; in the frontend container on
the docker rig), the group is rig.fake_eql over SSH with tgtd serving every volume
(LIO in the kernel guest on rig=guest), the hosts are namespaced machines or
containers reached by OpenSSH whose "kernel initiator" is qemu-storage-daemon + loop
-- except h1 on rig=guest, a real OpenNebula node: open-iscsi's iscsiadm and iscsid,
the kernel's iscsi_tcp, udev with the shipped rule.  Bytes are written and read
through the hosts' block devices, in both directions between h1 and h2; the judge
for sessions is each host's ``iscsiadm -m session`` and for volumes the group's
saved model.
"""

from __future__ import annotations

import pytest

from rig.lifecycle import (
    Frontend,
    LifecycleRig,
    block_size,
    link_target,
    read_block,
    session_volumes,
    write_marker,
)
from rig.oned import DiskSpec, VmSpec

from .helpers import SYS, make_image

pytestmark = [pytest.mark.tgt, pytest.mark.slow]

MIB = 1024 * 1024


def lun_bytes(size_mb: int) -> int:
    """What a host sees of a volume: EqualLogic rounds it up to 15 MB granules."""
    return -(-size_mb // 15) * 15 * MIB


PROFILES = ["4.4", "5.8", "5.12", "6.6", "7.0"]
# 6.6 runs with the driver reaching the hosts as oneadmin, as OpenNebula does: every
# iscsiadm and CHAP-helper step passes the shipped sudoers rule
# (remotes/tm/eqliscsi/eqliscsi.sudoers; test_sudo.py shows what it refuses).  The
# other conventions reach the hosts as root, the path without sudo, on the embedded rig;
# the docker and guest rigs' hosts admit oneadmin only, so there every convention goes
# through sudo.
AS_ONEADMIN = {"6.6"}
ONEADMIN_ONLY = {"docker", "guest"}


@pytest.mark.parametrize(
    "profile", PROFILES, ids=[p + ("-oneadmin-sudo" if p in AS_ONEADMIN else "") for p in PROFILES]
)
def test_disk_lifecycle(lifecycle_rig: LifecycleRig, profile: str) -> None:
    rig = lifecycle_rig
    n = PROFILES.index(profile)
    oneadmin = profile in AS_ONEADMIN
    name = f"{profile}-oneadmin" if oneadmin else profile
    _lifecycle(rig, rig.simulator(profile, name=name, as_oneadmin=oneadmin), n)
    if oneadmin or rig.name in ONEADMIN_ONLY:
        # The driver really was oneadmin on the hosts: the VM directories it made are
        # oneadmin's (uid 9869); the node records behind the sessions only root
        # (through sudo) could write.
        for vm_id in (200 + 10 * n, 201 + 10 * n):
            r = rig.run("h1", f"stat -c %u {SYS}/{vm_id}")
            assert r.stdout.decode().strip() == "9869", (vm_id, r.stderr)


def _lifecycle(rig: LifecycleRig, sim: Frontend, n: int) -> None:
    image_id, vm_p, vm_c = 10 + n, 200 + 10 * n, 201 + 10 * n
    source = make_image(sim, image_id)
    snap_id_arg = sim.profile.major_minor() >= (4, 14)  # cpds gained SNAP_ID in 4.14

    # Persistent image: ln on h1, a marker through h1's disk.0.
    disk_p = f"{SYS}/{vm_p}/disk.0"
    rig.put_vm(sim, VmSpec(vm_p, disks=[DiskSpec(0, image_id, source, persistent=True)]))
    out = sim.run_tm("ln", [f"fe:{source}", f"h1:{disk_p}", str(vm_p), "0"])
    assert out.ok, out.stderr
    assert link_target(rig, "h1", disk_p.replace("//", "/")) == f"/dev/iscsi/{source}"
    # ... to the block device the login made (udev's /dev/sdX on a real host), of the
    # size the group gives hosts (rounded up to its 15 MB granule).
    assert block_size(rig, "h1", disk_p) == lun_bytes(32)
    marker = write_marker(rig, "h1", disk_p)
    assert session_volumes(rig, "h1") == [source]

    # Stop (h1 -> fe, fe is in NO_ISCSI) and resume on h2 (fe -> h2).
    out = sim.run_tm("mv", [f"h1:{disk_p}", f"fe:{disk_p}", str(vm_p), "0"])
    assert out.ok, out.stderr
    assert session_volumes(rig, "h1") == []
    assert link_target(rig, "h1", disk_p) == ""
    out = sim.run_tm("mv", [f"fe:{disk_p}", f"h2:{disk_p}", str(vm_p), "0"])
    assert out.ok, out.stderr
    assert read_block(rig, "h2", disk_p)[: len(marker)] == marker

    # Persistent disk back to its datastore at shutdown: logout, volume kept.
    out = sim.run_tm("mvds", [f"h2:{disk_p}", source, str(vm_p), "100"])
    assert out.ok, out.stderr
    assert session_volumes(rig, "h2") == []
    assert source in rig.volumes()

    # Terminate a running persistent disk (delete, not mvds): logout on h1, the link
    # and the disk gone, the image's volume kept.
    out = sim.run_tm("ln", [f"fe:{source}", f"h1:{disk_p}", str(vm_p), "0"])
    assert out.ok, out.stderr
    assert session_volumes(rig, "h1") == [source]
    out = sim.run_tm("delete", [f"h1:{disk_p}", str(vm_p), "100"])
    assert out.ok, out.stderr
    assert session_volumes(rig, "h1") == []
    assert link_target(rig, "h1", disk_p) == ""
    assert block_size(rig, "h1", f"/dev/iscsi/{source}") == 0
    assert source in rig.volumes()

    # Non-persistent: array-side clone grown to DISK/SIZE, carrying the image's bytes.
    disk_c = f"{SYS}/{vm_c}/disk.0"
    vm = VmSpec(vm_c, disks=[DiskSpec(0, image_id, source, size_mb=96)])
    rig.put_vm(sim, vm)
    out = sim.run_tm("clone", [f"fe:{source}", f"h1:{disk_c}", str(vm_c), "0"])
    assert out.ok, out.stderr
    # The CHAP secret went to h1 inside the script on ssh's stdin, never into logs.
    chap_secret = rig.chap_secret().reveal_str()
    log = sim.driver_log()
    assert chap_secret not in out.stderr
    assert chap_secret not in log
    assert "***" in log
    clone = f"{source}-{vm_c}-0"
    assert rig.volumes()[clone]["size_mb"] >= 96
    assert rig.volumes()[source]["size_mb"] == 32
    assert read_block(rig, "h1", disk_c)[: len(marker)] == marker
    # The host's kernel sees the grown LUN, not the image's 32 MB.
    assert block_size(rig, "h1", disk_c) == lun_bytes(rig.volumes()[clone]["size_mb"])
    marker2 = write_marker(rig, "h1", disk_c, offset_blocks=1)

    # Live migration h1 -> h2: premigrate logs in on h2, postmigrate out on h1.
    vm_dir = f"{SYS}/{vm_c}"
    out = sim.run_migrate("premigrate", src="h1", dst="h2", vm_dir=vm_dir, vm=vm)
    assert out.ok, out.stderr
    assert session_volumes(rig, "h2") == [clone]
    assert read_block(rig, "h2", f"/dev/iscsi/{clone}", 1)[: len(marker2)] == marker2
    out = sim.run_migrate("postmigrate", src="h1", dst="h2", vm_dir=vm_dir, vm=vm)
    assert out.ok, out.stderr
    assert session_volumes(rig, "h1") == []
    assert block_size(rig, "h1", f"/dev/iscsi/{clone}") == 0  # the logout took the disk
    assert session_volumes(rig, "h2") == [clone]

    # A failed migration back to h1: failmigrate undoes premigrate's login, which
    # read what h2 wrote (bytes cross the hosts both ways).
    marker3 = write_marker(rig, "h2", f"/dev/iscsi/{clone}", offset_blocks=2)
    out = sim.run_migrate("premigrate", src="h2", dst="h1", vm_dir=vm_dir, vm=vm)
    assert out.ok, out.stderr
    assert session_volumes(rig, "h1") == [clone]
    assert read_block(rig, "h1", f"/dev/iscsi/{clone}", 2)[: len(marker3)] == marker3
    out = sim.run_migrate("failmigrate", src="h2", dst="h1", vm_dir=vm_dir, vm=vm)
    assert out.ok, out.stderr
    assert session_volumes(rig, "h1") == []
    assert block_size(rig, "h1", f"/dev/iscsi/{clone}") == 0
    assert session_volumes(rig, "h2") == [clone]

    # Save-as while running (cpds; 4.14+ adds the snapshot id, -1 = current state).
    saved = f"saved.{300 + n}"
    args = [f"h2:{disk_c}", saved, *(["-1"] if snap_id_arg else []), str(vm_c), "100"]
    out = sim.run_tm("cpds", args)
    assert out.ok, out.stderr
    assert rig.volumes()[saved]["description"] == "eqliscsi ds=100"

    # Terminate: the clone is logged out and deleted, the images stay.
    out = sim.run_tm("delete", [f"h2:{disk_c}", str(vm_c), "100"])
    assert out.ok, out.stderr
    assert session_volumes(rig, "h2") == []
    assert clone not in rig.volumes()
    assert {source, saved} <= set(rig.volumes())
    # Deleting again (oned retries) succeeds: nothing left to log out or delete.
    out = sim.run_tm("delete", [f"h2:{disk_c}", str(vm_c), "100"])
    assert out.ok, out.stderr
