"""iSCSI PDU codec: the 48-byte Basic Header Segment of every PDU the client uses.

Strategy (RFC 7143 §11): one frozen dataclass per PDU, and one row of ``_WIRE`` per
opcode that says where each dataclass field sits in the header: a ``struct`` format
for the byte-aligned fields, and the bits of byte 0 (the I bit) and byte 1 (the
flags).  ``struct`` packs a header in ~2 µs where the readable ``construct`` Structs
took ~50 µs, a quarter of a discovery's CPU; those Structs remain the reference
layout in :mod:`._pdu_layout`, and the tests prove with Hypothesis that both codecs
agree on every PDU type (docs/performance.md).  Reserved bits and bytes are built
as zero and ignored on parse.

The data segment is carried as ``data`` on each dataclass; padding and digests are
the framing layer's business (:mod:`._framing`).  A field out of range raises
:class:`LocalProtocolError` (build); a header we cannot read raises
:class:`PduDecodeError` (parse).
"""

from __future__ import annotations

import enum
import operator
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from eqliscsi.iscsi_discovery.errors import LocalProtocolError, PduDecodeError

__all__ = [
    "BHS_LENGTH",
    "R2T",
    "RESERVED_TAG",
    "AsyncMessage",
    "DataIn",
    "DataOut",
    "LoginRequest",
    "LoginResponse",
    "LogoutRequest",
    "LogoutResponse",
    "NopIn",
    "NopOut",
    "Opcode",
    "Pdu",
    "Reject",
    "ScsiCommand",
    "ScsiResponse",
    "Stage",
    "TaskAttribute",
    "TextRequest",
    "TextResponse",
    "decode_bhs",
    "encode_bhs",
    "lun_field",
]

BHS_LENGTH = 48
RESERVED_TAG = 0xFFFFFFFF  # RFC 7143 §11.1: "no tag" for ITT and TTT


class Opcode(enum.IntEnum):
    """RFC 7143 §11.2.1.2 opcodes (initiator 0x00-0x1F, target 0x20-0x3F)."""

    NOP_OUT = 0x00
    SCSI_COMMAND = 0x01
    LOGIN_REQUEST = 0x03
    TEXT_REQUEST = 0x04
    DATA_OUT = 0x05
    LOGOUT_REQUEST = 0x06
    NOP_IN = 0x20
    SCSI_RESPONSE = 0x21
    LOGIN_RESPONSE = 0x23
    TEXT_RESPONSE = 0x24
    DATA_IN = 0x25
    LOGOUT_RESPONSE = 0x26
    R2T = 0x31
    ASYNC_MESSAGE = 0x32
    REJECT = 0x3F


class Stage(enum.IntEnum):
    """Login stages, CSG/NSG values (RFC 7143 §11.12.3); 2 is reserved."""

    SECURITY = 0
    OPERATIONAL = 1
    FULL_FEATURE = 3


class TaskAttribute(enum.IntEnum):
    """SCSI Command ATTR field (RFC 7143 §11.3.1.3)."""

    UNTAGGED = 0
    SIMPLE = 1
    ORDERED = 2
    HEAD_OF_QUEUE = 3
    ACA = 4


def lun_field(lun: int) -> int:
    """The 8-byte LUN field for a LUN number (SAM-5 single-level addressing).

    LUN < 256 uses peripheral addressing (``00 LL``), larger ones the flat space
    (``40|hi lo``), the form REPORT LUNS returns (reference §8).
    """
    if 0 <= lun < 256:
        return lun << 48
    if lun < 16384:
        return (0x4000 | lun) << 48
    raise LocalProtocolError(f"LUN {lun} is outside 0-16383; give a LUN the target reported.")


# ---------------------------------------------------------------------------------
# Public dataclasses.


@dataclass(frozen=True, slots=True)
class Pdu:
    """Base of every PDU; ``data`` is the data segment without padding."""

    opcode: ClassVar[Opcode]


