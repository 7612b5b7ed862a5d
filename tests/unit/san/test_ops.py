"""Operations: exact command sequences, ownership, undo and idempotence.

The runner here replays a script of (expected CLI line, array reply) pairs; every command
the operation sends must be the next one in the script, and the script must be used up.
The replies are the formats of equallogic-cli.md §5.  The same operations run against the
fake Group Manager shell over SSH in tests/integration/san.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from eqliscsi.san import commands as c
from eqliscsi.san.conversation import CommandCompleted, check_result
from eqliscsi.san.errors import (
    SanCommandError,
    SanInvalidValue,
    SanNotOwned,
    SanObjectExists,
    SanObjectMissing,
    SanProtocolError,
)
from eqliscsi.san.ops import SanOps, VolumeSpec, tag_owner
from eqliscsi.san.parsers import find_error

IQN_PREFIX = "iqn.2001-05.com.equallogic:0-8a0906-83bcb3401-16e0002fd0a46f3d-"
MISSING = "% Error - Volume does not exist."


def show(name: str, size: str = "1GB", desc: str = "eqliscsi ds=100", conns: int = 0) -> str:
    return "\n".join(
        [
            f"Name: {name}",
            f"Size: {size}",
            f"iSCSI Name: {IQN_PREFIX}{name}",
            f"Description: {desc}",
            "Status: online",
            f"Connections: {conns}",
        ]
    )


ACCESS_HEAD = (
    "ID  Initiator                     Ipaddress       AuthMethod UserName   Apply-To\n"
    "--- ----------------------------- --------------- ---------- ---------- --------"
)


@dataclass
class ScriptedRunner:
    script: list[tuple[str, str]]
    sent: list[str] = field(default_factory=list)

    async def run(self, command: c.Command, *, check: bool = True) -> CommandCompleted:
        line = command.line()
        self.sent.append(line)
        assert self.script, f"unexpected command {line!r}"
        expected, reply = self.script.pop(0)
        assert line == expected
        lines = tuple(reply.splitlines())
        res = CommandCompleted(command, lines, find_error(lines), None, "", ())
        return check_result(res) if check else res

    def done(self) -> None:
        assert self.script == [], f"commands not sent: {self.script}"


RULE = c.AccessRule(initiator="iqn.1993-08.org.debian:01:host1")
CREATE = 'volume create one-1 1024MB description "eqliscsi ds=100" online pool default'


async def test_create_sends_create_multihost_access() -> None:
    r = ScriptedRunner(
        [
            (CREATE, f"Volume creation succeeded.\niSCSI target name is {IQN_PREFIX}one-1."),
            ("volume select one-1 multihost-access enable", ""),
            ("volume select one-1 access show", ACCESS_HEAD),
            (
                "volume select one-1 access create initiator iqn.1993-08.org.debian:01:host1 "
                "authmethod none apply-to both",
                "Access control record created with ID 1.",
            ),
        ]
    )
    ref = await SanOps(r, 100).create_volume(
        VolumeSpec("one-1", 1024, pool="default", access=(RULE,))
    )
    assert ref.iqn == IQN_PREFIX + "one-1"
    r.done()


async def test_create_undoes_the_volume_when_access_fails() -> None:
    r = ScriptedRunner(
        [
            (CREATE, f"iSCSI target name is {IQN_PREFIX}one-1."),
            ("volume select one-1 multihost-access enable", ""),
            ("volume select one-1 access show", ACCESS_HEAD),
            (
                "volume select one-1 access create initiator iqn.1993-08.org.debian:01:host1 "
                "authmethod none apply-to both",
                "% Error - Too many access records.",
            ),
            ("volume select one-1 offline", ""),
            ("volume delete one-1", "Volume deletion succeeded."),
        ]
    )
    with pytest.raises(SanCommandError) as exc:
        await SanOps(r, 100).create_volume(
            VolumeSpec("one-1", 1024, pool="default", access=(RULE,))
        )
    assert "Too many access records" in str(exc.value)
    r.done()


async def test_failed_undo_is_named_in_the_error() -> None:
    r = ScriptedRunner(
        [
            (CREATE, f"iSCSI target name is {IQN_PREFIX}one-1."),
            ("volume select one-1 multihost-access enable", "% Error - Internal error."),
            ("volume select one-1 offline", ""),
            ("volume delete one-1", "% Error - Volume is busy."),
        ]
    )
    with pytest.raises(SanCommandError) as exc:
        await SanOps(r, 100).create_volume(VolumeSpec("one-1", 1024, pool="default"))
    assert any("one-1 could not be deleted" in n for n in exc.value.__notes__)
    r.done()


async def test_create_again_adopts_our_volume_of_the_same_size() -> None:
    r = ScriptedRunner(
        [
            (CREATE, "% Error - Volume name already exists."),
            ("volume select one-1 show", show("one-1", "1GB")),
            ("volume select one-1 multihost-access enable", ""),
        ]
    )
    ref = await SanOps(r, 100).create_volume(VolumeSpec("one-1", 1024, pool="default"))
    assert ref.name == "one-1"
    r.done()


@pytest.mark.parametrize(
    ("size", "desc"),
    [
        pytest.param("2GB", "eqliscsi ds=100", id="other-size"),
        pytest.param("1GB", "eqliscsi ds=101", id="other-datastore"),
        pytest.param("1GB", "", id="untagged"),
    ],
)
async def test_create_again_refuses_a_foreign_volume(size: str, desc: str) -> None:
    r = ScriptedRunner(
        [
            (CREATE, "% Error - Volume name already exists."),
            ("volume select one-1 show", show("one-1", size, desc)),
        ]
    )
    with pytest.raises(SanObjectExists):
        await SanOps(r, 100).create_volume(VolumeSpec("one-1", 1024, pool="default"))
    r.done()


async def test_create_error_without_volume_is_raised() -> None:
    r = ScriptedRunner(
        [
            (CREATE, "% Error - Not enough free space in pool."),
            ("volume select one-1 show", MISSING),
        ]
    )
    with pytest.raises(SanCommandError, match="free space"):
        await SanOps(r, 100).create_volume(VolumeSpec("one-1", 1024, pool="default"))
    r.done()


async def test_delete_ours() -> None:
    r = ScriptedRunner(
        [
            ("volume select one-1 show", show("one-1")),
            ("volume select one-1 offline", ""),
            ("volume delete one-1", "Volume deletion succeeded."),
        ]
    )
    assert await SanOps(r, 100).delete_volume("one-1") is True
    r.done()


async def test_delete_missing_succeeds() -> None:
    r = ScriptedRunner([("volume select one-1 show", MISSING)])
    assert await SanOps(r, 100).delete_volume("one-1") is False
    r.done()


@pytest.mark.parametrize(
    "desc",
    [
        pytest.param("", id="untagged"),
        pytest.param("eqliscsi ds=1000", id="prefix-of-other-id"),
        pytest.param("OpenStack Managed", id="cinder"),
        pytest.param("x eqliscsi ds=100", id="tag-not-at-start"),
    ],
)
async def test_delete_refuses_foreign_volumes(desc: str) -> None:
    r = ScriptedRunner([("volume select one-1 show", show("one-1", desc=desc))])
    with pytest.raises(SanNotOwned):
        await SanOps(r, 100).delete_volume("one-1")
    r.done()


async def test_delete_refuses_connected_volume() -> None:
    r = ScriptedRunner([("volume select one-1 show", show("one-1", conns=2))])
    with pytest.raises(SanCommandError, match="2 iSCSI connection"):
        await SanOps(r, 100).delete_volume("one-1")
    r.done()


async def test_clone_grows_and_tags() -> None:
    r = ScriptedRunner(
        [
            ("volume select src show", show("src", "1GB")),
            (
                'volume select src clone dst description "eqliscsi ds=100"',
                f"iSCSI target name is {IQN_PREFIX}dst.",
            ),
            ('volume select dst description "eqliscsi ds=100"', ""),
            ("volume select dst size 4096MB no-snap", ""),
            ("volume select dst multihost-access enable", ""),
        ]
    )
    ref = await SanOps(r, 100).clone_volume("src", VolumeSpec("dst", 4096))
    assert ref.iqn.endswith("-dst")
    r.done()


async def test_clone_cannot_shrink() -> None:
    r = ScriptedRunner([("volume select src show", show("src", "10GB"))])
    with pytest.raises(SanInvalidValue):
        await SanOps(r, 100).clone_volume("src", VolumeSpec("dst", 1024))
    r.done()


async def test_resize_grows_with_no_snap_and_refuses_shrink() -> None:
    r = ScriptedRunner(
        [
            ("volume select v show", show("v", "1GB")),
            ("volume select v size 2048MB no-snap", ""),
            ("volume select v show", show("v", "2GB")),
            ("volume select v show", show("v", "2GB")),
        ]
    )
    ops = SanOps(r, 100)
    await ops.resize_volume("v", 2048)
    await ops.resize_volume("v", 2048)  # same size: nothing sent
    with pytest.raises(SanInvalidValue, match="shrink"):
        await ops.resize_volume("v", 1024)
    r.done()


async def test_snapshot_create_renames_and_undoes_on_failure() -> None:
    r = ScriptedRunner(
        [
            ("volume select v show", show("v")),
            (
                'volume select v snapshot create-now description "eqliscsi ds=100"',
                "Snapshot creation succeeded.\nSnapshot name is v-2024-01-02-03:04:05.1",
            ),
            (
                "volume select v snapshot rename v-2024-01-02-03:04:05.1 snap-0",
                "% Error - Snapshot name already exists.",
            ),
            ("volume select v snapshot delete v-2024-01-02-03:04:05.1", ""),
        ]
    )
    with pytest.raises(SanObjectExists):
        await SanOps(r, 100).snapshot_create("v", "snap-0")
    r.done()


async def test_snapshot_delete_missing_succeeds() -> None:
    r = ScriptedRunner(
        [
            ("volume select v show", show("v")),
            ("volume select v show", show("v")),
            ("volume select v snapshot delete s1", "% Error - Snapshot does not exist."),
        ]
    )
    assert await SanOps(r, 100).snapshot_delete("v", "s1") is False
    r.done()


async def test_snapshot_restore_goes_offline_and_back() -> None:
    r = ScriptedRunner(
        [
            ("volume select v show", show("v")),
            ("volume select v offline", ""),
            ("volume select v snapshot select s1 restore", "% Error - Snapshot does not exist."),
            ("volume select v online", ""),
        ]
    )
    with pytest.raises(SanObjectMissing):
        await SanOps(r, 100).snapshot_restore("v", "s1")
    r.done()


async def test_access_is_not_duplicated_and_removed_by_content() -> None:
    table = (
        ACCESS_HEAD + "\n"
        "1   iqn.1993-08.org.debian:01:hos *.*.*.*         none                  both\n"
        "      t1\n"
        "2   iqn.1993-08.org.debian:01:hos *.*.*.*         none                  both\n"
        "      t2"
    )
    r = ScriptedRunner(
        [
            ("volume select v show", show("v")),
            ("volume select v access show", table),
            ("volume select v show", show("v")),
            ("volume select v show", show("v")),
            ("volume select v access show", table),
            ("volume select v access delete 1", ""),
        ]
    )
    ops = SanOps(r, 100)
    await ops.ensure_access("v", [RULE])  # record 1 exists: nothing created
    assert await ops.remove_access("v", [RULE]) == 1
    r.done()


async def test_half_made_acl_is_removed() -> None:
    rule2 = c.AccessRule(ipaddress="10.0.0.*")
    r = ScriptedRunner(
        [
            ("volume select v show", show("v")),
            ("volume select v access show", ACCESS_HEAD),
            (
                "volume select v access create initiator iqn.1993-08.org.debian:01:host1 "
                "authmethod none apply-to both",
                "",
            ),
            (
                "volume select v access create ipaddress 10.0.0.* authmethod none apply-to both",
                "% Error - Too many access records.",
            ),
            (
                "volume select v access show",
                ACCESS_HEAD + "\n"
                "7   iqn.1993-08.org.debian:01:hos *.*.*.*         none                  both\n"
                "      t1",
            ),
            ("volume select v access delete 7", ""),
        ]
    )
    with pytest.raises(SanCommandError):
        await SanOps(r, 100).ensure_access("v", [RULE, rule2])
    r.done()


async def test_reads() -> None:
    r = ScriptedRunner(
        [
            ("grpparams show", "Name: group-0\nGroup-Ipaddress: 10.1.2.3"),
            ("pool select default show", "TotalCapacity: 2TB\nFreeSpace: 1.5TB"),
            ("volume select v show", show("v", conns=3)),
            ("volume select v show", show("v")),
        ]
    )
    ops = SanOps(r, 100)
    assert await ops.group_ip() == "10.1.2.3"
    cap = await ops.pool_capacity("default")
    assert (cap.total_mb, cap.free_mb) == (2 * 1024 * 1024, 1572864)
    assert await ops.connection_count("v") == 3
    assert await ops.volume_iqn("v") == IQN_PREFIX + "v"
    r.done()


@pytest.mark.parametrize(
    ("desc", "owner"),
    [
        pytest.param("eqliscsi ds=100", 100, id="tag"),
        pytest.param("eqliscsi ds=7 image 3", 7, id="tag-with-more"),
        pytest.param("eqliscsi ds=7x", None, id="glued"),
        pytest.param("", None, id="empty"),
    ],
)
def test_tag_owner(desc: str, owner: int | None) -> None:
    assert tag_owner(desc) == owner


async def test_clone_retry_adopts_and_grows_our_clone() -> None:
    r = ScriptedRunner(
        [
            ("volume select src show", show("src", "1GB")),
            (
                'volume select src clone dst description "eqliscsi ds=100"',
                "% Error - Volume dst already exists.",
            ),
            ("volume select dst show", show("dst", "1GB")),
            ("volume select dst size 4096MB no-snap", ""),
            ("volume select dst multihost-access enable", ""),
        ]
    )
    ref = await SanOps(r, 100).clone_volume("src", VolumeSpec("dst", 4096))
    assert ref.iqn == IQN_PREFIX + "dst"
    r.done()


async def test_create_reads_the_iqn_back_when_the_output_is_unexpected() -> None:
    r = ScriptedRunner(
        [
            (CREATE, "Volume creation succeeded."),
            ("volume select one-1 show", show("one-1")),
            ("volume select one-1 multihost-access enable", ""),
        ]
    )
    ref = await SanOps(r, 100).create_volume(VolumeSpec("one-1", 1024, pool="default"))
    assert ref.iqn == IQN_PREFIX + "one-1"
    r.done()


async def test_create_without_any_iqn_is_undone() -> None:
    r = ScriptedRunner(
        [
            (CREATE, "Volume creation succeeded."),
            ("volume select one-1 show", "Name: one-1\nSize: 1GB"),
            ("volume select one-1 offline", ""),
            ("volume delete one-1", "Volume deletion succeeded."),
        ]
    )
    with pytest.raises(SanProtocolError):
        await SanOps(r, 100).create_volume(VolumeSpec("one-1", 1024, pool="default"))
    r.done()
