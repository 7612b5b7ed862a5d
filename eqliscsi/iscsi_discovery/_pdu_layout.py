"""Reference layouts of the Basic Header Segments, written with ``construct``.

These Structs are the readable, byte-for-byte description of every BHS the client
uses (RFC 7143 §11); offsets in comments follow the RFC.  The codec the client runs
(:func:`._pdu.encode_bhs` / :func:`._pdu.decode_bhs`) is a ``struct``-based table
because building and parsing with ``construct`` cost ~50 µs per header, a quarter of
a discovery's CPU (docs/performance.md).  This module is never imported on that path:
the tests (``tests/unit/iscsi/test_pdu_reference.py``) run Hypothesis over every PDU
type and prove that both codecs produce and accept the same bytes.

Struct fields whose names start with ``_g`` are BitStructs (byte 0 and the flag byte
1) whose members are dataclass fields; other names starting with ``_`` (the AHS and
DataSegmentLength, reserved constants) belong to the framing layer.  Reserved bits
are built as zero and ignored on parse.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import construct as c

from eqliscsi.iscsi_discovery._pdu import (
    R2T,
    RESERVED_TAG,
    AsyncMessage,
    DataIn,
    DataOut,
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    NopOut,
    Opcode,
    Pdu,
    Reject,
    ScsiCommand,
    ScsiResponse,
    TextRequest,
    TextResponse,
)

__all__ = ["REFERENCE_STRUCTS", "reference_decode", "reference_encode"]

# ---------------------------------------------------------------------------------
# The Structs.  One field per line; offsets in comments follow RFC 7143 §11.

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


REFERENCE_STRUCTS: dict[type[Pdu], c.Struct] = {
    LoginRequest: _LOGIN_REQUEST,
    LoginResponse: _LOGIN_RESPONSE,
    TextRequest: _TEXT_REQUEST,
    TextResponse: _TEXT_RESPONSE,
    LogoutRequest: _LOGOUT_REQUEST,
    LogoutResponse: _LOGOUT_RESPONSE,
    NopOut: _NOP_OUT,
    NopIn: _NOP_IN,
    ScsiCommand: _SCSI_COMMAND,
    ScsiResponse: _SCSI_RESPONSE,
    DataIn: _DATA_IN,
    DataOut: _DATA_OUT,
    R2T: _R2T,
    Reject: _REJECT,
    AsyncMessage: _ASYNC_MESSAGE,
}


# ---------------------------------------------------------------------------------
# The generic mapper between Structs and dataclasses.


@dataclass(frozen=True, slots=True)
class _Layout:
    """A PDU class with its construct Struct and how its fields are grouped."""

    cls: type[Pdu]
    struct: c.Struct
    top: tuple[str, ...]
    groups: tuple[tuple[str, tuple[str, ...]], ...]


def _inner_struct(con: Any) -> c.Struct:
    while not isinstance(con, c.Struct):
        con = con.subcon
    return con


def _layout(cls: type[Pdu], struct: c.Struct) -> _Layout:
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
    cls.opcode: _layout(cls, struct) for cls, struct in REFERENCE_STRUCTS.items()
}


def reference_encode(pdu: Pdu, *, ahs_words: int = 0) -> bytes:
    """The BHS of ``pdu`` built by ``construct``; raises ``construct``'s own errors."""
    layout = _LAYOUTS[pdu.opcode]
    fields: dict[str, Any] = {name: getattr(pdu, name) for name in layout.top}
    for group, names in layout.groups:
        fields[group] = {name: getattr(pdu, name) for name in names}
    fields["_ahs"] = ahs_words
    fields["_dsl"] = len(pdu.data)  # type: ignore[attr-defined]
    return bytes(layout.struct.build(fields))


def reference_decode(bhs: bytes, data: bytes = b"") -> Pdu:
    """Parse a 48-byte BHS with ``construct`` into the matching dataclass."""
    layout = _LAYOUTS[Opcode(bhs[0] & 0x3F)]
    parsed = layout.struct.parse(bhs)
    kwargs: dict[str, Any] = {name: parsed[name] for name in layout.top}
    for group, names in layout.groups:
        kwargs.update({name: parsed[group][name] for name in names})
    kwargs["data"] = bytes(data)
    return layout.cls(**kwargs)