@dataclass(frozen=True, slots=True)
class LoginRequest(Pdu):
    """Login Request (RFC 7143 §11.12)."""

    isid: bytes
    itt: int
    csg: int
    nsg: int
    transit: bool = False
    cont: bool = False
    tsih: int = 0
    cid: int = 0
    cmdsn: int = 0
    exp_statsn: int = 0
    version_max: int = 0
    version_min: int = 0
    immediate: bool = True  # RFC 7143 §11.12: always 1 (tgt Rejects 0x04 otherwise)
    data: bytes = b""
    opcode = Opcode.LOGIN_REQUEST


@dataclass(frozen=True, slots=True)
class LoginResponse(Pdu):
    """Login Response (RFC 7143 §11.13)."""

    isid: bytes
    itt: int
    csg: int
    nsg: int
    transit: bool = False
    cont: bool = False
    tsih: int = 0
    statsn: int = 0
    exp_cmdsn: int = 0
    max_cmdsn: int = 0
    status_class: int = 0
    status_detail: int = 0
    version_max: int = 0
    version_active: int = 0
    data: bytes = b""
    opcode = Opcode.LOGIN_RESPONSE


@dataclass(frozen=True, slots=True)
class TextRequest(Pdu):
    """Text Request (RFC 7143 §11.10)."""

    itt: int
    ttt: int = RESERVED_TAG
    cmdsn: int = 0
    exp_statsn: int = 0
    final: bool = True
    cont: bool = False
    lun: int = 0
    immediate: bool = False
    data: bytes = b""
    opcode = Opcode.TEXT_REQUEST


@dataclass(frozen=True, slots=True)
class TextResponse(Pdu):
    """Text Response (RFC 7143 §11.11)."""

    itt: int
    ttt: int = RESERVED_TAG
    statsn: int = 0
    exp_cmdsn: int = 0
    max_cmdsn: int = 0
    final: bool = True
    cont: bool = False
    lun: int = 0
    data: bytes = b""
    opcode = Opcode.TEXT_RESPONSE


@dataclass(frozen=True, slots=True)
class LogoutRequest(Pdu):
    """Logout Request (RFC 7143 §11.14)."""

    itt: int
    reason: int = 0  # 0 = close the session
    cid: int = 0
    cmdsn: int = 0
    exp_statsn: int = 0
    immediate: bool = True
    data: bytes = b""
    opcode = Opcode.LOGOUT_REQUEST


@dataclass(frozen=True, slots=True)
class LogoutResponse(Pdu):
    """Logout Response (RFC 7143 §11.15)."""

    itt: int
    response: int = 0
    statsn: int = 0
    exp_cmdsn: int = 0
    max_cmdsn: int = 0
    time2wait: int = 0
    time2retain: int = 0
    data: bytes = b""
    opcode = Opcode.LOGOUT_RESPONSE


@dataclass(frozen=True, slots=True)
class NopOut(Pdu):
    """NOP-Out (RFC 7143 §11.18)."""

    itt: int
    ttt: int = RESERVED_TAG
    cmdsn: int = 0
    exp_statsn: int = 0
    lun: int = 0
    immediate: bool = True
    data: bytes = b""
    opcode = Opcode.NOP_OUT


@dataclass(frozen=True, slots=True)
class NopIn(Pdu):
    """NOP-In (RFC 7143 §11.19)."""

    itt: int
    ttt: int = RESERVED_TAG
    statsn: int = 0
    exp_cmdsn: int = 0
    max_cmdsn: int = 0
    lun: int = 0
    data: bytes = b""
    opcode = Opcode.NOP_IN


