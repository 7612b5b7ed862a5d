"""Builders for the Group Manager CLI commands the driver sends (pure, no I/O).

Every command is a frozen dataclass whose fields are validated in ``__post_init__``;
:meth:`Command.words` gives the CLI words and :meth:`Command.line` the text typed at the
prompt.  The grammar follows the EqualLogic CLI as driven by Cinder's PS-series driver and
the original OpenNebula add-on (see docs/reference: equallogic-cli.md §4).

The dataclasses are frozen but not slotted, and take ``__eq__``/``__hash__``/``__repr__``
from :class:`Command`: every remote imports this module, and generating those methods (and
slots) for each of ~30 classes made up most of its import time (bench/san_bench.py,
docs/performance.md).

Injection rule: the CLI splits a line on whitespace and honours double quotes, so a value
can add CLI words only through whitespace, quotes or control characters.  Names are
restricted to character sets that contain none of them; descriptions may contain single
spaces and are always sent inside double quotes, and may contain no quote of either kind,
no backslash and no control character.  Nothing is escaped: invalid values are rejected.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import ClassVar

from eqliscsi.san.errors import SanInvalidValue
from eqliscsi.secret import REDACTED, Secret

__all__ = [
    "AccessCreate",
    "AccessDelete",
    "AccessRule",
    "AccessShow",
    "AccountShow",
    "ApplyTo",
    "AuthMethod",
    "ChapUserCreate",
    "ChapUserDelete",
    "ChapUserShow",
    "CliSetting",
    "Command",
    "GrpparamsShow",
    "GrpparamsTargetAuth",
    "PoolShow",
    "ShowPool",
    "SnapshotClone",
    "SnapshotCreateNow",
    "SnapshotDelete",
    "SnapshotRename",
    "SnapshotRestore",
    "Stty",
    "VolumeClone",
    "VolumeCreate",
    "VolumeDelete",
    "VolumeMultihost",
    "VolumeRename",
    "VolumeResize",
    "VolumeSetDescription",
    "VolumeSetStatus",
    "VolumeShow",
    "session_setup",
    "validate_chap_user",
    "validate_description",
    "validate_initiator",
    "validate_ip_pattern",
    "validate_pool",
    "validate_size_mb",
    "validate_snapshot_name",
    "validate_volume_name",
]

# Config Guide v14.1 allows 1-64 of [A-Za-z0-9.-:]; other guides say 63 bytes.  We take the
# safe intersection and leave ':' out because the IQN suffix and udev names use ':' as a
# separator (equallogic-cli.md §7).
_VOLUME_RE = re.compile(r"[A-Za-z0-9.-]{1,63}", re.ASCII)
# Snapshot names made by the array look like <vol>-<YYYY-MM-DD>-<hh:mm:ss>.<n>, so ':' is
# allowed there; the extra 64 characters leave room for that timestamp suffix.
_SNAPSHOT_RE = re.compile(r"[A-Za-z0-9.:-]{1,127}", re.ASCII)
_POOL_RE = re.compile(r"[A-Za-z0-9._-]{1,63}", re.ASCII)
_CHAP_USER_RE = re.compile(r"[A-Za-z0-9._:@-]{1,63}", re.ASCII)
# RFC 3720 §3.2.6.3 name forms.  Only the characters of those forms pass, which excludes
# whitespace, quotes and control characters; '*' means "any initiator" to the array.
_INITIATOR_RE = re.compile(
    r"\*|iqn\.\d{4}-\d{2}\.[a-z0-9.-]+(:[A-Za-z0-9.:_-]{1,200})?|eui\.[0-9A-Fa-f]{16}"
    r"|naa\.[0-9A-Fa-f]{16}([0-9A-Fa-f]{16})?",
    re.ASCII,
)
_OCTET_RE = re.compile(r"0|[1-9][0-9]{0,2}", re.ASCII)
_DESCRIPTION_MAX = 127
# Printable ASCII minus the characters that could end the quoted string or be read as an
# escape; a single space separates words but no run of whitespace is needed.
_DESCRIPTION_RE = re.compile(r"[A-Za-z0-9 !#$%&()*+,./:;<=>?@\[\]^_{|}~-]*", re.ASCII)
_MAX_SIZE_MB = 64 * 1024 * 1024  # 64 TiB: far above any PS Series volume, below absurd input
_CHAP_SECRET_RE = re.compile(rb"[\x21-\x7e]{12,255}")


def _invalid(what: str, value: object, rule: str) -> SanInvalidValue:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return SanInvalidValue(f"The {what} {shown} is not accepted; use {rule}.")


def validate_volume_name(value: str) -> str:
    if not isinstance(value, str) or not _VOLUME_RE.fullmatch(value):
        raise _invalid("volume name", value, "1 to 63 characters from A-Z a-z 0-9 . -")
    return value


def validate_snapshot_name(value: str) -> str:
    if not isinstance(value, str) or not _SNAPSHOT_RE.fullmatch(value):
        raise _invalid("snapshot name", value, "1 to 127 characters from A-Z a-z 0-9 . : -")
    return value


def validate_pool(value: str) -> str:
    if not isinstance(value, str) or not _POOL_RE.fullmatch(value):
        raise _invalid("pool name", value, "1 to 63 characters from A-Z a-z 0-9 . _ -")
    return value


def validate_chap_user(value: str) -> str:
    if not isinstance(value, str) or not _CHAP_USER_RE.fullmatch(value):
        raise _invalid("CHAP user name", value, "1 to 63 characters from A-Z a-z 0-9 . _ : @ -")
    return value


def validate_initiator(value: str) -> str:
    if not isinstance(value, str) or not _INITIATOR_RE.fullmatch(value):
        raise _invalid("initiator name", value, "an iqn., eui. or naa. name, or *")
    return value


def validate_ip_pattern(value: str) -> str:
    """An IPv4 address, or one whose trailing octets are ``*`` (``192.168.*.*``, ``*.*.*.*``)."""
    if not isinstance(value, str):
        raise _invalid("IP address", value, "a dotted IPv4 address, optionally with * octets")
    # Checked by hand rather than with the ipaddress module: remotes import this module
    # and every millisecond of import counts (bench/san_bench.py).  No leading zeros, which
    # some parsers read as octal.
    parts = value.split(".")
    ok = len(parts) == 4 and all(
        p == "*" or (_OCTET_RE.fullmatch(p) is not None and int(p) <= 255) for p in parts
    )
    if not ok:
        raise _invalid("IP address", value, "a dotted IPv4 address, optionally with * octets")
    return value


def validate_description(value: str) -> str:
    if (
        not isinstance(value, str)
        or len(value) > _DESCRIPTION_MAX
        or not _DESCRIPTION_RE.fullmatch(value)
        or "  " in value
    ):
        raise _invalid(
            "description",
            value,
            f"at most {_DESCRIPTION_MAX} printable ASCII characters without quotes, "
            "backslashes or double spaces",
        )
    return value


def validate_size_mb(value: int) -> int:
    # bool is an int subclass; True must not become a 1 MB volume.
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= _MAX_SIZE_MB:
        raise _invalid("size", value, f"a whole number of MB between 1 and {_MAX_SIZE_MB}")
    return value


def _size_word(mb: int) -> str:
    # Explicit unit: a bare number means MB to the CLI, but "NNNMB" is the form the PVE
    # plugin sent for years, so it is the least ambiguous one.
    return f"{mb}MB"


def _quoted(description: str) -> str:
    # Cinder sends description "OpenStack Managed" with the double quotes (§4).
    return f'"{description}"'


@dataclass(frozen=True, eq=False, repr=False)
class Command:
    """One CLI line.  Subclasses define :meth:`words`; ``mutating`` marks array changes.

    Equality, hashing and ``repr`` are defined once here, from the class and the redacted
    line, rather than generated for every subclass (see the module docstring on cost).
    """

    mutating: ClassVar[bool] = False

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Command)
        return self.line() == other.line()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.display()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display()!r})"

    def words(self) -> tuple[str, ...]:
        raise NotImplementedError

    def line(self) -> str:
        return " ".join(self.words())

    def secrets(self) -> tuple[bytes, ...]:
        """Byte strings that must be redacted wherever this command's text is shown."""
        return ()

    def display(self) -> str:
        """The line with secrets replaced, for logs and error messages."""
        return self.line()


