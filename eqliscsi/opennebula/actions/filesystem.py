"""A formatted datablock built in userspace: MBR + one partition + a filesystem.

The original add-on's mkfs (reference §1.8) logged the front-end in to the new volume,
ran ``parted -s DEV mklabel msdos mkpart primary 0% 100%`` and ``mkfs`` on the first
partition.  The front-end here has no kernel initiator, so the same layout is built in
a sparse temporary file and ``qemu-img convert`` writes it onto the LUN like any image:

* the partition table is a classic MBR written by :func:`mbr` (one primary partition
  from sector 2048, i.e. 1 MiB, as ``parted``'s ``0%`` aligns it; type 0x83 Linux,
  0x82 swap or 0x0c FAT32 LBA), so no ``sfdisk``/``parted`` is needed;
* the filesystem is made by the distribution's own ``mkfs.<fs>`` (or ``mkswap``) in a
  separate sparse file of the partition's size and copied in extent by extent.

Both files are sparse, so a 100 GiB ext4 datablock costs the temporary directory only
the filesystem's metadata.  Nothing from the user reaches an argv except the
filesystem name, which must be one of :data:`FILESYSTEMS`.
"""

from __future__ import annotations

import errno
import os
import shutil
import struct
import subprocess
import uuid
from dataclasses import dataclass

from eqliscsi.opennebula.errors import BadValueError, CopyFailedError

__all__ = ["FILESYSTEMS", "FsKind", "build_formatted_disk", "mbr"]

SECTOR = 512
FIRST_SECTOR = 2048  # 1 MiB: parted's "0%" alignment
_MBR_LIMIT = 2**32 - 1  # sectors an MBR entry can address (2 TiB)
_MKFS_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class FsKind:
    """A filesystem ``mkfs`` can make: its program and the package that ships it."""

    name: str
    argv: tuple[str, ...]  # the program and its options; the file path is appended
    package: str
    partition_type: int


FILESYSTEMS: dict[str, FsKind] = {
    k.name: k
    for k in (
        FsKind("ext2", ("mkfs.ext2", "-q", "-F"), "e2fsprogs", 0x83),
        FsKind("ext3", ("mkfs.ext3", "-q", "-F"), "e2fsprogs", 0x83),
        # lazy init: the LUN of a new volume reads as zeros already, so the inode
        # tables and journal need not be written out in full.
        FsKind(
            "ext4",
            ("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1"),
            "e2fsprogs",
            0x83,
        ),
        FsKind("xfs", ("mkfs.xfs", "-q", "-f"), "xfsprogs", 0x83),
        FsKind("vfat", ("mkfs.vfat",), "dosfstools", 0x0C),
        FsKind("swap", ("mkswap",), "util-linux", 0x82),
    )
}


def fs_kind(name: str) -> FsKind:
    kind = FILESYSTEMS.get(name.strip().lower())
    if kind is None:
        raise BadValueError(
            f"Filesystem {name[:20]!r} is not supported by eqliscsi mkfs; use one of "
            f"{', '.join(FILESYSTEMS)} or none."
        )
    return kind


def mbr(total_sectors: int, partition_type: int, signature: int) -> bytes:
    """A 512-byte MBR with one primary partition from sector 2048 to the end."""
    if total_sectors - FIRST_SECTOR > _MBR_LIMIT:
        raise BadValueError(
            "A datablock with a filesystem can be at most 2 TiB (MBR partition table); "
            "create a larger one without FS and partition it in the VM."
        )
    count = total_sectors - FIRST_SECTOR
    # CHS fields 0xFE 0xFF 0xFF mean "use LBA", which every current reader does.
    entry = struct.pack(
        "<B3sB3sII", 0x00, b"\xfe\xff\xff", partition_type, b"\xfe\xff\xff", FIRST_SECTOR, count
    )
    table = entry + bytes(16 * 3)
    return bytes(440) + struct.pack("<IH", signature, 0) + table + b"\x55\xaa"


def _copy_extents(src_fd: int, dst_fd: int, dst_offset: int, size: int) -> None:
    off = 0
    while off < size:
        try:
            start = os.lseek(src_fd, off, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return
            raise
        stop = min(os.lseek(src_fd, start, os.SEEK_HOLE), size)
        pos = start
        while pos < stop:
            chunk = os.pread(src_fd, min(1 << 20, stop - pos), pos)
            if not chunk:
                return
            os.pwrite(dst_fd, chunk, dst_offset + pos)
            pos += len(chunk)
        off = stop


def build_formatted_disk(directory: str, size_mb: int, fs: str) -> tuple[str, str]:
    """Write ``disk.img`` (``size_mb`` MB, partitioned and formatted) in ``directory``.

    Returns (path, a log line naming the path taken).

    Raises:
        BadValueError: unknown filesystem, too small, or larger than an MBR allows.
        CopyFailedError: the mkfs program is missing or failed.
    """
    kind = fs_kind(fs)
    total = size_mb * 1024 * 1024 // SECTOR
    if total < FIRST_SECTOR + 2048:
        raise BadValueError(
            "A datablock with a filesystem needs at least 2 MB; give a larger SIZE."
        )
    disk = os.path.join(directory, "disk.img")
    part = os.path.join(directory, "part.img")
    part_bytes = (total - FIRST_SECTOR) * SECTOR
    program = shutil.which(kind.argv[0], path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if program is None:
        raise CopyFailedError(
            f"{kind.argv[0]} is not installed on the front-end; install {kind.package}."
        )
    with open(part, "wb") as fh:
        fh.truncate(part_bytes)
    try:
        proc = subprocess.run(
            [program, *kind.argv[1:], part],
            capture_output=True,
            timeout=_MKFS_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise CopyFailedError(
            f"{kind.argv[0]} did not finish within {_MKFS_TIMEOUT:.0f} s; check the "
            "temporary directory's file system."
        ) from None
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        why = lines[-1] if lines else f"exit status {proc.returncode}"
        raise CopyFailedError(f"{kind.argv[0]} failed ({why[:200]}); check the SIZE.")
    signature = uuid.uuid4().int & 0xFFFFFFFF
    fd = os.open(disk, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, total * SECTOR)
        os.pwrite(fd, mbr(total, kind.partition_type, signature), 0)
        pfd = os.open(part, os.O_RDONLY)
        try:
            _copy_extents(pfd, fd, FIRST_SECTOR * SECTOR, part_bytes)
        finally:
            os.close(pfd)
    finally:
        os.close(fd)
    os.unlink(part)
    how = (
        f"userspace format: MBR with one partition type {kind.partition_type:#04x} from "
        f"1 MiB, {kind.argv[0]} in a sparse temporary file, then qemu-img convert"
    )
    return disk, how
