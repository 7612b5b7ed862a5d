"""A fake EqualLogic group (``python -m rig.fake_eql`` + tgt) on loopback, seeded for preflight.

The group is started once per module: its SSH CLI on 127.0.0.1 (free port), its group
portal on another free port of 127.0.0.1 with a member tgtd behind it.  Seeding goes
through the driver's own SAN client: a CHAP user, and one volume tagged for datastore
100 whose access record requires that CHAP user.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from eqliscsi.cli.checks.inputs import Options, load_config, reference_remotes
from eqliscsi.san.commands import AccessRule
from eqliscsi.san.endpoint import HostKeyPolicy, SanEndpoint
from eqliscsi.san.ops import SanOps, VolumeSpec
from eqliscsi.san.session import open_session
from eqliscsi.secret import Secret
from rig.need import need_executable
from rig.targets.tgt import free_port
from tests.integration.fake_eql.conftest import (
    ACCOUNT,
    PASSWORD,
    FakeProcess,
    start_fake,
    stop_fake,
)

DS_ID = 100
CHAP_USER = "preflight"
CHAP_SECRET = "preflight-chap-01"
VOLUME = "one-7"


@dataclass
class Group:
    fake: FakeProcess
    portal: str
    dir: Path

    def endpoint(self) -> SanEndpoint:
        return SanEndpoint(
            host=self.fake.host,
            port=self.fake.port,
            username=ACCOUNT,
            password=Secret(PASSWORD.encode(), origin="test"),
            host_key_policy=HostKeyPolicy.KNOWN_HOSTS,
            known_hosts=str(self.dir / "known_hosts"),
        )

    def conf(self, tmp: Path, *, extra: str = "", known_hosts: bool = True,
             password: str = PASSWORD, chap: str = CHAP_SECRET) -> Path:  # fmt: skip
        pw = tmp / "password"
        pw.write_text(password + "\n")
        pw.chmod(0o600)
        secret = tmp / "chap"
        secret.write_text(chap)
        secret.chmod(0o600)
        lines = [
            f"EQL_HOST={self.fake.host}",
            f"EQL_SSH_PORT={self.fake.port}",
            f"EQL_USER={ACCOUNT}",
            f"EQL_PASS_FILE={pw}",
            f"EQL_PORTAL={self.portal}",
            f"EQL_CHAP_USER={CHAP_USER}",
            f"EQL_CHAP_SECRET_FILE={secret}",
            f"EQL_KNOWN_HOSTS={self.dir / 'known_hosts' if known_hosts else tmp / 'empty_kh'}",
        ]
        conf = tmp / "eqliscsi.conf"
        conf.write_text("\n".join(lines) + "\n" + extra)
        conf.chmod(0o640)
        return conf

    def options(self, tmp: Path, conf: Path, **kw: object) -> Options:
        template = {"DS_MAD": "eqliscsi", "TM_MAD": "eqliscsi", "DISK_TYPE": "BLOCK"}
        return Options(
            conf_path=conf,
            config=load_config(conf, template),
            datastore_id=DS_ID,
            datastore_template=template,
            reference_remotes=reference_remotes(),
            remotes_dir=tmp / "no-remotes",
            oned_conf=tmp / "no-oned.conf",
            san_timeout=10.0,
            **kw,  # type: ignore[arg-type]
        )


async def _seed(group: Group) -> None:
    async with open_session(group.endpoint()) as session:
        ops = SanOps(session, DS_ID)
        await ops.ensure_chap_user(CHAP_USER, Secret(CHAP_SECRET.encode()))
        await ops.create_volume(
            VolumeSpec(VOLUME, 30, pool="default", access=(AccessRule(username=CHAP_USER),))
        )


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Group]:
    need_executable("tgtd", "tgt")
    need_executable("tgtadm", "tgt")
    d = tmp_path_factory.mktemp("group")
    pw = d / "fake-password"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    portal = f"127.0.0.1:{free_port()}"
    fake = start_fake(d / "state", pw, iscsi_portal=portal)
    try:
        (d / "known_hosts").write_text(fake.host_key_line)
        g = Group(fake, portal, d)
        asyncio.run(_seed(g))
        yield g
    finally:
        stop_fake(fake)
