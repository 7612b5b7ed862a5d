"""Text keys (RFC 7143 §6, §13) and the SendTargets answer (§13.3, Appendix C).

Syntax: ``key=value`` pairs in UTF-8, each ended by one NUL, padded with zeros.
We always NUL-terminate the last pair (LIO overwrites the last received byte with
NUL, turning ``SendTargets=All`` into ``SendTargets=Al`` otherwise), and skip NUL
runs when reading, as open-iscsi does.

Limits (§6.1): key names <= 63 bytes, values <= 255 bytes, iSCSI names <= 223
bytes, large binary values (CHAP_C/CHAP_R) <= 1024 binary bytes.

A text answer spanning PDUs is reassembled by :class:`TextAssembler`: tgt splits
mid-pair *without* setting C (reference §6), so all PDUs are buffered and the text
is parsed only once the final one arrives.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from eqliscsi.iscsi_discovery._pdu import RESERVED_TAG
from eqliscsi.iscsi_discovery._types import DiscoveredTarget, Portal, check_iscsi_name
from eqliscsi.iscsi_discovery.errors import (
    InvalidIscsiName,
    InvalidPortal,
    LocalProtocolError,
    PduDecodeError,
)

__all__ = [
    "MAX_TEXT_BYTES",
    "TextAssembler",
    "decode_text",
    "encode_text",
    "parse_send_targets",
    "text_dict",
]

MAX_KEY = 63
MAX_VALUE = 255
MAX_NAME = 223
MAX_BINARY = 1024
# A binary value is "0x" + 2 chars per byte or "0b" + base64 (4 chars per 3 bytes).
_MAX_BINARY_TEXT = 2 + 2 * MAX_BINARY
_NAME_KEYS = frozenset({"InitiatorName", "TargetName"})
_BINARY_KEYS = frozenset({"CHAP_C", "CHAP_R"})
# A whole text answer larger than this is refused: 1 MiB holds thousands of targets,
# and bounds what a hostile target can make us buffer.
MAX_TEXT_BYTES = 1 << 20


def _limit(key: str) -> int:
    if key in _BINARY_KEYS:
        return _MAX_BINARY_TEXT
    if key in _NAME_KEYS:
        return MAX_NAME
    return MAX_VALUE


# RFC 7143 §6.1: a key is 1-63 of a-z, A-Z, 0-9, '.', '-', '+', '@', '_' (and '#' for
# X# extension keys).  One compiled pattern instead of a per-character loop: keys are
# checked on every login and text PDU, both ways.
_KEY = re.compile(rf"[A-Za-z0-9.\-+@_#]{{1,{MAX_KEY}}}")


# Keys already seen valid: a login sends and receives ~30 keys, nearly always the
# same few dozen.  Bounded, so a target inventing keys cannot grow it.
_VALID_KEYS: set[str] = set()
_VALID_KEYS_MAX = 256


# Pairs already encoded or decoded and found valid.  A login sends and receives the
# same ~30 operational pairs to every target; only names and CHAP values change.
# No CHAP key is ever kept (challenges and responses are one-time values, and
# credentials stay out of module state), and both tables
# stop growing at a bound, so a target sending endless new pairs costs nothing.
_CACHE_MAX = 512
_ENCODED: dict[tuple[str, str], bytes] = {}
_DECODED: dict[bytes, tuple[str, str]] = {}


def _check_key(key: str) -> bool:
    if key in _VALID_KEYS:
        return True
    if _KEY.fullmatch(key) is None:
        return False
    if len(_VALID_KEYS) < _VALID_KEYS_MAX:
        _VALID_KEYS.add(key)
    return True


def encode_text(pairs: Iterable[tuple[str, str]]) -> bytes:
    """``key=value\\0`` for each pair (no padding; the framing layer pads).

    Raises:
        LocalProtocolError: a key or value breaks the syntax or size limits.
    """
    out = bytearray()
    for pair in pairs:
        known = _ENCODED.get(pair)
        if known is not None:
            out += known
            continue
        key, value = pair
        if not _check_key(key):
            raise LocalProtocolError(f"The text key {key!r} is not a valid iSCSI key; fix it.")
        raw = value.encode("utf-8")
        if b"\0" in raw or len(raw) > _limit(key):
            raise LocalProtocolError(
                f"The value for text key {key} is longer than allowed or has a NUL; shorten it."
            )
        encoded = key.encode() + b"=" + raw + b"\0"
        if not key.startswith("CHAP_") and len(_ENCODED) < _CACHE_MAX:
            _ENCODED[pair] = encoded
        out += encoded
    return bytes(out)


def decode_text(data: bytes) -> list[tuple[str, str]]:
    """Parse a complete text segment into ordered pairs (duplicates kept).

    Raises:
        PduDecodeError: a pair without ``=``, an invalid key, a value over its limit,
            bad UTF-8, or a last pair without its NUL terminator.
    """
    pairs: list[tuple[str, str]] = []
    chunks = bytes(data).split(b"\0")
    if chunks[-1]:
        raise PduDecodeError("A text segment from the target ends without a NUL terminator.")
    for chunk in chunks:
        if not chunk:
            continue  # NUL runs and padding
        known = _DECODED.get(chunk)
        if known is not None:
            pairs.append(known)
            continue
        key_raw, sep, value_raw = chunk.partition(b"=")
        try:
            key, value = key_raw.decode("ascii"), value_raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PduDecodeError(
                "A text key or value from the target is not valid UTF-8."
            ) from None
        if not sep or not _check_key(key):
            raise PduDecodeError(
                f"The target sent malformed text {key[:40]!r}; expected key=value."
            )
        if len(value_raw) > _limit(key):
            raise PduDecodeError(f"The target sent a value for {key} longer than RFC 7143 allows.")
        if not key.startswith("CHAP_") and len(_DECODED) < _CACHE_MAX:
            _DECODED[chunk] = (key, value)
        pairs.append((key, value))
    return pairs


def text_dict(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Pairs as a dict; a repeated key is a negotiation error (RFC 7143 §6.2)."""
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            raise PduDecodeError(f"The target sent the key {key} twice in one negotiation.")
        out[key] = value
    return out


