"""The SAN client's operations, judged on the data plane they leave behind.

One set of test functions, two groups (``data_group`` in conftest.py; only the
fixtures differ): the fake group on tgt on loopback (``backend=tgt``) and the fake
group running inside the kernel guest with LIO (``backend=lio``), each reached from
this host over SSH by ``eqliscsi.san`` and over iSCSI by the native client
(``eqliscsi.iscsi_discovery``) and by libiscsi's ``qemu-io`` for the bytes.

CHAP secrets reach qemu-io through a 0600 secret file, never argv.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from eqliscsi.iscsi_discovery import (
    Auth,
    AuthenticationFailed,
    ChapCredentials,
    TargetNotFound,
    discover,
    probe,
)
from eqliscsi.san import commands as c
from eqliscsi.san.broker_client import run_action
from eqliscsi.san.ops import CliRunner, SanOps, VolumeSpec
from eqliscsi.secret import Secret
from rig.need import need_executable
from tests.integration.san.conftest import DataGroup

pytestmark = [pytest.mark.judge, pytest.mark.timeout(600)]

INITIATOR = "iqn.2026-11.test.eqliscsi:san-dataplane"
DS = 100
MiB = 1024 * 1024
T = TypeVar("T")


def lun_bytes(size_mb: int) -> int:
    # The group rounds a LUN up to its 15 MB allocation unit (docs/fake-eql.md).
    return -(-size_mb // 15) * 15 * MiB


class Chap:
    """A CHAP user for one test: its name, secret and a 0600 file for qemu-io."""

    def __init__(self, tmp_path: Path) -> None:
        self.user = f"dp-{secrets.token_hex(3)}"
        text = secrets.token_hex(8)
        self.secret = Secret(text.encode(), origin="test CHAP secret")
        self.file = tmp_path / "chap-secret"
        self.file.write_text(text)
        self.file.chmod(0o600)

    @property
    def auth(self) -> Auth:
        return Auth(chap=ChapCredentials(self.user, self.secret))

    def rule(self) -> c.AccessRule:
        return c.AccessRule(username=self.user)


async def san(group: DataGroup, body: Callable[[SanOps, CliRunner], Awaitable[T]]) -> T:
    """One SSH session for ``body`` (under TCG each key exchange costs the guest seconds)."""

    async def action(runner: CliRunner) -> T:
        return await body(SanOps(runner, DS), runner)

    return await run_action(group.endpoint, action)


def qemu_io(group: DataGroup, chap: Chap, iqn: str, command: str) -> str:
    """Run one qemu-io command on the volume's LUN through libiscsi (CHAP login)."""
    exe = need_executable("qemu-io", "qemu-utils")
    opts = (
        f"driver=iscsi,transport=tcp,portal={group.portal},target={iqn},lun={group.lun},"
        f"user={chap.user},password-secret=chap0,initiator-name={INITIATOR}"
    )
    done = subprocess.run(
        [exe, "--object", f"secret,id=chap0,file={chap.file}", "--image-opts", opts,
         "-c", command],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"qemu-io {command!r}: {done.stdout} {done.stderr}"
    assert "verification failed" not in done.stdout, done.stdout
    return done.stdout


def verify(group: DataGroup, chap: Chap, iqn: str, pattern: int, offset: int) -> bool:
    """True when 64 KiB at ``offset`` all hold the byte ``pattern``."""
    exe = need_executable("qemu-io", "qemu-utils")
    opts = (
        f"driver=iscsi,transport=tcp,portal={group.portal},target={iqn},lun={group.lun},"
        f"user={chap.user},password-secret=chap0,initiator-name={INITIATOR}"
    )
    done = subprocess.run(
        [exe, "--object", f"secret,id=chap0,file={chap.file}", "--image-opts", opts,
         "-c", f"read -P {pattern:#x} {offset} 64k"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if "verification failed" in done.stdout:
        return False
    assert done.returncode == 0, f"qemu-io read: {done.stdout} {done.stderr}"
    return True


async def listed(group: DataGroup) -> set[str]:
    return {t.name for t in await discover(group.portal, initiator_name=INITIATOR)}


async def witness(ops: SanOps, chap: Chap, name: str) -> str:
    """A second volume that stays while another is deleted: with no target at all,
    tgt closes a discovery session and LIO refuses the connection, so "not listed"
    is judged while the portal still lists something."""
    return (await ops.create_volume(VolumeSpec(name, 15, access=(chap.rule(),)))).iqn


async def delete_and_check_gone(group: DataGroup, name: str, iqn: str, kept: str) -> None:
    async def body(ops: SanOps, _: CliRunner) -> bool:
        return await ops.delete_volume(name)

    assert await san(group, body)
    found = await listed(group)
    assert kept in found
    assert iqn not in found


async def cleanup(group: DataGroup, chap: Chap, *volumes: str) -> None:
    async def body(ops: SanOps, _: CliRunner) -> None:
        for name in volumes:
            await ops.delete_volume(name)
        await ops.delete_chap_user(chap.user)

    await san(group, body)


async def test_chap_volume_is_discovered_and_probed_at_its_size(
    data_group: DataGroup, tmp_path: Path
) -> None:
    chap = Chap(tmp_path)
    name = f"dp-{secrets.token_hex(3)}"

    async def create(ops: SanOps, _: CliRunner) -> tuple[str, int, str]:
        assert await ops.ensure_chap_user(chap.user, chap.secret)
        ref = await ops.create_volume(VolumeSpec(name, 40, access=(chap.rule(),)))
        info = await ops.volume_info(name)
        assert info is not None
        return ref.iqn, info.size_mb, await witness(ops, chap, f"{name}-w")

    iqn, size_mb, kept = await san(data_group, create)
    try:
        assert size_mb == 40
        assert iqn in await listed(data_group)
        result = await probe(data_group.portal, iqn, auth=chap.auth, initiator_name=INITIATOR)
        (lun,) = result.luns
        assert lun.size_bytes == lun_bytes(40)
        wrong = Auth(chap=ChapCredentials(chap.user, Secret(b"not-the-secret-00", origin="t")))
        with pytest.raises(AuthenticationFailed) as info:
            await probe(data_group.portal, iqn, auth=wrong, initiator_name=INITIATOR)
        assert info.value.status == 0x0201
        assert chap.secret.reveal_str() not in str(info.value)
        await delete_and_check_gone(data_group, name, iqn, kept)
    finally:
        await cleanup(data_group, chap, name, f"{name}-w")


async def test_clone_and_snapshot_carry_the_bytes(data_group: DataGroup, tmp_path: Path) -> None:
    """A clone holds what the volume held; a snapshot's clone holds what it held then."""
    chap = Chap(tmp_path)
    name = f"dp-{secrets.token_hex(3)}"
    copy, frozen = f"{name}-c", f"{name}-s"
    rule = chap.rule()

    async def create(ops: SanOps, _: CliRunner) -> str:
        await ops.ensure_chap_user(chap.user, chap.secret)
        return (await ops.create_volume(VolumeSpec(name, 30, access=(rule,)))).iqn

    iqn = await san(data_group, create)
    try:
        # Before the snapshot: 0xa1 at 0 and 0xb2 near the end of the LUN.
        qemu_io(data_group, chap, iqn, "write -P 0xa1 0 64k")
        qemu_io(data_group, chap, iqn, f"write -P 0xb2 {29 * MiB} 64k")

        async def snapshot(ops: SanOps, _: CliRunner) -> str:
            return await ops.snapshot_create(name)

        snap = await san(data_group, snapshot)
        # After it: 0xc3 over the first block.
        qemu_io(data_group, chap, iqn, "write -P 0xc3 0 64k")

        async def clones(ops: SanOps, _: CliRunner) -> tuple[str, str]:
            a = await ops.clone_volume(name, VolumeSpec(copy, 30, access=(rule,)))
            b = await ops.snapshot_clone(name, snap, VolumeSpec(frozen, 30, access=(rule,)))
            return a.iqn, b.iqn

        copy_iqn, frozen_iqn = await san(data_group, clones)
        assert len({iqn, copy_iqn, frozen_iqn}) == 3
        assert {copy_iqn, frozen_iqn} <= await listed(data_group)
        # The clone: today's bytes.  The snapshot's clone: the bytes of then.
        assert verify(data_group, chap, copy_iqn, 0xC3, 0)
        assert verify(data_group, chap, copy_iqn, 0xB2, 29 * MiB)
        assert verify(data_group, chap, frozen_iqn, 0xA1, 0)
        assert not verify(data_group, chap, frozen_iqn, 0xC3, 0)
        assert verify(data_group, chap, frozen_iqn, 0xB2, 29 * MiB)
        # The clones are volumes of their own: writing one leaves the source alone.
        qemu_io(data_group, chap, copy_iqn, "write -P 0xd4 0 64k")
        assert verify(data_group, chap, iqn, 0xC3, 0)
    finally:
        await cleanup(data_group, chap, frozen, copy, name)


async def test_resize_offline_and_delete(data_group: DataGroup, tmp_path: Path) -> None:
    chap = Chap(tmp_path)
    name = f"dp-{secrets.token_hex(3)}"
    before = data_group.lun_files()

    async def create(ops: SanOps, _: CliRunner) -> tuple[str, str]:
        await ops.ensure_chap_user(chap.user, chap.secret)
        ref = await ops.create_volume(VolumeSpec(name, 30, access=(chap.rule(),)))
        return ref.iqn, await witness(ops, chap, f"{name}-w")

    iqn, kept = await san(data_group, create)
    try:
        made = data_group.lun_files() - before
        assert len(made) == 2  # the volume's and the witness's
        qemu_io(data_group, chap, iqn, f"write -P 0x5e {16 * MiB} 64k")

        async def grow(ops: SanOps, _: CliRunner) -> int:
            await ops.resize_volume(name, 60)
            info = await ops.volume_info(name)
            assert info is not None
            return info.size_mb

        assert await san(data_group, grow) == 60
        # The target serves the new size (tgt and LIO read a file's size once: the
        # fake recreates the target) and keeps the bytes.
        result = await probe(data_group.portal, iqn, auth=chap.auth, initiator_name=INITIATOR)
        assert [lun.size_bytes for lun in result.luns] == [lun_bytes(60)]
        assert verify(data_group, chap, iqn, 0x5E, 16 * MiB)

        async def offline(_: SanOps, runner: CliRunner) -> None:
            await runner.run(c.VolumeSetStatus(name, online=False))

        await san(data_group, offline)
        # Offline: no target; SendTargets no longer lists it and a login is refused.
        found = await listed(data_group)
        assert kept in found
        assert iqn not in found
        with pytest.raises(TargetNotFound):
            await probe(data_group.portal, iqn, auth=chap.auth, initiator_name=INITIATOR)
        assert made <= data_group.lun_files()  # offline keeps the bytes

        async def online(_: SanOps, runner: CliRunner) -> None:
            await runner.run(c.VolumeSetStatus(name, online=True))

        await san(data_group, online)
        assert iqn in await listed(data_group)
        assert verify(data_group, chap, iqn, 0x5E, 16 * MiB)
        # Delete: no target, and the backing file is gone (the witness's stays).
        await delete_and_check_gone(data_group, name, iqn, kept)
        assert len(made & data_group.lun_files()) == 1
    finally:
        await cleanup(data_group, chap, name, f"{name}-w")
