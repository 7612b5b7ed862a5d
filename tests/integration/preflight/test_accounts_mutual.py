"""Preflight against a fake group with several kinds of account and target authentication.

A second fake group (``python -m rig.fake_eql`` + tgt on 127.0.0.1), its state seeded
before it starts with a second pool ``gold`` and four local administration accounts,
then, through the driver's SAN client as grpadmin: a CHAP user, one tagged volume that
requires it, and the group's target-authentication (mutual CHAP) user and secret.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from eqliscsi.cli.checks import ALL_CHECKS, CheckResult, Section, Status
from eqliscsi.cli.checks.inputs import Options
from eqliscsi.cli.preflight import run_preflight
from eqliscsi.san import commands as c
from eqliscsi.san.commands import AccessRule
from eqliscsi.san.ops import SanOps, VolumeSpec
from eqliscsi.san.session import open_session
from eqliscsi.secret import Secret
from rig.fake_eql import store
from rig.fake_eql.model import AccountType, Pool, San
from rig.need import need_executable
from rig.targets.tgt import free_port
from tests.integration.fake_eql.conftest import GROUP, PASSWORD, start_fake, stop_fake
from tests.integration.preflight.conftest import CHAP_SECRET, CHAP_USER, DS_ID, Group

pytestmark = [pytest.mark.tgt]

TARGET_USER = "eqltarget"
TARGET_SECRET = "target-secret-0042"
# name -> (type, pools, password)
ACCOUNTS = {
    "ro": (AccountType.READ_ONLY, (), "ro-pass-01"),
    "pagold": (AccountType.POOL_ADMIN, ("gold",), "pagold-pass"),
    "padef": (AccountType.POOL_ADMIN, ("gold", "default"), "padef-pass"),
    "vadef": (AccountType.VOLUME_ADMIN, ("default",), "vadef-pass"),
}
SECRETS = (PASSWORD, CHAP_SECRET, TARGET_SECRET, *(pw for _, _, pw in ACCOUNTS.values()))


def _seed_state(state: Path) -> None:
    san = San(group_name=GROUP)
    san.pools["gold"] = Pool("gold", 1024 * 1024)
    for name, (kind, pools, password) in ACCOUNTS.items():
        san.create_account(name, password, type=kind, pools=pools)
    state.mkdir(parents=True)
    store.save(san, state)


async def _seed_cli(group: Group) -> None:
    async with open_session(group.endpoint()) as session:
        ops = SanOps(session, DS_ID)
        await ops.ensure_chap_user(CHAP_USER, Secret(CHAP_SECRET.encode()))
        await ops.create_volume(
            VolumeSpec("one-9", 30, pool="default", access=(AccessRule(username=CHAP_USER),))
        )
        # EqualLogic's mutual CHAP: one group-wide target account.
        await session.run(c.GrpparamsTargetAuth(username=TARGET_USER))
        await session.run(c.GrpparamsTargetAuth(password=Secret(TARGET_SECRET.encode())))


@pytest.fixture(scope="module")
def mgroup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Group]:
    need_executable("tgtd", "tgt")
    need_executable("tgtadm", "tgt")
    d = tmp_path_factory.mktemp("mgroup")
    pw = d / "fake-password"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    _seed_state(d / "state")
    portal = f"127.0.0.1:{free_port()}"
    fake = start_fake(d / "state", pw, iscsi_portal=portal)
    try:
        (d / "known_hosts").write_text(fake.host_key_line)
        g = Group(fake, portal, d)
        asyncio.run(_seed_cli(g))
        yield g
    finally:
        stop_fake(fake)


def _run(options: Options, section: Section) -> dict[str, CheckResult]:
    checks = [ch for ch in ALL_CHECKS if ch.section is section]
    results = asyncio.run(run_preflight(options, checks))
    text = str([r.to_json() for r in results])
    for secret in SECRETS:
        assert secret not in text
    return {r.id: r for r in results}


@pytest.mark.parametrize(
    ("user", "status", "found", "fix"),
    [
        pytest.param("grpadmin", Status.PASS, "grpadmin is a group administrator", "",
                     id="group-admin"),
        pytest.param("padef", Status.PASS, "padef is a pool administrator of pool default", "",
                     id="pool-admin-of-the-pool"),
        pytest.param("vadef", Status.PASS, "volume administrator of pool default", "",
                     id="volume-admin-of-the-pool"),
        pytest.param("ro", Status.FAIL, "ro is a read-only account",
                     "Make ro a pool administrator of pool default", id="read-only"),
        pytest.param("pagold", Status.FAIL, "pool administrator of gold, not of pool default",
                     "Add pool default to the pools of account pagold", id="pool-admin-elsewhere"),
    ],
)  # fmt: skip
def test_account_kind_decides_create_permission(
    mgroup: Group, tmp_path: Path, user: str, status: Status, found: str, fix: str
) -> None:
    password = PASSWORD if user == "grpadmin" else ACCOUNTS[user][2]
    conf = mgroup.conf(tmp_path, password=password, extra=f"EQL_USER={user}\n")
    res = _run(mgroup.options(tmp_path, conf), Section.SAN)
    assert res["san.login"].status is Status.PASS, res["san.login"]
    perm = res["san.create-permission"]
    assert perm.status is status, perm
    assert found in perm.found
    assert fix in perm.fix
    # read without writing: the group has only the seeded volume
    assert "1 datastore 100 volume(s) of 1" in res["san.owned-volumes"].found


def test_write_probe_meets_the_arrays_refusal(mgroup: Group, tmp_path: Path) -> None:
    conf = mgroup.conf(tmp_path, password=ACCOUNTS["ro"][2], extra="EQL_USER=ro\n")
    res = _run(mgroup.options(tmp_path, conf, write_probe=True), Section.SAN)
    perm = res["san.create-permission"]
    assert perm.status is Status.FAIL, perm
    assert "Account ro is read-only" in perm.found  # the fake array's own error line
    assert "pool administrator of pool default" in perm.fix


def _mutual_conf(group: Group, tmp: Path, *, user: str = TARGET_USER,
                 secret: str = TARGET_SECRET) -> Path:  # fmt: skip
    path = tmp / "chap-target"
    path.write_text(secret)
    path.chmod(0o600)
    extra = f"EQL_CHAP_TARGET_USER={user}\nEQL_CHAP_TARGET_SECRET_FILE={path}\n"
    return group.conf(tmp, extra=extra)


def test_mutual_chap_passes_with_the_groups_target_account(mgroup: Group, tmp_path: Path) -> None:
    res = _run(mgroup.options(tmp_path, _mutual_conf(mgroup, tmp_path)), Section.ISCSI)
    mutual = res["iscsi.mutual-chap"]
    assert mutual.status is Status.PASS, mutual
    assert "one-9: the target proved itself as eqltarget" in mutual.found
    assert res["iscsi.probe"].status is Status.PASS


@pytest.mark.parametrize(
    ("user", "secret", "why"),
    [
        pytest.param(TARGET_USER, "wrong-target-secret", "its CHAP_R is wrong", id="wrong-secret"),
        pytest.param("other-target", TARGET_SECRET, "another CHAP name", id="wrong-user"),
    ],
)
def test_mutual_chap_fails_on_a_wrong_target_setting(
    mgroup: Group, tmp_path: Path, user: str, secret: str, why: str
) -> None:
    conf = _mutual_conf(mgroup, tmp_path, user=user, secret=secret)
    res = _run(mgroup.options(tmp_path, conf), Section.ISCSI)
    mutual = res["iscsi.mutual-chap"]
    assert mutual.status is Status.FAIL, mutual
    assert why in mutual.found
    assert "EQL_CHAP_TARGET_SECRET_FILE" in mutual.fix
    assert secret not in mutual.found + mutual.fix
    # one-way CHAP is fine: only the mutual check names the problem
    assert res["iscsi.probe"].status is Status.PASS, res["iscsi.probe"]
