"""TM resize and disk snapshots, run as oned runs them, against a fake group.

The VM and datastore come from the simulator's stand-in ``onevm``/``onedatastore``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rig.oned import DatastoreSpec, DiskSpec, ImageSpec, OnedSimulator, VmSpec
from tests.e2e.opennebula.fake_group import DS, Group

DISK0 = "node1:/var/lib/one//datastores/0/42/disk.0"
DISK1 = "node1:/var/lib/one//datastores/0/42/disk.1"
DISK2 = "node1:/var/lib/one//datastores/0/42/disk.2"


async def _setup(tmp_path: Path, group: Group, profile: str) -> OnedSimulator:
    sim = OnedSimulator.create(profile, tmp_path / "sim", conf=group.conf, extra_env=group.env)
    made = await asyncio.to_thread(
        sim.run_ds,
        "mkfs",
        sim.ds_document(ImageSpec(id=9, name="data", type=2, size_mb=100), DS),
        9,
    )
    assert made.ok, made.stderr
    # The non-persistent copy of image 9 for VM 42 disk 1, as TM clone names it.
    group.fake.san.create_volume("data.9-42-1", 100, description="eqliscsi ds=100")
    group.fake.commit()
    sim.register_datastore(DatastoreSpec(template=DS.template))
    sim.register_vm(
        VmSpec(
            id=42,
            disks=(
                DiskSpec(0, image_id=9, source="data.9", persistent=True),
                DiskSpec(1, image_id=9, source="data.9"),
                DiskSpec(2, image_id=3, source="one/one-3", tm_mad="ceph"),
            ),
        )
    )
    return sim


@pytest.mark.parametrize("profile", ["5.12", "6.10", "7.0"])
async def test_resize_and_snapshots(tmp_path: Path, group: Group, profile: str) -> None:
    sim = await _setup(tmp_path, group, profile)
    san = group.fake.san

    grown = await asyncio.to_thread(sim.run_tm, "resize", [DISK0, "2048", "42", "100"])
    assert grown.ok, grown.stderr
    assert san.volumes["data.9"].size_mb == 2048
    copy = await asyncio.to_thread(sim.run_tm, "resize", [DISK1, "512", "42", "100"])
    assert copy.ok, copy.stderr
    assert san.volumes["data.9-42-1"].size_mb == 512  # the VM's own copy, not the image

    made = await asyncio.to_thread(sim.run_tm, "snap_create", [DISK0, "0", "42", "100"])
    assert made.ok, made.stderr
    assert [s.name for s in san.volumes["data.9"].snapshots] == ["data.9-one-snap0"]
    reverted = await asyncio.to_thread(sim.run_tm, "snap_revert", [DISK0, "0", "42", "100"])
    assert reverted.ok, reverted.stderr
    deleted = await asyncio.to_thread(sim.run_tm, "snap_delete", [DISK0, "0", "42", "100"])
    assert deleted.ok, deleted.stderr
    assert san.volumes["data.9"].snapshots == ()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        pytest.param([DISK2, "10", "42", "100"], "belongs to TM ceph", id="other-tm"),
        pytest.param([DISK0, "10", "77", "100"], "onevm show -x 77' failed", id="unknown-vm"),
        pytest.param([DISK0, "10", "42", "101"], "stale", id="wrong-datastore"),
        pytest.param([DISK0, "50", "42", "100"], "shrinking destroys data", id="shrink"),
        pytest.param(
            ["node1:/var/lib/one/datastores/0/42", "10", "42", "100"], "disk path", id="dir"
        ),
    ],
)
async def test_resize_refusals(tmp_path: Path, group: Group, args: list[str], needle: str) -> None:
    sim = await _setup(tmp_path, group, "6.10")
    out = await asyncio.to_thread(sim.run_tm, "resize", args)
    assert not out.ok
    assert out.reason is not None and needle in out.reason, out.reason
    assert "Traceback" not in out.stderr
    assert group.fake.san.volumes["data.9"].size_mb == 100


@pytest.mark.parametrize("profile", ["5.12", "7.0"])
async def test_cpds_saves_disk_and_snapshot(tmp_path: Path, group: Group, profile: str) -> None:
    sim = await _setup(tmp_path, group, profile)
    san = group.fake.san
    now = await asyncio.to_thread(sim.run_tm, "cpds", [DISK0, "saved.12", "-1", "42", "100"])
    assert now.ok, now.stderr
    assert san.volumes["saved.12"].size_mb == 100
    assert san.volumes["saved.12"].description == "eqliscsi ds=100"
    made = await asyncio.to_thread(sim.run_tm, "snap_create", [DISK1, "3", "42", "100"])
    assert made.ok, made.stderr
    snap = await asyncio.to_thread(sim.run_tm, "cpds", [DISK1, "saved.13", "3", "42", "100"])
    assert snap.ok, snap.stderr
    assert "saved.13" in san.volumes
    assert san.volumes["saved.13"].description == "eqliscsi ds=100"


async def test_cpds_44_argv(tmp_path: Path, group: Group) -> None:
    sim = await _setup(tmp_path, group, "4.4")
    out = await asyncio.to_thread(sim.run_tm, "cpds", [DISK0, "saved.14", "42", "100"])
    assert out.ok, out.stderr
    assert "saved.14" in group.fake.san.volumes


async def test_cpds_refuses_bad_source(tmp_path: Path, group: Group) -> None:
    sim = await _setup(tmp_path, group, "6.10")
    out = await asyncio.to_thread(sim.run_tm, "cpds", [DISK0, "bad_name", "-1", "42", "100"])
    assert not out.ok and out.reason is not None and "volume name" in out.reason
