"""Shared pieces of the DS e2e tests: the data-plane group handle, images, argv watch."""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from rig.fake_eql.dataplane import DataPlane
from rig.fake_eql.server import FakeEql
from rig.oned import DatastoreSpec

DS = DatastoreSpec(template={"DS_MAD": "eqliscsi", "TM_MAD": "eqliscsi", "EQL_POOL": "default"})
MiB = 1024 * 1024


@dataclass
class DataGroup:
    fake: FakeEql
    conf: str
    env: dict[str, str]
    plane: DataPlane

    def backing(self, volume: str) -> Path:
        return self.plane.lun_path(self.fake.san.volumes[volume].uid)


# (pattern byte, offset MiB, length KiB): data islands with holes between them.
PATTERN = ((0xAB, 0, 64), (0x5A, 3, 1024), (0xFF, 15, 64))


def make_qcow2(
    path: Path, size: str = "16M", pattern: tuple[tuple[int, int, int], ...] = PATTERN
) -> Path:
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True, timeout=60
    )
    for byte, off_mib, kib in pattern:
        subprocess.run(
            ["qemu-io", "-f", "qcow2", "-c", f"write -P {byte:#x} {off_mib}M {kib}k", str(path)],
            check=True,
            capture_output=True,
            timeout=60,
        )
    return path


def compare(fmt: str, image: Path, raw: Path) -> subprocess.CompletedProcess[bytes]:
    """qemu-img compare in default (non-strict) mode: the raw tail past the image is zero."""
    return subprocess.run(
        ["qemu-img", "compare", "-f", fmt, "-F", "raw", str(image), str(raw)],
        capture_output=True,
        timeout=120,
        check=False,
    )


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


@dataclass
class SecretWatch:
    """Reads /proc/*/cmdline every 5 ms in a thread; records any argv with a secret."""

    secrets: list[bytes]
    hits: list[bytes] = field(default_factory=list)
    # The fake *array's* own target configuration: tgt takes a CHAP account only as
    # `tgtadm --password`, so the rig's tgtadm calls carry the secret that a real
    # group keeps inside the array.  They are the SAN side, not the driver's.
    array_side: tuple[bytes, ...] = (b"tgtadm",)
    array_side_hits: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="secret-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.005):
            self.samples += 1
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit() or int(entry.name) == me:
                    continue
                try:
                    with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                        argv = fh.read()
                except OSError:
                    continue
                if any(s in argv for s in self.secrets):
                    if argv.split(b"\0", 1)[0].rsplit(b"/", 1)[-1] in self.array_side:
                        self.array_side_hits += 1
                    else:
                        self.hits.append(argv)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
