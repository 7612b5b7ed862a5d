"""Golden PDU vectors: one table drives both encoding and decoding.

The expected bytes are written from the RFC 7143 §11 layouts with ``_bhs`` (offset ->
hex), independently of the construct Structs under test.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eqliscsi.iscsi_discovery._framing import ReceiveBuffer, crc32c, encode_pdu
from eqliscsi.iscsi_discovery._pdu import (
    R2T,
    AsyncMessage,
    DataIn,
    DataOut,
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    NopOut,
    Pdu,
    Reject,
    ScsiCommand,
    ScsiResponse,
    TextRequest,
    TextResponse,
    decode_bhs,
    encode_bhs,
    login_request_bhs,
    lun_field,
)
from eqliscsi.iscsi_discovery.errors import LocalProtocolError, PduDecodeError, PduTooLarge


def _bhs(fields: dict[int, str], data: bytes = b"") -> bytes:
    """48 bytes with hex ``fields`` placed at their offsets, DSL from ``data``, + data/pad."""
    out = bytearray(48)
    for off, hexs in fields.items():
        raw = bytes.fromhex(hexs.replace(" ", ""))
        out[off : off + len(raw)] = raw
    out[5:8] = len(data).to_bytes(3, "big")
    return bytes(out) + data + bytes(-len(data) & 3)


ISID = bytes.fromhex("801234560001")
LOGIN1 = b"InitiatorName=iqn.2026-01.test:init\0SessionType=Discovery\0AuthMethod=None\0"
SENSE = bytes.fromhex("0012 700006000000000a00000000290000000000")
REJECTED_HDR = _bhs({0: "04", 1: "80", 16: "00000002", 20: "ffffffff"})

GOLDEN = [
    pytest.param(
        _bhs({0: "43", 1: "81", 8: "801234560001", 16: "00000001", 24: "00000001"}, LOGIN1),
        LoginRequest(isid=ISID, itt=1, csg=0, nsg=1, transit=True, cmdsn=1, data=LOGIN1),
        id="login-request-first",
    ),
    pytest.param(
        _bhs(
            {0: "43", 1: "00", 8: "801234560001", 16: "00000001", 24: "00000001", 28: "0000000a"},
            b"CHAP_A=5\0",
        ),
        LoginRequest(isid=ISID, itt=1, csg=0, nsg=0, cmdsn=1, exp_statsn=10, data=b"CHAP_A=5\0"),
        id="login-request-chap-a",
    ),
    pytest.param(
        # tgt's final response: flags 0x87 (T=1 CSG=1 NSG=3), TSIH 1 in host order.
        _bhs(
            {
                0: "23",
                1: "87",
                8: "801234560001",
                14: "0100",
                16: "00000001",
                24: "0000000b",
                28: "00000001",
                32: "00000002",
            }
        ),
        LoginResponse(
            isid=ISID,
            itt=1,
            csg=1,
            nsg=3,
            transit=True,
            tsih=0x0100,
            statsn=11,
            exp_cmdsn=1,
            max_cmdsn=2,
        ),
        id="login-response-final-tgt",
    ),
    pytest.param(
        _bhs({0: "23", 1: "00", 8: "801234560001", 16: "00000001", 36: "0201"}),
        LoginResponse(isid=ISID, itt=1, csg=0, nsg=0, status_class=2, status_detail=1),
        id="login-response-auth-failed",
    ),
    pytest.param(
        _bhs({0: "23", 1: "40", 2: "00", 3: "00", 8: "801234560001", 16: "00000001"}, b"A=B\0"),
        LoginResponse(isid=ISID, itt=1, csg=0, nsg=0, cont=True, data=b"A=B\0"),
        id="login-response-continue",
    ),
    pytest.param(
        _bhs(
            {0: "04", 1: "80", 16: "00000002", 20: "ffffffff", 24: "00000001", 28: "0000000c"},
            b"SendTargets=All\0",
        ),
        TextRequest(itt=2, cmdsn=1, exp_statsn=12, data=b"SendTargets=All\0"),
        id="text-request-sendtargets",
    ),
    pytest.param(
        _bhs({0: "04", 1: "80", 16: "00000002", 20: "00000001", 24: "00000002", 28: "0000000d"}),
        TextRequest(itt=2, ttt=1, cmdsn=2, exp_statsn=13),
        id="text-request-continuation",
    ),
    pytest.param(
        # tgt splits mid-pair with F=0 and C=0 (reference §6).
        _bhs(
            {
                0: "24",
                1: "00",
                16: "00000002",
                20: "00000001",
                24: "0000000c",
                28: "00000002",
                32: "00000003",
            },
            b"TargetName=iqn.x",
        ),
        TextResponse(
            itt=2, ttt=1, statsn=12, exp_cmdsn=2, max_cmdsn=3, final=False, data=b"TargetName=iqn.x"
        ),
        id="text-response-tgt-split",
    ),
    pytest.param(
        _bhs({0: "24", 1: "40", 16: "00000002", 20: "00000007"}, b"K=V\0"),
        TextResponse(itt=2, ttt=7, final=False, cont=True, data=b"K=V\0"),
        id="text-response-lio-continue",
    ),
    pytest.param(
        _bhs({0: "46", 1: "80", 16: "00000003", 24: "00000002", 28: "0000000e"}),
        LogoutRequest(itt=3, cmdsn=2, exp_statsn=14),
        id="logout-request-close-session",
    ),
    pytest.param(
        _bhs({0: "46", 1: "81", 16: "00000003", 20: "0005"}),
        LogoutRequest(itt=3, reason=1, cid=5),
        id="logout-request-close-connection",
    ),
    pytest.param(
        _bhs(
            {
                0: "26",
                1: "80",
                2: "00",
                16: "00000003",
                24: "0000000e",
                28: "00000003",
                32: "00000004",
                40: "0002",
                42: "0014",
            }
        ),
        LogoutResponse(itt=3, statsn=14, exp_cmdsn=3, max_cmdsn=4, time2wait=2, time2retain=20),
        id="logout-response",
    ),
    pytest.param(
        _bhs({0: "40", 1: "80", 16: "00000004", 20: "ffffffff", 24: "00000003"}, b"ping"),
        NopOut(itt=4, cmdsn=3, data=b"ping"),
        id="nop-out-ping",
    ),
    pytest.param(
        _bhs({0: "40", 1: "80", 8: "0001000000000000", 16: "ffffffff", 20: "00000010"}),
        NopOut(itt=0xFFFFFFFF, ttt=0x10, lun=lun_field(1)),
        id="nop-out-answer",
    ),
    pytest.param(
        _bhs({0: "20", 1: "80", 16: "ffffffff", 20: "00000010", 24: "00000005"}),
        NopIn(itt=0xFFFFFFFF, ttt=0x10, statsn=5),
        id="nop-in-unsolicited",
    ),
    pytest.param(
        _bhs(
            {
                0: "01",
                1: "c1",
                8: "0001000000000000",
                16: "00000005",
                20: "00000060",
                24: "00000003",
                28: "0000000f",
                32: "1200000060",
            }
        ),
        ScsiCommand(
            itt=5,
            cdb=bytes.fromhex("120000006000"),
            lun=lun_field(1),
            edtl=0x60,
            cmdsn=3,
            exp_statsn=15,
            read=True,
        ),
        id="scsi-command-inquiry",
    ),
    pytest.param(
        _bhs(
            {
                0: "01",
                1: "a1",
                8: "4123000000000000",
                16: "00000006",
                20: "00000200",
                32: "8a00000000000000000000000001",
            },
            bytes(512),
        ),
        ScsiCommand(
            itt=6,
            cdb=bytes.fromhex("8a00000000000000000000000001"),
            lun=lun_field(0x123),
            edtl=512,
            write=True,
            data=bytes(512),
        ),
        id="scsi-command-write16-immediate-flat-lun",
    ),
    pytest.param(
        _bhs(
            {
                0: "21",
                1: "80",
                2: "00",
                3: "02",
                16: "00000005",
                24: "00000010",
                28: "00000004",
                32: "00000005",
            },
            SENSE,
        ),
        ScsiResponse(itt=5, status=2, statsn=16, exp_cmdsn=4, max_cmdsn=5, data=SENSE),
        id="scsi-response-check-condition",
    ),
    pytest.param(
        _bhs({0: "21", 1: "82", 16: "00000005", 44: "00000010"}),
        ScsiResponse(itt=5, underflow=True, residual=16),
        id="scsi-response-underflow",
    ),
    pytest.param(
        _bhs(
            {
                0: "25",
                1: "81",
                3: "00",
                8: "0001000000000000",
                16: "00000005",
                20: "ffffffff",
                24: "00000011",
                36: "00000001",
                40: "00000008",
            },
            b"ABCDEFGH",
        ),
        DataIn(
            itt=5,
            lun=lun_field(1),
            statsn=17,
            datasn=1,
            buffer_offset=8,
            final=True,
            status_present=True,
            data=b"ABCDEFGH",
        ),
        id="data-in-final-with-status",
    ),
    pytest.param(
        _bhs({0: "25", 1: "00", 16: "00000005", 20: "ffffffff"}, b"xyz"),
        DataIn(itt=5, data=b"xyz"),
        id="data-in-partial-padded",
    ),
    pytest.param(
        _bhs(
            {
                0: "05",
                1: "80",
                16: "00000006",
                20: "00000022",
                28: "00000011",
                36: "00000000",
                40: "00000200",
            },
            b"\x01" * 16,
        ),
        DataOut(itt=6, ttt=0x22, exp_statsn=17, buffer_offset=512, final=True, data=b"\x01" * 16),
        id="data-out",
    ),
    pytest.param(
        _bhs(
            {
                0: "31",
                1: "80",
                16: "00000006",
                20: "00000022",
                24: "00000012",
                28: "00000005",
                32: "00000006",
                36: "00000000",
                40: "00000200",
                44: "00000200",
            }
        ),
        R2T(
            itt=6,
            ttt=0x22,
            statsn=18,
            exp_cmdsn=5,
            max_cmdsn=6,
            buffer_offset=512,
            desired_length=512,
        ),
        id="r2t",
    ),
    pytest.param(
        _bhs(
            {
                0: "3f",
                1: "80",
                2: "04",
                16: "ffffffff",
                24: "00000012",
                28: "00000005",
                32: "00000006",
            },
            REJECTED_HDR,
        ),
        Reject(reason=4, statsn=18, exp_cmdsn=5, max_cmdsn=6, data=REJECTED_HDR),
        id="reject-protocol-error",
    ),
    pytest.param(
        _bhs({0: "32", 1: "80", 16: "ffffffff", 24: "00000013", 36: "01", 42: "0005"}),
        AsyncMessage(event=1, statsn=19, param3=5),
        id="async-logout-request",
    ),
    pytest.param(
        _bhs({0: "32", 1: "80", 16: "ffffffff", 36: "00"}, SENSE),
        AsyncMessage(event=0, data=SENSE),
        id="async-scsi-event",
    ),
]


@pytest.mark.parametrize(("wire", "pdu"), GOLDEN)
def test_encode_golden(wire: bytes, pdu: Pdu) -> None:
    assert encode_pdu(pdu) == wire


@pytest.mark.parametrize(("wire", "pdu"), GOLDEN)
def test_decode_golden(wire: bytes, pdu: Pdu) -> None:
    buf = ReceiveBuffer(65536)
    buf.feed(wire)
    assert buf.next_pdu() == pdu
    assert len(buf) == 0


def _feed_three_ways(wire: bytes, expected: Pdu, **opts: bool) -> None:
    # 1. all at once, with a trailing partial PDU left in the buffer
    buf = ReceiveBuffer(65536, **opts)
    buf.feed(wire + b"\x43\x81")
    assert buf.next_pdu() == expected
    assert buf.next_pdu() is None
    assert len(buf) == 2
    # 2. one byte at a time: None until the very last byte
    buf = ReceiveBuffer(65536, **opts)
    for i, byte in enumerate(wire):
        assert buf.next_pdu() is None, f"PDU before byte {i}"
        buf.feed(bytes([byte]))
    assert buf.next_pdu() == expected
    # 3. two PDUs back to back
    buf = ReceiveBuffer(65536, **opts)
    buf.feed(wire + wire)
    assert buf.next_pdu() == expected
    assert buf.next_pdu() == expected
    assert buf.next_pdu() is None


@pytest.mark.parametrize(("wire", "pdu"), GOLDEN)
def test_receive_buffer_byte_by_byte(wire: bytes, pdu: Pdu) -> None:
    _feed_three_ways(wire, pdu)


@pytest.mark.parametrize(("wire", "pdu"), GOLDEN)
def test_receive_buffer_with_digests(wire: bytes, pdu: Pdu) -> None:
    digested = encode_pdu(pdu, header_digest=True, data_digest=True)
    if isinstance(pdu, (LoginRequest, LoginResponse)):
        # RFC 7143 §13.1: login PDUs are never digested, whatever was negotiated.
        assert digested == wire
    else:
        bhs, rest = digested[:48], digested[48:]
        assert bhs == wire[:48]
        assert rest[:4] == crc32c(wire[:48]).to_bytes(4, "little")
        data_part = wire[48:]
        if data_part:
            assert rest[4:-4] == data_part
            assert rest[-4:] == crc32c(data_part).to_bytes(4, "little")
        else:
            assert rest[4:] == b""
    _feed_three_ways(digested, pdu, header_digest=True, data_digest=True)


@pytest.mark.parametrize(
    ("data", "crc", "wire"),
    [
        pytest.param(bytes(32), 0x8A9136AA, "aa36918a", id="zeros"),
        pytest.param(b"\xff" * 32, 0x62A8AB43, "43aba862", id="ones"),
        pytest.param(bytes(range(32)), 0x46DD794E, "4e79dd46", id="ascending"),
        pytest.param(bytes(range(31, -1, -1)), 0x113FDB5C, "5cdb3f11", id="descending"),
        pytest.param(b"123456789", 0xE3069283, "839206e3", id="check-string"),
    ],
)
def test_crc32c_vectors(data: bytes, crc: int, wire: str) -> None:
    assert crc32c(data) == crc
    assert crc.to_bytes(4, "little").hex() == wire


def test_digest_mismatch_is_refused() -> None:
    good = encode_pdu(NopIn(itt=1, data=b"abcd"), header_digest=True, data_digest=True)
    for pos in (3, 50, 55, len(good) - 1):  # BHS, header digest, data, data digest
        bad = bytearray(good)
        bad[pos] ^= 0x01
        buf = ReceiveBuffer(header_digest=True, data_digest=True)
        buf.feed(bytes(bad))
        with pytest.raises(PduDecodeError, match="digest"):
            buf.next_pdu()


def test_oversized_segment_refused_at_header_time() -> None:
    header = _bhs({0: "24", 1: "80"})[:48]
    header = header[:5] + (8193).to_bytes(3, "big") + header[8:]
    buf = ReceiveBuffer(8192)
    buf.feed(header)  # only the header: the 8 KiB never arrives, and is never needed
    with pytest.raises(PduTooLarge) as info:
        buf.next_pdu()
    assert (info.value.length, info.value.limit) == (8193, 8192)


def test_truncated_and_unknown() -> None:
    with pytest.raises(PduDecodeError):
        decode_bhs(bytes(47))
    with pytest.raises(PduDecodeError, match="opcode 0x22"):
        decode_bhs(bytes([0x22]) + bytes(47))
    with pytest.raises(LocalProtocolError):
        encode_bhs(NopOut(itt=1 << 32))
    with pytest.raises(LocalProtocolError):
        ScsiCommand(itt=1, cdb=bytes(17))
    with pytest.raises(LocalProtocolError):
        lun_field(16384)


def test_reject_names_the_rejected_task() -> None:
    assert Reject(reason=4, data=REJECTED_HDR).rejected_itt == 2
    assert Reject(reason=4).rejected_itt is None


@given(st.binary(min_size=0, max_size=200))
def test_receive_buffer_random_bytes(data: bytes) -> None:
    buf = ReceiveBuffer(64, header_digest=bool(data[:1] and data[0] & 1))
    buf.feed(data)
    try:
        while buf.next_pdu() is not None:
            pass
    except PduDecodeError:
        pass


_u32 = st.integers(0, 0xFFFFFFFF)
_u16 = st.integers(0, 0xFFFF)
_u8 = st.integers(0, 0xFF)
_u64 = st.integers(0, (1 << 64) - 1)
_data = st.binary(max_size=40)
_stage = st.sampled_from([0, 1, 3])

PDU_STRATEGIES = st.one_of(
    st.builds(
        LoginRequest,
        isid=st.binary(min_size=6, max_size=6),
        itt=_u32,
        csg=_stage,
        nsg=_stage,
        transit=st.booleans(),
        cont=st.booleans(),
        tsih=_u16,
        cid=_u16,
        cmdsn=_u32,
        exp_statsn=_u32,
        version_max=_u8,
        version_min=_u8,
        data=_data,
    ),
    st.builds(
        LoginResponse,
        isid=st.binary(min_size=6, max_size=6),
        itt=_u32,
        csg=_stage,
        nsg=_stage,
        transit=st.booleans(),
        cont=st.booleans(),
        tsih=_u16,
        statsn=_u32,
        exp_cmdsn=_u32,
        max_cmdsn=_u32,
        status_class=_u8,
        status_detail=_u8,
        version_max=_u8,
        version_active=_u8,
        data=_data,
    ),
    st.builds(
        TextRequest,
        itt=_u32,
        ttt=_u32,
        cmdsn=_u32,
        exp_statsn=_u32,
        final=st.booleans(),
        cont=st.booleans(),
        lun=_u64,
        immediate=st.booleans(),
        data=_data,
    ),
    st.builds(
        TextResponse,
        itt=_u32,
        ttt=_u32,
        statsn=_u32,
        exp_cmdsn=_u32,
        max_cmdsn=_u32,
        final=st.booleans(),
        cont=st.booleans(),
        lun=_u64,
        data=_data,
    ),
    st.builds(
        LogoutRequest,
        itt=_u32,
        reason=st.integers(0, 127),
        cid=_u16,
        cmdsn=_u32,
        exp_statsn=_u32,
        immediate=st.booleans(),
    ),
    st.builds(
        LogoutResponse,
        itt=_u32,
        response=_u8,
        statsn=_u32,
        exp_cmdsn=_u32,
        max_cmdsn=_u32,
        time2wait=_u16,
        time2retain=_u16,
    ),
    st.builds(NopOut, itt=_u32, ttt=_u32, cmdsn=_u32, exp_statsn=_u32, lun=_u64, data=_data),
    st.builds(
        NopIn, itt=_u32, ttt=_u32, statsn=_u32, exp_cmdsn=_u32, max_cmdsn=_u32, lun=_u64, data=_data
    ),
    st.builds(
        ScsiCommand,
        itt=_u32,
        cdb=st.binary(min_size=16, max_size=16),
        lun=_u64,
        edtl=_u32,
        cmdsn=_u32,
        exp_statsn=_u32,
        final=st.booleans(),
        read=st.booleans(),
        write=st.booleans(),
        attr=st.integers(0, 7),
        data=_data,
    ),
    st.builds(
        ScsiResponse,
        itt=_u32,
        status=_u8,
        response=_u8,
        statsn=_u32,
        residual=_u32,
        overflow=st.booleans(),
        underflow=st.booleans(),
        bidi_overflow=st.booleans(),
        bidi_underflow=st.booleans(),
        data=_data,
    ),
    st.builds(
        DataIn,
        itt=_u32,
        ttt=_u32,
        lun=_u64,
        statsn=_u32,
        datasn=_u32,
        buffer_offset=_u32,
        residual=_u32,
        status=_u8,
        final=st.booleans(),
        ack=st.booleans(),
        overflow=st.booleans(),
        underflow=st.booleans(),
        status_present=st.booleans(),
        data=_data,
    ),
    st.builds(
        DataOut,
        itt=_u32,
        ttt=_u32,
        lun=_u64,
        exp_statsn=_u32,
        datasn=_u32,
        buffer_offset=_u32,
        final=st.booleans(),
        data=_data,
    ),
    st.builds(
        R2T, itt=_u32, ttt=_u32, lun=_u64, r2tsn=_u32, buffer_offset=_u32, desired_length=_u32
    ),
    st.builds(Reject, reason=_u8, statsn=_u32, datasn=_u32, data=_data),
    st.builds(
        AsyncMessage,
        event=_u8,
        vcode=_u8,
        lun=_u64,
        param1=_u16,
        param2=_u16,
        param3=_u16,
        data=_data,
    ),
)


@given(PDU_STRATEGIES, st.booleans(), st.booleans())
def test_round_trip_exact(pdu: Pdu, hd: bool, dd: bool) -> None:
    wire = encode_pdu(pdu, header_digest=hd, data_digest=dd)
    buf = ReceiveBuffer(1024, header_digest=hd, data_digest=dd)
    buf.feed(wire)
    assert buf.next_pdu() == pdu
    assert len(buf) == 0
    # and re-encoding the decoded PDU gives the same bytes
    assert encode_pdu(decode_bhs(wire[:48], pdu.data), header_digest=hd, data_digest=dd) == wire  # type: ignore[attr-defined]


@given(
    isid=st.binary(min_size=6, max_size=6),
    itt=_u32,
    csg=st.sampled_from([0, 1, 3]),
    nsg=st.sampled_from([0, 1, 3]),
    transit=st.booleans(),
    cmdsn=_u32,
    exp_statsn=_u32,
    data=_data,
)
def test_login_request_fast_path_equals_the_codec(
    isid: bytes, itt: int, csg: int, nsg: int, transit: bool, cmdsn: int, exp_statsn: int,
    data: bytes,
) -> None:  # fmt: skip
    # The login machine packs its requests with login_request_bhs; the bytes must be
    # exactly what encode_bhs makes of the same LoginRequest.
    fast = login_request_bhs(
        isid=isid, itt=itt, csg=csg, nsg=nsg, transit=transit, cmdsn=cmdsn,
        exp_statsn=exp_statsn, data_length=len(data),
    )  # fmt: skip
    pdu = LoginRequest(isid=isid, itt=itt, csg=csg, nsg=nsg, transit=transit, cmdsn=cmdsn,
                       exp_statsn=exp_statsn, data=data)  # fmt: skip
    assert fast == encode_bhs(pdu)


@pytest.mark.parametrize(
    "fields",
    [{"csg": 4}, {"nsg": -1}, {"isid": b"\x80"}, {"itt": 1 << 32}, {"data_length": 1 << 24}],
    ids=["csg-too-wide", "nsg-negative", "short-isid", "itt-too-wide", "data-too-long"],
)
def test_login_request_fast_path_refuses_what_does_not_fit(fields: dict[str, object]) -> None:
    base: dict[str, object] = {
        "isid": b"\x80\x00\x00\x01\x00\x00", "itt": 1, "csg": 0, "nsg": 1, "transit": True,
        "cmdsn": 1, "exp_statsn": 0, "data_length": 0,
    }  # fmt: skip
    with pytest.raises(LocalProtocolError):
        login_request_bhs(**(base | fields))  # type: ignore[arg-type]
