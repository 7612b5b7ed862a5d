"""cp's sources and failures: http on 127.0.0.1, checksums, compression, rate limit.

Every failure case also asserts that no volume is left on the group: the source is
fetched and checked before the volume exists, and anything after that deletes it.
"""

from __future__ import annotations

import asyncio
import bz2
import gzip
import hashlib
import http.server
import lzma
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from eqliscsi.iscsi_discovery import login
from rig.fake_eql.faults import Faults
from rig.fake_eql.model import Pool
from rig.oned import ImageSpec, OnedSimulator
from tests.e2e.ds.helpers import DS, DataGroup, MiB, SecretWatch, allocated, compare, make_qcow2

pytestmark = [pytest.mark.tgt]


@dataclass
class Web:
    root: Path
    base: str


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Web(root, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _raw_image(path: Path) -> Path:
    """8 MiB raw: three data islands, the rest zeros."""
    with open(path, "wb") as fh:
        fh.truncate(8 * MiB)
        for byte, off in ((0x11, 0), (0x22, 3 * MiB), (0x33, 8 * MiB - 4096)):
            fh.seek(off)
            fh.write(bytes([byte]) * 4096)
    return path


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
}


def simulator(tmp_path: Path, group: DataGroup, profile: str = "6.10") -> OnedSimulator:
    return OnedSimulator.create(profile, tmp_path / "sim", conf=group.conf, extra_env=group.env)


@pytest.mark.parametrize(
    ("kind", "profile"), [("gzip", "4.4"), ("bzip2", "6.6"), ("xz", "7.0")], ids=str
)
async def test_compressed_local_image_is_decompressed(
    tmp_path: Path, data_group: DataGroup, kind: str, profile: str
) -> None:
    raw = _raw_image(tmp_path / "disk.raw")
    packed = tmp_path / f"disk.raw.{kind}"
    packed.write_bytes(COMPRESSORS[kind](raw.read_bytes()))
    sim = simulator(tmp_path, data_group, profile)
    out = await asyncio.to_thread(
        sim.run_ds, "cp", sim.ds_document(ImageSpec(id=3, name="packed", path=str(packed)), DS), 3
    )
    assert out.ok, out.stderr
    assert f"is {kind}-compressed" in sim.log_file.read_text()
    backing = data_group.backing("packed.3")
    judged = compare("raw", raw, backing)
    assert judged.returncode == 0, judged.stdout + judged.stderr
    assert allocated(backing) <= MiB  # 12 KiB of data, holes kept through the temp file


async def test_http_qcow2_with_checksums_and_rate_limit(
    tmp_path: Path, data_group: DataGroup, web: Web, secret_watch: SecretWatch
) -> None:
    src = make_qcow2(web.root / "disk.qcow2")
    data = src.read_bytes()
    rate = 256 * 1024
    template = {
        "MD5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
        "SHA1": hashlib.sha1(data, usedforsecurity=False).hexdigest().upper(),
        "LIMIT_TRANSFER_BW": "256K",
    }
    sim = simulator(tmp_path, data_group, "6.6-stdin")
    image = ImageSpec(id=4, name="web", path=f"{web.base}/disk.qcow2", template=template)
    started = time.monotonic()
    out = await asyncio.to_thread(sim.run_ds, "cp", sim.ds_document(image, DS), 4)
    took = time.monotonic() - started
    assert out.ok, out.stderr
    # The rate limit bounds the download from below: len/rate minus the first block.
    assert took >= (len(data) - MiB) / rate, (took, len(data))
    judged = compare("qcow2", src, data_group.backing("web.4"))
    assert judged.returncode == 0, judged.stdout + judged.stderr
    assert secret_watch.hits == []


async def test_no_decompress_copies_the_archive_bytes(
    tmp_path: Path, data_group: DataGroup, web: Web
) -> None:
    raw = _raw_image(tmp_path / "disk.raw")
    packed = web.root / "disk.raw.gz"
    packed.write_bytes(gzip.compress(raw.read_bytes()))
    sim = simulator(tmp_path, data_group, "7.0")
    image = ImageSpec(
        id=8, name="asis", path=f"{web.base}/disk.raw.gz", template={"NO_DECOMPRESS": "YES"}
    )
    out = await asyncio.to_thread(sim.run_ds, "cp", sim.ds_document(image, DS), 8)
    assert out.ok, out.stderr
    judged = compare("raw", packed, data_group.backing("asis.8"))
    assert judged.returncode == 0, judged.stdout + judged.stderr


@dataclass(frozen=True)
class Failing:
    setup: Callable[[Path, Web, DataGroup], ImageSpec]
    reason: str


def _bad_md5(tmp: Path, web: Web, group: DataGroup) -> ImageSpec:
    src = make_qcow2(tmp / "a.qcow2")
    return ImageSpec(id=20, name="a", path=str(src), template={"MD5": "0" * 32})


def _bad_sha1_http(tmp: Path, web: Web, group: DataGroup) -> ImageSpec:
    make_qcow2(web.root / "b.qcow2")
    return ImageSpec(id=20, name="b", path=f"{web.base}/b.qcow2", template={"SHA1": "f" * 40})


