"""The login state machine against the fake target playing tgt- and LIO-like roles."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eqliscsi.errors import IscsiError
from eqliscsi.iscsi_discovery import (
    Auth,
    AuthenticationFailed,
    ChapAlgorithm,
    ChapCredentials,
    MutualAuthFailed,
    Portal,
    RedirectLoop,
    RemoteProtocolError,
    TargetNotFound,
)
from eqliscsi.iscsi_discovery._framing import encode_pdu
from eqliscsi.iscsi_discovery._login import (
    _TRANSITIONS,
    LoginConfig,
    LoginInput,
    LoginMachine,
    LoginRedirected,
    LoginState,
    LoginSucceeded,
    LoginWarning,
    RetryWithMd5,
    new_isid,
)
from eqliscsi.iscsi_discovery._negotiation import OperationalOffer, SessionType
from eqliscsi.iscsi_discovery._pdu import LoginResponse, Reject
from eqliscsi.iscsi_discovery._text import encode_text
from eqliscsi.iscsi_discovery.errors import (
    AuthMethodRejected,
    ChapAlgorithmMismatch,
    ChapAlgorithmRefused,
    InvalidIscsiName,
    LocalProtocolError,
    PduRejected,
)
from eqliscsi.secret import Secret

from .fake_target import LIO_CHAP_A, TGT_CHAP_A, FakeTarget, Lun, TargetConfig
from .helpers import INITIATOR, connect, run_login

IQN = "iqn.2026-01.test:vol1"
GROUP = Portal("127.0.0.1", 3260)
MEMBER = Portal("127.0.0.2", 3262)
ALICE = ChapCredentials("alice", Secret(b"alice-secret-16b"))
TARGET_ACCT = ChapCredentials("array", Secret(b"target-secret-16"))
MD5, SHA1, SHA256, SHA3 = (
    ChapAlgorithm.MD5,
    ChapAlgorithm.SHA1,
    ChapAlgorithm.SHA256,
    ChapAlgorithm.SHA3_256,
)


def _targets() -> dict[str, dict[int, Lun]]:
    return {IQN: {0: Lun()}}


def _cfg(**kw: object) -> TargetConfig:
    return TargetConfig(targets=_targets(), **kw)  # type: ignore[arg-type]


@dataclass
class Case:
    target: TargetConfig
    auth: Auth = field(default_factory=Auth)
    discovery: bool = False
    expect: type[IscsiError] | None = None
    match: str | None = None
    algorithm: ChapAlgorithm | None = None
    retried_md5: bool = False
    redirected: bool = False
    offer: OperationalOffer = field(default_factory=OperationalOffer)
    skip_operational: bool = False


CHAP_ALICE = ("alice", b"alice-secret-16b")
MUTUAL_ARRAY = ("array", b"target-secret-16")
ONE_WAY = Auth(chap=ALICE)
MUTUAL = Auth(chap=ALICE, mutual=TARGET_ACCT)

CASES = [
    pytest.param(Case(_cfg(), discovery=True), id="discovery-no-auth"),
    pytest.param(Case(_cfg()), id="normal-no-auth"),
    pytest.param(
        Case(
            _cfg(chap=CHAP_ALICE, chap_a=dict(TGT_CHAP_A), challenge_length=50),
            ONE_WAY,
            algorithm=MD5,
        ),
        id="chap-md5-tgt-50-byte-challenge",
    ),
    pytest.param(
        Case(_cfg(chap=CHAP_ALICE), ONE_WAY, discovery=True, algorithm=MD5), id="discovery-chap"
    ),
    pytest.param(
        Case(
            _cfg(chap=("alice", b"other-secret-xyz")),
            ONE_WAY,
            expect=AuthenticationFailed,
            match="for user alice at portal 127.0.0.1",
        ),
        id="wrong-secret",
    ),
    pytest.param(
        Case(_cfg(chap=("bob", b"alice-secret-16b")), ONE_WAY, expect=AuthenticationFailed),
        id="wrong-user",
    ),
    pytest.param(
        Case(_cfg(), ONE_WAY, expect=AuthMethodRejected, match="does not use CHAP"),
        id="chap-to-open-target",
    ),
    pytest.param(
        Case(
            _cfg(chap=CHAP_ALICE),
            Auth(),
            expect=AuthMethodRejected,
            match="requires authentication",
        ),
        id="none-to-chap-target",
    ),
    pytest.param(
        Case(_cfg(chap=CHAP_ALICE, mutual=MUTUAL_ARRAY), MUTUAL, algorithm=MD5), id="mutual-ok"
    ),
    pytest.param(
        Case(
            _cfg(chap=CHAP_ALICE, mutual=("array", b"not-the-secret!!")),
            MUTUAL,
            expect=MutualAuthFailed,
            match="CHAP_R is wrong",
        ),
        id="mutual-wrong-target-secret",
    ),
    pytest.param(
        Case(
            _cfg(chap=CHAP_ALICE, mutual=("other", b"target-secret-16")),
            MUTUAL,
            expect=MutualAuthFailed,
            match="another CHAP name",
        ),
        id="mutual-wrong-target-name",
    ),
    pytest.param(
        Case(
            _cfg(chap=CHAP_ALICE, missing_mutual="omit"),
            MUTUAL,
            expect=MutualAuthFailed,
            match="no CHAP_N/CHAP_R",
        ),
        id="mutual-lio-omits-response",
    ),
    pytest.param(
        Case(_cfg(chap=CHAP_ALICE, missing_mutual="fail"), MUTUAL, expect=AuthenticationFailed),
        id="mutual-tgt-without-outgoing-account",
    ),
    pytest.param(
        Case(
            _cfg(chap=CHAP_ALICE, mutual=MUTUAL_ARRAY, reflect_mutual=True),
            MUTUAL,
            expect=MutualAuthFailed,
            match="reflected",
        ),
        id="mutual-reflection",
    ),
    pytest.param(
        Case(
            _cfg(chap=CHAP_ALICE, chap_a=dict(TGT_CHAP_A)),
            Auth(chap=ALICE, algorithms=(SHA256, MD5)),
            algorithm=MD5,
            retried_md5=True,
        ),
        id="tgt-misnumbered-7-then-md5",
    ),
    pytest.param(
        Case(
            _cfg(chap=CHAP_ALICE),
            Auth(chap=ALICE, algorithms=(SHA3, SHA256, SHA1, MD5)),
            algorithm=SHA3,
        ),
        id="lio-sha3",
    ),
    pytest.param(
        Case(_cfg(chap=CHAP_ALICE), Auth(chap=ALICE, algorithms=(SHA256, MD5)), algorithm=SHA256),
        id="lio-sha256",
    ),
    pytest.param(
        Case(
            _cfg(chap=CHAP_ALICE, reject_chap_a_lists=True),
            Auth(chap=ALICE, algorithms=(SHA256, MD5)),
            algorithm=MD5,
            retried_md5=True,
        ),
        id="old-lio-rejects-lists-then-md5",
    ),
    pytest.param(
        Case(
            _cfg(chap=CHAP_ALICE, chap_a=dict(TGT_CHAP_A)),
            Auth(chap=ALICE, algorithms=(SHA256,)),
            expect=ChapAlgorithmRefused,
            match="offer MD5",
        ),
        id="sha256-only-no-silent-downgrade",
    ),
    pytest.param(
        Case(
            _cfg(chap=CHAP_ALICE, answer_chap_a=6),
            ONE_WAY,
            expect=ChapAlgorithmMismatch,
            match="CHAP_A=6 although we offered 5",
        ),
        id="target-answers-unoffered-chap-a",
    ),
    pytest.param(
        Case(
            _cfg(not_found_status=0x0203),
            expect=TargetNotFound,
            match="does not serve iqn.2026-01.test:nope",
        ),
        id="unknown-target-tgt",
    ),
    pytest.param(
        Case(_cfg(not_found_status=0x0301), expect=TargetNotFound), id="unknown-target-lio"
    ),
    pytest.param(
        Case(_cfg(nsg_downgrade=True), skip_operational=True), id="lio-nsg1-answer-to-nsg3"
    ),
    pytest.param(Case(_cfg(), skip_operational=True), id="straight-to-ffp"),
    pytest.param(Case(_cfg(propose_keys=True)), id="lio-proposes-keys"),
    pytest.param(
        Case(
            _cfg(digests=True),
            offer=OperationalOffer(
                header_digest=("CRC32C", "None"), data_digest=("CRC32C", "None")
            ),
        ),
        id="digests-negotiated",
    ),
    pytest.param(
        Case(
            _cfg(digests=False),
            offer=OperationalOffer(header_digest=("CRC32C",)),
            expect=RemoteProtocolError,
            match="HeaderDigest=None",
        ),
        id="tgt-answers-none-to-crc32c-only",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_login_table(case: Case, request: pytest.FixtureRequest) -> None:
    name = "iqn.2026-01.test:nope" if case.expect is TargetNotFound else IQN
    config = LoginConfig(
        GROUP,
        INITIATOR,
        None if case.discovery else name,
        case.auth,
        offer=case.offer,
        skip_operational=case.skip_operational,
    )
    portals = {str(GROUP): case.target}
    if case.expect is not None:
        with pytest.raises(case.expect, match=case.match) as info:
            connect(config, portals)
        # never a secret in the message
        for creds in (ALICE, TARGET_ACCT):
            assert creds.secret.reveal_str() not in str(info.value)
        return
    conn = connect(config, portals)
    assert conn.target.violations == []
    assert conn.target.ffp
    done = conn.history[-1]
    assert isinstance(done, LoginSucceeded)
    assert done.chap_algorithm == case.algorithm
    assert any(isinstance(e, RetryWithMd5) for e in conn.history) == case.retried_md5
    # all attempts of one logical login keep one ISID (reference §3)
    assert {t.first.isid for t in conn.targets_used if t.first} == {config.isid}
    assert done.tsih == 0x0100  # opaque, as tgt sent it
    params = conn.session.params
    if "digests" in request.node.callspec.id:
        assert params.header_digest and params.data_digest
    # what we declared is what we enforce: 262144 after an operational stage, else 8192
    skipped = case.skip_operational and not case.target.nsg_downgrade
    assert params.max_recv_data_segment_length == (8192 if skipped else 262144)


def test_chap_round_trips_like_tgt() -> None:
    """One-way CHAP: 3 security PDUs + 1 operational (reference §12: 4 round trips)."""
    target = FakeTarget(_cfg(chap=CHAP_ALICE, chap_a=dict(TGT_CHAP_A), challenge_length=50))
    _, events, rounds = run_login(LoginConfig(GROUP, INITIATOR, IQN, ONE_WAY), target)
    assert rounds == 4
    assert isinstance(events[-1], LoginSucceeded)
    assert target.violations == []


@pytest.mark.parametrize(
    ("detail", "permanent"),
    [
        pytest.param(1, False, id="0101"),
        pytest.param(2, True, id="0102"),
        pytest.param(0, False, id="0100-as-0101"),
    ],
)
def test_redirect_followed(detail: int, permanent: bool) -> None:
    group = _cfg(redirect_to=f"{MEMBER.address}:{MEMBER.port}", redirect_detail=detail)
    member = _cfg(chap=CHAP_ALICE)
    config = LoginConfig(GROUP, INITIATOR, IQN, ONE_WAY)
    target = FakeTarget(group)
    _, events, rounds = run_login(config, target)
    assert rounds == 1  # EqualLogic/tgt redirect the very first PDU
    assert events == [LoginRedirected(MEMBER, permanent)]
    conn = connect(config, {str(GROUP): group, str(MEMBER): member})
    assert conn.config.portal == MEMBER and conn.config.redirects == 1
    assert conn.targets_used[1].first is not None
    assert conn.targets_used[1].first.isid == config.isid
    assert conn.target.violations == []


def test_redirect_loop_stops() -> None:
    loop = _cfg(redirect_to="127.0.0.1:3260")
    config = LoginConfig(GROUP, INITIATOR, IQN, max_redirects=3)
    with pytest.raises(RedirectLoop, match="more than 3 times"):
        connect(config, {str(GROUP): loop})


def test_short_secret_warns_without_leaking() -> None:
    auth = Auth(chap=ChapCredentials("alice", Secret(b"tiny")))
    events = LoginMachine(LoginConfig(GROUP, INITIATOR, IQN, auth)).start()
    assert len(events) == 1 and isinstance(events[0], LoginWarning)
    assert "tiny" not in events[0].message


def test_isid_random_type() -> None:
    isid = new_isid(qualifier=0x0102)
    assert isid[0] == 0x80 and isid[4:] == b"\x01\x02" and len(isid) == 6
    assert new_isid() != new_isid()
    with pytest.raises(LocalProtocolError):
        LoginConfig(GROUP, INITIATOR, IQN, isid=bytes(6))
    with pytest.raises(InvalidIscsiName):
        LoginConfig(GROUP, INITIATOR, "", session_type=SessionType.NORMAL)
    with pytest.raises(LocalProtocolError):
        LoginConfig(GROUP, INITIATOR, None, session_type=SessionType.NORMAL)


# -- crafted responses ---------------------------------------------------------------


def _machine(auth: Auth | None = None) -> LoginMachine:
    auth = auth or Auth()
    m = LoginMachine(LoginConfig(GROUP, INITIATOR, IQN, auth, itt=7, isid=new_isid()))
    m.start()
    m.data_to_send()
    return m


def _resp(m: LoginMachine, **kw: object) -> bytes:
    fields: dict[str, object] = dict(
        isid=m.config.isid, itt=m.config.itt, csg=0, nsg=1, transit=True, statsn=5
    )
    fields.update(kw)
    return encode_pdu(LoginResponse(**fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        pytest.param({"itt": 8}, "another ITT", id="wrong-itt"),
        pytest.param({"isid": b"\x80\0\0\0\0\1"}, "another ITT or ISID", id="wrong-isid"),
        pytest.param({"version_active": 1}, "version 1", id="wrong-version"),
        pytest.param({"csg": 1}, "stage 1 instead of 0", id="wrong-csg"),
        pytest.param({"nsg": 0}, "from stage 0 to stage 0", id="nsg-not-above-csg"),
        pytest.param({"nsg": 2}, "to stage 2", id="nsg-reserved"),
        pytest.param({"cont": True}, "both T and C", id="t-and-c"),
        pytest.param(
            {"status_class": 1, "data": b""},
            "without a TargetAddress",
            id="redirect-without-address",
        ),
        pytest.param(
            {"data": encode_text([("AuthMethod", "CHAP")])},
            "AuthMethod=CHAP",
            id="chap-when-none-offered",
        ),
        pytest.param({"data": b"AuthMethod=None\0AuthMethod=None\0"}, "twice", id="duplicate-key"),
    ],
)
def test_bad_login_responses(kw: dict[str, object], match: str) -> None:
    m = _machine()
    with pytest.raises(RemoteProtocolError, match=match):
        m.receive_data(_resp(m, **kw))
    assert m.state is LoginState.FAILED
    with pytest.raises(LocalProtocolError):
        m.receive_data(b"")


def test_reject_during_login() -> None:
    m = _machine()
    with pytest.raises(PduRejected, match="reason 0x04"):
        m.receive_data(encode_pdu(Reject(reason=4, data=bytes(48))))


def test_chap_target_skipping_exchange_is_refused() -> None:
    m = _machine(ONE_WAY)
    with pytest.raises(RemoteProtocolError, match="skipped the CHAP exchange"):
        m.receive_data(_resp(m, data=encode_text([("AuthMethod", "CHAP")])))


def test_login_response_continuation() -> None:
    """C=1: the client sends empty requests in the same stage until C=0 (§11.12.2)."""
    m = _machine()
    text = encode_text([("AuthMethod", "None"), ("TargetAlias", "x" * 100)])
    m.receive_data(_resp(m, transit=False, cont=True, data=text[:10]))
    ack = m.data_to_send()
    assert ack[1] == 0x00 and len(ack) == 48  # T=0, CSG=0, empty
    events = m.receive_data(_resp(m, data=text[10:]))
    assert events == [] and m.state is LoginState.OPERATIONAL
    oper = m.data_to_send()
    assert oper[1] == 0x87 and b"MaxRecvDataSegmentLength=262144" in oper


def test_bytes_after_final_response_are_kept() -> None:
    m = _machine()
    m.receive_data(_resp(m))
    m.data_to_send()
    tail = b"\x20\x80" + bytes(46)
    events = m.receive_data(_resp(m, csg=1, nsg=3, statsn=6) + tail)
    assert isinstance(events[0], LoginSucceeded)
    assert m.take_remaining() == tail


def _input_response(m: LoginMachine, state: LoginState, kind: LoginInput) -> bytes:
    csg = 1 if state is LoginState.OPERATIONAL else 0
    by_kind: dict[LoginInput, dict[str, object]] = {
        LoginInput.CONTINUE: {"transit": False, "cont": True},
        LoginInput.STAY: {"transit": False},
        LoginInput.TO_OPERATIONAL: {"transit": True, "nsg": 1},
        LoginInput.TO_FULL_FEATURE: {"transit": True, "nsg": 3},
        LoginInput.REDIRECT: {"status_class": 1, "data": b"TargetAddress=10.0.0.1\0"},
        LoginInput.FAILURE: {"status_class": 2, "status_detail": 0},
    }
    extra: dict[str, object] = {"csg": csg, "data": b""}
    extra.update(by_kind[kind])
    return _resp(m, **extra)


ACTIVE = [
    s
    for s in LoginState
    if s
    not in (
        LoginState.IDLE,
        LoginState.FULL_FEATURE,
        LoginState.REDIRECTED,
        LoginState.RETRY_MD5,
        LoginState.FAILED,
    )
]


@pytest.mark.parametrize("state", ACTIVE, ids=lambda s: s.name)
@pytest.mark.parametrize("kind", list(LoginInput), ids=lambda k: k.name)
def test_every_state_input_pair(state: LoginState, kind: LoginInput) -> None:
    """Pairs outside the transition table are target errors; pairs inside are not."""
    m = _machine(ONE_WAY)
    m.state = state
    data = _input_response(m, state, kind)
    if (state, kind) in _TRANSITIONS:
        try:
            m.receive_data(data)
        except IscsiError as exc:  # may still fail on content (no CHAP keys, ...)
            assert "while we were in" not in str(exc)
            assert "asked to move" not in str(exc)
    else:
        with pytest.raises(RemoteProtocolError, match=r"while we were in|asked to move"):
            m.receive_data(data)


def test_md5_only_config_keeps_isid() -> None:
    config = LoginConfig(GROUP, INITIATOR, IQN, Auth(chap=ALICE, algorithms=(SHA256, MD5)))
    retry = config.md5_only()
    assert retry.auth.algorithms == (MD5,) and retry.isid == config.isid
    assert dataclasses.replace(config, redirects=0) == config


def test_failure_with_garbled_text_still_reports_the_status() -> None:
    m = _machine(ONE_WAY)
    with pytest.raises(AuthMethodRejected):
        m.receive_data(_resp(m, transit=False, status_class=2, status_detail=1, data=b"junk"))


_algorithm_lists = st.sampled_from(
    [(MD5,), (SHA256, MD5), (SHA3, SHA256, SHA1, MD5), (SHA1, MD5), (MD5, SHA256)]
)


@settings(max_examples=60, deadline=None)
@given(
    target_chap=st.booleans(),
    target_mutual=st.booleans(),
    client_chap=st.sampled_from(["none", "right", "wrong"]),
    client_mutual=st.booleans(),
    algorithms=_algorithm_lists,
    tgt_numbering=st.booleans(),
    reject_lists=st.booleans(),
    missing_mutual=st.sampled_from(["omit", "fail"]),
    nsg_downgrade=st.booleans(),
    propose=st.booleans(),
    discovery=st.booleans(),
)
def test_login_outcome_oracle(
    target_chap: bool,
    target_mutual: bool,
    client_chap: str,
    client_mutual: bool,
    algorithms: tuple[ChapAlgorithm, ...],
    tgt_numbering: bool,
    reject_lists: bool,
    missing_mutual: str,
    nsg_downgrade: bool,
    propose: bool,
    discovery: bool,
) -> None:
    """Login succeeds exactly when the credentials match, whatever the quirks."""
    cfg = _cfg(
        chap=CHAP_ALICE if target_chap else None,
        mutual=MUTUAL_ARRAY if target_mutual else None,
        chap_a=dict(TGT_CHAP_A) if tgt_numbering else dict(LIO_CHAP_A),
        challenge_length=50 if tgt_numbering else None,
        reject_chap_a_lists=reject_lists,
        missing_mutual=missing_mutual,
        nsg_downgrade=nsg_downgrade,
        propose_keys=propose,
    )
    chap = {
        "none": None,
        "right": ALICE,
        "wrong": ChapCredentials("alice", Secret(b"wrong-secret-123")),
    }[client_chap]
    auth = Auth(
        chap=chap, mutual=TARGET_ACCT if client_mutual and chap else None, algorithms=algorithms
    )
    config = LoginConfig(
        GROUP, INITIATOR, None if discovery else IQN, auth, skip_operational=nsg_downgrade
    )
    should = (not target_chap and chap is None) or (
        target_chap and client_chap == "right" and (auth.mutual is None or target_mutual)
    )
    try:
        conn = connect(config, {str(GROUP): cfg})
    except IscsiError as exc:
        assert not should, f"unexpected {type(exc).__name__}: {exc}"
        return
    assert should
    assert conn.target.violations == []
    assert all(t.violations == [] for t in conn.targets_used)
