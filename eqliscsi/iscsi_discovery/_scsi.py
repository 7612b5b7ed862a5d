"""The few SCSI commands a probe needs: CDB builders and parsers (SPC-4, SBC-3).

TEST UNIT READY, INQUIRY (standard, VPD 0x80 unit serial, VPD 0x83 device
identification), REPORT LUNS, READ CAPACITY(16), READ(16)/WRITE(16).  Sense data is
decoded in both fixed (0x70/0x71) and descriptor (0x72/0x73) formats.  All parsers
raise :class:`PduDecodeError` on short or inconsistent data: it came from the target.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from eqliscsi.iscsi_discovery._types import LunInfo
from eqliscsi.iscsi_discovery.errors import LocalProtocolError, PduDecodeError

__all__ = [
    "DeviceType",
    "ScsiStatus",
    "Sense",
    "SenseKey",
    "StandardInquiry",
    "cdb_inquiry",
    "cdb_read16",
    "cdb_read_capacity16",
    "cdb_report_luns",
    "cdb_test_unit_ready",
    "cdb_write16",
    "data_in_length",
    "decode_lun",
    "lun_info",
    "parse_device_identifiers",
    "parse_inquiry",
    "parse_read_capacity16",
    "parse_report_luns",
    "parse_sense",
    "parse_unit_serial",
]


class ScsiStatus(enum.IntEnum):
    GOOD = 0x00
    CHECK_CONDITION = 0x02
    CONDITION_MET = 0x04
    BUSY = 0x08
    RESERVATION_CONFLICT = 0x18
    TASK_SET_FULL = 0x28
    ACA_ACTIVE = 0x30
    TASK_ABORTED = 0x40


class SenseKey(enum.IntEnum):
    NO_SENSE = 0x0
    RECOVERED_ERROR = 0x1
    NOT_READY = 0x2
    MEDIUM_ERROR = 0x3
    HARDWARE_ERROR = 0x4
    ILLEGAL_REQUEST = 0x5
    UNIT_ATTENTION = 0x6
    DATA_PROTECT = 0x7
    ABORTED_COMMAND = 0xB


class DeviceType(enum.IntEnum):
    DISK = 0x00
    CONTROLLER = 0x0C  # tgt's LUN 0 (reference §8)
    UNKNOWN = 0x1F


def data_in_length(cdb: bytes) -> int | None:
    """The Data-In length a CDB asks for, when the CDB alone says so.

    INQUIRY, REPORT LUNS and READ CAPACITY(16) carry an allocation length; TEST UNIT
    READY moves nothing.  READ(16) depends on the block size, so ``None``.
    """
    if not cdb:
        return None
    op = cdb[0]
    if op == 0x00 and len(cdb) >= 6:
        return 0
    if op == 0x12 and len(cdb) >= 6:
        return int.from_bytes(cdb[3:5], "big")
    if op == 0xA0 and len(cdb) >= 12:
        return int.from_bytes(cdb[6:10], "big")
    if op == 0x9E and len(cdb) >= 16:
        return int.from_bytes(cdb[10:14], "big")
    return None


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def cdb_test_unit_ready() -> bytes:
    return bytes(6)


def cdb_inquiry(page: int | None = None, allocation: int = 255) -> bytes:
    """INQUIRY; ``page`` selects a VPD page (EVPD=1)."""
    if not 0 < allocation <= 0xFFFF:
        raise LocalProtocolError("INQUIRY allocation length must be 1-65535.")
    evpd = 0 if page is None else 1
    return bytes([0x12, evpd, page or 0]) + allocation.to_bytes(2, "big") + b"\0"


def cdb_report_luns(allocation: int = 4096) -> bytes:
    if allocation < 16:  # SPC-4: at least 16 bytes
        raise LocalProtocolError("REPORT LUNS allocation length must be at least 16.")
    return bytes([0xA0, 0, 0, 0, 0, 0]) + _u32(allocation) + b"\0\0"


def cdb_read_capacity16(allocation: int = 32) -> bytes:
    # SERVICE ACTION IN(16) 0x9E, service action 0x10.
    return bytes([0x9E, 0x10]) + bytes(8) + _u32(allocation) + b"\0\0"


def _rw16(opcode: int, lba: int, blocks: int) -> bytes:
    if not (0 <= lba < 1 << 64 and 0 < blocks < 1 << 32):
        raise LocalProtocolError("LBA or block count out of range for a 16-byte CDB.")
    return bytes([opcode, 0]) + lba.to_bytes(8, "big") + _u32(blocks) + b"\0\0"


def cdb_read16(lba: int, blocks: int) -> bytes:
    return _rw16(0x88, lba, blocks)


def cdb_write16(lba: int, blocks: int) -> bytes:
    return _rw16(0x8A, lba, blocks)


@dataclass(frozen=True, slots=True)
class Sense:
    """Fixed or descriptor sense data, reduced to what errors report (SPC-4 §4.5)."""

    response_code: int
    sense_key: int
    asc: int
    ascq: int

    @property
    def is_unit_attention(self) -> bool:
        return self.sense_key == SenseKey.UNIT_ATTENTION

    @property
    def lun_not_supported(self) -> bool:
        """05/25/00, LOGICAL UNIT NOT SUPPORTED (SPC-4 §4.5.1): no LUN at that number.

        LIO answers any command to an absent LUN so, tgt every command but INQUIRY.
        """
        return self.sense_key == SenseKey.ILLEGAL_REQUEST and self.asc == 0x25


def parse_sense(segment: bytes) -> Sense | None:
    """Sense data from a SCSI Response data segment (``u16 SenseLength`` + sense).

    Returns ``None`` when the segment carries no sense data.
    """
    if len(segment) < 2:
        return None
    length = int.from_bytes(segment[:2], "big")
    sense = segment[2 : 2 + length]
    if length == 0:
        return None
    if len(sense) < length or len(sense) < 2:
        raise PduDecodeError("The target sent truncated sense data.")
    code = sense[0] & 0x7F
    if code in (0x70, 0x71):
        if len(sense) < 14:
            # Short fixed sense: the key is there, ASC/ASCQ are not.
            return Sense(code, sense[2] & 0x0F if len(sense) > 2 else 0, 0, 0)
        return Sense(code, sense[2] & 0x0F, sense[12], sense[13])
    if code in (0x72, 0x73):
        if len(sense) < 4:
            raise PduDecodeError("The target sent descriptor sense data shorter than 4 bytes.")
        return Sense(code, sense[1] & 0x0F, sense[2], sense[3])
    raise PduDecodeError(f"The target sent sense data with response code 0x{code:02x}.")


def decode_lun(field: int) -> int:
    """The LUN number from an 8-byte LUN field (peripheral or flat addressing)."""
    b0, b1 = (field >> 56) & 0xFF, (field >> 48) & 0xFF
    method = b0 >> 6
    if method == 0:  # peripheral device addressing; bus 0 only
        return b1 if b0 == 0 else ((b0 & 0x3F) << 8) | b1
    if method == 1:  # flat space
        return ((b0 & 0x3F) << 8) | b1
    raise PduDecodeError(f"The target reported LUN field 0x{field:016x}, which is not supported.")


def parse_report_luns(data: bytes) -> list[int]:
    """REPORT LUNS parameter data: raw 8-byte LUN fields, as big-endian integers."""
    if len(data) < 8:
        raise PduDecodeError("The target sent REPORT LUNS data shorter than 8 bytes.")
    length = int.from_bytes(data[:4], "big")
    if length % 8:
        raise PduDecodeError("The target sent a REPORT LUNS list length not a multiple of 8.")
    # The list may be cut by our allocation length; take the entries that arrived.
    body = data[8 : 8 + length]
    return [int.from_bytes(body[i : i + 8], "big") for i in range(0, len(body) - 7, 8)]


@dataclass(frozen=True, slots=True)
class StandardInquiry:
    """The standard INQUIRY fields a probe reports (SPC-4 §6.6.2)."""

    qualifier: int
    device_type: int
    vendor: str
    product: str
    revision: str


def _ascii(raw: bytes) -> str:
    return raw.decode("ascii", "replace").strip(" \0")


def parse_inquiry(data: bytes) -> StandardInquiry:
    if len(data) < 36:
        raise PduDecodeError("The target sent standard INQUIRY data shorter than 36 bytes.")
    return StandardInquiry(
        qualifier=data[0] >> 5,
        device_type=data[0] & 0x1F,
        vendor=_ascii(data[8:16]),
        product=_ascii(data[16:32]),
        revision=_ascii(data[32:36]),
    )


def _vpd(data: bytes, page: int) -> bytes:
    if len(data) < 4 or data[1] != page:
        raise PduDecodeError(f"The target sent no valid VPD page 0x{page:02x}.")
    length = int.from_bytes(data[2:4], "big")
    return data[4 : 4 + length]


def parse_unit_serial(data: bytes) -> str:
    return _ascii(_vpd(data, 0x80))


def parse_device_identifiers(data: bytes) -> tuple[str, ...]:
    """LUN-associated designators from VPD 0x83 as ``naa.``/``eui.``/``t10.``/``name.``."""
    body = _vpd(data, 0x83)
    out: list[str] = []
    pos = 0
    while pos + 4 <= len(body):
        code_set = body[pos] & 0x0F
        association = (body[pos + 1] >> 4) & 0x03
        kind = body[pos + 1] & 0x0F
        length = body[pos + 3]
        value = body[pos + 4 : pos + 4 + length]
        pos += 4 + length
        if len(value) < length:
            # The page was longer than our allocation length (SPC-4 §6.6.1: the target
            # returns the first bytes): keep the designators that arrived whole.  A
            # designator running past the page's own length is a broken page instead.
            declared = int.from_bytes(data[2:4], "big")
            if pos <= declared and len(data) < 4 + declared:
                break
            raise PduDecodeError("The target sent a truncated VPD 0x83 designator.")
        if association != 0:  # only designators of the logical unit itself
            continue
        if kind == 3:
            out.append("naa." + value.hex())
        elif kind == 2:
            out.append("eui." + value.hex())
        elif kind == 1:
            out.append("t10." + (_ascii(value) if code_set in (2, 3) else value.hex()))
        elif kind == 8:
            out.append("name." + _ascii(value))
    return tuple(out)


def parse_read_capacity16(data: bytes) -> tuple[int, int]:
    """(number of blocks, block size) from READ CAPACITY(16) data."""
    if len(data) < 12:
        raise PduDecodeError("The target sent READ CAPACITY(16) data shorter than 12 bytes.")
    last_lba = int.from_bytes(data[:8], "big")
    block = int.from_bytes(data[8:12], "big")
    if block == 0:
        raise PduDecodeError("The target reported a block size of 0.")
    return last_lba + 1, block


def lun_info(
    lun: int,
    inquiry: StandardInquiry,
    capacity: tuple[int, int] | None,
    serial: str = "",
    identifiers: tuple[str, ...] = (),
) -> LunInfo:
    blocks, block_size = capacity if capacity else (0, 0)
    return LunInfo(
        lun=lun,
        size_bytes=blocks * block_size,
        block_size=block_size,
        vendor=inquiry.vendor,
        product=inquiry.product,
        serial=serial,
        device_type=inquiry.device_type,
        identifiers=identifiers,
    )