@dataclass(frozen=True, slots=True)
class ScsiCommand(Pdu):
    """SCSI Command (RFC 7143 §11.3); the CDB is padded to 16 bytes."""

    itt: int
    cdb: bytes
    lun: int = 0
    edtl: int = 0
    cmdsn: int = 0
    exp_statsn: int = 0
    final: bool = True
    read: bool = False
    write: bool = False
    attr: int = TaskAttribute.SIMPLE
    immediate: bool = False
    data: bytes = b""
    opcode = Opcode.SCSI_COMMAND

    def __post_init__(self) -> None:
        # CDBs longer than 16 bytes need an Extended CDB AHS, which we never send.
        if len(self.cdb) > 16:
            raise LocalProtocolError("A CDB longer than 16 bytes needs an AHS; use a 16-byte CDB.")
        object.__setattr__(self, "cdb", bytes(self.cdb).ljust(16, b"\0"))


@dataclass(frozen=True, slots=True)
class ScsiResponse(Pdu):
    """SCSI Response (RFC 7143 §11.4)."""

    itt: int
    status: int = 0
    response: int = 0
    statsn: int = 0
    exp_cmdsn: int = 0
    max_cmdsn: int = 0
    exp_datasn: int = 0
    snack_tag: int = 0
    residual: int = 0
    bidi_residual: int = 0
    overflow: bool = False
    underflow: bool = False
    bidi_overflow: bool = False
    bidi_underflow: bool = False
    data: bytes = b""
    opcode = Opcode.SCSI_RESPONSE


@dataclass(frozen=True, slots=True)
class DataIn(Pdu):
    """SCSI Data-In (RFC 7143 §11.7)."""

    itt: int
    ttt: int = RESERVED_TAG
    lun: int = 0
    statsn: int = 0
    exp_cmdsn: int = 0
    max_cmdsn: int = 0
    datasn: int = 0
    buffer_offset: int = 0
    residual: int = 0
    status: int = 0
    final: bool = False
    ack: bool = False
    overflow: bool = False
    underflow: bool = False
    status_present: bool = False
    data: bytes = b""
    opcode = Opcode.DATA_IN


@dataclass(frozen=True, slots=True)
class DataOut(Pdu):
    """SCSI Data-Out (RFC 7143 §11.7)."""

    itt: int
    ttt: int = RESERVED_TAG
    lun: int = 0
    exp_statsn: int = 0
    datasn: int = 0
    buffer_offset: int = 0
    final: bool = False
    data: bytes = b""
    opcode = Opcode.DATA_OUT


@dataclass(frozen=True, slots=True)
class R2T(Pdu):
    """Ready To Transfer (RFC 7143 §11.8)."""

    itt: int
    ttt: int
    lun: int = 0
    statsn: int = 0
    exp_cmdsn: int = 0
    max_cmdsn: int = 0
    r2tsn: int = 0
    buffer_offset: int = 0
    desired_length: int = 0
    data: bytes = b""
    opcode = Opcode.R2T


@dataclass(frozen=True, slots=True)
class Reject(Pdu):
    """Reject (RFC 7143 §11.17)."""

    reason: int
    statsn: int = 0
    exp_cmdsn: int = 0
    max_cmdsn: int = 0
    datasn: int = 0
    data: bytes = b""  # the BHS of the rejected PDU (RFC 7143 §11.17.1)
    opcode = Opcode.REJECT

    @property
    def rejected_itt(self) -> int | None:
        """ITT of the PDU this Reject refers to, when the data carries its header."""
        if len(self.data) >= 20:
            return int.from_bytes(self.data[16:20], "big")
        return None


@dataclass(frozen=True, slots=True)
class AsyncMessage(Pdu):
    """Asynchronous Message (RFC 7143 §11.9)."""

    event: int
    lun: int = 0
    statsn: int = 0
    exp_cmdsn: int = 0
    max_cmdsn: int = 0
    vcode: int = 0
    param1: int = 0
    param2: int = 0
    param3: int = 0
    data: bytes = b""
    opcode = Opcode.ASYNC_MESSAGE


