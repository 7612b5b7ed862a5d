"""Host2 loses power during a live migration; failmigrate cleans up on it (issue 6).

The VM's non-persistent disk runs on host1 (clone, a marker written through host1's
block device); premigrate logs in on host2; then, with the memory copy under way,
host2's container is killed (every process gets SIGKILL: a power cut, nothing shuts
down).  The migration has failed.  oned's failmigrate while host2 is still down fails
with one sentence and touches nothing on host1; once host2 is back (same disk: its
node database still names the volume, its kernel session is gone) failmigrate runs
again and leaves host2 with no session, no node record, no device link and no loop
device for the volume, while host1 keeps its session, its link and its bytes, and the
group has exactly the volumes it had.  The judges are host2's and host1's own
``iscsiadm``, node database, ``readlink``/``test`` and ``dd``, and the group's saved
model.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from typing import Any

import pytest

from rig.docker.engine import Engine
from rig.docker.images import RigImages
from rig.docker.lifecycle import DockerLifecycle
from rig.docker.topology import DEFAULT_NODES, Topology
from rig.lifecycle import Frontend, link_target, read_block, session_volumes, write_marker
from rig.need import need_executable
from rig.oned import DiskSpec, VmSpec
from tests.e2e.conftest import TIMINGS
from tests.e2e.tm.helpers import SYS, make_image

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(600)]

PROFILE = "7.0"
IMAGE_ID, VM_ID = 70, 700


def standin_sessions(rig: DockerLifecycle, host: str) -> list[dict[str, Any]]:
    """The iscsiadm stand-in's own session records on ``host`` (loop device, qsd pid)."""
    r = rig.run(host, "cat /run/eqliscsi-standin/sessions/*.json 2>/dev/null; true")
    assert r.returncode == 0, r.stderr
    decoder = json.JSONDecoder()
    text, records = r.stdout.decode().strip(), []
    while text:
        record, end = decoder.raw_decode(text)
        records.append(record)
        text = text[end:].strip()
    return records


def node_records(rig: DockerLifecycle, host: str, iqn: str) -> list[str]:
    """open-iscsi node records for ``iqn`` in ``host``'s node database."""
    r = rig.run(host, f"find /etc/iscsi/nodes/{shlex.quote(iqn)} -type f 2>/dev/null; true")
    return r.stdout.decode().split()


def test_host2_power_loss_mid_migration_then_failmigrate_cleans_host2(
    docker_lifecycle: DockerLifecycle, topology: Topology
) -> None:
    rig = docker_lifecycle
    sim = rig.simulator(PROFILE, name="host-down")
    source = make_image(sim, IMAGE_ID)
    vm = VmSpec(VM_ID, disks=[DiskSpec(0, IMAGE_ID, source, size_mb=32)])
    rig.put_vm(sim, vm)
    disk, vm_dir = f"{SYS}/{VM_ID}/disk.0", f"{SYS}/{VM_ID}"
    try:
        _power_loss_story(rig, topology, sim, vm, source)
    finally:
        # Pass or fail, leave what later tests expect: host2 up, no session to this
        # VM's clone on either host, the clone gone (both actions are idempotent).
        host2 = topology["host2"].container
        host2.reload()
        if host2.status != "running":
            topology.boot("host2")
        sim.run_migrate("failmigrate", src="h1", dst="h2", vm_dir=vm_dir, vm=vm)
        sim.run_tm("delete", [f"h1:{disk}", str(VM_ID), "100"])
        rig.run("h2", f"rm -rf {shlex.quote(vm_dir)}")


