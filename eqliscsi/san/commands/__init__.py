"""Builders for the Group Manager CLI commands the driver sends (pure, no I/O).

Every command is a frozen dataclass whose fields are validated in ``__post_init__``;
:meth:`Command.words` gives the CLI words and :meth:`Command.line` the text typed at the
prompt.  The grammar follows the EqualLogic CLI as driven by Cinder's PS-series driver and
the original OpenNebula add-on (see docs/reference: equallogic-cli.md §4).

The dataclasses are frozen but not slotted, and take ``__eq__``/``__hash__``/``__repr__``
from :class:`Command`: every remote imports this module, and generating those methods (and
slots) for each of ~30 classes made up most of its import time (bench/san_bench.py,
docs/performance.md).  For the same reason the command classes live in one submodule per
family (``_volume``, ``_access``, ``_snapshot``, ``_chap``, ``_pool``, ``_group``,
``_session``) that this module imports on first use of one of their names (PEP 562
``__getattr__``): ``monitor`` creates the class of ``pool select P show`` and not the
two dozen others.
``from eqliscsi.san.commands import VolumeCreate`` and ``commands.VolumeCreate`` work as
before.

Injection rule: the CLI splits a line on whitespace and honours double quotes, so a value
can add CLI words only through whitespace, quotes or control characters.  Names are
restricted to character sets that contain none of them; descriptions may contain single
spaces and are always sent inside double quotes, and may contain no quote of either kind,
no backslash and no control character.  Nothing is escaped: invalid values are rejected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from eqliscsi import _lazy
from eqliscsi.san.errors import SanInvalidValue

TYPE_CHECKING = False  # not typing's: importing typing costs a remote ~3 ms (docs/performance.md)

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

# Patterns are compiled by the re module on first use (and cached there), not at import:
# most remotes validate one or two kinds of value, and compiling all of them was a
# noticeable part of every remote's start-up (docs/performance.md).
# Config Guide v14.1 allows 1-64 of [A-Za-z0-9.-:]; other guides say 63 bytes.  We take the
# safe intersection and leave ':' out because the IQN suffix and udev names use ':' as a
# separator (equallogic-cli.md §7).
_VOLUME_RE = r"[A-Za-z0-9.-]{1,63}"
# Snapshot names made by the array look like <vol>-<YYYY-MM-DD>-<hh:mm:ss>.<n>, so ':' is
# allowed there; the extra 64 characters leave room for that timestamp suffix.
_SNAPSHOT_RE = r"[A-Za-z0-9.:-]{1,127}"
_POOL_RE = r"[A-Za-z0-9._-]{1,63}"
_CHAP_USER_RE = r"[A-Za-z0-9._:@-]{1,63}"
# RFC 3720 §3.2.6.3 name forms.  Only the characters of those forms pass, which excludes
# whitespace, quotes and control characters; '*' means "any initiator" to the array.
_INITIATOR_RE = (
    r"\*|iqn\.\d{4}-\d{2}\.[a-z0-9.-]+(:[A-Za-z0-9.:_-]{1,200})?|eui\.[0-9A-Fa-f]{16}"
    r"|naa\.[0-9A-Fa-f]{16}([0-9A-Fa-f]{16})?"
)
_OCTET_RE = r"0|[1-9][0-9]{0,2}"
_DESCRIPTION_MAX = 127
# Printable ASCII minus the characters that could end the quoted string or be read as an
# escape; a single space separates words but no run of whitespace is needed.
_DESCRIPTION_RE = r"[A-Za-z0-9 !#$%&()*+,./:;<=>?@\[\]^_{|}~-]*"
_MAX_SIZE_MB = 64 * 1024 * 1024  # 64 TiB: far above any PS Series volume, below absurd input


def _full(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value, re.ASCII) is not None


def _invalid(what: str, value: object, rule: str) -> SanInvalidValue:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return SanInvalidValue(f"The {what} {shown} is not accepted; use {rule}.")


def validate_volume_name(value: str) -> str:
    if not isinstance(value, str) or not _full(_VOLUME_RE, value):
        raise _invalid("volume name", value, "1 to 63 characters from A-Z a-z 0-9 . -")
    return value


def validate_snapshot_name(value: str) -> str:
    if not isinstance(value, str) or not _full(_SNAPSHOT_RE, value):
        raise _invalid("snapshot name", value, "1 to 127 characters from A-Z a-z 0-9 . : -")
    return value


def validate_pool(value: str) -> str:
    if not isinstance(value, str) or not _full(_POOL_RE, value):
        raise _invalid("pool name", value, "1 to 63 characters from A-Z a-z 0-9 . _ -")
    return value


def validate_chap_user(value: str) -> str:
    if not isinstance(value, str) or not _full(_CHAP_USER_RE, value):
        raise _invalid("CHAP user name", value, "1 to 63 characters from A-Z a-z 0-9 . _ : @ -")
    return value


def validate_initiator(value: str) -> str:
    if not isinstance(value, str) or not _full(_INITIATOR_RE, value):
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
    ok = len(parts) == 4 and all(p == "*" or (_full(_OCTET_RE, p) and int(p) <= 255) for p in parts)
    if not ok:
        raise _invalid("IP address", value, "a dotted IPv4 address, optionally with * octets")
    return value


def validate_description(value: str) -> str:
    if (
        not isinstance(value, str)
        or len(value) > _DESCRIPTION_MAX
        or not _full(_DESCRIPTION_RE, value)
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

    if TYPE_CHECKING:
        mutating: ClassVar[bool] = False
    else:
        # Unannotated at run time: without typing imported (a remote does not import
        # it), dataclasses would take the string "ClassVar[bool]" for a field's type.
        mutating = False

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


# name -> submodule defining it; see the module docstring.
_LAZY: dict[str, str] = {
    "CliSetting": "_session",
    "Stty": "_session",
    "session_setup": "_session",
    "VolumeCreate": "_volume",
    "VolumeClone": "_volume",
    "VolumeDelete": "_volume",
    "VolumeRename": "_volume",
    "VolumeSetStatus": "_volume",
    "VolumeShow": "_volume",
    "VolumeSetDescription": "_volume",
    "VolumeResize": "_volume",
    "VolumeMultihost": "_volume",
    "AuthMethod": "_access",
    "ApplyTo": "_access",
    "AccessRule": "_access",
    "AccessCreate": "_access",
    "AccessShow": "_access",
    "AccessDelete": "_access",
    "SnapshotCreateNow": "_snapshot",
    "SnapshotRename": "_snapshot",
    "SnapshotClone": "_snapshot",
    "SnapshotRestore": "_snapshot",
    "SnapshotDelete": "_snapshot",
    "ChapUserCreate": "_chap",
    "ChapUserShow": "_chap",
    "ChapUserDelete": "_chap",
    "PoolShow": "_pool",
    "ShowPool": "_group",
    "GrpparamsShow": "_group",
    "AccountShow": "_account",
    "GrpparamsTargetAuth": "_account",
}

if TYPE_CHECKING:
    from typing import ClassVar

    from eqliscsi.san.commands._access import AccessCreate as AccessCreate
    from eqliscsi.san.commands._access import AccessDelete as AccessDelete
    from eqliscsi.san.commands._access import AccessRule as AccessRule
    from eqliscsi.san.commands._access import AccessShow as AccessShow
    from eqliscsi.san.commands._access import ApplyTo as ApplyTo
    from eqliscsi.san.commands._access import AuthMethod as AuthMethod
    from eqliscsi.san.commands._account import AccountShow as AccountShow
    from eqliscsi.san.commands._account import GrpparamsTargetAuth as GrpparamsTargetAuth
    from eqliscsi.san.commands._chap import ChapUserCreate as ChapUserCreate
    from eqliscsi.san.commands._chap import ChapUserDelete as ChapUserDelete
    from eqliscsi.san.commands._chap import ChapUserShow as ChapUserShow
    from eqliscsi.san.commands._group import GrpparamsShow as GrpparamsShow
    from eqliscsi.san.commands._group import ShowPool as ShowPool
    from eqliscsi.san.commands._pool import PoolShow as PoolShow
    from eqliscsi.san.commands._session import CliSetting as CliSetting
    from eqliscsi.san.commands._session import Stty as Stty
    from eqliscsi.san.commands._session import session_setup as session_setup
    from eqliscsi.san.commands._snapshot import SnapshotClone as SnapshotClone
    from eqliscsi.san.commands._snapshot import SnapshotCreateNow as SnapshotCreateNow
    from eqliscsi.san.commands._snapshot import SnapshotDelete as SnapshotDelete
    from eqliscsi.san.commands._snapshot import SnapshotRename as SnapshotRename
    from eqliscsi.san.commands._snapshot import SnapshotRestore as SnapshotRestore
    from eqliscsi.san.commands._volume import VolumeClone as VolumeClone
    from eqliscsi.san.commands._volume import VolumeCreate as VolumeCreate
    from eqliscsi.san.commands._volume import VolumeDelete as VolumeDelete
    from eqliscsi.san.commands._volume import VolumeMultihost as VolumeMultihost
    from eqliscsi.san.commands._volume import VolumeRename as VolumeRename
    from eqliscsi.san.commands._volume import VolumeResize as VolumeResize
    from eqliscsi.san.commands._volume import VolumeSetDescription as VolumeSetDescription
    from eqliscsi.san.commands._volume import VolumeSetStatus as VolumeSetStatus
    from eqliscsi.san.commands._volume import VolumeShow as VolumeShow


def __getattr__(name: str) -> object:
    return _lazy.load(__name__, __name__, _LAZY, name)


def __dir__() -> list[str]:
    return _lazy.names(__name__, _LAZY)
