"""The fake group's redirects behind NAT (what the san container configures), with the
recording backend: which portal redirects where, and the command line that sets it up."""

from __future__ import annotations

from pathlib import Path

import pytest

from rig.fake_eql.__main__ import _parse
from rig.fake_eql.dataplane import DataPlane, RecordingBackend
from rig.fake_eql.model import LunOp, TargetSpec
from rig.targets.base import Portal

IQN = "iqn.2001-05.com.equallogic:0-8a0906-000000000-0000000000000001-vol"
MEMBER = Portal("0.0.0.0", 41001)


def _plane(
    tmp_path: Path, **kwargs: object
) -> tuple[DataPlane, RecordingBackend, RecordingBackend]:
    group, member = RecordingBackend(Portal("0.0.0.0", 3260)), RecordingBackend(MEMBER)
    plane = DataPlane(group, tmp_path / "luns", member=member, **kwargs)  # type: ignore[arg-type]
    plane.apply([LunOp("allocate", "u1", 1024 * 1024)])
    plane.reconcile({IQN: TargetSpec(IQN, "u1", None)})
    return plane, group, member


@pytest.mark.parametrize(
    ("redirect", "expected"),
    [(None, MEMBER), (Portal("172.20.0.2", 41001), Portal("172.20.0.2", 41001))],
    ids=["default-member-portal", "configured-address"],
)
def test_group_redirects_to(tmp_path: Path, redirect: Portal | None, expected: Portal) -> None:
    _, group, member = _plane(tmp_path, redirect=redirect)
    assert group.targets[IQN].redirect == expected
    assert member.targets[IQN].redirect is None  # the member serves; it never redirects


def test_extra_portals_redirect_each_to_their_own_address(tmp_path: Path) -> None:
    host_side = RecordingBackend(Portal("0.0.0.0", 3262))
    to = Portal("127.0.0.1", 41001)
    plane, group, _ = _plane(
        tmp_path, redirect=Portal("172.20.0.2", 41001), more_groups=[(host_side, to)]
    )
    assert host_side.targets[IQN].redirect == to
    assert group.targets[IQN].redirect == Portal("172.20.0.2", 41001)
    plane.reconcile({})  # volume gone: gone from every portal
    assert host_side.targets == {} and group.targets == {}


def test_extra_portals_need_a_member(tmp_path: Path) -> None:
    extra = (RecordingBackend(), Portal("127.0.0.1", 1))
    with pytest.raises(ValueError, match="member"):
        DataPlane(RecordingBackend(), tmp_path, more_groups=[extra])


def test_san_container_command_line_parses() -> None:
    # What rig/docker/san/entrypoint.sh passes (addresses as Docker would give them).
    args = _parse(
        [
            "--state", "/var/lib/eqliscsi/san", "--listen", "0.0.0.0:22",
            "--target-backend", "tgt", "--group-name", "rig-group", "--account", "grpadmin",
            "--password-file", "/etc/eqliscsi/san-password", "--iscsi-portal", "0.0.0.0:3260",
            "--member-port", "41001", "--redirect-to", "172.20.0.2:41001",
            "--extra-portal", "3262=127.0.0.1:41001", "--group-ip", "172.20.0.2",
        ]
    )  # fmt: skip
    assert (args.member_port, args.redirect_to, args.extra_portal, args.group_ip) == (
        41001,
        "172.20.0.2:41001",
        ["3262=127.0.0.1:41001"],
        "172.20.0.2",
    )
    entrypoint = (Path(__file__).parents[3] / "rig/docker/san/entrypoint.sh").read_text()
    for option in ("--member-port", "--redirect-to", "--extra-portal", "--group-ip"):
        assert option in entrypoint
