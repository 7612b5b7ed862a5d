"""The SAN client against the fake Group Manager shell over real SSH on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncssh
import pytest

from eqliscsi.san import commands as c
from eqliscsi.san.errors import (
    SanAuthError,
    SanCommandError,
    SanConnectionError,
    SanHostKeyError,
    SanNotOwned,
    SanObjectExists,
    SanTimeout,
)
from eqliscsi.san.ops import SanOps, VolumeSpec
from eqliscsi.san.session import HostKeyPolicy, open_session, with_session
from eqliscsi.secret import Secret
from rig.fake_eql.faults import Faults
from tests.integration.san.conftest import Group, with_

INITIATOR = "iqn.1993-08.org.debian:01:" + "a1b2c3d4" * 5  # long: wraps in the access table


async def test_session_setup_and_reads(group: Group) -> None:
    async with open_session(group.endpoint) as s:
        assert s.group == "group-0"
        ops = SanOps(s, 100)
        assert await ops.group_ip() == "127.0.0.1"
        cap = await ops.pool_capacity("default")
        assert cap.total_mb == 10 * 1024 * 1024
        assert cap.free_mb <= cap.total_mb
        # 7 setup commands + 2 reads, on one connection.
        assert s.round_trips == 9


async def test_volume_lifecycle(group: Group) -> None:
    rule = c.AccessRule(initiator=INITIATOR)
    async with open_session(group.endpoint) as s:
        ops = SanOps(s, 100)
        ref = await ops.create_volume(VolumeSpec("one-7", 1024, pool="default", access=(rule,)))
        assert ref.iqn.startswith("iqn.2001-05.com.equallogic:0-8a0906-")
        assert ref.iqn.endswith("-one-7")
        assert await ops.volume_iqn("one-7") == ref.iqn
        info = await ops.volume_info("one-7")
        assert info is not None
        assert info.raw["MultiHostAccess"] == "enabled"
        assert info.description == "eqliscsi ds=100"

        # oned retries the create: same result, no second access record.
        again = await ops.create_volume(VolumeSpec("one-7", 1024, pool="default", access=(rule,)))
        assert again == ref
        records = await ops.access_records("one-7")
        assert [r.initiator for r in records] == [INITIATOR]

        await ops.resize_volume("one-7", 2048)
        info = await ops.volume_info("one-7")
        assert info is not None and info.size_mb == 2048

        snap = await ops.snapshot_create("one-7", "snap-0")
        assert snap == "snap-0"
        await ops.snapshot_restore("one-7", "snap-0")
        clone = await ops.snapshot_clone("one-7", "snap-0", VolumeSpec("one-8", 3072))
        assert clone.iqn.endswith("-one-8") and clone.iqn != ref.iqn
        info = await ops.volume_info("one-8")
        assert info is not None and info.size_mb == 3072
        assert info.description == "eqliscsi ds=100"
        assert await ops.snapshot_delete("one-7", "snap-0") is True
        assert await ops.snapshot_delete("one-7", "snap-0") is False

        copy = await ops.clone_volume("one-7", VolumeSpec("one-9", 4096))
        info = await ops.volume_info("one-9")
        assert info is not None and info.size_mb == 4096 and info.iqn == copy.iqn

        assert await ops.remove_access("one-7", [rule]) == 1
        assert await ops.access_records("one-7") == []

        # Another datastore's operations may not touch our volumes, and vice versa.
        with pytest.raises(SanNotOwned):
            await SanOps(s, 101).delete_volume("one-7")
        with pytest.raises(SanObjectExists):
            await SanOps(s, 101).create_volume(VolumeSpec("one-7", 2048, pool="default"))

        for name in ("one-7", "one-8", "one-9"):
            assert await ops.delete_volume(name) is True
            assert await ops.delete_volume(name) is False
        assert await ops.volume_info("one-7") is None


async def test_create_undo_leaves_no_volume(group: Group) -> None:
    group.fake.set_faults(Faults(error_at="volume select one-5 access create"))
    async with open_session(group.endpoint) as s:
        ops = SanOps(s, 100)
        with pytest.raises(SanCommandError, match="Injected failure"):
            await ops.create_volume(
                VolumeSpec("one-5", 100, access=(c.AccessRule(initiator=INITIATOR),))
            )
        assert await ops.volume_info("one-5") is None


async def test_wrong_password(group: Group) -> None:
    ep = with_(group.endpoint, password=Secret(b"wrong-password", origin="test"))
    with pytest.raises(SanAuthError) as exc:
        async with open_session(ep):
            pass
    assert "wrong-password" not in str(exc.value)


async def test_unknown_host_key_is_refused(group: Group) -> None:
    empty = group.known_hosts.with_name("empty_known_hosts")
    empty.write_text("")
    with pytest.raises(SanHostKeyError):
        async with open_session(with_(group.endpoint, known_hosts=str(empty))):
            pass


async def test_pinned_fingerprint(group: Group) -> None:
    ok = with_(
        group.endpoint,
        host_key_policy=HostKeyPolicy.PINNED,
        host_key_fingerprint=group.fingerprint,
        known_hosts=None,
    )
    async with open_session(ok) as s:
        assert s.group == "group-0"
    bad = with_(ok, host_key_fingerprint="SHA256:" + "A" * 43)
    with pytest.raises(SanHostKeyError):
        async with open_session(bad):
            pass


async def test_trust_on_first_use(group: Group) -> None:
    tofu_file = group.known_hosts.with_name("tofu_known_hosts")
    ep = with_(
        group.endpoint, host_key_policy=HostKeyPolicy.TRUST_ON_FIRST_USE, known_hosts=str(tofu_file)
    )
    async with open_session(ep):
        pass
    recorded = tofu_file.read_text()
    assert recorded.strip() == group.host_key_line
    assert (tofu_file.stat().st_mode & 0o077) == 0
    async with open_session(ep):  # second time: the recorded key matches
        pass
    # A changed key is refused, never re-learned.
    host, rest = group.host_key_line.split(" ", 1)
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    tofu_file.write_text(f"{host} {other}\n")
    with pytest.raises(SanHostKeyError):
        async with open_session(ep):
            pass
    assert other in tofu_file.read_text()
    assert rest not in tofu_file.read_text()


async def test_stalled_command_times_out(group: Group) -> None:
    group.fake.set_faults(Faults(stall_at="volume create"))
    ep = with_(group.endpoint, command_timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises(SanTimeout) as exc:
        async with open_session(ep) as s:
            await SanOps(s, 100).create_volume(VolumeSpec("one-1", 100))
    assert time.monotonic() - t0 < 8
    assert exc.value.mutating_sent  # the caller must not blindly retry a create


async def test_dropped_read_is_retried(group: Group) -> None:
    # The first session drops at the read; the retry (a new connection) succeeds.
    group.fake.set_faults(Faults(drop_at="grpparams show"))
    calls = 0

    async def action(s: object) -> str:
        nonlocal calls
        calls += 1
        if calls == 2:
            group.fake.set_faults(Faults())
        return await SanOps(s, 100).group_ip()  # type: ignore[arg-type]

    assert await with_session(group.endpoint, action, attempts=3, backoff=0.05) == "127.0.0.1"
    assert calls == 2


async def test_dropped_mutation_is_not_retried(group: Group) -> None:
    group.fake.set_faults(Faults(drop_at="volume create"))
    calls = 0

    async def action(s: object) -> object:
        nonlocal calls
        calls += 1
        return await SanOps(s, 100).create_volume(VolumeSpec("one-2", 100))  # type: ignore[arg-type]

    with pytest.raises(SanConnectionError) as exc:
        await with_session(group.endpoint, action, attempts=3, backoff=0.05)
    assert exc.value.mutating_sent
    assert calls == 1


async def test_concurrent_sessions(group: Group) -> None:
    async def one(i: int) -> str:
        async with open_session(group.endpoint) as s:
            ref = await SanOps(s, 100).create_volume(VolumeSpec(f"par-{i}", 100))
            return ref.iqn

    iqns = await asyncio.gather(*(one(i) for i in range(6)))
    assert len(set(iqns)) == 6


async def test_chap_user_and_chap_access(group: Group, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = Secret(b"chap-secret-0123", origin="test")
    async with open_session(group.endpoint) as s:
        ops = SanOps(s, 100)
        assert await ops.ensure_chap_user("one-ds100", secret) is True
        assert await ops.ensure_chap_user("one-ds100", secret) is False
        with pytest.raises(SanObjectExists, match="another secret"):
            await ops.ensure_chap_user("one-ds100", Secret(b"other-secret-456", origin="t"))
        rule = c.AccessRule(username="one-ds100", ipaddress="127.0.0.*")
        await ops.create_volume(VolumeSpec("chap-1", 100, access=(rule,)))
        (rec,) = await ops.access_records("chap-1")
        assert (rec.username, rec.authmethod, rec.ipaddress) == ("one-ds100", "chap", "127.0.0.*")
        assert await ops.delete_volume("chap-1") is True
        assert await ops.delete_chap_user("one-ds100") is True
        assert await ops.delete_chap_user("one-ds100") is False
    assert "chap-secret-0123" not in caplog.text
    assert "other-secret-456" not in caplog.text
