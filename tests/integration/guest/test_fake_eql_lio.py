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
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from eqliscsi.iscsi_discovery import (
    Auth,
    AuthenticationFailed,
    ChapCredentials,
    Portal,
    discover,
    probe,
)
from eqliscsi.san.broker_client import run_action
from eqliscsi.san.commands import AccessRule
from eqliscsi.san.endpoint import HostKeyPolicy, SanEndpoint
from eqliscsi.san.ops import SanOps, VolumeSpec
from eqliscsi.secret import Secret
from rig.guest.vm import GUEST_EQL_PORT, GuestVM
from tests.integration.guest.conftest import HOST_INITIATOR

pytestmark = [pytest.mark.guest, pytest.mark.lio, pytest.mark.timeout(900)]

GROUP, ACCOUNT = "grp0", "grpadmin"
RUN = "/run/eqliscsi-fake"
CONFIGFS_ISCSI = "/sys/kernel/config/target/iscsi"


@dataclass(frozen=True)
class InGuestGroup:
    vm: GuestVM
    endpoint: SanEndpoint
    pid: int

    @property
    def portal(self) -> Portal:
        return Portal("127.0.0.1", self.vm.ports.iscsi)


@pytest.fixture(scope="module")
def eql(guest_vm: GuestVM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InGuestGroup]:
    vm = guest_vm
    assert vm.ports.eql, "the guest was booted without the fake group's forward"
    password = secrets.token_hex(12)
    vm.install_file(f"{RUN}/password", password, mode=0o600)
    argv = [
        "python3", "-m", "rig.fake_eql", "--state", f"{RUN}/state",
        "--listen", f"0.0.0.0:{GUEST_EQL_PORT}", "--group-name", GROUP, "--account", ACCOUNT,
        "--password-file", f"{RUN}/password", "--target-backend", "lio",
        "--iscsi-portal", "127.0.0.1:3260",
    ]  # fmt: skip
    out = vm.ssh(
        ["sh", "-euc", f"cd /opt/eqliscsi && PYTHONPATH=/opt/eqliscsi setsid {shlex.join(argv)} "
         f"> {RUN}/log 2>&1 < /dev/null & echo $!"],
    ).stdout  # fmt: skip
    pid = int(out.strip())
    try:
        deadline = time.monotonic() + 120
        while True:
            log = vm.ssh(["cat", f"{RUN}/log"], check=False).stdout
            if log.startswith("ready "):
                break
            alive = vm.ssh(["kill", "-0", str(pid)], check=False).returncode == 0
            assert alive, f"the fake group died in the guest: {log[-500:]}"
            assert time.monotonic() < deadline, f"the fake group did not start: {log[-500:]}"
            time.sleep(1)
        pub = vm.ssh(["cat", f"{RUN}/state/ssh_host_ed25519_key.pub"]).stdout.split()
        known = tmp_path_factory.mktemp("eql-known") / "known_hosts"
        known.write_text(f"[127.0.0.1]:{vm.ports.eql} {pub[0]} {pub[1]}\n")
        ep = SanEndpoint(
            host="127.0.0.1",
            port=vm.ports.eql,
            username=ACCOUNT,
            password=Secret(password.encode(), origin="test group password"),
            known_hosts=str(known),
            host_key_policy=HostKeyPolicy.KNOWN_HOSTS,
            group=GROUP,
            # Under TCG the guest's asyncssh spends seconds on each key exchange.
            connect_timeout=120.0,
            command_timeout=120.0,
        )
        yield InGuestGroup(vm, ep, pid)
    finally:
        # SIGTERM: the fake closes its data plane, which deletes its LIO targets.
        vm.ssh(["kill", str(pid)], check=False)
        for _ in range(60):
            if vm.ssh(["kill", "-0", str(pid)], check=False).returncode != 0:
                break
            time.sleep(0.5)


def lio_targets(vm: GuestVM) -> list[str]:
    return vm.ssh(["ls", CONFIGFS_ISCSI]).stdout.split()


async def test_san_client_makes_a_chap_volume_the_native_client_probes(
    eql: InGuestGroup,
) -> None:
    user = f"one-{secrets.token_hex(3)}"
    chap_secret = Secret(secrets.token_hex(8).encode(), origin="test CHAP secret")
    name = f"one-{secrets.token_hex(3)}"

    async def create(runner: object) -> tuple[str, int, str]:
        ops = SanOps(runner, 100)  # type: ignore[arg-type]
        assert await ops.ensure_chap_user(user, chap_secret)
        ref = await ops.create_volume(VolumeSpec(name, 100, access=(AccessRule(username=user),)))
        info = await ops.volume_info(name)
        assert info is not None
        return ref.iqn, info.size_mb, await ops.group_ip()

    iqn, size_mb, group_ip = await run_action(eql.endpoint, create)
    assert group_ip == "127.0.0.1"
    # The fake made a real LIO target of the volume.
    assert iqn in lio_targets(eql.vm)

    good = Auth(chap=ChapCredentials(user, chap_secret))
    found = await discover(eql.portal, initiator_name=HOST_INITIATOR)
    assert iqn in {t.name for t in found}
    result = await probe(eql.portal, iqn, auth=good, initiator_name=HOST_INITIATOR)
    (lun,) = result.luns
    # The size the group reports (rounded up to its 15 MB unit) is the size LIO serves.
    assert size_mb > 100
    assert lun.size_bytes == size_mb * 1024 * 1024
    assert lun.vendor.strip() == "LIO-ORG"

    wrong = Auth(chap=ChapCredentials(user, Secret(b"not-the-secret-00", origin="test")))
    with pytest.raises(AuthenticationFailed) as info:
        await probe(eql.portal, iqn, auth=wrong, initiator_name=HOST_INITIATOR)
    assert info.value.status == 0x0201
    assert chap_secret.reveal_str() not in str(info.value)

    async def delete(runner: object) -> bool:
        ops = SanOps(runner, 100)  # type: ignore[arg-type]
        gone = await ops.delete_volume(name)
        await ops.delete_chap_user(user)
        return gone

    assert await run_action(eql.endpoint, delete)
    assert iqn not in lio_targets(eql.vm)