def _not_a_checksum(tmp: Path, web: Web, group: DataGroup) -> ImageSpec:
    src = make_qcow2(tmp / "a.qcow2")
    return ImageSpec(id=20, name="a", path=str(src), template={"MD5": "$(reboot)"})


def _http_404(tmp: Path, web: Web, group: DataGroup) -> ImageSpec:
    return ImageSpec(id=20, name="gone", path=f"{web.base}/missing.qcow2")


def _truncated_qcow2(tmp: Path, web: Web, group: DataGroup) -> ImageSpec:
    src = make_qcow2(tmp / "t.qcow2")
    bad = tmp / "bad.qcow2"
    bad.write_bytes(src.read_bytes()[:50])  # qcow2 magic, header cut short
    return ImageSpec(id=20, name="bad", path=str(bad))


def _truncated_gzip(tmp: Path, web: Web, group: DataGroup) -> ImageSpec:
    raw = _raw_image(tmp / "r.raw")
    bad = tmp / "r.raw.gz"
    bad.write_bytes(gzip.compress(raw.read_bytes())[:-20])
    return ImageSpec(id=20, name="bad", path=str(bad))


def _backing_file(tmp: Path, web: Web, group: DataGroup) -> ImageSpec:
    base = make_qcow2(tmp / "base.qcow2")
    top = tmp / "top.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(top)],
        check=True,
        timeout=60,
    )
    return ImageSpec(id=20, name="top", path=str(top))


def _too_big_for_pool(tmp: Path, web: Web, group: DataGroup) -> ImageSpec:
    group.fake.san.pools["default"] = Pool("default", 10, default=True)
    group.fake.commit(force=True)
    return ImageSpec(id=20, name="big", path=str(make_qcow2(tmp / "big.qcow2")))


def _san_error_midway(tmp: Path, web: Web, group: DataGroup) -> ImageSpec:
    # The volume exists when the access record fails: ops deletes it again.
    group.fake.set_faults(Faults(error_at="volume select access create"))
    return ImageSpec(id=20, name="mid", path=str(make_qcow2(tmp / "mid.qcow2")))


def _san_drop_midway(tmp: Path, web: Web, group: DataGroup) -> ImageSpec:
    group.fake.set_faults(Faults(drop_at="volume select multihost-access"))
    return ImageSpec(id=20, name="mid", path=str(make_qcow2(tmp / "mid.qcow2")))


FAILING = {
    "md5-mismatch": Failing(_bad_md5, "MD5 checksum"),
    "sha1-mismatch-http": Failing(_bad_sha1_http, "SHA1 checksum"),
    "md5-not-hex": Failing(_not_a_checksum, "hexadecimal"),
    "http-404": Failing(_http_404, "HTTP 404"),
    "truncated-qcow2": Failing(_truncated_qcow2, "Cannot determine size"),
    "truncated-gzip": Failing(_truncated_gzip, "truncated gzip"),
    "backing-file": Failing(_backing_file, "backing file"),
    "too-big-for-pool": Failing(_too_big_for_pool, "Not enough free space"),
    "san-error-midway": Failing(_san_error_midway, "Injected failure"),
    "san-drop-midway": Failing(_san_drop_midway, "broke during"),
}


@pytest.mark.parametrize("case", FAILING.values(), ids=FAILING.keys())
async def test_failure_leaves_no_volume(
    tmp_path: Path, data_group: DataGroup, web: Web, case: Failing
) -> None:
    image = await asyncio.to_thread(case.setup, tmp_path, web, data_group)
    sim = simulator(tmp_path, data_group)
    out = await asyncio.to_thread(sim.run_ds, "cp", sim.ds_document(image, DS), image.id)
    assert not out.ok
    assert out.reason is not None and case.reason in out.reason, out.stderr
    assert len(out.reason.strip().splitlines()) == 1, out.reason
    assert "Traceback" not in out.stderr
    data_group.fake.set_faults(Faults())
    assert data_group.fake.san.volumes == {}
    assert not any((data_group.plane.lun_path("x").parent).glob("*.img"))


async def test_rm_refuses_volume_in_use(tmp_path: Path, data_group: DataGroup) -> None:
    sim = simulator(tmp_path, data_group)
    src = make_qcow2(tmp_path / "busy.qcow2")
    made = await asyncio.to_thread(
        sim.run_ds, "cp", sim.ds_document(ImageSpec(id=30, name="busy", path=str(src)), DS), 30
    )
    assert made.ok, made.stderr
    vol = data_group.fake.san.volumes["busy.30"]
    portal = data_group.conf.split("EQL_PORTAL=")[1].split("\n")[0]
    doc = sim.ds_document(ImageSpec(id=30, source="busy.30"), DS)
    async with login(portal, vol.iqn):
        out = await asyncio.to_thread(sim.run_ds, "rm", doc, 30)
    assert not out.ok and out.reason is not None
    assert "iSCSI connection" in out.reason and "detach it" in out.reason
    assert "busy.30" in data_group.fake.san.volumes
    again = await asyncio.to_thread(sim.run_ds, "rm", doc, 30)
    assert again.ok, again.stderr
    assert "busy.30" not in data_group.fake.san.volumes