# ---------------------------------------------------------------------------------
# The wire tables.  Each format covers bytes 0-47 in order, starting ">BB" (byte 0,
# byte 1); "_len" is the word at offset 4 (TotalAHSLength << 24 | DataSegmentLength),
# "_tag" a reserved tag sent as 0xFFFFFFFF.  Offsets are RFC 7143 §11's.


@dataclass(frozen=True, slots=True)
class _Wire:
    """Where one PDU's dataclass fields sit in its 48-byte header."""

    cls: type[Pdu]
    fmt: struct.Struct
    fields: tuple[str, ...]  # after bytes 0 and 1, in format order
    flags: tuple[tuple[str, int], ...] = ()  # one-bit fields of byte 1: (name, bit)
    ints: tuple[tuple[str, int, int], ...] = ()  # wider fields of byte 1: (name, shift, width)
    byte1: int = 0  # constant bits of byte 1 (the F bit these PDUs always set)
    immediate: bool = False  # byte 0 carries the I bit (initiator PDUs, §11.2.1.2)
    sized: tuple[tuple[str, int], ...] = ()  # byte strings whose length must be exact

    @property
    def numbers(self) -> frozenset[str]:
        """The integer fields ``encode_bhs(numbers=...)`` may replace."""
        return _NUMBERS[self.cls]


_LOGIN_BITS: dict[str, Any] = {
    "flags": (("transit", 7), ("cont", 6)),
    "ints": (("csg", 2, 2), ("nsg", 0, 2)),
    "sized": (("isid", 6),),
}
_F = 0x80

# fmt: off
_WIRES = (
    _Wire(LoginRequest, struct.Struct(">BBBBI6sHIH2xII16x"),
          ("version_max", "version_min", "_len", "isid", "tsih", "itt", "cid", "cmdsn",
           "exp_statsn"), immediate=True, **_LOGIN_BITS),
    _Wire(LoginResponse, struct.Struct(">BBBBI6sHI4xIIIBB10x"),
          ("version_max", "version_active", "_len", "isid", "tsih", "itt", "statsn",
           "exp_cmdsn", "max_cmdsn", "status_class", "status_detail"), **_LOGIN_BITS),
    _Wire(TextRequest, struct.Struct(">BB2xIQIIII16x"),
          ("_len", "lun", "itt", "ttt", "cmdsn", "exp_statsn"),
          flags=(("final", 7), ("cont", 6)), immediate=True),
    _Wire(TextResponse, struct.Struct(">BB2xIQIIIII12x"),
          ("_len", "lun", "itt", "ttt", "statsn", "exp_cmdsn", "max_cmdsn"),
          flags=(("final", 7), ("cont", 6))),
    _Wire(LogoutRequest, struct.Struct(">BB2xI8xIH2xII16x"),
          ("_len", "itt", "cid", "cmdsn", "exp_statsn"),
          ints=(("reason", 0, 7),), byte1=_F, immediate=True),
    _Wire(LogoutResponse, struct.Struct(">BBBxI8xI4xIII4xHH4x"),
          ("response", "_len", "itt", "statsn", "exp_cmdsn", "max_cmdsn", "time2wait",
           "time2retain"), byte1=_F),
    _Wire(NopOut, struct.Struct(">BB2xIQIIII16x"),
          ("_len", "lun", "itt", "ttt", "cmdsn", "exp_statsn"), byte1=_F, immediate=True),
    _Wire(NopIn, struct.Struct(">BB2xIQIIIII12x"),
          ("_len", "lun", "itt", "ttt", "statsn", "exp_cmdsn", "max_cmdsn"), byte1=_F),
    _Wire(ScsiCommand, struct.Struct(">BB2xIQIIII16s"),
          ("_len", "lun", "itt", "edtl", "cmdsn", "exp_statsn", "cdb"),
          flags=(("final", 7), ("read", 6), ("write", 5)), ints=(("attr", 0, 3),),
          immediate=True, sized=(("cdb", 16),)),
    _Wire(ScsiResponse, struct.Struct(">BBBBI8xIIIIIIII"),
          ("response", "status", "_len", "itt", "snack_tag", "statsn", "exp_cmdsn",
           "max_cmdsn", "exp_datasn", "bidi_residual", "residual"),
          flags=(("bidi_overflow", 4), ("bidi_underflow", 3), ("overflow", 2),
                 ("underflow", 1)), byte1=_F),
    _Wire(DataIn, struct.Struct(">BBxBIQIIIIIIII"),
          ("status", "_len", "lun", "itt", "ttt", "statsn", "exp_cmdsn", "max_cmdsn",
           "datasn", "buffer_offset", "residual"),
          flags=(("final", 7), ("ack", 6), ("overflow", 2), ("underflow", 1),
                 ("status_present", 0))),
    _Wire(DataOut, struct.Struct(">BB2xIQII4xI4xII4x"),
          ("_len", "lun", "itt", "ttt", "exp_statsn", "datasn", "buffer_offset"),
          flags=(("final", 7),)),
    _Wire(R2T, struct.Struct(">BB2xIQIIIIIIII"),
          ("_len", "lun", "itt", "ttt", "statsn", "exp_cmdsn", "max_cmdsn", "r2tsn",
           "buffer_offset", "desired_length"), byte1=_F),
    _Wire(Reject, struct.Struct(">BBBxI8xI4xIIII8x"),
          ("reason", "_len", "_tag", "statsn", "exp_cmdsn", "max_cmdsn", "datasn"),
          byte1=_F),
    _Wire(AsyncMessage, struct.Struct(">BB2xIQI4xIIIBBHHH4x"),
          ("_len", "lun", "_tag", "statsn", "exp_cmdsn", "max_cmdsn", "event", "vcode",
           "param1", "param2", "param3"), byte1=_F),
)
# fmt: on

