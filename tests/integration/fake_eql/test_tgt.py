"""The fake group's data plane on real tgt, judged by libiscsi and qemu-img.

The fake runs as ``python -m rig.fake_eql --iscsi-portal …``: a group tgtd on that
portal redirects every login to a member tgtd, as a real group does.  CHAP secrets
reach the judges through libiscsi's environment variables or a qemu secret file,
never argv.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from rig.need import need_executable
from rig.targets.tgt import free_port
from tests.integration.fake_eql.conftest import (
    FakeProcess,
    cinder_command,
    paramiko_client,
    start_fake,
    stop_fake,
)

pytestmark = [pytest.mark.tgt, pytest.mark.judge]

INITIATOR = "iqn.2020-01.test.fake-eql:judge"
CHAP_USER = "judge"
CHAP_SECRET = "judge-chap-secret-1"
ACCESS = f"initiator {INITIATOR} authmethod chap username {CHAP_USER}"
MiB = 1024 * 1024


@pytest.fixture
def group(tmp_path: Path, password_file: Path) -> Iterator[tuple[FakeProcess, str]]:
    need_executable("tgtd", "tgt")
    need_executable("tgtadm", "tgt")
    portal = f"127.0.0.1:{free_port()}"
    fake = start_fake(tmp_path / "state", password_file, iscsi_portal=portal)
    try:
        yield fake, portal
    finally:
        stop_fake(fake)


def _env(secret: str = CHAP_SECRET) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LIBISCSI_CHAP_USERNAME": CHAP_USER,
        "LIBISCSI_CHAP_PASSWORD": secret,
    }


def _capacity(portal: str, iqn: str, secret: str = CHAP_SECRET) -> subprocess.CompletedProcess[str]:
    exe = need_executable("iscsi-readcapacity16", "libiscsi-bin")
    return subprocess.run(
        [exe, "-i", INITIATOR, "-s", f"iscsi://{portal}/{iqn}/1"],
        capture_output=True, text=True, timeout=60, env=_env(secret), check=False,
    )  # fmt: skip


def _listed(portal: str) -> str:
    exe = need_executable("iscsi-ls", "libiscsi-bin")
    done = subprocess.run(
        [exe, "-i", INITIATOR, f"iscsi://{portal}"],
        capture_output=True, text=True, timeout=60, env=_env(), check=True,
    )  # fmt: skip
    return done.stdout


def _inquiry(portal: str, iqn: str) -> str:
    exe = need_executable("iscsi-inq", "libiscsi-bin")
    done = subprocess.run(
        [exe, "-i", INITIATOR, f"iscsi://{portal}/{iqn}/1"],
        capture_output=True, text=True, timeout=60, env=_env(), check=True,
    )  # fmt: skip
    return done.stdout


def _qemu_opts(portal: str, iqn: str) -> str:
    return (
        f"driver=iscsi,transport=tcp,portal={portal},target={iqn},lun=1,"
        f"user={CHAP_USER},password-secret=sec0,initiator-name={INITIATOR}"
    )


def _qemu_img(secret_file: Path, *args: str) -> None:
    exe = need_executable("qemu-img", "qemu-utils")
    subprocess.run(
        [exe, *args[:1], "--object", f"secret,id=sec0,file={secret_file}", *args[1:]],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip


def _iqn(lines: list[str]) -> str:
    line = next(x for x in lines if x.startswith("iSCSI target name is "))
    return line.removeprefix("iSCSI target name is ").removesuffix(".")


def test_volume_lifecycle_on_tgt(group: tuple[FakeProcess, str], tmp_path: Path) -> None:
    fake, portal = group
    client = paramiko_client(fake)
    try:
        _lifecycle(client, fake, portal, tmp_path)
    finally:
        client.close()


def _lifecycle(client: paramiko.SSHClient, fake: FakeProcess, portal: str, tmp: Path) -> None:
    def run(line: str) -> list[str]:
        return cinder_command(client, line)[1:-1]

    for line in ("paging", "confirmation", "events", "formatoutput"):
        run(f"cli-settings {line} off")
    assert run(f"chapuser create {CHAP_USER} password {CHAP_SECRET}") == []
    iqn = _iqn(run("volume create src 30"))
    # no access record yet: tgt admits no one
    assert _capacity(portal, iqn).returncode != 0
    run(f"volume select src access create {ACCESS}")

    # served with the 15 MB-rounded size, through the group portal's redirect
    done = _capacity(portal, iqn)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == 30 * MiB
    assert iqn in _listed(portal)
    # a disk LU that answers INQUIRY as a PS Series volume does (multipath matches on it)
    inq = _inquiry(portal, iqn).splitlines()
    assert "Peripheral Device Type:DIRECT_ACCESS" in inq
    assert [x.rstrip() for x in inq if x.startswith(("Vendor:", "Product:"))] == [
        "Vendor:EQLOGIC",
        "Product:100E-00",
    ]
    wrong = _capacity(portal, iqn, secret="not-the-secret-1")
    assert wrong.returncode != 0 and "Authentication failure" in wrong.stderr

    # write a pattern through iSCSI, clone, read the clone back through iSCSI
    secret_file = tmp / "chap-secret"
    secret_file.write_text(CHAP_SECRET)
    secret_file.chmod(0o600)
    pattern = tmp / "pattern.raw"
    with open(pattern, "wb") as f:
        f.truncate(30 * MiB)
        for off in (0, 7 * MiB + 512, 29 * MiB):
            f.seek(off)
            f.write(os.urandom(64 * 1024))
    _qemu_img(secret_file, "convert", "-n", "-f", "raw", str(pattern),
              "--target-image-opts", _qemu_opts(portal, iqn))  # fmt: skip
    clone_iqn = _iqn(run("volume select src clone copy"))
    assert clone_iqn != iqn
    run(f"volume select copy access create {ACCESS}")
    out = tmp / "copy.raw"
    _qemu_img(secret_file, "convert", "--image-opts", _qemu_opts(portal, clone_iqn),
              "-O", "raw", str(out))  # fmt: skip
    assert out.read_bytes() == pattern.read_bytes()

    # a snapshot is a target of its own once online (access records apply-to both)
    snap = run("volume select src snapshot create-now")[1].removeprefix("Snapshot name is ")
    snap_show = run(f"volume select src snapshot select {snap} show")
    snap_iqn = next(x for x in snap_show if x.startswith("iSCSI Name: ")).split(": ", 1)[1]
    assert snap_iqn not in _listed(portal)  # snapshots start offline
    run(f"volume select src snapshot select {snap} online")
    assert int(_capacity(portal, snap_iqn).stdout) == 30 * MiB

    # grow: the target comes back with the new size
    run("volume select src size 45 no-snap")
    assert int(_capacity(portal, iqn).stdout) == 45 * MiB

    # offline: the target is gone from discovery and refuses logins
    run("volume select src offline")
    assert iqn not in _listed(portal)
    assert _capacity(portal, iqn).returncode != 0

    # delete: the backing file is gone too
    uid = json.loads((fake.state / "san.json").read_text())["volumes"][0]["uid"]
    lun = fake.state / "luns" / f"{uid}.img"
    assert lun.exists()
    assert run("volume delete src") == ["Volume deletion succeeded."]
    assert not lun.exists()
    assert clone_iqn in _listed(portal)


def test_restart_serves_the_same_volumes(tmp_path: Path, password_file: Path) -> None:
    need_executable("tgtd", "tgt")
    portal = f"127.0.0.1:{free_port()}"
    state = tmp_path / "state"
    fake = start_fake(state, password_file, iscsi_portal=portal)
    try:
        client = paramiko_client(fake)

        def run(line: str) -> list[str]:
            return cinder_command(client, line)[1:-1]

        run("cli-settings paging off")
        run(f"chapuser create {CHAP_USER} password {CHAP_SECRET}")
        iqn = _iqn(run("volume create keep 15"))
        run(f"volume select keep access create {ACCESS}")
        client.close()
        uid = json.loads((state / "san.json").read_text())["volumes"][0]["uid"]
        with open(state / "luns" / f"{uid}.img", "r+b") as f:
            f.write(b"still here")
    finally:
        stop_fake(fake)
    fake = start_fake(state, password_file, iscsi_portal=portal)
    try:
        done = _capacity(portal, iqn)
        assert done.returncode == 0, done.stderr
        assert int(done.stdout) == 15 * MiB
        assert (state / "luns" / f"{uid}.img").read_bytes()[:10] == b"still here"
    finally:
        stop_fake(fake)
