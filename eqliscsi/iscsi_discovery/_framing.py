"""PDU framing: BHS + AHS + [HeaderDigest] + data + pad + [DataDigest] (RFC 7143 §11.2).

Digests are CRC32C (Castagnoli, RFC 7143 §13.1 / Appendix B) written
**little-endian** on the wire: libiscsi builds them LSB first and tgt drops the
connection on a big-endian digest (reference §1).  The header digest covers BHS+AHS;
the data digest covers the data segment *with* its pad bytes.  Login PDUs never
carry digests: digests start after the final Login Response (RFC 7143 §13.1).

:class:`ReceiveBuffer` is h11's receive-buffer idea: feed bytes, then ask for the
next PDU, which is ``None`` while more bytes are needed.  It enforces our
MaxRecvDataSegmentLength when the header arrives, so an oversized
DataSegmentLength is refused before anything is allocated for it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

from eqliscsi.iscsi_discovery._pdu import BHS_LENGTH, Opcode, Pdu, decode_bhs, encode_bhs
from eqliscsi.iscsi_discovery.errors import LocalProtocolError, PduDecodeError, PduTooLarge

__all__ = [
    "DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH",
    "ReceiveBuffer",
    "crc32c",
    "encode_pdu",
    "pad_length",
]

DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH = 8192  # RFC 7143 §13.12 default
_MAX_DSL = (1 << 24) - 1
_NO_DIGEST = frozenset({Opcode.LOGIN_REQUEST, Opcode.LOGIN_RESPONSE})


@functools.cache
def _crc32c_impl() -> Callable[[bytes], int]:
    # Imported on first use: digests are off unless negotiated, and importing the
    # crc32c package (it reads its metadata) costs 30-45 ms of every CLI start.
    import crc32c as module  # noqa: PLC0415

    impl: Callable[[bytes], int] = module.crc32c
    return impl


def crc32c(data: bytes) -> int:
    """CRC32C of ``data`` as an integer (send it with ``to_bytes(4, "little")``)."""
    return int(_crc32c_impl()(data))


def pad_length(length: int) -> int:
    """Zero bytes that follow a data segment of ``length`` bytes (4-byte alignment)."""
    return -length & 3


def encode_pdu(
    pdu: Pdu,
    *,
    header_digest: bool = False,
    data_digest: bool = False,
    numbers: Mapping[str, int] | None = None,
) -> bytes:
    """The wire bytes of ``pdu``, with digests when negotiated (never on login PDUs).

    ``numbers`` overrides header integers such as CmdSN (see :func:`._pdu.encode_bhs`).
    """
    data: bytes = pdu.data  # type: ignore[attr-defined]
    if len(data) > _MAX_DSL:
        raise LocalProtocolError("A data segment over 16 MiB cannot be framed; send less data.")
    digests = pdu.opcode not in _NO_DIGEST
    bhs = encode_bhs(pdu, numbers=numbers)
    parts = [bhs]
    if header_digest and digests:
        parts.append(crc32c(bhs).to_bytes(4, "little"))
    if data:
        padded = data + bytes(pad_length(len(data)))
        parts.append(padded)
        if data_digest and digests:
            parts.append(crc32c(padded).to_bytes(4, "little"))
    return b"".join(parts)


class ReceiveBuffer:
    """Accumulates bytes from one connection and cuts them into PDUs.

    Args:
        max_recv_data_segment_length: our declared MaxRecvDataSegmentLength; a PDU
            announcing more raises :class:`PduTooLarge`.
        header_digest / data_digest: whether CRC32C digests were negotiated.
    """

    def __init__(
        self,
        max_recv_data_segment_length: int = DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH,
        *,
        header_digest: bool = False,
        data_digest: bool = False,
    ) -> None:
        self.max_recv_data_segment_length = max_recv_data_segment_length
        self.header_digest = header_digest
        self.data_digest = data_digest
        self._buf = bytearray()

    def __len__(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        self._buf += data

    def take_remaining(self) -> bytes:
        """Hand over unconsumed bytes (login -> full feature handoff)."""
        out = bytes(self._buf)
        self._buf.clear()
        return out

    def next_pdu(self) -> Pdu | None:
        """The next complete PDU, or ``None`` when more bytes are needed.

        Raises:
            PduTooLarge: DataSegmentLength over our limit (checked at header time).
            PduDecodeError: digest mismatch or malformed header; the connection must
                be closed (ERL 0, RFC 7143 §7.2).
        """
        buf = self._buf
        if len(buf) < BHS_LENGTH:
            return None
        opcode = buf[0] & 0x3F
        digests = opcode not in _NO_DIGEST
        ahs = buf[4] * 4
        dsl = int.from_bytes(buf[5:8], "big")
        hd = 4 if self.header_digest and digests else 0
        head_end = BHS_LENGTH + ahs
        if len(buf) < head_end + hd:
            return None
        if hd:
            # Verify the header before trusting its DataSegmentLength.
            got = int.from_bytes(buf[head_end : head_end + 4], "little")
            if got != crc32c(bytes(buf[:head_end])):
                raise PduDecodeError(
                    "A PDU header digest does not match; the connection is corrupted."
                )
        if dsl > self.max_recv_data_segment_length:
            raise PduTooLarge(dsl, self.max_recv_data_segment_length)
        data_start = head_end + hd
        padded = dsl + pad_length(dsl)
        dd = 4 if self.data_digest and digests and dsl else 0
        total = data_start + padded + dd
        if len(buf) < total:
            return None
        if dd:
            got = int.from_bytes(buf[total - 4 : total], "little")
            if got != crc32c(bytes(buf[data_start : data_start + padded])):
                raise PduDecodeError(
                    "A PDU data digest does not match; the connection is corrupted."
                )
        bhs = bytes(buf[:BHS_LENGTH])
        data = bytes(buf[data_start : data_start + dsl])
        del buf[:total]
        return decode_bhs(bhs, data)