class OnOff(enum.Enum):
    ON = "on"
    OFF = "off"


@dataclass(frozen=True, eq=False, repr=False)
class CliSetting(Command):
    """``cli-settings <name> on|off``; only the names the session needs are accepted."""

    NAMES: ClassVar[frozenset[str]] = frozenset(
        {"paging", "confirmation", "events", "formatoutput", "reprintBadInput", "displayinMB"}
    )
    name: str
    value: OnOff = OnOff.OFF

    def __post_init__(self) -> None:
        if self.name not in self.NAMES:
            names = ", ".join(sorted(self.NAMES))
            raise _invalid("cli-settings name", self.name, f"one of {names}")

    def words(self) -> tuple[str, ...]:
        return ("cli-settings", self.name, self.value.value)


@dataclass(frozen=True, eq=False, repr=False)
class Stty(Command):
    """``stty hardwrap off`` (columns=None) or ``stty columns <n>``."""

    columns: int | None = None

    def __post_init__(self) -> None:
        if self.columns is not None and not 40 <= self.columns <= 255:
            raise _invalid("terminal width", self.columns, "40 to 255 columns")

    def words(self) -> tuple[str, ...]:
        if self.columns is None:
            return ("stty", "hardwrap", "off")
        return ("stty", "columns", str(self.columns))


