"""Public value types of the iSCSI client (re-exported by the package).

All frozen dataclasses with slots; every constructor validates, so a value that
exists is a value that may be put on the wire or into a report.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass

from eqliscsi.errors import IscsiError
from eqliscsi.iscsi_discovery.errors import ChapPolicyError, InvalidIscsiName, InvalidPortal
from eqliscsi.secret import Secret

__all__ = [
    "Auth",
    "ChapAlgorithm",
    "ChapCredentials",
    "DiscoveredTarget",
    "LunInfo",
    "Portal",
    "ProbeResult",
    "ValidationRequest",
    "ValidationResult",
    "check_iscsi_name",
]

DEFAULT_PORT = 3260

# RFC 1123 host names: labels of letters, digits and hyphens.  Anything else (spaces,
# shell metacharacters, percent-encoded scope ids) is refused, not guessed at.
_HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
# CHAP_N is a text value (RFC 7143 §6.1: <= 255 bytes); we also refuse control
# characters, and "=" / NUL which would corrupt the key=value framing.
_CHAP_USER_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
MAX_CHAP_SECRET = 255  # EqualLogic and tgt both cap secrets at 255 bytes
# RFC 7143 §4.2.7: "iqn." names (date, reversed domain, optional ":" part), "eui." +
# 16 hex digits, "naa." + 16 or 32 hex digits; at most 223 bytes.  We also accept
# upper case and "_", which tgt lets admins create, and nothing else: these names
# end up in text keys, logs and reports.
_ISCSI_NAME_RE = re.compile(
    r"^(?:iqn\.\d{4}-\d{2}\.[A-Za-z0-9][A-Za-z0-9._:-]*"
    r"|eui\.[0-9A-Fa-f]{16}"
    r"|naa\.(?:[0-9A-Fa-f]{16}|[0-9A-Fa-f]{32}))$"
)


def check_iscsi_name(name: str, what: str = "iSCSI name") -> str:
    """Return ``name`` if it is a valid iSCSI name, else raise :class:`InvalidIscsiName`."""
    if len(name.encode("utf-8")) > 223 or not _ISCSI_NAME_RE.fullmatch(name):
        shown = name[:80].encode("ascii", "backslashreplace").decode()
        raise InvalidIscsiName(
            f"The {what} {shown!r} is not an iqn., eui. or naa. name of at most 223 bytes; "
            "fix the name."
        )
    return name


class ChapAlgorithm(enum.IntEnum):
    """CHAP_A values, IANA "PPP Authentication Algorithms" numbering (RFC 7143 §12.1.3)."""

    MD5 = 5
    SHA1 = 6
    SHA256 = 7
    SHA3_256 = 8


def _check_address(address: str, text: str) -> str:
    if not address:
        raise InvalidPortal(f"The portal {text!r} has no address; give it as host[:port].")
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        pass
    if ":" in address:
        raise InvalidPortal(
            f"The portal {text!r} has an IPv6 address without brackets; write it as [addr]:port."
        )
    if not _HOSTNAME_RE.fullmatch(address):
        raise InvalidPortal(
            f"The portal {text!r} is neither an IP address nor a host name; fix the address."
        )
    return address


@dataclass(frozen=True, slots=True)
class Portal:
    """A network portal: IP address or DNS name, TCP port, optional portal group tag."""

    address: str
    port: int = DEFAULT_PORT
    tpgt: int | None = None

    def __post_init__(self) -> None:
        address = self.address
        if address.startswith("[") and address.endswith("]"):
            address = address[1:-1]
        object.__setattr__(self, "address", _check_address(address, self.address))
        if not 1 <= self.port <= 65535:
            raise InvalidPortal(
                f"The portal port {self.port} is outside 1-65535; give a valid TCP port."
            )
        if self.tpgt is not None and not 0 <= self.tpgt <= 65535:
            raise InvalidPortal(
                f"The portal group tag {self.tpgt} is outside 0-65535; fix the portal."
            )

    @classmethod
    def parse(cls, text: str, *, default_port: int = DEFAULT_PORT) -> Portal:
        """Parse ``host[:port][,tpgt]`` where host may be ``[IPv6]`` (RFC 7143 §13.8).

        Like open-iscsi: split the last ``,`` as tpgt, then the port after ``]`` or
        the only ``:``.  Raises :class:`InvalidPortal`.
        """
        rest, tpgt_text = text, None
        if "," in rest:
            rest, tpgt_text = rest.rsplit(",", 1)
        tpgt = _parse_number(tpgt_text, text, "portal group tag") if tpgt_text is not None else None
        port = default_port
        if rest.startswith("["):
            close = rest.find("]")
            if close < 0:
                raise InvalidPortal(f"The portal {text!r} has no closing ']'; fix the address.")
            host, after = rest[1:close], rest[close + 1 :]
            if after:
                if not after.startswith(":"):
                    raise InvalidPortal(
                        f"The portal {text!r} has text after ']'; write it as [addr]:port."
                    )
                port = _parse_number(after[1:], text, "port")
            if ":" not in host:
                raise InvalidPortal(f"The portal {text!r} brackets a non-IPv6 address; drop them.")
        elif rest.count(":") == 1:
            host, port_text = rest.split(":")
            port = _parse_number(port_text, text, "port")
        elif ":" in rest:
            # "fe80::1:3260" could be an address or an address and a port: refuse.
            raise InvalidPortal(
                f"The portal {text!r} has an IPv6 address without brackets; "
                "write it as [addr]:port."
            )
        else:
            host = rest
        return cls(host, port, tpgt)

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.address

    @property
    def host(self) -> str:
        """The address as it appears in a TargetAddress (IPv6 bracketed)."""
        return f"[{self.address}]" if self.is_ipv6 else self.address

    def without_tpgt(self) -> Portal:
        return Portal(self.address, self.port)

    def __str__(self) -> str:
        tag = f",{self.tpgt}" if self.tpgt is not None else ""
        return f"{self.host}:{self.port}{tag}"


def _parse_number(value: str, text: str, what: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 5:
        raise InvalidPortal(f"The {what} in portal {text!r} is not a number; fix the portal.")
    return int(value, 10)


@dataclass(frozen=True, slots=True)
class ChapCredentials:
    """A CHAP user name and secret (the secret never printed)."""

    user: str
    secret: Secret

    def __post_init__(self) -> None:
        if not _CHAP_USER_RE.fullmatch(self.user):
            raise ChapPolicyError(
                "The CHAP user name is empty, longer than 255 characters or has spaces or "
                "control characters; use a printable name without spaces."
            )
        if len(self.secret) > MAX_CHAP_SECRET:
            raise ChapPolicyError(
                f"The CHAP secret for user {self.user} is longer than {MAX_CHAP_SECRET} bytes; "
                "use a shorter secret."
            )


@dataclass(frozen=True, slots=True)
class Auth:
    """Authentication to use for a login: none, one-way CHAP, or mutual CHAP.

    ``mutual`` holds the *target's* user and secret, which the target must prove.
    ``algorithms`` is the CHAP_A offer, in preference order.
    """

    chap: ChapCredentials | None = None
    mutual: ChapCredentials | None = None
    algorithms: tuple[ChapAlgorithm, ...] = (ChapAlgorithm.MD5,)

    def __post_init__(self) -> None:
        if not self.algorithms:
            raise ChapPolicyError("The CHAP algorithm list is empty; offer at least MD5.")
        if len(set(self.algorithms)) != len(self.algorithms):
            raise ChapPolicyError("The CHAP algorithm list repeats a value; list each once.")
        object.__setattr__(self, "algorithms", tuple(ChapAlgorithm(a) for a in self.algorithms))
        if self.mutual is not None and self.chap is None:
            raise ChapPolicyError(
                "Mutual CHAP needs the initiator CHAP credentials too; set both or neither."
            )
        if (
            self.mutual is not None
            and self.chap is not None
            and self.mutual.secret.reveal() == self.chap.secret.reveal()
        ):
            # RFC 7143 §12.1.3 / open-iscsi PASSWD_IDENTICAL: identical secrets let a
            # target reflect our own challenge back at us.
            raise ChapPolicyError(
                f"The target CHAP secret for {self.mutual.user} equals the initiator secret "
                f"for {self.chap.user}; use different secrets."
            )

    @property
    def uses_chap(self) -> bool:
        return self.chap is not None


@dataclass(frozen=True, slots=True)
class DiscoveredTarget:
    """One target from a SendTargets answer, with every portal it was listed at."""

    name: str
    portals: tuple[Portal, ...]


@dataclass(frozen=True, slots=True)
class LunInfo:
    """What a probe learned about one logical unit."""

    lun: int
    size_bytes: int
    block_size: int
    vendor: str
    product: str
    serial: str
    device_type: int
    identifiers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """A successful probe: the LUNs of ``target`` seen through ``portal``."""

    target: str
    portal: Portal
    luns: tuple[LunInfo, ...]
    redirected_to: Portal | None


@dataclass(frozen=True, slots=True)
class ValidationRequest:
    """One target/credential combination to check."""

    portal: Portal
    target: str
    auth: Auth = Auth()
    lun: int | None = None


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """The outcome of one :class:`ValidationRequest`; exactly one of result/error is set."""

    request: ValidationRequest
    ok: bool
    result: ProbeResult | None
    error: IscsiError | None
