"""oned's calling conventions, decided in one place.

OpenNebula changed how it hands a driver its input several times (reference
``opennebula-driver.md`` §2.1, §2.4, §6.1-§6.3).  This module is the only one that
knows; actions receive parsed, validated call objects.

Datastore (DS) actions get ``DS_DRIVER_ACTION_DATA`` (base64 XML) and an id:

======================  ==================  ======================
version                 argv after script   stdin
======================  ==================  ======================
4.4 … 6.6 (default)     ``<B64> <ID>``      EOF
late 6.4/6.6 with -i    ``- <ID>``          B64
6.8, 6.10, 7.x          ``<ID>``            B64 (no newline)
======================  ==================  ======================

Transfer-manager (TM) actions get whitespace-free words (``one_tm.rb`` splits the
transfer line on whitespace), per action; pre/post/failmigrate get the VM document
as argv 6 (4.4 … 5.10) or on stdin (5.12+), and a trailing system-TM name when the
system TM's ``migrate_other`` calls us as a slave (5.0+).

The OpenNebula version comes from ``remotes/VERSION`` when that file exists, and
otherwise from the shape of the call.  A call whose shape contradicts the VERSION
file is rejected: guessing would read the wrong bytes as the document.
"""

from __future__ import annotations

import binascii
import enum
import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eqliscsi import _lazy
from eqliscsi._lazyre import LazyPattern
from eqliscsi._record import Record
from eqliscsi.opennebula.errors import BadCallError

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "Convention",
    "DsCall",
    "HostPath",
    "MigrateCall",
    "OneVersion",
    "TmCall",
    "decode_base64",
    "parse_ds_call",
    "parse_tm_call",
    "read_version",
]

# A DS_DRIVER_ACTION_DATA is a few KiB; a VM document with many disks and a long
# history some hundred KiB.  Anything far larger is not from oned: refuse it rather
# than let a runaway pipe eat the front-end's memory.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


@functools.total_ordering
@dataclass(frozen=True, slots=True, eq=False, repr=False)
class OneVersion(Record):
    """An OpenNebula release, as written in ``remotes/VERSION`` (``6.10.0``)."""

    major: int
    minor: int
    patch: int = 0

    _RE = LazyPattern(r"^(\d{1,3})\.(\d{1,3})(?:\.(\d{1,3}))?(?:[.\-+~][0-9A-Za-z.\-+~]*)?$")

    @classmethod
    def parse(cls, text: str) -> OneVersion:
        # VERSION has no trailing newline up to 6.8 and one from 6.10 (§6.4).
        m = cls._RE.match(text.strip())
        if m is None:
            raise BadCallError(
                f"The OpenNebula VERSION string {text.strip()[:40]!r} is not a version; "
                "restore remotes/VERSION from the OpenNebula package."
            )
        return cls(int(m[1]), int(m[2]), int(m[3] or 0))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    # Written out (with total_ordering) rather than dataclass(order=True), which would
    # compile four more methods at every remote's start-up (see eqliscsi._record).
    def __lt__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, OneVersion)
        return (self.major, self.minor, self.patch) < (other.major, other.minor, other.patch)


def read_version(remotes_dir: str | os.PathLike[str]) -> OneVersion | None:
    """The version in ``<remotes_dir>/VERSION``, or None when the file is absent."""
    try:
        path = os.path.join(remotes_dir, "VERSION")  # not pathlib: ~3 ms of start-up
        with open(path, encoding="ascii", errors="replace") as f:
            text = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return OneVersion.parse(text)


V5_0 = OneVersion(5, 0)
V5_12 = OneVersion(5, 12)
V6_4 = OneVersion(6, 4)
V6_8 = OneVersion(6, 8)


class Convention(enum.Enum):
    """How a DS action received its document."""

    ARGV = "argv"  # <B64> <ID>            (4.4 … 6.6)
    DASH_STDIN = "dash-stdin"  # - <ID>, B64 on stdin (late 6.4/6.6, one_datastore -i)
    STDIN = "stdin"  # <ID>, B64 on stdin     (6.8+)


