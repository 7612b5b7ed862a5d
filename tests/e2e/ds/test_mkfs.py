"""mkfs with a filesystem: MBR + partition + mkfs built in userspace, written over iSCSI.

Judged on the LUN's backing file: the MBR entry (type, start 2048), the partition's
filesystem checked by the distribution's own tools (``e2fsck -n``, ``blkid``), and
an allocation of metadata only.
"""

from __future__ import annotations

import asyncio
import struct
import subprocess
from pathlib import Path

import pytest

from eqliscsi.opennebula.actions.filesystem import FIRST_SECTOR, SECTOR, mbr
from rig.need import need_executable
from rig.oned import ImageSpec, OnedSimulator
from tests.e2e.ds.helpers import DS, DataGroup, MiB, allocated

pytestmark = [pytest.mark.tgt]


def _partition(backing: Path, out: Path) -> tuple[int, int, int]:
    data = backing.read_bytes()
    assert data[510:512] == b"\x55\xaa"
    ptype = data[446 + 4]
    start, count = struct.unpack("<II", data[446 + 8 : 446 + 16])
    with open(out, "wb") as fh:
        fh.write(data[start * SECTOR : (start + count) * SECTOR])
    return ptype, start, count


@pytest.mark.parametrize(
    ("profile", "fs", "ptype"),
    [("4.4", "ext4", 0x83), ("6.10", "ext3", 0x83), ("7.0", "swap", 0x82)],
    ids=str,
)
async def test_mkfs_with_filesystem(
    tmp_path: Path, data_group: DataGroup, profile: str, fs: str, ptype: int
) -> None:
    e2fsck = need_executable("e2fsck", "e2fsprogs")
    blkid = need_executable("blkid", "util-linux")
    sim = OnedSimulator.create(
        profile, tmp_path / "sim", conf=data_group.conf, extra_env=data_group.env
    )
    image = ImageSpec(id=40, name="data", type=2, size_mb=64, fstype=fs, fs=fs)
    out = await asyncio.to_thread(sim.run_ds, "mkfs", sim.ds_document(image, DS), 40)
    assert out.ok, out.stderr
    assert out.info == "data.40"
    assert "userspace format: MBR" in sim.log_file.read_text()
    backing = data_group.backing("data.40")
    assert allocated(backing) <= 8 * MiB  # metadata, not 64 MiB
    part = tmp_path / "part.img"
    got_type, start, count = await asyncio.to_thread(_partition, backing, part)
    assert (got_type, start) == (ptype, FIRST_SECTOR)
    # The partition spans the SIZE oned asked for; the group rounds the LUN up (15 MB).
    assert (start + count) * SECTOR == 64 * MiB
    await asyncio.to_thread(_judge, part, fs, blkid, e2fsck)


def _judge(part: Path, fs: str, blkid: str, e2fsck: str) -> None:
    seen = subprocess.run(
        [blkid, "-p", "-o", "value", "-s", "TYPE", str(part)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert seen.stdout.strip() == fs, seen
    if fs.startswith("ext"):
        fsck = subprocess.run(
            [e2fsck, "-n", "-f", str(part)], capture_output=True, timeout=60, check=False
        )
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_mbr_layout() -> None:
    block = mbr(4096, 0x83, 0x12345678)
    assert len(block) == 512 and block[-2:] == b"\x55\xaa"
    assert block[440:444] == struct.pack("<I", 0x12345678)
    assert block[446 + 4] == 0x83
    assert struct.unpack("<II", block[454:462]) == (2048, 2048)
    assert block[462:510] == bytes(48)  # one entry only
