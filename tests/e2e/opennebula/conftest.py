from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from eqliscsi.secret import Secret
from rig.fake_eql.server import FakeEql
from rig.need import need_executable
from tests.e2e.opennebula.fake_group import PASSWORD, Group


@pytest.fixture(scope="session")
def qcow2_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 100 MiB (virtual) qcow2 image, outside every restricted directory."""
    qemu_img = need_executable("qemu-img", "qemu-utils")
    path = tmp_path_factory.mktemp("images") / "ttylinux.qcow2"
    subprocess.run(
        [qemu_img, "create", "-q", "-f", "qcow2", str(path), "100M"], check=True, timeout=60
    )
    return path


@pytest.fixture
async def group(tmp_path: Path) -> AsyncIterator[Group]:
    fake = FakeEql(
        tmp_path / "fake", group_name="group-0", account="grpadmin", password=Secret(PASSWORD)
    )
    host, port = await fake.start("127.0.0.1", 0)
    known = tmp_path / "known_hosts"
    known.write_text(f"[{host}]:{port} {fake.host_key().export_public_key().decode().strip()}\n")
    pw = tmp_path / "password"
    pw.write_bytes(PASSWORD + b"\n")
    pw.chmod(0o600)
    conf = (
        f"EQL_HOST={host}\nEQL_SSH_PORT={port}\nEQL_USER=grpadmin\nEQL_PASS_FILE={pw}\n"
        f"EQL_KNOWN_HOSTS={known}\nEQL_SECURITY_ACCESS='ipaddress 127.0.0.*'\n"
        "EQL_THINPROVISION='thin-provision thin-min-reserve 20%'\nEQL_MAX_SESSIONS=2\n"
        "EQLADM=EqlCliExec.py\n"
    )
    try:
        yield Group(fake, conf, {"EQLISCSI_LOCK_DIR": str(tmp_path / "locks")})
    finally:
        await fake.close()
