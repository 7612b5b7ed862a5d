"""A fake group *with* its data plane (two tgtd on 127.0.0.1) for DS e2e runs.

Unlike ``tests/e2e/opennebula``'s CLI-only group, every volume here is a real iSCSI
target whose backing file the test can read, so ``cp`` is judged on the bytes that
reached the LUN and on the backing file's allocation.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from eqliscsi.secret import Secret
from rig.fake_eql.__main__ import make_backends
from rig.fake_eql.dataplane import DataPlane
from rig.fake_eql.server import FakeEql
from rig.need import need_executable
from rig.targets.base import Portal
from rig.targets.tgt import free_port
from tests.e2e.ds.helpers import DataGroup, SecretWatch
from tests.e2e.opennebula.fake_group import PASSWORD


@pytest.fixture
async def data_group(tmp_path: Path) -> AsyncIterator[DataGroup]:
    need_executable("tgtd", "tgt")
    need_executable("tgtadm", "tgt")
    need_executable("qemu-img", "qemu-utils")
    state = tmp_path / "fake"
    state.mkdir()
    portal = Portal("127.0.0.1", free_port())
    backend, member = make_backends("tgt", portal, state)
    plane = DataPlane(backend, state / "luns", member=member)
    fake = FakeEql(
        state,
        group_name="group-0",
        account="grpadmin",
        password=Secret(PASSWORD),
        dataplane=plane,
        group_ip="127.0.0.1",
    )
    try:
        host, port = await fake.start("127.0.0.1", 0)
        known = tmp_path / "known_hosts"
        key = fake.host_key().export_public_key().decode().strip()
        known.write_text(f"[{host}]:{port} {key}\n")
        pw = tmp_path / "password"
        pw.write_bytes(PASSWORD + b"\n")
        pw.chmod(0o600)
        conf = (
            f"EQL_HOST={host}\nEQL_SSH_PORT={port}\nEQL_USER=grpadmin\nEQL_PASS_FILE={pw}\n"
            f"EQL_KNOWN_HOSTS={known}\nEQL_PORTAL={portal.host}:{portal.port}\n"
            "EQL_SECURITY_ACCESS='ipaddress 127.0.0.*'\n"
            "EQL_THINPROVISION='thin-provision thin-min-reserve 20%'\nEQL_MAX_SESSIONS=2\n"
        )
        yield DataGroup(fake, conf, {"EQLISCSI_LOCK_DIR": str(tmp_path / "locks")}, plane)
    finally:
        try:
            await fake.close()
        finally:
            with contextlib.suppress(Exception):
                plane.close()
            backend.close()
            if member is not None:
                member.close()


@pytest.fixture
def secret_watch() -> Iterator[SecretWatch]:
    """Samples every process's argv while the test runs (requirement: no secret in argv)."""
    watch = SecretWatch([PASSWORD])
    watch.start()
    try:
        yield watch
    finally:
        watch.stop()
