"""SCSI data parsers, and the state machines fed hostile input."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eqliscsi.errors import IscsiError
from eqliscsi.iscsi_discovery import Auth, ChapCredentials, Portal
from eqliscsi.iscsi_discovery._framing import encode_pdu
from eqliscsi.iscsi_discovery._login import LoginConfig, LoginMachine, LoginSucceeded
from eqliscsi.iscsi_discovery._negotiation import (
    OperationalOffer,
    SessionParams,
    SessionType,
    answer_proposals,
    negotiated_params,
)
from eqliscsi.iscsi_discovery._pdu import (
    AsyncMessage,
    DataIn,
    LoginResponse,
    NopIn,
    Reject,
    ScsiResponse,
    TextResponse,
)
from eqliscsi.iscsi_discovery._scsi import (
    Sense,
    cdb_inquiry,
    cdb_read16,
    cdb_read_capacity16,
    cdb_report_luns,
    decode_lun,
    parse_device_identifiers,
    parse_inquiry,
    parse_read_capacity16,
    parse_report_luns,
    parse_sense,
    parse_unit_serial,
)
from eqliscsi.iscsi_discovery._session import Session
from eqliscsi.iscsi_discovery.errors import LocalProtocolError, PduDecodeError
from eqliscsi.secret import Secret

from .helpers import INITIATOR

GROUP = Portal("127.0.0.1")


@pytest.mark.parametrize(
    ("segment", "sense"),
    [
        pytest.param(
            bytes.fromhex("0012 700006000000000a00000000290000000000"),
            Sense(0x70, 6, 0x29, 0),
            id="fixed-ua",
        ),
        pytest.param(
            bytes.fromhex("0012 f00005000000000a00000000240000000000"),
            Sense(0x70, 5, 0x24, 0),
            id="fixed-valid-bit",
        ),
        pytest.param(
            bytes.fromhex("0008 7202 3a01 00000000"),
            Sense(0x72, 2, 0x3A, 1),
            id="descriptor-not-ready",
        ),
        pytest.param(bytes.fromhex("0004 71000300"), Sense(0x71, 3, 0, 0), id="short-fixed"),
        pytest.param(b"", None, id="no-segment"),
        pytest.param(b"\0\0", None, id="zero-length"),
    ],
)
def test_parse_sense(segment: bytes, sense: Sense | None) -> None:
    assert parse_sense(segment) == sense


@pytest.mark.parametrize(
    "segment",
    [
        pytest.param(bytes.fromhex("0012 7000"), id="truncated"),
        pytest.param(bytes.fromhex("0004 01020304"), id="bad-response-code"),
        pytest.param(bytes.fromhex("0002 7200"), id="short-descriptor"),
    ],
)
def test_parse_sense_rejects(segment: bytes) -> None:
    with pytest.raises(PduDecodeError):
        parse_sense(segment)


def test_cdbs() -> None:
    assert cdb_inquiry() == bytes.fromhex("1200 0000 ff00")
    assert cdb_inquiry(0x83, 0x200) == bytes.fromhex("1201 8302 0000")
    assert cdb_report_luns(4096) == bytes.fromhex("a000 0000 0000 0000 1000 0000")
    assert cdb_read_capacity16() == bytes.fromhex("9e10") + bytes(8) + bytes.fromhex(
        "00000020 0000"
    )
    assert cdb_read16(1, 2) == bytes.fromhex("8800 0000000000000001 00000002 0000")
    bad_calls: list[Callable[[], bytes]] = [
        lambda: cdb_report_luns(8),
        lambda: cdb_read16(0, 0),
        lambda: cdb_inquiry(None, 0),
    ]
    for bad in bad_calls:
        with pytest.raises(LocalProtocolError):
            bad()


def test_report_luns_and_lun_fields() -> None:
    data = bytes.fromhex("00000018 00000000 0000000000000000 0001000000000000 4123000000000000")
    fields = parse_report_luns(data)
    assert [decode_lun(f) for f in fields] == [0, 1, 0x123]
    # a list cut by the allocation length keeps what arrived
    assert len(parse_report_luns(data[:24])) == 2
    with pytest.raises(PduDecodeError):
        parse_report_luns(bytes.fromhex("00000007 00000000"))
    with pytest.raises(PduDecodeError):
        decode_lun(0xC000 << 48)  # extended addressing


def test_vpd_and_capacity() -> None:
    assert parse_unit_serial(bytes.fromhex("00800004") + b"AB12") == "AB12"
    naa = bytes.fromhex("0103 0010") + bytes(range(16))
    eui = bytes.fromhex("0102 0008") + bytes(8)
    t10 = bytes.fromhex("0201 0008") + b"EQLOGIC "
    port = bytes.fromhex("0114 0004 00000001")
    body = naa + eui + t10 + port
    data = bytes.fromhex("0083") + len(body).to_bytes(2, "big") + body
    assert parse_device_identifiers(data) == (
        "naa." + bytes(range(16)).hex(),
        "eui." + "00" * 8,
        "t10.EQLOGIC",
    )
    with pytest.raises(PduDecodeError):
        parse_unit_serial(bytes.fromhex("00830000"))
    with pytest.raises(PduDecodeError):
        parse_device_identifiers(bytes.fromhex("0083 0008 0103 0010 0000"))
    assert parse_read_capacity16((131071).to_bytes(8, "big") + (512).to_bytes(4, "big")) == (
        131072,
        512,
    )
    with pytest.raises(PduDecodeError):
        parse_read_capacity16(bytes(12))
    std = parse_inquiry(bytes([0x00, 0, 6, 2, 31, 0, 0, 0]) + b"EQLOGIC 100E-00         " + b"7.1 ")
    assert (std.vendor, std.product, std.revision) == ("EQLOGIC", "100E-00", "7.1")


# -- hostile input ------------------------------------------------------------------

CHAP = Auth(chap=ChapCredentials("alice", Secret(b"alice-secret-16b")))


def _fresh_login() -> LoginMachine:
    m = LoginMachine(LoginConfig(GROUP, INITIATOR, "iqn.2026-01.test:t", CHAP, itt=1))
    m.start()
    m.data_to_send()
    return m


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_login_machine_random_bytes(data: bytes) -> None:
    m = _fresh_login()
    try:
        m.receive_data(data)
    except IscsiError:
        return
    assert len(data) < 48 or m.state.name != "IDLE"


_text = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "AuthMethod",
                "CHAP_A",
                "CHAP_I",
                "CHAP_C",
                "TargetAddress",
                "X-y",
                "TargetPortalGroupTag",
                "CHAP_N",
                "CHAP_R",
            ]
        ),
        st.sampled_from(
            [
                "CHAP",
                "None",
                "5",
                "7",
                "0x00ff",
                "0b////",
                "300",
                "",
                "Reject",
                "10.0.0.1:3260",
                "[::1]",
            ]
        ),
    ),
    max_size=5,
).map(lambda pairs: b"".join(k.encode() + b"=" + v.encode() + b"\0" for k, v in pairs))


@given(
    st.lists(
        st.builds(
            LoginResponse,
            isid=st.just(b"\x80\1\2\3\0\0"),
            itt=st.just(1),
            csg=st.sampled_from([0, 1, 3]),
            nsg=st.sampled_from([0, 1, 3]),
            transit=st.booleans(),
            cont=st.booleans(),
            status_class=st.sampled_from([0, 0, 0, 1, 2, 3]),
            status_detail=st.integers(0, 3),
            data=_text,
        ),
        min_size=1,
        max_size=6,
    )
)
def test_login_machine_random_responses(responses: list[LoginResponse]) -> None:
    """Any sequence of plausible responses ends in an event or a typed error."""
    m = LoginMachine(
        LoginConfig(GROUP, INITIATOR, "iqn.2026-01.test:t", CHAP, itt=1, isid=b"\x80\1\2\3\0\0")
    )
    m.start()
    try:
        for r in responses:
            m.receive_data(encode_pdu(r))
    except IscsiError:
        pass


def _session() -> Session:
    config = LoginConfig(GROUP, INITIATOR, "iqn.2026-01.test:t", itt=1)
    params = SessionParams(8192, 8192, header_digest=False, data_digest=False)
    return Session(config, LoginSucceeded(1, 10, 1, 5, params, None))


_target_pdus = st.one_of(
    st.builds(
        TextResponse,
        itt=st.integers(1, 4),
        ttt=st.sampled_from([1, 0xFFFFFFFF]),
        final=st.booleans(),
        data=_text,
    ),
    st.builds(
        DataIn,
        itt=st.integers(1, 4),
        buffer_offset=st.integers(0, 300),
        status_present=st.booleans(),
        data=st.binary(max_size=64),
    ),
    st.builds(
        ScsiResponse,
        itt=st.integers(1, 4),
        status=st.sampled_from([0, 2, 8]),
        data=st.binary(max_size=40),
    ),
    st.builds(NopIn, itt=st.sampled_from([2, 0xFFFFFFFF]), ttt=st.sampled_from([5, 0xFFFFFFFF])),
    st.builds(AsyncMessage, event=st.integers(0, 4), data=st.binary(max_size=30)),
    st.builds(Reject, reason=st.integers(0, 12), data=st.binary(max_size=48)),
)


@given(st.lists(_target_pdus, max_size=8))
def test_session_random_target_pdus(pdus: list[object]) -> None:
    s = _session()
    s.send_targets()
    s.scsi_command(0, cdb_inquiry(), read_length=255)
    s.data_to_send()
    try:
        for pdu in pdus:
            s.receive_data(encode_pdu(pdu))  # type: ignore[arg-type]
    except IscsiError:
        pass


@given(st.binary(max_size=300))
def test_session_random_bytes(data: bytes) -> None:
    s = _session()
    itt = s.scsi_command(0, cdb_inquiry(), read_length=255)
    try:
        events = s.receive_data(data)
    except IscsiError:
        return
    # accepted bytes either left the task open or completed exactly that task
    done = [e for e in events if getattr(e, "itt", None) == itt]
    assert s.open_tasks + len(done) == 1


def test_offer_keys_discovery_vs_normal() -> None:
    disc = dict(OperationalOffer().keys(SessionType.DISCOVERY))
    normal = dict(OperationalOffer().keys(SessionType.NORMAL))
    assert "MaxBurstLength" not in disc and normal["MaxBurstLength"] == "262144"
    assert disc["ErrorRecoveryLevel"] == normal["ErrorRecoveryLevel"] == "0"


@pytest.mark.parametrize(
    ("proposed", "discovery", "answer"),
    [
        pytest.param({"MaxBurstLength": "65536"}, False, ("MaxBurstLength", "65536"), id="min"),
        pytest.param(
            {"MaxBurstLength": "0x100000"}, False, ("MaxBurstLength", "262144"), id="min-hex"
        ),
        pytest.param({"DefaultTime2Wait": "5"}, False, ("DefaultTime2Wait", "5"), id="max"),
        pytest.param({"InitialR2T": "No"}, False, ("InitialR2T", "Yes"), id="or"),
        pytest.param({"ImmediateData": "No"}, False, ("ImmediateData", "No"), id="and"),
        pytest.param({"IFMarker": "Yes"}, False, ("IFMarker", "No"), id="and-unoffered"),
        pytest.param(
            {"MaxBurstLength": "65536"},
            True,
            ("MaxBurstLength", "Irrelevant"),
            id="discovery-irrelevant",
        ),
        pytest.param(
            {"HeaderDigest": "CRC32C,None"}, False, ("HeaderDigest", "None"), id="digest-list"
        ),
        pytest.param(
            {"X-com.vendor.Key": "1"}, False, ("X-com.vendor.Key", "NotUnderstood"), id="unknown"
        ),
    ],
)
def test_answer_proposals(
    proposed: dict[str, str], discovery: bool, answer: tuple[str, str]
) -> None:
    kind = SessionType.DISCOVERY if discovery else SessionType.NORMAL
    assert answer_proposals(proposed, {}, kind, OperationalOffer()) == [answer]
    # declarative keys, answers to our own offers and special values need no reply
    assert (
        answer_proposals(
            {"TargetAlias": "x", "MaxBurstLength": "Reject"}, {}, kind, OperationalOffer()
        )
        == []
    )


def test_negotiated_params() -> None:
    offer = OperationalOffer(header_digest=("CRC32C", "None"))
    p = negotiated_params(
        {
            "HeaderDigest": "CRC32C",
            "MaxRecvDataSegmentLength": "65536",
            "TargetPortalGroupTag": "1",
            "ImmediateData": "No",
        },
        offer,
    )
    assert p.header_digest and not p.data_digest
    assert p.max_send_data_segment_length == 65536 and p.target_portal_group_tag == 1
    assert not p.immediate_data
    assert negotiated_params({}, offer).max_send_data_segment_length == 8192  # tgt: undeclared
    for bad in (
        {"ErrorRecoveryLevel": "1"},
        {"MaxRecvDataSegmentLength": "100"},
        {"ImmediateData": "Maybe"},
        {"MaxBurstLength": "08x"},
    ):
        with pytest.raises(IscsiError):
            negotiated_params(bad, offer)
