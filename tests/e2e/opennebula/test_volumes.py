"""DS volume actions, run as oned runs them, against a fake group on 127.0.0.1.

The remotes are subprocesses started by rig.oned; they talk SSH to rig.fake_eql's
Group Manager CLI, served from this test's event loop (hence asyncio.to_thread
around the blocking simulator calls).
"""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

from eqliscsi.opennebula.naming import snapshot_name
from rig.oned import PROFILES, DatastoreSpec, ImageSpec, OnedSimulator
from tests.e2e.opennebula.fake_group import DS, Group


def simulator(tmp_path: Path, profile: str, group: Group) -> OnedSimulator:
    return OnedSimulator.create(profile, tmp_path / "sim", conf=group.conf, extra_env=group.env)


@pytest.mark.parametrize("profile", sorted(PROFILES))
async def test_volume_lifecycle(tmp_path: Path, group: Group, profile: str) -> None:
    sim = simulator(tmp_path, profile, group)
    san = group.fake.san

    datablock = ImageSpec(
        id=9, name="Data disk", type=2, persistent=True, size_mb=1024, format="raw"
    )
    made = await asyncio.to_thread(sim.run_ds, "mkfs", sim.ds_document(datablock, DS), 9)
    assert made.ok, made.stderr
    assert made.info == "data-disk.9"
    vol = san.volumes["data-disk.9"]
    assert (vol.size_mb, vol.thin, vol.thin_min_reserve, vol.multihost) == (1024, True, 20, True)
    assert vol.description == "eqliscsi ds=100"
    assert [a.ipaddress for a in vol.access] == ["127.0.0.*"]
    # Notices reach oned as log lines (all versions log stderr lines of a success
    # only from 7.0, but the simulator reports what was written).
    assert any("EQLADM is ignored" in line for line in made.logs)

    copy = ImageSpec(id=10, name="Copy of data", path="data-disk.9", size_mb=2048, cloning_id=9)
    cloned = await asyncio.to_thread(sim.run_ds, "clone", sim.ds_document(copy, DS), 10)
    assert cloned.ok, cloned.stderr
    assert cloned.info == "copy-of-data.10"
    assert san.volumes["copy-of-data.10"].size_mb == 2048  # grown past the source
    assert san.volumes["copy-of-data.10"].description == "eqliscsi ds=100"

    mon = await asyncio.to_thread(sim.run_ds, "monitor", sim.ds_document(None, DS), 100)
    assert mon.ok, mon.stderr
    pool = san.default_pool()
    total, free, used = (int(mon.monitor[k]) for k in ("TOTAL_MB", "FREE_MB", "USED_MB"))
    assert total == pool.capacity_mb
    assert used == total - free
    # The CLI shows two decimals in the largest unit (10.00TB), so the parsed value is
    # exact only to 0.005 of that unit: 5243 MB for a TB-sized pool.
    assert abs(free - san.pool_free_mb("default")) <= 5243

    for image_id, source in ((10, "copy-of-data.10"), (9, "data-disk.9")):
        gone = await asyncio.to_thread(
            sim.run_ds, "rm", sim.ds_document(ImageSpec(id=image_id, source=source), DS), image_id
        )
        assert gone.ok, gone.stderr
        assert source not in san.volumes
    again = await asyncio.to_thread(
        sim.run_ds, "rm", sim.ds_document(ImageSpec(id=9, source="data-disk.9"), DS), 9
    )
    assert again.ok  # oned retries rm: a missing volume is success


@pytest.mark.parametrize("profile", ["4.4", "6.10", "7.0"])
async def test_save_as_needs_no_san(tmp_path: Path, group: Group, profile: str) -> None:
    sim = simulator(tmp_path, profile, group)
    image = ImageSpec(id=12, name="Saved", type=2, fstype="save_as", size_mb=100)
    out = await asyncio.to_thread(sim.run_ds, "mkfs", sim.ds_document(image, DS), 12)
    assert out.ok and out.info == "saved.12"
    assert "saved.12" not in group.fake.san.volumes


@pytest.mark.parametrize("profile", ["5.12", "6.10"])
async def test_mkfs_filesystem_refused_before_creating(
    tmp_path: Path, group: Group, profile: str
) -> None:
    sim = simulator(tmp_path, profile, group)
    image = ImageSpec(id=13, name="fs", type=2, fstype="ext4", fs="ext4", size_mb=100)
    out = await asyncio.to_thread(sim.run_ds, "mkfs", sim.ds_document(image, DS), 13)
    assert not out.ok and out.reason is not None and "without FS" in out.reason
    assert group.fake.san.volumes == {}


async def test_rm_leaves_foreign_volume_alone(tmp_path: Path, group: Group) -> None:
    group.fake.san.create_volume("dba-volume", 100)
    group.fake.commit()
    sim = simulator(tmp_path, "6.10", group)
    out = await asyncio.to_thread(
        sim.run_ds, "rm", sim.ds_document(ImageSpec(id=3, source="dba-volume"), DS), 3
    )
    assert not out.ok and out.returncode == 5
    assert out.reason is not None and "left alone" in out.reason
    assert "Traceback" not in out.stderr
    assert "dba-volume" in group.fake.san.volumes


async def test_wrong_password_is_one_clear_line(tmp_path: Path, group: Group) -> None:
    pw = tmp_path / "wrong"
    pw.write_text("not-the-password")
    conf = group.conf.replace(f"EQL_PASS_FILE={tmp_path / 'password'}", f"EQL_PASS_FILE={pw}")
    sim = OnedSimulator.create("7.0", tmp_path / "sim", conf=conf, extra_env=group.env)
    out = await asyncio.to_thread(sim.run_ds, "monitor", sim.ds_document(None, DS), 100)
    assert not out.ok and out.returncode == 5
    assert out.reason is not None and len(out.reason.splitlines()) == 1
    assert "not-the-password" not in out.stderr
    assert "Traceback" not in out.stderr