_BY_OPCODE: dict[int, _Wire] = {w.cls.opcode: w for w in _WIRES}


def _decode_layout(wire: _Wire) -> tuple[struct.Struct, tuple[str, ...]]:
    """The format to parse with: framing words ("_len", "_tag") become pad bytes.

    Parsing then yields exactly the dataclass fields, in order, with no filtering.
    """
    names = iter(("byte 0", "byte 1", *wire.fields))
    out = []
    for count, code in re.findall(r"(\d*)([a-zA-Z])", wire.fmt.format.lstrip(">")):
        if code != "x" and next(names) in ("_len", "_tag"):
            out.append(f"{struct.calcsize(code)}x")
        else:
            out.append(count + code)
    decode = struct.Struct(">" + "".join(out))
    if decode.size != BHS_LENGTH:  # pragma: no cover - a bug in the table, caught at import
        raise AssertionError(f"{wire.cls.__name__}: decode format is {decode.size} bytes")
    return decode, tuple(n for n in wire.fields if n[0] != "_")


_DECODE: dict[int, tuple[struct.Struct, tuple[str, ...]]] = {
    w.cls.opcode: _decode_layout(w) for w in _WIRES
}
_NUMBERS: dict[type[Pdu], frozenset[str]] = {
    w.cls: frozenset(n for n in w.fields if n[0] != "_" and n not in dict(w.sized)) for w in _WIRES
}
_MAX_DSL = (1 << 24) - 1


class _Plan:
    """How :func:`encode_bhs` fills one opcode's format: one C-level attribute fetch.

    ``getter`` reads every field in format order; the framing words ("_len", "_tag")
    are not attributes, so it reads ``opcode`` in their place and the encoder
    overwrites those slots.  ``index`` finds the slot of a field ``numbers`` replaces.
    """

    __slots__ = ("getter", "index", "len_pos", "tag_pos")

    def __init__(self, wire: _Wire) -> None:
        names = ["opcode" if n[0] == "_" else n for n in wire.fields]
        self.getter = operator.attrgetter(*names)
        self.index = {n: i for i, n in enumerate(wire.fields) if n[0] != "_"}
        self.len_pos = wire.fields.index("_len")
        self.tag_pos = wire.fields.index("_tag") if "_tag" in wire.fields else -1