def session_setup() -> tuple[Command, ...]:
    """Commands sent at the start of every session (equallogic-cli.md §3 and §10).

    They are idempotent and cheap.  ``cli-settings`` persists per account, ``stty`` per
    session, so both are sent each time: another client may have turned paging back on.
    """
    return (
        Stty(None),
        Stty(255),
        CliSetting("paging"),
        CliSetting("confirmation"),
        CliSetting("events"),
        CliSetting("formatoutput"),
        CliSetting("reprintBadInput"),
    )


@dataclass(frozen=True, eq=False, repr=False)
class VolumeCreate(Command):
    mutating: ClassVar[bool] = True
    name: str
    size_mb: int
    pool: str | None = None
    description: str | None = None
    thin: bool = False
    thin_min_reserve_pct: int | None = None
    online: bool = True

    def __post_init__(self) -> None:
        validate_volume_name(self.name)
        validate_size_mb(self.size_mb)
        if self.pool is not None:
            validate_pool(self.pool)
        if self.description is not None:
            validate_description(self.description)
        if self.thin_min_reserve_pct is not None and (
            not self.thin
            or not isinstance(self.thin_min_reserve_pct, int)
            or not 0 <= self.thin_min_reserve_pct <= 100
        ):
            raise _invalid(
                "thin minimum reserve", self.thin_min_reserve_pct, "0 to 100 with thin provisioning"
            )

    def words(self) -> tuple[str, ...]:
        w = ["volume", "create", self.name, _size_word(self.size_mb)]
        if self.description is not None:
            w += ["description", _quoted(self.description)]
        w.append("online" if self.online else "offline")
        if self.pool is not None:
            w += ["pool", self.pool]
        if self.thin:
            w.append("thin-provision")
            if self.thin_min_reserve_pct is not None:
                w += ["thin-min-reserve", f"{self.thin_min_reserve_pct}%"]
        return tuple(w)


@dataclass(frozen=True, eq=False, repr=False)
class VolumeClone(Command):
    """``volume select SRC clone NEW``; the clone inherits the source size (Cinder 1598148)."""

    mutating: ClassVar[bool] = True
    source: str
    name: str
    description: str | None = None

    def __post_init__(self) -> None:
        validate_volume_name(self.source)
        validate_volume_name(self.name)
        if self.description is not None:
            validate_description(self.description)

    def words(self) -> tuple[str, ...]:
        w = ["volume", "select", self.source, "clone", self.name]
        if self.description is not None:
            w += ["description", _quoted(self.description)]
        return tuple(w)


@dataclass(frozen=True, eq=False, repr=False)
class VolumeDelete(Command):
    mutating: ClassVar[bool] = True
    name: str

    def __post_init__(self) -> None:
        validate_volume_name(self.name)

    def words(self) -> tuple[str, ...]:
        return ("volume", "delete", self.name)


