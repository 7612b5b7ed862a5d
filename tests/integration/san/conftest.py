"""A fake EqualLogic group (rig.fake_eql) on 127.0.0.1, port 0, for the SAN client tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from eqliscsi.san.endpoint import HostKeyPolicy, SanEndpoint
from eqliscsi.secret import Secret
from rig.fake_eql.server import FakeEql

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
