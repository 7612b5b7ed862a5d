"""Opening a login at CSG=1 when no CHAP is configured (``start_operational``).

libiscsi and open-iscsi start at the operational stage with every key in one PDU
when no user is set (reference §4): one login round trip instead of two.  A target
that requires authentication fails it with 0x0201, which must still read as "give
the CHAP user and secret", and configured CHAP always goes through security.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eqliscsi.errors import IscsiError
from eqliscsi.iscsi_discovery import Auth, ChapCredentials, Portal
from eqliscsi.iscsi_discovery._login import LoginConfig, LoginState, LoginSucceeded
from eqliscsi.iscsi_discovery._pdu import LoginRequest
from eqliscsi.iscsi_discovery._text import decode_text
from eqliscsi.iscsi_discovery.errors import AuthMethodRejected, TargetNotFound
from eqliscsi.secret import Secret

from .fake_target import FakeTarget, Lun, TargetConfig
from .helpers import INITIATOR, connect, run_login

IQN = "iqn.2026-01.test:vol1"
GROUP = Portal("127.0.0.1", 3260)
MEMBER = Portal("127.0.0.2", 3262)
ALICE = ChapCredentials("alice", Secret(b"alice-secret-16b"))


def _cfg(**kw: object) -> TargetConfig:
    return TargetConfig(targets={IQN: {0: Lun()}}, **kw)  # type: ignore[arg-type]


@dataclass
class Case:
    target: TargetConfig
    discovery: bool = False
    auth: Auth = field(default_factory=Auth)
    rounds: int = 1  # login round trips on the (last) connection
    expect: type[IscsiError] | None = None
    match: str | None = None
    member: TargetConfig | None = None


CASES = [
    pytest.param(Case(_cfg(), discovery=True), id="discovery-one-round-trip"),
    pytest.param(Case(_cfg()), id="normal-one-round-trip"),
    pytest.param(Case(_cfg(propose_keys=True), rounds=2), id="lio-proposes-keys"),
    pytest.param(Case(_cfg(nsg_downgrade=True)), id="nsg-downgrade-irrelevant-at-csg1"),
    pytest.param(
        Case(_cfg(redirect_to=f"{MEMBER.address}:{MEMBER.port}"), member=_cfg()),
        id="redirected-then-one-round-trip",
    ),
    pytest.param(
        Case(
            _cfg(chap=("alice", b"alice-secret-16b")),
            expect=AuthMethodRejected,
            match="requires authentication",
        ),
        id="chap-required-0201",
    ),
    pytest.param(Case(_cfg(), expect=TargetNotFound, match="does not serve"), id="unknown-target"),
    pytest.param(
        Case(_cfg(chap=("alice", b"alice-secret-16b")), auth=Auth(chap=ALICE), rounds=4),
        id="chap-configured-uses-security-stage",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_start_operational_table(case: Case) -> None:
    name = "iqn.2026-01.test:nope" if case.expect is TargetNotFound else IQN
    config = LoginConfig(
        GROUP, INITIATOR, None if case.discovery else name, case.auth, start_operational=True
    )
    portals = {str(GROUP): case.target}
    if case.member is not None:
        portals[str(MEMBER)] = case.member
    if case.expect is not None:
        with pytest.raises(case.expect, match=case.match):
            connect(config, portals)
        return
    conn = connect(config, portals)
    assert conn.target.violations == [] and conn.target.ffp
    done = conn.history[-1]
    assert isinstance(done, LoginSucceeded)
    # The operational keys were offered, so what we declared holds (not the default).
    assert conn.session.params.max_recv_data_segment_length == 262144
    _, _, rounds = run_login(conn.config, FakeTarget(portals[str(conn.config.portal)]))
    assert rounds == case.rounds


def test_first_pdu_is_csg1_with_every_key() -> None:
    config = LoginConfig(GROUP, INITIATOR, IQN, Auth(), start_operational=True)
    target = FakeTarget(_cfg())
    machine, _, rounds = run_login(config, target)
    assert rounds == 1 and machine.state is LoginState.FULL_FEATURE
    first = target.first
    assert isinstance(first, LoginRequest)
    assert (first.csg, first.nsg, first.transit) == (1, 3, True)
    keys = dict(decode_text(first.data))
    assert keys["InitiatorName"] == INITIATOR and keys["TargetName"] == IQN
    assert keys["SessionType"] == "Normal" and "AuthMethod" not in keys
    assert keys["MaxRecvDataSegmentLength"] == "262144" and keys["ErrorRecoveryLevel"] == "0"


def test_default_still_opens_with_security() -> None:
    target = FakeTarget(_cfg())
    _, _, rounds = run_login(LoginConfig(GROUP, INITIATOR, IQN, Auth()), target)
    assert rounds == 2
    assert target.first is not None and target.first.csg == 0


@settings(max_examples=40, deadline=None)
@given(
    target_chap=st.booleans(),
    propose=st.booleans(),
    discovery=st.booleans(),
    start_operational=st.booleans(),
)
def test_outcome_does_not_depend_on_the_first_stage(
    target_chap: bool, propose: bool, discovery: bool, start_operational: bool
) -> None:
    """Without credentials, both openings succeed or fail alike, with the same error."""
    cfg = _cfg(chap=("alice", b"alice-secret-16b") if target_chap else None, propose_keys=propose)
    config = LoginConfig(
        GROUP, INITIATOR, None if discovery else IQN, Auth(), start_operational=start_operational
    )
    try:
        conn = connect(config, {str(GROUP): cfg})
    except AuthMethodRejected as exc:
        assert target_chap
        assert "requires authentication" in str(exc)
        return
    assert not target_chap
    assert conn.target.violations == []