_PLANS: dict[int, _Plan] = {w.cls.opcode: _Plan(w) for w in _WIRES}


def encode_bhs(pdu: Pdu, *, ahs_words: int = 0, numbers: Mapping[str, int] | None = None) -> bytes:
    """Build the 48-byte BHS of ``pdu``; DataSegmentLength comes from ``pdu.data``.

    ``numbers`` replaces byte-aligned integer fields (the session stamps CmdSN and
    ExpStatSN as a PDU leaves) without building a new dataclass for it.

    Raises:
        LocalProtocolError: a field does not fit its width, or ``numbers`` names a
            field the PDU's header does not have.
    """
    wire = _BY_OPCODE[pdu.opcode]
    if numbers and not numbers.keys() <= wire.numbers:
        raise LocalProtocolError(
            f"A {type(pdu).__name__} has no field {sorted(numbers.keys() - wire.numbers)}; "
            "this is a bug in eqliscsi."
        )
    dsl = len(pdu.data)  # type: ignore[attr-defined]
    b0 = pdu.opcode | (0x40 if wire.immediate and pdu.immediate else 0)  # type: ignore[attr-defined]
    b1 = wire.byte1
    for name, bit in wire.flags:
        if getattr(pdu, name):
            b1 |= 1 << bit
    try:
        for name, shift, width in wire.ints:
            value = getattr(pdu, name)
            if not 0 <= value < 1 << width:
                raise ValueError(f"{name}={value} needs more than {width} bits")
            b1 |= value << shift
        for name, length in wire.sized:
            if len(getattr(pdu, name)) != length:
                raise ValueError(f"{name} must be {length} bytes")
        if not (0 <= ahs_words < 256 and dsl <= _MAX_DSL):
            raise ValueError("the AHS or the data segment is too long")
        plan = _PLANS[pdu.opcode]
        values = list(plan.getter(pdu))
        values[plan.len_pos] = ahs_words << 24 | dsl
        if plan.tag_pos >= 0:
            values[plan.tag_pos] = RESERVED_TAG
        if numbers:
            for name, number in numbers.items():
                values[plan.index[name]] = number
        return wire.fmt.pack(b0, b1, *values)
    except (struct.error, TypeError, ValueError) as exc:
        raise LocalProtocolError(
            f"A {type(pdu).__name__} field is out of range ({exc}); this is a bug in eqliscsi."
        ) from exc


_LOGIN_REQUEST_FORMAT = _BY_OPCODE[Opcode.LOGIN_REQUEST].fmt
assert _BY_OPCODE[Opcode.LOGIN_REQUEST].fields == (  # the order login_request_bhs packs
    "version_max", "version_min", "_len", "isid", "tsih", "itt", "cid", "cmdsn", "exp_statsn",
)  # fmt: skip


def login_request_bhs(
    *,
    isid: bytes,
    itt: int,
    csg: int,
    nsg: int,
    transit: bool,
    cmdsn: int,
    exp_statsn: int,
    data_length: int,
) -> bytes:
    """The BHS of a Login Request with these fields (the others 0, I bit set): what
    ``encode_bhs(LoginRequest(...))`` builds, without the dataclass in between.

    The login machine sends four of these per CHAP login; building the dataclass and
    reading it back cost it ~3 µs each (docs/performance.md, session 5).  A Hypothesis
    test (tests/unit/iscsi/test_pdu.py) checks both give the same bytes.

    Raises:
        LocalProtocolError: a field does not fit its width.
    """
    if not (0 <= csg < 4 and 0 <= nsg < 4 and len(isid) == 6 and 0 <= data_length <= _MAX_DSL):
        raise LocalProtocolError("A LoginRequest field is out of range; this is a bug in eqliscsi.")
    b1 = (0x80 if transit else 0) | csg << 2 | nsg
    try:
        return _LOGIN_REQUEST_FORMAT.pack(
            Opcode.LOGIN_REQUEST | 0x40, b1, 0, 0, data_length, isid, 0, itt, 0, cmdsn, exp_statsn
        )
    except struct.error as exc:
        raise LocalProtocolError(
            f"A LoginRequest field is out of range ({exc}); this is a bug in eqliscsi."
        ) from exc


