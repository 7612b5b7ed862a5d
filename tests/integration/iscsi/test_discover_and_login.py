"""``discover_and_login`` against real targets (tgt; LIO in the guest tier).

The overlapped API must give what ``discover`` then ``login`` give: a session when
the target is listed and the credentials hold, the same typed errors otherwise, and
never a session left on the target when either half failed.
"""

from __future__ import annotations

import pytest

from eqliscsi.iscsi_discovery import (
    Auth,
    AuthenticationFailed,
    IscsiConnectionError,
    Portal,
    TargetNotListed,
    discover_and_login,
)
from rig.targets.base import TargetBackend
from rig.targets.tgt import free_port

from .conftest import MakeBackend, MakeDisk, chap
from .test_client import IQN, SECRET, USER, lib_portal, one_way, sessions_drain, sessions_settle

pytestmark: list[pytest.MarkDecorator] = []

WRONG = "wrong-secret-00001"


@pytest.mark.parametrize(
    ("target_chap", "discovery_chap", "login_auth", "discovery_auth", "name", "error"),
    [
        (False, False, Auth(), None, IQN, None),
        (True, True, one_way(), None, IQN, None),
        (True, False, one_way(), Auth(), IQN, None),
        (False, False, Auth(), None, IQN + "-missing", TargetNotListed),
        (True, True, one_way(), None, IQN + "-missing", TargetNotListed),
        (True, True, one_way(secret=WRONG), one_way(), IQN, AuthenticationFailed),
        (True, True, one_way(), one_way(secret=WRONG), IQN, AuthenticationFailed),
        (True, False, Auth(), None, IQN, AuthenticationFailed),
    ],
    ids=["open", "chap-both", "chap-target-only", "not-listed", "not-listed-chap",
         "wrong-login-secret", "wrong-discovery-secret", "target-wants-chap"],
)  # fmt: skip
async def test_discover_and_login(
    backend: TargetBackend,
    make_disk: MakeDisk,
    target_chap: bool,
    discovery_chap: bool,
    login_auth: Auth,
    discovery_auth: Auth | None,
    name: str,
    error: type[Exception] | None,
) -> None:
    backend.create_target(IQN, make_disk())
    if target_chap:
        backend.set_chap(IQN, chap(USER, SECRET), None)
    if discovery_chap:
        backend.set_discovery_chap(chap(USER, SECRET), None)
    portal = lib_portal(backend.portal)
    if error is None:
        async with discover_and_login(
            portal, name, auth=login_auth, discovery_auth=discovery_auth, timeout=10
        ) as session:
            assert session.tsih != 0 and session.target == name
            assert [t.name for t in session.discovered] == [name]
            assert await sessions_settle(backend, IQN, 1) == 1
    else:
        with pytest.raises(error):
            async with discover_and_login(
                portal, name, auth=login_auth, discovery_auth=discovery_auth, timeout=10
            ):
                raise AssertionError("a failed discovery or login yielded a session")
    # Either way nothing is left behind: the session was logged out, or never made.
    assert await sessions_drain(backend, IQN) == 0


async def test_nothing_listening() -> None:
    with pytest.raises(IscsiConnectionError, match="Cannot connect"):
        async with discover_and_login(Portal("127.0.0.1", free_port()), IQN, timeout=5):
            raise AssertionError("unreachable")


@pytest.mark.needs_backend("redirects", portals=2)
async def test_discover_and_login_follows_a_redirect(
    make_backend: MakeBackend, make_disk: MakeDisk
) -> None:
    # EqualLogic's shape: discovery at the group portal, the login redirected to a
    # member.  The held final request belongs to the member's connection.
    group, member = make_backend("127.0.0.1"), make_backend("127.0.0.2")
    for b in (group, member):
        b.create_target(IQN, make_disk())
        b.set_chap(IQN, chap(USER, SECRET), None)
    group.set_discovery_chap(chap(USER, SECRET), None)
    group.set_redirect(IQN, member.portal)
    async with discover_and_login(lib_portal(group.portal), IQN, auth=one_way()) as session:
        assert session.redirected_to == lib_portal(member.portal)
        assert session.connected_portal == lib_portal(member.portal)
        assert await sessions_settle(member, IQN, 1) == 1
    assert await sessions_drain(member, IQN) == 0
    assert await sessions_drain(group, IQN) == 0
