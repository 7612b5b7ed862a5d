"""Fake EqualLogic groups (rig.fake_eql) for the SAN client tests.

``group``: the CLI only, in-process on 127.0.0.1, port 0.  ``data_group``: a group
whose volumes are real iSCSI targets, once per backend (tgt on loopback, LIO in the
kernel guest); see below.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from eqliscsi.san.endpoint import HostKeyPolicy, SanEndpoint
from eqliscsi.secret import Secret
from rig.fake_eql.server import FakeEql
from rig.guest.fake_group import InGuestGroup
from rig.need import need, need_executable
from rig.targets.tgt import free_port
from tests.integration.fake_eql.conftest import ACCOUNT as FAKE_ACCOUNT
from tests.integration.fake_eql.conftest import GROUP as FAKE_GROUP
from tests.integration.fake_eql.conftest import PASSWORD as FAKE_PASSWORD
from tests.integration.fake_eql.conftest import start_fake, stop_fake

GROUP = "group-0"
ACCOUNT = "grpadmin"
PASSWORD = b"fake-group-password-1"


@dataclass
class Group:
    fake: FakeEql
    endpoint: SanEndpoint
    known_hosts: Path
    host_key_line: str
    fingerprint: str


@pytest.fixture
async def group(tmp_path: Path) -> AsyncIterator[Group]:
    fake = FakeEql(tmp_path / "fake", group_name=GROUP, account=ACCOUNT, password=Secret(PASSWORD))
    host, port = await fake.start("127.0.0.1", 0)
    key = fake.host_key()
    pub = key.export_public_key().decode().strip()
    known = tmp_path / "known_hosts"
    line = f"[{host}]:{port} {pub}"
    known.write_text(line + "\n")
    ep = SanEndpoint(
        host=host,
        port=port,
        username=ACCOUNT,
        password=Secret(PASSWORD, origin="test"),
        known_hosts=str(known),
        host_key_policy=HostKeyPolicy.KNOWN_HOSTS,
        group=GROUP,
        connect_timeout=10.0,
        command_timeout=10.0,
    )
    try:
        yield Group(fake, ep, known, line, key.get_fingerprint("sha256"))
    finally:
        await fake.close()


def with_(ep: SanEndpoint, **changes: object) -> SanEndpoint:
    return replace(ep, **changes)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# The data-plane suite (test_dataplane.py): one set of test functions, two groups.
#
# backend=tgt: ``python -m rig.fake_eql --target-backend tgt`` on 127.0.0.1 (a group
#   tgtd redirecting to a member tgtd, LUN 1), one per test.
# backend=lio: the fake group running *inside* the kernel guest with LIO (LUN 0),
#   reached through QEMU's 127.0.0.1 forwards; one per session (``guest_eql``).


@dataclass(frozen=True)
class DataGroup:
    kind: str
    endpoint: SanEndpoint
    portal: str  # the group portal as this host reaches it, "127.0.0.1:port"
    lun: int
    lun_files: Callable[[], set[str]]  # names of the group's backing files now


def _tgt_group(tmp_path: Path) -> Iterator[DataGroup]:
    need_executable("tgtd", "tgt")
    need_executable("tgtadm", "tgt")
    need(os.geteuid() == 0, "tgtd needs root to create its control socket in /var/run/tgtd")
    password = tmp_path / "password"
    password.write_text(FAKE_PASSWORD + "\n")
    password.chmod(0o600)
    portal = f"127.0.0.1:{free_port()}"
    fake = start_fake(tmp_path / "state", password, iscsi_portal=portal)
    try:
        known = tmp_path / "known_hosts"
        known.write_text(fake.host_key_line)
        ep = SanEndpoint(
            host=fake.host,
            port=fake.port,
            username=FAKE_ACCOUNT,
            password=Secret(FAKE_PASSWORD.encode(), origin="test"),
            known_hosts=str(known),
            host_key_policy=HostKeyPolicy.KNOWN_HOSTS,
            group=FAKE_GROUP,
            connect_timeout=30.0,
            command_timeout=60.0,
        )
        luns = fake.state / "luns"
        yield DataGroup("tgt", ep, portal, 1, lambda: {p.name for p in luns.glob("*.img")})
    finally:
        stop_fake(fake)


def _lio_group(request: pytest.FixtureRequest) -> Iterator[DataGroup]:
    group: InGuestGroup = request.getfixturevalue("guest_eql")

    def lun_files() -> set[str]:
        out = group.vm.ssh(["sh", "-c", f"cd {group.lun_dir} && ls"], check=True).stdout
        return {n for n in out.split() if n.endswith(".img")}

    yield DataGroup("lio", group.endpoint, str(group.portal), 0, lun_files)


@pytest.fixture(
    params=[
        pytest.param("tgt", marks=(pytest.mark.tgt,), id="backend=tgt"),
        pytest.param("lio", marks=(pytest.mark.guest, pytest.mark.lio), id="backend=lio"),
    ]
)
def data_group(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataGroup]:
    if request.param == "tgt":
        yield from _tgt_group(tmp_path)
    else:
        yield from _lio_group(request)