def _power_loss_story(
    rig: DockerLifecycle, topology: Topology, sim: Frontend, vm: VmSpec, source: str
) -> None:
    disk, vm_dir = f"{SYS}/{VM_ID}/disk.0", f"{SYS}/{VM_ID}"
    clone = f"{source}-{VM_ID}-0"

    out = sim.run_tm("clone", [f"fe:{source}", f"h1:{disk}", str(VM_ID), "0"])
    assert out.ok, out.stderr
    marker = write_marker(rig, "h1", disk)
    iqn = rig.volumes()[clone]["iqn"]
    before = set(rig.volumes())

    out = sim.run_migrate("premigrate", src="h1", dst="h2", vm_dir=vm_dir, vm=vm)
    assert out.ok, out.stderr
    assert session_volumes(rig, "h2") == [clone]
    assert read_block(rig, "h2", f"/dev/iscsi/{clone}")[: len(marker)] == marker
    loops = [s["loop"] for s in standin_sessions(rig, "h2")]
    assert len(loops) == 1, loops
    assert node_records(rig, "h2", iqn)

    # The memory copy is under way when host2 loses power.
    topology.kill("host2")
    try:
        began = time.monotonic()
        out = sim.run_migrate("failmigrate", src="h1", dst="h2", vm_dir=vm_dir, vm=vm)
        down_seconds = time.monotonic() - began
        # Unreachable: one sentence that names the host, nothing done anywhere.
        assert not out.ok
        assert out.reason is not None and "h2" in out.reason, out.stderr
        assert session_volumes(rig, "h1") == [clone]
        assert set(rig.volumes()) == before
    finally:
        boot_seconds = topology.boot("host2")
    TIMINGS.append(
        f"host2 power loss: failmigrate while down answered in {down_seconds:.1f} s; "
        f"host2 booted to ready in {boot_seconds:.1f} s"
    )

    # Back up: no kernel session any more, but its disk still has the node record
    # premigrate made, the leak failmigrate exists to undo.
    assert session_volumes(rig, "h2") == []
    assert node_records(rig, "h2", iqn)

    out = sim.run_migrate("failmigrate", src="h1", dst="h2", vm_dir=vm_dir, vm=vm)
    assert out.ok, out.stderr

    # host2: nothing left of the volume.
    assert session_volumes(rig, "h2") == []
    assert node_records(rig, "h2", iqn) == []
    assert rig.run("h2", f"test -e /dev/iscsi/{clone} || test -L /dev/iscsi/{clone}").returncode
    # disk.0 in host2's VM directory is what premigrate made there (this rig's hosts
    # do not share the system datastore); failmigrate leaves links alone because on a
    # shared datastore the same link is the source's, and the directory is the system
    # TM's to remove.  Whatever it names, no device stands behind it any more.
    assert link_target(rig, "h2", disk) in ("", f"/dev/iscsi/{clone}")
    assert rig.run("h2", f"test -e {shlex.quote(disk)}").returncode != 0
    r = rig.run("h2", f"rm -rf {shlex.quote(vm_dir)}")  # the system TM's cleanup
    assert r.returncode == 0, r.stderr
    assert standin_sessions(rig, "h2") == []
    # The loop device the dead login held is free again (a reboot's kernel forgets it):
    # losetup answers 1 for a device with nothing attached.  On a busy machine another
    # rig may have taken the freed device already; then it names that rig's file, never
    # host2's session file nor "/" (a file whose FUSE mount died with host2).
    for loop in loops:
        r = rig.run("h2", f"losetup --noheadings --output BACK-FILE {shlex.quote(loop)}")
        back = r.stdout.decode().strip()
        assert r.returncode == 1 or (
            back != "/" and not back.startswith("/run/eqliscsi-standin/")
        ), (r.returncode, back)

    # host1: the VM's disk untouched: session, link and bytes.
    assert session_volumes(rig, "h1") == [clone]
    assert link_target(rig, "h1", disk) == f"/dev/iscsi/{clone}"
    assert read_block(rig, "h1", disk)[: len(marker)] == marker
    # The group: no volume made or lost by the failed migration.
    assert set(rig.volumes()) == before

    # The VM ends on host1 as usual; its clone goes, the image stays.
    out = sim.run_tm("delete", [f"h1:{disk}", str(VM_ID), "100"])
    assert out.ok, out.stderr
    assert session_volumes(rig, "h1") == []
    assert clone not in rig.volumes()
    assert source in rig.volumes()


# A stand-in session as the iscsiadm stand-in records it, over a plain file: the loop
# device is real (the Docker host's), the "daemon" is a sleep.
_FAKE_SESSION = r"""
set -eu
state=/run/eqliscsi-standin
mkdir -p "$state/sessions" "$state/session1"
truncate -s 1M "$state/session1/lun"
loop=$(losetup --find --show "$state/session1/lun")
sleep 600 </dev/null >/dev/null 2>&1 &
fields='"sid": 1, "iqn": "iqn.x", "address": "192.0.2.1", "port": 3260, "tpgt": 1'
fields="$fields"', "iface": "default", "qsd_pid": %d, "mountpoint": "%s", "loop": "%s"'
printf "{$fields, \"link\": null}" "$!" "$state/session1/lun" "$loop" > "$state/sessions/1.json"
echo "$loop"
"""


def test_teardown_detaches_the_loop_devices_of_live_sessions(
    docker_engine: Engine, rig_images: RigImages
) -> None:
    """Loop devices are the Docker host's: removing a host container with a session
    must not leave its loop device attached on this machine."""
    losetup = need_executable("losetup", "util-linux")
    host1 = next(spec for spec in DEFAULT_NODES if spec.name == "host1")
    with Topology(docker_engine.client(), rig_images, nodes=(host1,)) as topo:
        status, out = topo["host1"].exec(["sh", "-c", _FAKE_SESSION])
        assert status == 0, out
        loop = out.split()[-1]
        assert loop.startswith("/dev/loop"), out
        bound = subprocess.run([losetup, loop], capture_output=True, text=True, check=False)
        assert bound.returncode == 0 and "session1/lun" in bound.stdout, bound
    # losetup answers 1 for a device with nothing attached (or, on a busy machine, names
    # another rig's file if one took the freed device at once).
    after = subprocess.run(
        [losetup, "--noheadings", "--output", "BACK-FILE", loop],
        capture_output=True,
        text=True,
        check=False,
    )
    back = after.stdout.strip()
    assert after.returncode == 1 or (back != "/" and "eqliscsi-standin" not in back), after