def decode_bhs(bhs: bytes, data: bytes = b"") -> Pdu:
    """Parse a 48-byte BHS (plus its data segment) into the matching dataclass.

    Raises:
        PduDecodeError: unknown or unsupported opcode, or a malformed header.
    """
    if len(bhs) != BHS_LENGTH:
        raise PduDecodeError(
            f"A PDU header is {len(bhs)} bytes instead of 48; the stream is out of sync."
        )
    opcode = bhs[0] & 0x3F
    wire = _BY_OPCODE.get(opcode)
    if wire is None:
        raise PduDecodeError(
            f"The target sent a PDU with opcode 0x{opcode:02x}, which this client does not "
            "handle; check the target configuration."
        )
    decoder = _DECODERS.get(opcode)
    if decoder is None:
        decoder = _DECODERS[opcode] = _write_decoder(wire)
    return decoder(bhs, data)


def _byte1_fields(wire: _Wire, b1: int) -> tuple[Any, ...]:
    """The one-bit and wider fields that byte 1 of this PDU type carries, in
    :func:`_byte1_names` order."""
    flags = tuple(bool(b1 >> bit & 1) for _, bit in wire.flags)
    return flags + tuple(b1 >> shift & ((1 << width) - 1) for _, shift, width in wire.ints)


def _byte1_names(wire: _Wire) -> tuple[str, ...]:
    return tuple(n for n, _ in wire.flags) + tuple(n for n, _, _ in wire.ints)


_DECODERS: dict[int, Callable[[bytes, bytes], Pdu]] = {}


def _write_decoder(wire: _Wire) -> Callable[[bytes, bytes], Pdu]:
    """The decoder of one PDU type, written out for its layout (as ``dataclasses``
    writes ``__init__``): unpack, one table lookup for byte 1, one keyword call.

    A general loop (zip the names with the values into a dict, merge byte 1's dict,
    call with ``**``) cost about twice as much per PDU, seven times per validated
    target (docs/performance.md, session 5).  The source is made only from this
    module's own table (``_WIRES``: field names, never data from the wire); the
    reference codec test (tests/unit/iscsi/test_pdu_reference.py) checks the result
    against the ``construct`` layouts for every type.
    """
    fmt, names = _DECODE[wire.cls.opcode]
    flags = _byte1_names(wire)
    values = [f"_v{i}" for i in range(len(names))]
    args = [f"{name}={value}" for name, value in zip(names, values, strict=True)]
    args += [f"{name}=_b1[{i}]" for i, name in enumerate(flags)]
    if wire.immediate:
        args.append("immediate=bool(_b0 & 0x40)")
    args.append("data=bytes(_data)")
    source = (
        "def decode(_bhs, _data):\n"
        f"    _b0, _byte1, {', '.join(values)}{',' if len(values) == 1 else ''} = _unpack(_bhs)\n"
        "    _b1 = _table[_byte1]\n"
        f"    return _cls({', '.join(args)})\n"
    )
    scope: dict[str, Any] = {
        "_unpack": fmt.unpack,
        "_table": tuple(_byte1_fields(wire, b1) for b1 in range(256)),
        "_cls": wire.cls,
    }
    exec(source, scope)  # noqa: S102 - source built from _WIRES only, see above
    decoder: Callable[[bytes, bytes], Pdu] = scope["decode"]
    return decoder
