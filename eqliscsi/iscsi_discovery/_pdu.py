"""iSCSI PDU codec: the 48-byte Basic Header Segment of every PDU the client uses.

Strategy (RFC 7143 §11): one private ``construct`` Struct per opcode describes the BHS
byte for byte; the public side is one frozen dataclass per PDU whose field names are
the Struct's field names, so a single generic mapper converts both ways.  Struct
fields whose names start with ``_g`` are BitStructs (byte 0 and the flag byte 1)
whose members are dataclass fields; other names starting with ``_`` (the AHS and
DataSegmentLength, reserved constants) belong to the framing layer
(:mod:`._framing`).  Reserved bits are built as zero and ignored on parse.

The data segment is carried as ``data`` on each dataclass; padding and digests are
the framing layer's business.  Every ``construct`` error is re-raised as
:class:`PduDecodeError` (parse) or :class:`LocalProtocolError` (build).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any, ClassVar

import construct as c

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
# Private Structs.  One field per line; offsets in comments follow RFC 7143 §11.

_u8, _u16, _u32, _u64 = c.Int8ub, c.Int16ub, c.Int32ub, c.Int64ub


def _b0_request(opcode: int) -> c.Construct:
    # Byte 0: reserved bit, I (immediate) bit, 6-bit opcode (§11.2.1.2).
    return "_g0" / c.BitStruct(
        c.Padding(1), "immediate" / c.Flag, "_opcode" / c.Const(opcode, c.BitsInteger(6))
    )


def _b0_plain(opcode: int) -> c.Construct:
    # Target PDUs and Data-Out carry no I bit.
    return "_g0" / c.BitStruct(c.Padding(2), "_opcode" / c.Const(opcode, c.BitsInteger(6)))


# Byte 1 with only the F bit, which these PDUs always set; parse tolerates 0.
_F_ONLY = "_g1" / c.BitStruct("_f" / c.Default(c.Flag, True), c.Padding(7))
_LENGTHS = ("_ahs" / _u8, "_dsl" / c.Int24ub)

# fmt: off
_LOGIN_REQUEST = c.Struct(
    _b0_request(Opcode.LOGIN_REQUEST),
    "_g1" / c.BitStruct("transit" / c.Flag, "cont" / c.Flag, c.Padding(2),
                        "csg" / c.BitsInteger(2), "nsg" / c.BitsInteger(2)),
    "version_max" / _u8,
    "version_min" / _u8,
    *_LENGTHS,
    "isid" / c.Bytes(6),        # 8
    "tsih" / _u16,              # 14
    "itt" / _u32,               # 16
    "cid" / _u16,               # 20
    c.Padding(2),
    "cmdsn" / _u32,             # 24
    "exp_statsn" / _u32,        # 28
    c.Padding(16),
)
_LOGIN_RESPONSE = c.Struct(
    _b0_plain(Opcode.LOGIN_RESPONSE),
    "_g1" / c.BitStruct("transit" / c.Flag, "cont" / c.Flag, c.Padding(2),
                        "csg" / c.BitsInteger(2), "nsg" / c.BitsInteger(2)),
    "version_max" / _u8,
    "version_active" / _u8,
    *_LENGTHS,
    "isid" / c.Bytes(6),
    "tsih" / _u16,              # opaque: tgt writes it in host order (reference §2)
    "itt" / _u32,
    c.Padding(4),
    "statsn" / _u32,            # 24
    "exp_cmdsn" / _u32,         # 28
    "max_cmdsn" / _u32,         # 32
    "status_class" / _u8,       # 36
    "status_detail" / _u8,      # 37
    c.Padding(10),
)
_TEXT_REQUEST = c.Struct(
    _b0_request(Opcode.TEXT_REQUEST),
    "_g1" / c.BitStruct("final" / c.Flag, "cont" / c.Flag, c.Padding(6)),
    c.Padding(2),
    *_LENGTHS,
    "lun" / _u64,
    "itt" / _u32,
    "ttt" / _u32,
    "cmdsn" / _u32,
    "exp_statsn" / _u32,
    c.Padding(16),
)
_TEXT_RESPONSE = c.Struct(
    _b0_plain(Opcode.TEXT_RESPONSE),
    "_g1" / c.BitStruct("final" / c.Flag, "cont" / c.Flag, c.Padding(6)),
    c.Padding(2),
    *_LENGTHS,
    "lun" / _u64,
    "itt" / _u32,
    "ttt" / _u32,
    "statsn" / _u32,
    "exp_cmdsn" / _u32,
    "max_cmdsn" / _u32,
    c.Padding(12),
)
_LOGOUT_REQUEST = c.Struct(
    _b0_request(Opcode.LOGOUT_REQUEST),
    "_g1" / c.BitStruct("_f" / c.Default(c.Flag, True), "reason" / c.BitsInteger(7)),
    c.Padding(2),
    *_LENGTHS,
    c.Padding(8),
    "itt" / _u32,
    "cid" / _u16,
    c.Padding(2),
    "cmdsn" / _u32,
    "exp_statsn" / _u32,
    c.Padding(16),
)
_LOGOUT_RESPONSE = c.Struct(
    _b0_plain(Opcode.LOGOUT_RESPONSE),
    _F_ONLY,
    "response" / _u8,
    c.Padding(1),
    *_LENGTHS,
    c.Padding(8),
    "itt" / _u32,
    c.Padding(4),
    "statsn" / _u32,
    "exp_cmdsn" / _u32,
    "max_cmdsn" / _u32,
    c.Padding(4),
    "time2wait" / _u16,         # 40
    "time2retain" / _u16,       # 42
    c.Padding(4),
)
_NOP_OUT = c.Struct(
    _b0_request(Opcode.NOP_OUT),
    _F_ONLY,
    c.Padding(2),
    *_LENGTHS,
    "lun" / _u64,
    "itt" / _u32,
    "ttt" / _u32,
    "cmdsn" / _u32,
    "exp_statsn" / _u32,
    c.Padding(16),
)
_NOP_IN = c.Struct(
    _b0_plain(Opcode.NOP_IN),
    _F_ONLY,
    c.Padding(2),
    *_LENGTHS,
    "lun" / _u64,
    "itt" / _u32,
    "ttt" / _u32,
    "statsn" / _u32,
    "exp_cmdsn" / _u32,
    "max_cmdsn" / _u32,
    c.Padding(12),
)
_SCSI_COMMAND = c.Struct(
    _b0_request(Opcode.SCSI_COMMAND),
    "_g1" / c.BitStruct("final" / c.Flag, "read" / c.Flag, "write" / c.Flag, c.Padding(2),
                        "attr" / c.BitsInteger(3)),
    c.Padding(2),
    *_LENGTHS,
    "lun" / _u64,
    "itt" / _u32,
    "edtl" / _u32,              # 20: ExpectedDataTransferLength
    "cmdsn" / _u32,
    "exp_statsn" / _u32,
    "cdb" / c.Bytes(16),        # 32
)
_SCSI_RESPONSE = c.Struct(
    _b0_plain(Opcode.SCSI_RESPONSE),
    "_g1" / c.BitStruct("_f" / c.Default(c.Flag, True), c.Padding(2),
                        "bidi_overflow" / c.Flag, "bidi_underflow" / c.Flag,
                        "overflow" / c.Flag, "underflow" / c.Flag, c.Padding(1)),
    "response" / _u8,
    "status" / _u8,
    *_LENGTHS,
    c.Padding(8),
    "itt" / _u32,
    "snack_tag" / _u32,
    "statsn" / _u32,
    "exp_cmdsn" / _u32,
    "max_cmdsn" / _u32,
    "exp_datasn" / _u32,
    "bidi_residual" / _u32,
    "residual" / _u32,
)
_DATA_IN = c.Struct(
    _b0_plain(Opcode.DATA_IN),
    "_g1" / c.BitStruct("final" / c.Flag, "ack" / c.Flag, c.Padding(3),
                        "overflow" / c.Flag, "underflow" / c.Flag, "status_present" / c.Flag),
    c.Padding(1),
    "status" / _u8,
    *_LENGTHS,
    "lun" / _u64,
    "itt" / _u32,
    "ttt" / _u32,
    "statsn" / _u32,
    "exp_cmdsn" / _u32,
    "max_cmdsn" / _u32,
    "datasn" / _u32,
    "buffer_offset" / _u32,
    "residual" / _u32,
)
_DATA_OUT = c.Struct(
    _b0_plain(Opcode.DATA_OUT),
    "_g1" / c.BitStruct("final" / c.Flag, c.Padding(7)),
    c.Padding(2),
    *_LENGTHS,
    "lun" / _u64,
    "itt" / _u32,
    "ttt" / _u32,
    c.Padding(4),
    "exp_statsn" / _u32,
    c.Padding(4),
    "datasn" / _u32,
    "buffer_offset" / _u32,
    c.Padding(4),
)
_R2T = c.Struct(
    _b0_plain(Opcode.R2T),
    _F_ONLY,
    c.Padding(2),
    *_LENGTHS,
    "lun" / _u64,
    "itt" / _u32,
    "ttt" / _u32,
    "statsn" / _u32,
    "exp_cmdsn" / _u32,
    "max_cmdsn" / _u32,
    "r2tsn" / _u32,
    "buffer_offset" / _u32,
    "desired_length" / _u32,
)
_REJECT = c.Struct(
    _b0_plain(Opcode.REJECT),
    _F_ONLY,
    "reason" / _u8,
    c.Padding(1),
    *_LENGTHS,
    c.Padding(8),
    "_tag" / c.Default(_u32, RESERVED_TAG),
    c.Padding(4),
    "statsn" / _u32,
    "exp_cmdsn" / _u32,
    "max_cmdsn" / _u32,
    "datasn" / _u32,            # DataSN/R2TSN
    c.Padding(8),
)
_ASYNC_MESSAGE = c.Struct(
    _b0_plain(Opcode.ASYNC_MESSAGE),
    _F_ONLY,
    c.Padding(2),
    *_LENGTHS,
    "lun" / _u64,
    "_tag" / c.Default(_u32, RESERVED_TAG),
    c.Padding(4),
    "statsn" / _u32,
    "exp_cmdsn" / _u32,
    "max_cmdsn" / _u32,
    "event" / _u8,              # 36: AsyncEvent
    "vcode" / _u8,
    "param1" / _u16,
    "param2" / _u16,
    "param3" / _u16,
    c.Padding(4),
)
# fmt: on


# ---------------------------------------------------------------------------------
# Public dataclasses.


@dataclass(frozen=True, slots=True)
class Pdu:
    """Base of every PDU; ``data`` is the data segment without padding."""

    opcode: ClassVar[Opcode]
    _struct: ClassVar[c.Struct]


@dataclass(frozen=True, slots=True)
class LoginRequest(Pdu):
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
    _struct = _LOGIN_REQUEST


@dataclass(frozen=True, slots=True)
class LoginResponse(Pdu):
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
    _struct = _LOGIN_RESPONSE


@dataclass(frozen=True, slots=True)
class TextRequest(Pdu):
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
    _struct = _TEXT_REQUEST


@dataclass(frozen=True, slots=True)
class TextResponse(Pdu):
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
    _struct = _TEXT_RESPONSE


@dataclass(frozen=True, slots=True)
class LogoutRequest(Pdu):
    itt: int
    reason: int = 0  # 0 = close the session
    cid: int = 0
    cmdsn: int = 0
    exp_statsn: int = 0
    immediate: bool = True
    data: bytes = b""
    opcode = Opcode.LOGOUT_REQUEST
    _struct = _LOGOUT_REQUEST


@dataclass(frozen=True, slots=True)
class LogoutResponse(Pdu):
    itt: int
    response: int = 0
    statsn: int = 0
    exp_cmdsn: int = 0
    max_cmdsn: int = 0
    time2wait: int = 0
    time2retain: int = 0
    data: bytes = b""
    opcode = Opcode.LOGOUT_RESPONSE
    _struct = _LOGOUT_RESPONSE


@dataclass(frozen=True, slots=True)
class NopOut(Pdu):
    itt: int
    ttt: int = RESERVED_TAG
    cmdsn: int = 0
    exp_statsn: int = 0
    lun: int = 0
    immediate: bool = True
    data: bytes = b""
    opcode = Opcode.NOP_OUT
    _struct = _NOP_OUT


@dataclass(frozen=True, slots=True)
class NopIn(Pdu):
    itt: int
    ttt: int = RESERVED_TAG
    statsn: int = 0
    exp_cmdsn: int = 0
    max_cmdsn: int = 0
    lun: int = 0
    data: bytes = b""
    opcode = Opcode.NOP_IN
    _struct = _NOP_IN


@dataclass(frozen=True, slots=True)
class ScsiCommand(Pdu):
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
    _struct = _SCSI_COMMAND

    def __post_init__(self) -> None:
        # CDBs longer than 16 bytes need an Extended CDB AHS, which we never send.
        if len(self.cdb) > 16:
            raise LocalProtocolError("A CDB longer than 16 bytes needs an AHS; use a 16-byte CDB.")
        object.__setattr__(self, "cdb", bytes(self.cdb).ljust(16, b"\0"))


@dataclass(frozen=True, slots=True)
class ScsiResponse(Pdu):
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
    _struct = _SCSI_RESPONSE


@dataclass(frozen=True, slots=True)
class DataIn(Pdu):
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
    _struct = _DATA_IN


@dataclass(frozen=True, slots=True)
class DataOut(Pdu):
    itt: int
    ttt: int = RESERVED_TAG
    lun: int = 0
    exp_statsn: int = 0
    datasn: int = 0
    buffer_offset: int = 0
    final: bool = False
    data: bytes = b""
    opcode = Opcode.DATA_OUT
    _struct = _DATA_OUT


@dataclass(frozen=True, slots=True)
class R2T(Pdu):
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
    _struct = _R2T


@dataclass(frozen=True, slots=True)
class Reject(Pdu):
    reason: int
    statsn: int = 0
    exp_cmdsn: int = 0
    max_cmdsn: int = 0
    datasn: int = 0
    data: bytes = b""  # the BHS of the rejected PDU (RFC 7143 §11.17.1)
    opcode = Opcode.REJECT
    _struct = _REJECT

    @property
    def rejected_itt(self) -> int | None:
        """ITT of the PDU this Reject refers to, when the data carries its header."""
        if len(self.data) >= 20:
            return int.from_bytes(self.data[16:20], "big")
        return None


@dataclass(frozen=True, slots=True)
class AsyncMessage(Pdu):
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
    _struct = _ASYNC_MESSAGE


# ---------------------------------------------------------------------------------
# The generic mapper between Structs and dataclasses.


@dataclass(frozen=True, slots=True)
class _Layout:
    cls: type[Pdu]
    struct: c.Struct
    top: tuple[str, ...]
    groups: tuple[tuple[str, tuple[str, ...]], ...]


def _inner_struct(con: Any) -> c.Struct:
    while not isinstance(con, c.Struct):
        con = con.subcon
    return con


def _layout(cls: type[Pdu]) -> _Layout:
    struct = cls._struct
    top: list[str] = []
    groups: list[tuple[str, tuple[str, ...]]] = []
    for sc in struct.subcons:
        name = sc.name
        if not name:
            continue
        if name.startswith("_g"):
            inner = _inner_struct(sc.subcon)
            names = tuple(s.name for s in inner.subcons if s.name and not s.name.startswith("_"))
            groups.append((name, names))
        elif not name.startswith("_"):
            top.append(name)
    mapped = set(top) | {n for _, names in groups for n in names}
    declared = {f.name for f in dataclasses.fields(cls)} - {"data"}
    # A field on one side but not the other is a bug in this file, caught at import.
    if mapped != declared:
        raise AssertionError(
            f"{cls.__name__}: struct {sorted(mapped)} != fields {sorted(declared)}"
        )
    return _Layout(cls, struct, tuple(top), tuple(groups))


_LAYOUTS: dict[int, _Layout] = {
    cls.opcode: _layout(cls)
    for cls in (
        LoginRequest,
        LoginResponse,
        TextRequest,
        TextResponse,
        LogoutRequest,
        LogoutResponse,
        NopOut,
        NopIn,
        ScsiCommand,
        ScsiResponse,
        DataIn,
        DataOut,
        R2T,
        Reject,
        AsyncMessage,
    )
}


def encode_bhs(pdu: Pdu, *, ahs_words: int = 0) -> bytes:
    """Build the 48-byte BHS of ``pdu``; DataSegmentLength comes from ``pdu.data``.

    Raises:
        LocalProtocolError: a field does not fit its width.
    """
    layout = _LAYOUTS[pdu.opcode]
    fields: dict[str, Any] = {name: getattr(pdu, name) for name in layout.top}
    for group, names in layout.groups:
        fields[group] = {name: getattr(pdu, name) for name in names}
    fields["_ahs"] = ahs_words
    fields["_dsl"] = len(pdu.data)  # type: ignore[attr-defined]
    try:
        return bytes(layout.struct.build(fields))
    except (c.ConstructError, TypeError, ValueError) as exc:
        raise LocalProtocolError(
            f"A {type(pdu).__name__} field is out of range ({exc}); this is a bug in eqliscsi."
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
    layout = _LAYOUTS.get(opcode)
    if layout is None:
        raise PduDecodeError(
            f"The target sent a PDU with opcode 0x{opcode:02x}, which this client does not "
            "handle; check the target configuration."
        )
    try:
        parsed = layout.struct.parse(bhs)
    except c.ConstructError as exc:  # pragma: no cover - Const checks are pre-empted above
        raise PduDecodeError(f"A PDU header could not be parsed ({exc}).") from exc
    kwargs: dict[str, Any] = {name: parsed[name] for name in layout.top}
    for group, names in layout.groups:
        kwargs.update({name: parsed[group][name] for name in names})
    kwargs["data"] = bytes(data)
    return layout.cls(**kwargs)
