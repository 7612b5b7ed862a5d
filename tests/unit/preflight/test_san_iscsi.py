"""SAN and iSCSI checks over seeded facts (what one CLI session would have collected)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from eqliscsi.cli.checks import iscsi, san
from eqliscsi.cli.checks.base import Status
from eqliscsi.cli.checks.san import SanFacts, VolumeFacts, orphan_volumes
from eqliscsi.san.errors import SanAuthError, SanConnectionError, SanHostKeyError, SanTimeout
from eqliscsi.san.parsers import AccountInfo, AccountType, PoolCapacity, VolumeInfo
from tests.unit.preflight.conftest import CHAP_SECRET, GOOD_CONF, make_options, run

IQN = "iqn.2001-05.com.equallogic:0-8a0906-012345678-0123456789abcdef-"
GROUP_ADMIN = AccountInfo("grpadmin", AccountType.GROUP_ADMIN, "group-admin", ())


def vol(name: str, description: str = "eqliscsi ds=100", status: str = "online") -> VolumeInfo:
    return VolumeInfo(name, 1024, IQN + name, description, status, 0, {})


def facts(
    *,
    pool: PoolCapacity | None = PoolCapacity(100_000, 50_000, None, None, None),  # noqa: B008
    group_ip: str = "192.0.2.10",
    group: str | None = "grp0",
    probe: str | None = None,
    account: AccountInfo | str = GROUP_ADMIN,
) -> SanFacts:
    return SanFacts(group, group_ip, pool, probe, account)


def volumes(*vols: VolumeInfo) -> VolumeFacts:
    return VolumeFacts(vols, len(vols))


@pytest.mark.parametrize(
    ("seed", "status", "needle"),
    [
        pytest.param(facts(), Status.PASS, "grpadmin logged in to group grp0", id="ok"),
        pytest.param(SanAuthError("refused"), Status.FAIL, "refused the login", id="wrong-pw"),
        pytest.param(SanHostKeyError("unknown"), Status.SKIP, "host key", id="host-key"),
        pytest.param(SanTimeout("Connecting timed out."), Status.FAIL, "timed out", id="timeout"),
        pytest.param(SanConnectionError("Refused."), Status.FAIL, "Refused", id="refused"),
    ],
)
async def test_login(tmp_path: Path, seed: object, status: Status, needle: str) -> None:
    f = await run(san.check_login, make_options(tmp_path), san=seed)
    assert f.status is status, f
    assert needle in f.found
    if status is Status.FAIL and isinstance(seed, SanAuthError):
        assert "EQL_PASS_FILE" in f.fix


@pytest.mark.parametrize(
    ("pool", "min_free", "status", "needle"),
    [
        pytest.param(PoolCapacity(100_000, 50_000, None, None, None), 10.0, Status.PASS, "50.0%",
                     id="half-free"),
        pytest.param(PoolCapacity(100_000, 5_000, None, None, None), 10.0, Status.WARN, "5.0%",
                     id="nearly-full"),
        pytest.param(PoolCapacity(100_000, 5_000, None, None, None), 2.0, Status.PASS, "5.0%",
                     id="threshold-lowered"),
        pytest.param(None, 10.0, Status.FAIL, "does not exist", id="missing"),
    ],
)  # fmt: skip
async def test_pool(
    tmp_path: Path, pool: PoolCapacity | None, min_free: float, status: Status, needle: str
) -> None:
    opts = make_options(tmp_path, min_free_pct=min_free)
    f = await run(san.check_pool, opts, san=facts(pool=pool))
    assert f.status is status, f
    assert needle in f.found


async def test_dependent_checks_skip_when_the_session_failed(tmp_path: Path) -> None:
    for fn in (san.check_pool, san.check_group_ip, san.check_dialect, san.check_owned_volumes):
        f = await run(fn, make_options(tmp_path), session=SanAuthError("no"))
        assert f.status is Status.SKIP
        assert "san.login" in f.found


@pytest.mark.parametrize(
    ("conf_extra", "group_ip", "status"),
    [
        pytest.param("", "192.0.2.10", Status.PASS, id="host-is-group-ip"),
        pytest.param("", "192.0.2.99", Status.FAIL, id="group-ip-differs"),
        pytest.param("EQL_PORTAL=192.0.2.99:3260\n", "192.0.2.99", Status.PASS, id="portal-set"),
    ],
)
async def test_group_ip(tmp_path: Path, conf_extra: str, group_ip: str, status: Status) -> None:
    opts = make_options(tmp_path, GOOD_CONF + conf_extra)
    f = await run(san.check_group_ip, opts, san=facts(group_ip=group_ip))
    assert f.status is status, f
    if status is Status.FAIL:
        assert f"EQL_PORTAL to {group_ip}" in f.fix


def _acct(kind: AccountType | None, *pools: str, text: str = "") -> AccountInfo:
    return AccountInfo("grpadmin", kind, text or (kind.value if kind else "?"), pools)


# EQL_POOL is "default" (GOOD_CONF), EQL_USER "grpadmin".
@pytest.mark.parametrize(
    ("account", "probe", "write", "status", "found", "fix"),
    [
        pytest.param(GROUP_ADMIN, None, False, Status.PASS, "is a group administrator", "",
                     id="group-admin"),
        pytest.param(_acct(AccountType.POOL_ADMIN, "gold", "default"), None, False, Status.PASS,
                     "pool administrator of pool default", "", id="pool-admin-with-pool"),
        pytest.param(_acct(AccountType.VOLUME_ADMIN, "default"), None, False, Status.PASS,
                     "within its quota", "", id="volume-admin-with-pool"),
        pytest.param(_acct(AccountType.POOL_ADMIN, "gold"), None, False, Status.FAIL,
                     "pool administrator of gold, not of pool default",
                     "Add pool default to the pools of account grpadmin", id="pool-admin-other"),
        pytest.param(_acct(AccountType.VOLUME_ADMIN), None, False, Status.FAIL,
                     "of no pool, not of pool default", "Add pool default",
                     id="volume-admin-no-pool"),
        pytest.param(_acct(AccountType.READ_ONLY), None, False, Status.FAIL,
                     "read-only account, which cannot create volumes",
                     "Make grpadmin a pool administrator of pool default", id="read-only"),
        pytest.param(_acct(None, text="storage-operator"), None, False, Status.SKIP,
                     "type 'storage-operator'", "--write-probe", id="unknown-type"),
        pytest.param("% Error - Invalid command or parameter \"account\".", None, False,
                     Status.SKIP, "did not show account grpadmin", "--write-probe",
                     id="account-show-refused"),
        # --write-probe is the stronger test: the array's answer wins over the type.
        pytest.param(_acct(AccountType.READ_ONLY), "", True, Status.PASS, "was created and deleted",
                     "", id="probe-created"),
        pytest.param(GROUP_ADMIN, "Permission denied.", True, Status.FAIL, "Permission denied.",
                     "pool administrator of pool default", id="probe-refused"),
    ],
)  # fmt: skip
async def test_create_permission(
    tmp_path: Path,
    account: AccountInfo | str,
    probe: str | None,
    write: bool,
    status: Status,
    found: str,
    fix: str,
) -> None:
    opts = make_options(tmp_path, write_probe=write)
    f = await run(san.check_create_permission, opts, san=facts(probe=probe, account=account))
    assert f.status is status, f
    assert found in f.found
    assert fix in f.fix
    if status is Status.FAIL:
        assert f.fix.count(". ") == 0 and f.fix.endswith("."), "one sentence"


async def test_create_permission_skips_without_pool(tmp_path: Path) -> None:
    f = await run(san.check_create_permission, make_options(tmp_path), san=facts(pool=None))
    assert f.status is Status.SKIP
    assert "san.pool" in f.found


async def test_owned_volumes_and_orphans(tmp_path: Path) -> None:
    vols = (
        vol("one-1"),
        vol("one-1-5-0"),
        vol("one-2"),
        vol("other", "xen"),
        vol("b", "eqliscsi ds=7"),
    )
    opts = make_options(tmp_path, datastore_id=100, image_sources=(IQN + "one-1",))
    f = await run(san.check_owned_volumes, opts, volumes=volumes(*vols))
    assert f.status is Status.WARN
    assert "3 datastore 100 volume(s) of 5" in f.found
    assert "1 orphan(s)" in f.found and "one-2" in f.found
    no_oned = make_options(tmp_path, datastore_id=100)
    f = await run(san.check_owned_volumes, no_oned, volumes=volumes(*vols))
    assert f.status is Status.PASS and "not counted" in f.found


@pytest.mark.parametrize(
    ("sources", "orphans"),
    [
        pytest.param(("one-1",), ["one-2"], id="by-name"),
        pytest.param((IQN + "one-2",), ["one-1"], id="by-iqn"),
        pytest.param(("one-1", "one-2"), [], id="none"),
        pytest.param((), ["one-1", "one-2"], id="no-images"),
    ],
)
def test_orphan_table(sources: tuple[str, ...], orphans: list[str]) -> None:
    assert orphan_volumes([vol("one-1"), vol("one-2")], sources) == orphans


@pytest.mark.parametrize(
    ("secret", "user", "status"),
    [
        pytest.param(CHAP_SECRET, "oneadmin", Status.PASS, id="16-bytes"),
        pytest.param("short", "oneadmin", Status.WARN, id="under-12"),
        pytest.param("x" * 256, "oneadmin", Status.FAIL, id="over-255"),
        pytest.param(None, "oneadmin", Status.FAIL, id="user-without-secret"),
        pytest.param(None, None, Status.SKIP, id="no-chap"),
    ],
)
async def test_chap_secret_length(
    tmp_path: Path, secret: str | None, user: str | None, status: Status
) -> None:
    lines = [ln for ln in GOOD_CONF.splitlines() if "CHAP" not in ln]
    if user:
        lines.append(f"EQL_CHAP_USER={user}")
    if secret is not None:
        path = tmp_path / "chap2"
        path.write_text(secret)
        lines.append(f"EQL_CHAP_SECRET_FILE={path}")
    f = await run(iscsi.check_chap_secret, make_options(tmp_path, "\n".join(lines) + "\n"))
    assert f.status is status, f
    if secret:
        assert secret not in f.found + f.fix


@pytest.mark.parametrize(
    ("target", "status", "needle"),
    [
        pytest.param("target-secret-0042", Status.PASS,
                     "and the target CHAP secret is 18 bytes", id="both-fine"),
        pytest.param("tgt-short", Status.WARN, "target CHAP secret is 9 bytes", id="target-short"),
        pytest.param("t" * 300, Status.FAIL, "target CHAP secret is 300 bytes", id="target-long"),
    ],
)  # fmt: skip
async def test_target_secret_length(
    tmp_path: Path, target: str, status: Status, needle: str
) -> None:
    path = tmp_path / "chap-target"
    path.write_text(target)
    extra = f"EQL_CHAP_TARGET_USER=eqltarget\nEQL_CHAP_TARGET_SECRET_FILE={path}\n"
    f = await run(iscsi.check_chap_secret, make_options(tmp_path, GOOD_CONF + extra))
    assert f.status is status, f
    assert needle in f.found
    if status is not Status.PASS:
        assert "EQL_CHAP_TARGET_SECRET_FILE" in f.fix
    assert target not in f.found + f.fix


async def test_probe_skips_without_owned_volumes(tmp_path: Path) -> None:
    opts = make_options(tmp_path, datastore_id=100)
    f = await run(iscsi.check_probe, opts, volumes=volumes(vol("x", "xen")))
    assert f.status is Status.SKIP
    f = await run(iscsi.check_redirect, opts, session=SanAuthError("no"))
    assert f.status is Status.SKIP


async def test_mutual_chap_is_reported_as_not_configured(tmp_path: Path) -> None:
    f = await run(iscsi.check_mutual_chap, make_options(tmp_path))
    assert f.status is Status.SKIP
    assert "not configured" in f.found


@pytest.mark.parametrize(
    ("group", "status"),
    [pytest.param("grp0", Status.PASS, id="prompt-names-group"),
     pytest.param(None, Status.FAIL, id="no-group-in-prompt")],
)  # fmt: skip
async def test_dialect(tmp_path: Path, group: str | None, status: Status) -> None:
    f = await run(san.check_dialect, make_options(tmp_path), san=facts(group=group))
    assert f.status is status, f


async def test_tcp_reachable_and_refused(tmp_path: Path) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        conf = GOOD_CONF.replace("192.0.2.10", "127.0.0.1") + f"EQL_SSH_PORT={port}\n"
        f = await run(san.check_tcp, make_options(tmp_path, conf))
        assert f.status is Status.PASS, f
    finally:
        server.close()
        await server.wait_closed()
    f = await run(san.check_tcp, make_options(tmp_path, conf))  # closed now: refused
    assert f.status is Status.FAIL
    assert "EQL_SSH_PORT" in f.fix