@dataclass(frozen=True, eq=False, repr=False)
class VolumeRename(Command):
    mutating: ClassVar[bool] = True
    old: str
    new: str

    def __post_init__(self) -> None:
        validate_volume_name(self.old)
        validate_volume_name(self.new)

    def words(self) -> tuple[str, ...]:
        return ("volume", "rename", self.old, self.new)


@dataclass(frozen=True, eq=False, repr=False)
class VolumeSetStatus(Command):
    """``volume select V online|offline`` (success prints nothing)."""

    mutating: ClassVar[bool] = True
    name: str
    online: bool

    def __post_init__(self) -> None:
        validate_volume_name(self.name)

    def words(self) -> tuple[str, ...]:
        return ("volume", "select", self.name, "online" if self.online else "offline")


@dataclass(frozen=True, eq=False, repr=False)
class VolumeShow(Command):
    name: str

    def __post_init__(self) -> None:
        validate_volume_name(self.name)

    def words(self) -> tuple[str, ...]:
        return ("volume", "select", self.name, "show")


@dataclass(frozen=True, eq=False, repr=False)
class VolumeSetDescription(Command):
    """``volume select V description "<text>"`` (Cinder sets its tag this way)."""

    mutating: ClassVar[bool] = True
    name: str
    description: str

    def __post_init__(self) -> None:
        validate_volume_name(self.name)
        validate_description(self.description)

    def words(self) -> tuple[str, ...]:
        return ("volume", "select", self.name, "description", _quoted(self.description))


@dataclass(frozen=True, eq=False, repr=False)
class VolumeResize(Command):
    """Always ``no-snap``: without it the array silently snapshots first (Cinder 1720454)."""

    mutating: ClassVar[bool] = True
    name: str
    size_mb: int

    def __post_init__(self) -> None:
        validate_volume_name(self.name)
        validate_size_mb(self.size_mb)

    def words(self) -> tuple[str, ...]:
        return ("volume", "select", self.name, "size", _size_word(self.size_mb), "no-snap")


@dataclass(frozen=True, eq=False, repr=False)
class VolumeMultihost(Command):
    mutating: ClassVar[bool] = True
    name: str
    enable: bool

    def __post_init__(self) -> None:
        validate_volume_name(self.name)

    def words(self) -> tuple[str, ...]:
        return (
            "volume",
            "select",
            self.name,
            "multihost-access",
            "enable" if self.enable else "disable",
        )


class AuthMethod(enum.Enum):
    NONE = "none"
    CHAP = "chap"


class ApplyTo(enum.Enum):
    VOLUME = "volume"
    SNAPSHOT = "snapshot"
    BOTH = "both"


@dataclass(frozen=True)
class AccessRule:
    """One access control record; at least one of initiator, IP or CHAP user is required."""

    initiator: str | None = None
    ipaddress: str | None = None
    username: str | None = None
    apply_to: ApplyTo = ApplyTo.BOTH

    def __post_init__(self) -> None:
        if self.initiator is None and self.ipaddress is None and self.username is None:
            raise SanInvalidValue(
                "An access record needs an initiator, an IP address or a CHAP user; set one."
            )
        if self.initiator is not None:
            validate_initiator(self.initiator)
        if self.ipaddress is not None:
            validate_ip_pattern(self.ipaddress)
        if self.username is not None:
            validate_chap_user(self.username)

    @property
    def authmethod(self) -> AuthMethod:
        return AuthMethod.CHAP if self.username is not None else AuthMethod.NONE

    def words(self) -> tuple[str, ...]:
        # Separate tokens for keyword and value (Cinder bug 1280409).
        w: list[str] = []
        if self.initiator is not None:
            w += ["initiator", self.initiator]
        if self.ipaddress is not None:
            w += ["ipaddress", self.ipaddress]
        if self.username is not None:
            w += ["username", self.username]
        w += ["authmethod", self.authmethod.value, "apply-to", self.apply_to.value]
        return tuple(w)


@dataclass(frozen=True, eq=False, repr=False)
class AccessCreate(Command):
    mutating: ClassVar[bool] = True
    volume: str
    rule: AccessRule

    def __post_init__(self) -> None:
        validate_volume_name(self.volume)

    def words(self) -> tuple[str, ...]:
        return ("volume", "select", self.volume, "access", "create", *self.rule.words())