class TextAssembler:
    """Buffers the data of a multi-PDU text answer until its final PDU.

    ``add`` returns ``True`` when the answer is complete: F=1, or (as open-iscsi
    does) TTT = 0xFFFFFFFF, since a target expecting a continuation must give a
    TTT to echo (RFC 7143 §11.11.4).
    """

    def __init__(self, limit: int = MAX_TEXT_BYTES) -> None:
        self._parts = bytearray()
        self._limit = limit
        self.ttt = RESERVED_TAG

    def add(self, data: bytes, *, final: bool, ttt: int) -> bool:
        self._parts += data
        if len(self._parts) > self._limit:
            raise PduDecodeError(
                f"The target's text answer exceeds {self._limit} bytes; narrow the request."
            )
        self.ttt = ttt
        return final or ttt == RESERVED_TAG

    def pairs(self) -> list[tuple[str, str]]:
        return decode_text(bytes(self._parts))


def parse_send_targets(
    pairs: Sequence[tuple[str, str]], discovery_portal: Portal
) -> list[DiscoveredTarget]:
    """Group SendTargets pairs into targets (RFC 7143 Appendix C).

    A target without any TargetAddress is reachable at the portal used for
    discovery (open-iscsi ``add_target_record``).  Unknown keys (TargetAlias,
    vendor ``X-`` keys) are skipped; a TargetAddress before any TargetName is an
    error.  A target listed twice keeps all its portals, in order, without repeats.
    """
    order: list[str] = []
    portals: dict[str, list[Portal]] = {}
    # A group lists every volume at the same one or two portals: parse each text once
    # (Portal is frozen, so sharing it is safe; its address check is most of the cost).
    parsed: dict[str, Portal] = {}
    current: str | None = None
    for key, value in pairs:
        if key == "TargetName":
            try:
                check_iscsi_name(value)
            except InvalidIscsiName:
                raise PduDecodeError(
                    f"The target listed an invalid TargetName {value[:80]!r}."
                ) from None
            current = value
            if value not in portals:
                order.append(value)
                portals[value] = []
        elif key == "TargetAddress":
            if current is None:
                raise PduDecodeError("The target sent a TargetAddress before any TargetName.")
            portal = parsed.get(value)
            if portal is None:
                try:
                    portal = parsed[value] = Portal.parse(value)
                except InvalidPortal:
                    raise PduDecodeError(
                        f"The target sent an unusable TargetAddress {value[:80]!r} for {current}."
                    ) from None
            if portal not in portals[current]:
                portals[current].append(portal)
    return [DiscoveredTarget(name, tuple(portals[name]) or (discovery_portal,)) for name in order]
