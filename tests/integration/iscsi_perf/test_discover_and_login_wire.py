"""``discover_and_login`` on the wire, through the recording relay in front of tgtd.

The overlap must not change a byte of either session, and the login's final request
(operational stage, T=1 NSG=3: the one whose answer makes the session) must never
leave before discovery listed the target.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eqliscsi.iscsi_discovery import (
    Auth,
    AuthenticationFailed,
    ChapCredentials,
    TargetNotListed,
    discover_and_login,
)
from eqliscsi.iscsi_discovery._pdu import LoginRequest, LogoutRequest, Pdu, TextRequest
from eqliscsi.iscsi_discovery._text import decode_text, text_dict
from eqliscsi.secret import Secret
from rig.targets.base import ChapAccount
from rig.targets.tgt import TgtBackend

from .conftest import Relay

pytestmark = pytest.mark.tgt

IQN = "iqn.2026-01.test.eqliscsi.join:vol"
USER, SECRET = "join-user", "join-secret-000001"


def _auth(secret: str = SECRET) -> Auth:
    return Auth(chap=ChapCredentials(USER, Secret(secret.encode())))


def _sessions(relay: Relay) -> dict[str, list[Pdu]]:
    """Each connection's PDUs, by the SessionType of its first Login Request."""
    out: dict[str, list[Pdu]] = {}
    for n in range(len(relay.sent)):
        pdus = relay.pdus(n)
        first = pdus[0]
        assert isinstance(first, LoginRequest)
        out[text_dict(decode_text(first.data))["SessionType"]] = pdus
    return out


def _stages(pdus: list[Pdu]) -> list[tuple[int, int, bool]]:
    return [(p.csg, p.nsg, p.transit) for p in pdus if isinstance(p, LoginRequest)]


@pytest.mark.parametrize(
    ("target", "login_secret", "discovery_auth", "error", "normal_stages"),
    [
        # Both sessions exactly as discover() and login() send them.
        (IQN, SECRET, None, None, [(0, 0, False), (0, 0, False), (0, 1, True), (1, 3, True)]),
        # Discovery fails its CHAP: the login may have passed security, but its
        # final request was never sent, so tgt made no session.
        (IQN, SECRET, _auth("wrong-secret-00001"), AuthenticationFailed, None),
        # tgt answers SendTargets=<name> with nothing for a name it does not serve.
        (IQN + "-other", SECRET, None, TargetNotListed, None),
        # The login fails its CHAP after discovery listed the target: the Discovery
        # session still ends with its Logout.
        (IQN, "wrong-secret-00001", _auth(), AuthenticationFailed,
         [(0, 0, False), (0, 0, False), (0, 1, True)]),
    ],
    ids=["found", "discovery-chap-fails", "not-listed", "login-chap-fails"],
)  # fmt: skip
async def test_final_login_request_waits_for_the_listing(
    tgt: TgtBackend,
    disk: Path,
    relay: Relay,
    target: str,
    login_secret: str,
    discovery_auth: Auth | None,
    error: type[Exception] | None,
    normal_stages: list[tuple[int, int, bool]] | None,
) -> None:
    tgt.create_target(IQN, disk)
    tgt.create_target(IQN + "-other", disk)
    account = ChapAccount(USER, Secret(SECRET.encode()))
    tgt.set_chap(IQN, account, None)
    tgt.set_discovery_chap(account, None)
    tgt.set_initiators(IQN + "-other", ["iqn.2026-01.test.eqliscsi.join:someone-else"])
    if error is None:
        async with discover_and_login(
            relay.portal, target, auth=_auth(login_secret), discovery_auth=discovery_auth
        ) as session:
            assert session.discovered[0].name == target
    else:
        with pytest.raises(error):
            async with discover_and_login(
                relay.portal, target, auth=_auth(login_secret), discovery_auth=discovery_auth
            ):
                raise AssertionError("unreachable")
    sessions = _sessions(relay)
    discovery = sessions["Discovery"]
    if discovery_auth is None or discovery_auth == _auth():
        # The Discovery session ran to its Logout in every case it logged in.
        assert [type(p) for p in discovery if not isinstance(p, LoginRequest)] == [
            TextRequest,
            LogoutRequest,
        ]
    normal = sessions.get("Normal", [])
    if normal_stages is not None:
        assert _stages(normal) == normal_stages
        assert isinstance(normal[-1], LogoutRequest if error is None else LoginRequest)
    else:
        # The login ran alongside discovery (its security stage started: the first
        # request always goes out while discovery waits for its first answer) ...
        assert _stages(normal)[0] == (0, 0, False)
        # ... but never sent the operational request, whose answer makes the session.
        assert all(stage[0] == 0 for stage in _stages(normal))
        assert tgt.session_count(target) == 0