@dataclass(frozen=True, eq=False, repr=False)
class AccessShow(Command):
    volume: str

    def __post_init__(self) -> None:
        validate_volume_name(self.volume)

    def words(self) -> tuple[str, ...]:
        return ("volume", "select", self.volume, "access", "show")


@dataclass(frozen=True, eq=False, repr=False)
class AccessDelete(Command):
    mutating: ClassVar[bool] = True
    volume: str
    record_id: int

    def __post_init__(self) -> None:
        validate_volume_name(self.volume)
        if (
            not isinstance(self.record_id, int)
            or isinstance(self.record_id, bool)
            or not 1 <= self.record_id <= 999
        ):
            raise _invalid("access record id", self.record_id, "a number from 1 to 999")

    def words(self) -> tuple[str, ...]:
        return ("volume", "select", self.volume, "access", "delete", str(self.record_id))


@dataclass(frozen=True, eq=False, repr=False)
class SnapshotCreateNow(Command):
    mutating: ClassVar[bool] = True
    volume: str
    description: str | None = None

    def __post_init__(self) -> None:
        validate_volume_name(self.volume)
        if self.description is not None:
            validate_description(self.description)

    def words(self) -> tuple[str, ...]:
        w = ["volume", "select", self.volume, "snapshot", "create-now"]
        if self.description is not None:
            w += ["description", _quoted(self.description)]
        return tuple(w)


@dataclass(frozen=True, eq=False, repr=False)
class SnapshotRename(Command):
    mutating: ClassVar[bool] = True
    volume: str
    old: str
    new: str

    def __post_init__(self) -> None:
        validate_volume_name(self.volume)
        validate_snapshot_name(self.old)
        validate_snapshot_name(self.new)

    def words(self) -> tuple[str, ...]:
        return ("volume", "select", self.volume, "snapshot", "rename", self.old, self.new)


@dataclass(frozen=True, eq=False, repr=False)
class SnapshotClone(Command):
    mutating: ClassVar[bool] = True
    volume: str
    snapshot: str
    new: str

    def __post_init__(self) -> None:
        validate_volume_name(self.volume)
        validate_snapshot_name(self.snapshot)
        validate_volume_name(self.new)

    def words(self) -> tuple[str, ...]:
        return (
            "volume", "select", self.volume, "snapshot", "select", self.snapshot, "clone", self.new,
        )  # fmt: skip


@dataclass(frozen=True, eq=False, repr=False)
class SnapshotRestore(Command):
    """Restore needs the volume offline (PVE plugin)."""

    mutating: ClassVar[bool] = True
    volume: str
    snapshot: str

    def __post_init__(self) -> None:
        validate_volume_name(self.volume)
        validate_snapshot_name(self.snapshot)

    def words(self) -> tuple[str, ...]:
        return ("volume", "select", self.volume, "snapshot", "select", self.snapshot, "restore")


@dataclass(frozen=True, eq=False, repr=False)
class SnapshotDelete(Command):
    mutating: ClassVar[bool] = True
    volume: str
    snapshot: str

    def __post_init__(self) -> None:
        validate_volume_name(self.volume)
        validate_snapshot_name(self.snapshot)

    def words(self) -> tuple[str, ...]:
        return ("volume", "select", self.volume, "snapshot", "delete", self.snapshot)


@dataclass(frozen=True, eq=False, repr=False)
class ChapUserCreate(Command):
    """``chapuser create U [password P]``; P is typed on the channel, never logged."""

    mutating: ClassVar[bool] = True
    name: str
    password: Secret | None = None

    def __post_init__(self) -> None:
        validate_chap_user(self.name)
        # 12-255 printable non-space ASCII: RFC 3720 §8.2.1 recommends >= 96-bit secrets and
        # anything with spaces or quotes would split into CLI words.
        if self.password is not None and (
            not _CHAP_SECRET_RE.fullmatch(self.password.reveal())
            or b'"' in self.password.reveal()
            or b"\\" in self.password.reveal()
            or b"'" in self.password.reveal()
        ):
            raise SanInvalidValue(
                f"The CHAP secret from {self.password.origin} is not accepted; use 12 to 255 "
                "printable ASCII characters without spaces, quotes or backslashes."
            )

    def words(self) -> tuple[str, ...]:
        w = ["chapuser", "create", self.name]
        if self.password is not None:
            w += ["password", self.password.reveal_str()]
        return tuple(w)

    def secrets(self) -> tuple[bytes, ...]:
        return () if self.password is None else (self.password.reveal(),)

    def display(self) -> str:
        w = ["chapuser", "create", self.name]
        if self.password is not None:
            w += ["password", REDACTED]
        return " ".join(w)


