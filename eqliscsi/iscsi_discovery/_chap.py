"""CHAP maths for iSCSI login (RFC 7143 §12.1.3, RFC 1994).

``R = H(CHAP_I as one byte || secret || challenge)`` with H chosen by CHAP_A:
5 = MD5 (the only one RFC 7143 mandates, our default), 6 = SHA-1, 7 = SHA-256,
8 = SHA3-256 (IANA numbering; tgt mis-numbers 7 as SHA-1, see ``_login``).

Binary values travel as ``0x`` hex or ``0b`` base64 (RFC 7143 §6.1); we send hex and
accept both, in either case of prefix.  Challenges come from :mod:`secrets`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from eqliscsi.iscsi_discovery._types import ChapAlgorithm, ChapCredentials
from eqliscsi.iscsi_discovery.errors import ChapAlgorithmMismatch, PduDecodeError

__all__ = [
    "DIGEST_SIZES",
    "MIN_RECOMMENDED_SECRET",
    "Challenge",
    "chap_response",
    "decode_binary",
    "encode_binary",
    "new_challenge",
    "parse_algorithm",
    "parse_identifier",
    "responses_equal",
    "secret_warning",
]

DIGEST_SIZES: dict[ChapAlgorithm, int] = {
    ChapAlgorithm.MD5: 16,
    ChapAlgorithm.SHA1: 20,
    ChapAlgorithm.SHA256: 32,
    ChapAlgorithm.SHA3_256: 32,
}
# RFC 7143 §12.1.3: secrets under 96 random bits need IPsec; admins know it as the
# "at least 12 characters" rule (EqualLogic, Microsoft).
MIN_RECOMMENDED_SECRET = 12
MAX_BINARY = 1024  # RFC 7143 §6.1 large-binary-value limit, enforced by LIO and tgt


def _hash(algorithm: ChapAlgorithm) -> hashlib._Hash:
    if algorithm is ChapAlgorithm.MD5:
        # usedforsecurity=False keeps CHAP-MD5 working on FIPS-mode OpenSSL.
        return hashlib.md5(usedforsecurity=False)
    if algorithm is ChapAlgorithm.SHA1:
        return hashlib.sha1(usedforsecurity=False)
    if algorithm is ChapAlgorithm.SHA256:
        return hashlib.sha256()
    return hashlib.sha3_256()


def chap_response(
    algorithm: ChapAlgorithm, identifier: int, secret: bytes, challenge: bytes
) -> bytes:
    """The CHAP response for one challenge (RFC 1994 §4.1)."""
    h = _hash(algorithm)
    h.update(bytes([identifier & 0xFF]))
    h.update(secret)
    h.update(challenge)
    return h.digest()


def responses_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def encode_binary(value: bytes, *, use_base64: bool = False) -> str:
    """``0x``-hex (default, what LIO and tgt send) or ``0b``-base64 text for ``value``."""
    if use_base64:
        return "0b" + base64.b64encode(value).decode("ascii")
    return "0x" + value.hex()


def decode_binary(text: str, what: str) -> bytes:
    """Decode a ``0x``/``0X`` hex or ``0b``/``0B`` base64 value of at most 1024 bytes.

    Odd-length hex is refused rather than padded (LIO rounds up; we do not guess).

    Raises:
        PduDecodeError: anything else.
    """
    prefix, body = text[:2], text[2:]
    try:
        if prefix in ("0x", "0X") and len(body) % 2 == 0 and body:
            value = bytes.fromhex(body)
        elif prefix in ("0b", "0B") and body:
            value = base64.b64decode(body, validate=True)
        else:
            raise ValueError(text)
    except (ValueError, binascii.Error):
        raise PduDecodeError(f"The target sent a {what} that is not 0x-hex or 0b-base64.") from None
    if not value or len(value) > MAX_BINARY:
        raise PduDecodeError(f"The target sent a {what} of {len(value)} bytes; 1-1024 are allowed.")
    return value


def parse_identifier(text: str) -> int:
    """CHAP_I: a decimal number 0-255 (LIO refuses more; so do we)."""
    if not text.isascii() or not text.isdigit() or len(text) > 3 or int(text) > 255:
        raise PduDecodeError(f"The target sent CHAP_I={text[:16]!r}; expected 0-255.")
    return int(text)


def parse_algorithm(text: str, offered: Sequence[ChapAlgorithm], portal: object) -> ChapAlgorithm:
    """The target's CHAP_A choice, which must be one we offered (RFC 7143 §12.1.3)."""
    if text.isascii() and text.isdigit() and int(text) in set(offered):
        return ChapAlgorithm(int(text))
    offer = ",".join(str(int(a)) for a in offered)
    raise ChapAlgorithmMismatch(
        f"The target at portal {portal} chose CHAP_A={text[:16]} although we offered {offer}; "
        "offer only MD5 (5) to this target."
    )


@dataclass(frozen=True, slots=True)
class Challenge:
    """A CHAP challenge we send for mutual authentication."""

    identifier: int
    value: bytes


def new_challenge(algorithm: ChapAlgorithm, avoid: bytes = b"") -> Challenge:
    """A fresh random challenge as long as the digest (as LIO and open-iscsi do).

    ``avoid`` is the target's challenge to us: sending the same one back would let a
    reflecting target use our own answer (RFC 7143 §12.1.3 reflection defence).
    """
    length = DIGEST_SIZES[algorithm]
    while True:
        value = secrets.token_bytes(length)
        if value != avoid:
            return Challenge(secrets.randbelow(256), value)


def secret_warning(creds: ChapCredentials) -> str | None:
    """A one-sentence warning for a short secret, or ``None``."""
    if len(creds.secret) < MIN_RECOMMENDED_SECRET:
        return (
            f"The CHAP secret for user {creds.user} is shorter than {MIN_RECOMMENDED_SECRET} "
            "bytes; RFC 7143 wants at least 12 random bytes, so use a longer secret."
        )
    return None