async def test_image_template_cannot_redirect_san(tmp_path: Path, group: Group) -> None:
    sim = simulator(tmp_path, "6.6", group)
    image = ImageSpec(
        id=20, name="evil", type=2, size_mb=10, template={"EQL_HOST": "192.0.2.1", "EQL_POOL": "x"}
    )
    out = await asyncio.to_thread(sim.run_ds, "mkfs", sim.ds_document(image, DS), 20)
    assert out.ok, out.stderr
    assert group.fake.san.volumes["evil.20"].pool == "default"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("profile", ["4.4", "6.6", "7.0"])
async def test_cp_failed_copy_leaves_no_volume(
    tmp_path: Path, group: Group, qcow2_image: Path, profile: str
) -> None:
    # Nothing listens on the portal, so qemu-img cannot log in after the volume exists.
    conf = group.conf + f"EQL_PORTAL=127.0.0.1:{_closed_port()}\n"
    sim = OnedSimulator.create(profile, tmp_path / "sim", conf=conf, extra_env=group.env)
    image = ImageSpec(id=5, name="tty", path=str(qcow2_image), size_mb=100)
    out = await asyncio.to_thread(sim.run_ds, "cp", sim.ds_document(image, DS), 5)
    assert not out.ok
    assert out.reason is not None and out.reason.startswith(
        "Writing the image to the volume failed"
    )
    assert "Traceback" not in out.stderr
    assert group.fake.san.volumes == {}  # created, then deleted again
    log = sim.log_file.read_text()
    assert "created volume tty.5 (100 MB)" in log and "deleted volume tty.5 again" in log


async def test_cp_restricted_path_creates_nothing(
    tmp_path: Path, group: Group, qcow2_image: Path
) -> None:
    sim = simulator(tmp_path, "6.10", group)
    ds = DatastoreSpec(template={**DS.template, "RESTRICTED_DIRS": str(qcow2_image.parent)})
    image = ImageSpec(id=6, name="tty", path=str(qcow2_image), size_mb=100)
    out = await asyncio.to_thread(sim.run_ds, "cp", sim.ds_document(image, ds), 6)
    assert not out.ok and out.reason is not None and "SAFE_DIRS" in out.reason
    assert group.fake.san.volumes == {}


@pytest.mark.parametrize("profile", ["5.12", "6.10", "7.0"])
async def test_image_snapshots(tmp_path: Path, group: Group, profile: str) -> None:
    sim = simulator(tmp_path, profile, group)
    san = group.fake.san
    made = await asyncio.to_thread(
        sim.run_ds,
        "mkfs",
        sim.ds_document(ImageSpec(id=9, name="disk", type=2, size_mb=100), DS),
        9,
    )
    assert made.ok, made.stderr
    # Snapshots 0 and 1, named as the TM's snap_create names them.
    for sid in (0, 1):
        snap, _ = san.create_snapshot("disk.9", now=datetime.now(UTC))
        san.rename_snapshot("disk.9", snap.name, snapshot_name("disk.9", sid))
    group.fake.commit()
    listed = ((0, "first", -1, False), (1, "second", 0, True))

    def doc(target: int) -> str:
        return sim.ds_document(
            ImageSpec(id=9, name="disk", source="disk.9", target_snapshot=target, snapshots=listed),
            DS,
        )

    reverted = await asyncio.to_thread(sim.run_ds, "snap_revert", doc(0), 9)
    assert reverted.ok, reverted.stderr
    assert san.volumes["disk.9"].online  # restored offline, then put online again

    deleted = await asyncio.to_thread(sim.run_ds, "snap_delete", doc(1), 9)
    assert deleted.ok, deleted.stderr
    assert [s.name for s in san.volumes["disk.9"].snapshots] == ["disk.9-one-snap0"]
    again = await asyncio.to_thread(sim.run_ds, "snap_delete", doc(1), 9)
    assert again.ok  # already gone is success

    flat = await asyncio.to_thread(sim.run_ds, "snap_flatten", doc(0), 9)
    assert flat.ok, flat.stderr
    assert san.volumes["disk.9"].snapshots == ()


async def test_snapshot_without_target_is_refused(tmp_path: Path, group: Group) -> None:
    sim = simulator(tmp_path, "6.10", group)
    out = await asyncio.to_thread(
        sim.run_ds, "snap_delete", sim.ds_document(ImageSpec(id=9, source="disk.9"), DS), 9
    )
    assert not out.ok and out.reason is not None and "TARGET_SNAPSHOT" in out.reason


async def test_clone_ignores_encrypted_template_password(tmp_path: Path, group: Group) -> None:
    # 6.x/7.x hand clone the DATASTORE_ENCRYPTED_ATTR values still encrypted (§6.1).
    sim = simulator(tmp_path, "7.0", group)
    group.fake.san.create_volume("web.30", 100, description="eqliscsi ds=100")
    group.fake.commit()
    ds = DatastoreSpec(template={**DS.template, "EQL_PASS": "QmFzZTY0Q2lwaGVydGV4dA=="})
    copy = ImageSpec(id=31, name="web copy", path="web.30", size_mb=100, cloning_id=30)
    out = await asyncio.to_thread(sim.run_ds, "clone", sim.ds_document(copy, ds), 31)
    assert out.ok, out.stderr
    assert out.info == "web-copy.31" and "web-copy.31" in group.fake.san.volumes
    assert any("passes it encrypted" in line for line in out.logs)