@dataclass(frozen=True, eq=False, repr=False)
class ChapUserShow(Command):
    name: str

    def __post_init__(self) -> None:
        validate_chap_user(self.name)

    def words(self) -> tuple[str, ...]:
        return ("chapuser", "show", self.name)


@dataclass(frozen=True, eq=False, repr=False)
class ChapUserDelete(Command):
    mutating: ClassVar[bool] = True
    name: str

    def __post_init__(self) -> None:
        validate_chap_user(self.name)

    def words(self) -> tuple[str, ...]:
        return ("chapuser", "delete", self.name)


@dataclass(frozen=True, eq=False, repr=False)
class PoolShow(Command):
    pool: str

    def __post_init__(self) -> None:
        validate_pool(self.pool)

    def words(self) -> tuple[str, ...]:
        return ("pool", "select", self.pool, "show")


@dataclass(frozen=True, eq=False, repr=False)
class ShowPool(Command):
    def words(self) -> tuple[str, ...]:
        return ("show", "pool")


@dataclass(frozen=True, eq=False, repr=False)
class GrpparamsShow(Command):
    def words(self) -> tuple[str, ...]:
        return ("grpparams", "show")


# Local administration account names (Group Manager: letters, digits and a few marks).
_ACCOUNT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", re.ASCII)


@dataclass(frozen=True, eq=False, repr=False)
class AccountShow(Command):
    """``account select NAME show``: the account's type and pools.

    The account types (group, pool and volume administrator, read-only) are the
    Administrator's Guide's ("Account Permissions"); this command form and its
    ``Type:``/``Pools:`` keys follow the CLI's ``<object> select <name> show``
    pattern and are unverified [U] (equallogic-cli.md has no capture of it).
    """

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _ACCOUNT_RE.fullmatch(self.name):
            raise _invalid("account name", self.name, "1 to 63 characters from A-Z a-z 0-9 . _ -")

    def words(self) -> tuple[str, ...]:
        return ("account", "select", self.name, "show")


@dataclass(frozen=True, eq=False, repr=False)
class GrpparamsTargetAuth(Command):
    """``grpparams target-auth-username U`` / ``target-auth-password P``: the group's one
    target-authentication (mutual CHAP) account (Administrator's Guide, "Configure
    Target Authentication").  The password is typed on the channel, never logged."""

    mutating: ClassVar[bool] = True
    username: str | None = None
    password: Secret | None = None

    def __post_init__(self) -> None:
        if (self.username is None) == (self.password is None):
            raise SanInvalidValue("Give either the target user name or its password, not both.")
        if self.username is not None:
            validate_chap_user(self.username)
        if self.password is not None and (
            not _CHAP_SECRET_RE.fullmatch(self.password.reveal())
            or any(ch in self.password.reveal() for ch in (b'"', b"'", b"\\"))
        ):
            raise SanInvalidValue(
                f"The target CHAP secret from {self.password.origin} is not accepted; use 12 "
                "to 255 printable ASCII characters without spaces, quotes or backslashes."
            )

    def words(self) -> tuple[str, ...]:
        if self.username is not None:
            return ("grpparams", "target-auth-username", self.username)
        assert self.password is not None
        return ("grpparams", "target-auth-password", self.password.reveal_str())

    def secrets(self) -> tuple[bytes, ...]:
        return () if self.password is None else (self.password.reveal(),)

    def display(self) -> str:
        if self.username is not None:
            return " ".join(self.words())
        return f"grpparams target-auth-password {REDACTED}"
