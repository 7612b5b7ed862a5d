"""The fake EqualLogic group with the LIO data plane, inside the kernel guest.

``python -m rig.fake_eql --target-backend lio`` runs in the guest (the project tree
is shared read-only over 9p) and configures LIO in-process through
:class:`rig.targets.lio_local.LocalLioBackend`.  From the host, over QEMU's
127.0.0.1 forwards only: the driver's SAN client (``eqliscsi.san.ops``, real SSH via
asyncssh) creates a volume with a CHAP access record, and the native iSCSI client
discovers and probes the LIO target that the fake made of it.
"""

from __future__ import annotations

import secrets

import pytest

from eqliscsi.iscsi_discovery import (
    Auth,
    AuthenticationFailed,
    ChapCredentials,
    discover,
    login,
    probe,
)
from eqliscsi.opennebula import iscsiadm as ia
from eqliscsi.san.broker_client import run_action
from eqliscsi.san.commands import AccessRule
from eqliscsi.san.ops import SanOps, VolumeSpec
from eqliscsi.secret import Secret
from rig.guest.fake_group import InGuestGroup
from rig.guest.vm import GuestVM
from rig.targets.base import ChapAccount
from tests.integration.guest.conftest import GUEST_INITIATOR, HOST_INITIATOR
from tests.integration.guest.test_driver_iscsiadm import GuestHost, install_remotes
from tests.integration.guest.test_lio_libiscsi import libiscsi

pytestmark = [pytest.mark.guest, pytest.mark.lio, pytest.mark.timeout(900)]

CONFIGFS_ISCSI = "/sys/kernel/config/target/iscsi"


@pytest.fixture
def eql(guest_eql: InGuestGroup) -> InGuestGroup:
    """The session's in-guest group (rig/guest/fake_group.py), shared with the SAN
    data-plane suite (tests/integration/san/test_dataplane.py)."""
    return guest_eql