def decode_base64(data: bytes | str, what: str) -> bytes:
    """Strict base64 (oned's ``Base64`` may wrap lines at 60/76 columns; nothing else)."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    compact = b"".join(raw.split())
    if not compact:
        raise BadCallError(f"The {what} oned passed is empty; check the oned driver configuration.")
    if len(compact) > MAX_DOCUMENT_BYTES:
        raise BadCallError(
            f"The {what} is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB; "
            "this is not a document oned sends."
        )
    try:
        # What base64.b64decode(validate=True) accepts, without importing base64 (and
        # its re and struct) into every remote; tests/unit/opennebula/test_args.py
        # checks the two against each other.
        return binascii.a2b_base64(compact, strict_mode=True)
    except (binascii.Error, ValueError):
        raise BadCallError(
            f"The {what} is not valid base64; check that oned runs this driver "
            "with the calling convention of its version."
        ) from None


_ID_RE = LazyPattern(r"^(0|[1-9][0-9]{0,9})$")


def _parse_id(word: str, what: str) -> int:
    if not _ID_RE.match(word):
        raise BadCallError(f"The {what} {word[:40]!r} oned passed is not a non-negative integer.")
    return int(word)


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class DsCall(Record):
    """A parsed DS action call: the decoded document and the id that came with it.

    ``object_id`` is the image id (cp, mkfs, rm, snap_*), the *new* image id (clone),
    the datastore id (monitor) or oned's request counter (stat), see §6.1.
    """

    action: str
    object_id: int
    document: bytes
    convention: Convention
    version: OneVersion | None


def parse_ds_call(
    action: str,
    argv: Sequence[str],
    read_stdin: Callable[[int], bytes],
    version: OneVersion | None,
) -> DsCall:
    """Decide the convention, read the document and decode it.

    ``read_stdin(limit)`` returns at most ``limit`` bytes of stdin; it is called only
    when the convention says the document is there, because with 4.4 … 6.6 stdin is
    EOF or, under a test harness, may be a terminal.

    Raises:
        BadCallError: the argv shape is unknown, contradicts ``version``, or the
            document is empty, too large or not base64.
    """
    if len(argv) == 2 and argv[0] == "-":
        convention = Convention.DASH_STDIN
    elif len(argv) == 2:
        convention = Convention.ARGV
    elif len(argv) == 1:
        convention = Convention.STDIN
    else:
        raise BadCallError(
            f"Datastore action {action} expects 1 or 2 arguments but got {len(argv)}; "
            "check DATASTORE_MAD in oned.conf."
        )
    if version is not None:
        _check_convention(action, convention, version)
    object_id = _parse_id(argv[-1], "id")
    if convention is Convention.ARGV:
        payload = argv[0].encode("ascii", "replace")
    else:
        payload = read_stdin(MAX_DOCUMENT_BYTES + 1)
    document = decode_base64(payload, "DS_DRIVER_ACTION_DATA")
    return DsCall(action, object_id, document, convention, version)


def _check_convention(action: str, convention: Convention, version: OneVersion) -> None:
    if version >= V6_8:
        allowed = {Convention.STDIN}
    elif version >= V6_4:
        # 6.4.4+/6.6.2+ pass "- <ID>" only when one_datastore runs with -i.
        allowed = {Convention.ARGV, Convention.DASH_STDIN}
    else:
        allowed = {Convention.ARGV}
    if convention not in allowed:
        raise BadCallError(
            f"Datastore action {action} was called the {convention.value} way, which "
            f"OpenNebula {version} (remotes/VERSION) never does; reinstall the driver "
            "after upgrading OpenNebula."
        )


# TM call parsing lives in a submodule loaded on first use (see its docstring).
_LAZY = dict.fromkeys(("HostPath", "MigrateCall", "TmCall", "parse_tm_call"), "_tm_args")

TYPE_CHECKING = False  # not typing's: importing typing costs a remote ~3 ms (docs/performance.md)

if TYPE_CHECKING:
    from eqliscsi.opennebula._tm_args import HostPath, MigrateCall, TmCall, parse_tm_call


def __getattr__(name: str) -> object:
    return _lazy.load(__name__, "eqliscsi.opennebula", _LAZY, name)


def __dir__() -> list[str]:
    return _lazy.names(__name__, _LAZY)