def lun_bytes(size_mb: int) -> int:
    return -(-size_mb // 15) * 15 * 1024 * 1024


def lio_targets(vm: GuestVM) -> list[str]:
    return vm.ssh(["ls", CONFIGFS_ISCSI]).stdout.split()


async def create_chap_volume(eql: InGuestGroup, user: str, secret: Secret) -> tuple[str, str, int]:
    """Through the SAN client: a CHAP user and a volume whose access record names it."""
    name = f"one-{secrets.token_hex(3)}"

    async def create(runner: object) -> tuple[str, int, str]:
        ops = SanOps(runner, 100)  # type: ignore[arg-type]
        assert await ops.ensure_chap_user(user, secret)
        ref = await ops.create_volume(VolumeSpec(name, 100, access=(AccessRule(username=user),)))
        info = await ops.volume_info(name)
        assert info is not None
        return ref.iqn, info.size_mb, await ops.group_ip()

    iqn, size_mb, group_ip = await run_action(eql.endpoint, create)
    assert group_ip == "127.0.0.1"
    return name, iqn, size_mb


async def delete_volume(eql: InGuestGroup, name: str, user: str) -> bool:
    async def delete(runner: object) -> bool:
        ops = SanOps(runner, 100)  # type: ignore[arg-type]
        gone = await ops.delete_volume(name)
        await ops.delete_chap_user(user)
        return gone

    return await run_action(eql.endpoint, delete)


async def test_san_client_makes_a_chap_volume_lio_serves(eql: InGuestGroup) -> None:
    user = f"one-{secrets.token_hex(3)}"
    chap_secret = Secret(secrets.token_hex(8).encode(), origin="test CHAP secret")
    name, iqn, size_mb = await create_chap_volume(eql, user, chap_secret)
    # The fake made a real LIO target of the volume.
    assert iqn in lio_targets(eql.vm)

    found = await discover(eql.portal, initiator_name=HOST_INITIATOR)
    assert iqn in {t.name for t in found}
    good = Auth(chap=ChapCredentials(user, chap_secret))
    async with login(eql.portal, iqn, auth=good, initiator_name=HOST_INITIATOR) as session:
        assert session.tsih != 0
    # LIO serves the LUN the fake allocated: the size rounded up to the group's 15 MB
    # unit (docs/fake-eql.md), as libiscsi reads it (the native probe: next test).
    assert size_mb == 100
    cap = libiscsi(
        "iscsi-readcapacity16",
        f"iscsi://{eql.portal}/{iqn}/0",
        incoming=ChapAccount(user, chap_secret),
    )
    assert cap.returncode == 0, cap.stderr
    assert f"Total size:{lun_bytes(size_mb)}\n" in cap.stdout

    wrong = Auth(chap=ChapCredentials(user, Secret(b"not-the-secret-00", origin="test")))
    with pytest.raises(AuthenticationFailed) as info:
        await probe(eql.portal, iqn, auth=wrong, initiator_name=HOST_INITIATOR)
    assert info.value.status == 0x0201
    assert chap_secret.reveal_str() not in str(info.value)

    assert await delete_volume(eql, name, user)
    assert iqn not in lio_targets(eql.vm)


async def test_native_probe_of_eql_volume_reports_its_size(eql: InGuestGroup) -> None:
    user = f"one-{secrets.token_hex(3)}"
    chap_secret = Secret(secrets.token_hex(8).encode(), origin="test CHAP secret")
    name, iqn, size_mb = await create_chap_volume(eql, user, chap_secret)
    try:
        good = Auth(chap=ChapCredentials(user, chap_secret))
        result = await probe(eql.portal, iqn, auth=good, initiator_name=HOST_INITIATOR)
        (lun,) = result.luns
        assert lun.size_bytes == lun_bytes(size_mb)
        assert lun.vendor.strip() == "LIO-ORG"
    finally:
        assert await delete_volume(eql, name, user)


async def test_resize_and_clone_are_served_by_lio_at_their_new_sizes(eql: InGuestGroup) -> None:
    # LIO's fileio backstore reads the file size when it is created: the fake's data
    # plane must recreate the target after a grow, and a clone is a target of its own.
    user = f"one-{secrets.token_hex(3)}"
    chap_secret = Secret(secrets.token_hex(8).encode(), origin="test CHAP secret")
    acct = ChapAccount(user, chap_secret)
    name, iqn, _ = await create_chap_volume(eql, user, chap_secret)
    clone = f"{name}-c"

    async def grow_and_clone(runner: object) -> tuple[str, int]:
        ops = SanOps(runner, 100)  # type: ignore[arg-type]
        await ops.resize_volume(name, 200)
        ref = await ops.clone_volume(
            name, VolumeSpec(clone, 300, access=(AccessRule(username=user),))
        )
        info = await ops.volume_info(clone)
        assert info is not None
        return ref.iqn, info.size_mb

    clone_iqn, clone_mb = await run_action(eql.endpoint, grow_and_clone)
    try:
        assert clone_iqn != iqn and clone_mb == 300
        assert {iqn, clone_iqn} <= set(lio_targets(eql.vm))
        for target, mb in ((iqn, 200), (clone_iqn, 300)):
            cap = libiscsi(
                "iscsi-readcapacity16", f"iscsi://{eql.portal}/{target}/0", incoming=acct
            )
            assert cap.returncode == 0, cap.stderr
            assert f"Total size:{lun_bytes(mb)}\n" in cap.stdout
    finally:

        async def delete_both(runner: object) -> None:
            ops = SanOps(runner, 100)  # type: ignore[arg-type]
            await ops.delete_volume(clone)
            await ops.delete_volume(name)
            await ops.delete_chap_user(user)

        await run_action(eql.endpoint, delete_both)
    assert not {iqn, clone_iqn} & set(lio_targets(eql.vm))


async def test_driver_path_end_to_end_on_a_real_host(eql: InGuestGroup) -> None:
    """SAN client makes the volume, the host logs in with the driver's scripts, udev
    names it, and a clone made by the group carries the bytes written through it."""
    install_remotes(eql.vm)
    host = GuestHost(eql.vm)
    user = f"one-{secrets.token_hex(3)}"
    chap_secret = Secret(secrets.token_hex(8).encode(), origin="test CHAP secret")
    name, clone = f"one-{secrets.token_hex(3)}", f"one-{secrets.token_hex(3)}"
    rule = AccessRule(initiator=GUEST_INITIATOR, username=user)

    async def create(runner: object) -> tuple[str, str]:
        ops = SanOps(runner, 100)  # type: ignore[arg-type]
        await ops.ensure_chap_user(user, chap_secret)
        ref = await ops.create_volume(VolumeSpec(name, 50, access=(rule,)))
        return ref.iqn, await ops.group_ip()

    iqn, group_ip = await run_action(eql.endpoint, create)
    node = ia.Node(iqn, ia.TargetPortal(group_ip, 3260))
    chap = ia.ChapCredentials(user, chap_secret)
    marker = f"eqliscsi-e2e-{secrets.token_hex(8)}"
    clone_node: ia.Node | None = None
    try:
        host.run(ia.login_script(node, chap=chap), what=name)
        assert host.wait_link(name, present=True).startswith("/dev/sd")
        host.sh(f"printf '%s' {marker} | dd of=/dev/iscsi/{name} bs=4096 conv=sync,fsync "
                "oflag=direct status=none")  # fmt: skip
        host.run(ia.logout_script(node), what=name)
        assert host.wait_link(name, present=False) == ""

        async def clone_it(runner: object) -> str:
            ops = SanOps(runner, 100)  # type: ignore[arg-type]
            return (await ops.clone_volume(name, VolumeSpec(clone, 50, access=(rule,)))).iqn

        clone_node = ia.Node(await run_action(eql.endpoint, clone_it), node.portal)
        host.run(ia.login_script(clone_node, chap=chap), what=clone)
        host.wait_link(clone, present=True)
        got = host.sh(f"dd if=/dev/iscsi/{clone} bs=4096 count=1 iflag=direct status=none")
        assert got[: len(marker)] == marker
    finally:
        host.run(ia.logout_script(node), what=name)
        if clone_node is not None:
            host.run(ia.logout_script(clone_node), what=clone)

        async def delete_all(runner: object) -> None:
            ops = SanOps(runner, 100)  # type: ignore[arg-type]
            await ops.delete_volume(clone)
            await ops.delete_volume(name)
            await ops.delete_chap_user(user)

        await run_action(eql.endpoint, delete_all)
