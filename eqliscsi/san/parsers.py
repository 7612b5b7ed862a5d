"""Parsers for Group Manager CLI output (pure, no I/O).

Input is the list of output lines of one command, as the conversation delivers them: echo
and prompt removed, ``\\r`` stripped.  Formats follow equallogic-cli.md §5:

* ``iSCSI target name is <iqn>.``: the IQN may be hard-wrapped onto following lines;
  the trailing period is not part of the name.
* ``Key: value`` blocks, one pair per line (``formatoutput off``) or two per line
  (``formatoutput on``), with wrapped values continuing on a line of their own.
* Tables whose columns are given by the dashed underline row; a long cell wraps inside its
  own column onto continuation rows whose first column is blank.
* Errors: a line starting ``% Error`` or ``Error:``.
* Sizes: ``0MB``, ``1.01GB``, ``9.46TB``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from eqliscsi import _lazy
from eqliscsi._lazyre import LazyPattern
from eqliscsi._record import Record
from eqliscsi.san.errors import SanProtocolError

TYPE_CHECKING = False  # not typing's: importing typing costs a remote ~3 ms (docs/performance.md)

if TYPE_CHECKING:
    from decimal import Decimal

__all__ = [
    "AccessRecord",
    "AccountInfo",
    "AccountType",
    "GroupParams",
    "PoolCapacity",
    "PoolSummary",
    "Table",
    "VolumeInfo",
    "find_error",
    "parse_access_records",
    "parse_account",
    "parse_chap_password",
    "parse_group_params",
    "parse_key_values",
    "parse_pool_capacity",
    "parse_show_pool",
    "parse_size_mb",
    "parse_snapshot_name",
    "parse_tables",
    "parse_target_name",
    "parse_volume_info",
    "size_floor_mb",
]

_ERROR_RE = LazyPattern(r"^\s*(%\s*Error\b|Error:)", re.ASCII)
_SIZE_RE = LazyPattern(r"^\s*(\d+(?:\.\d+)?)\s*(MB|GB|TB)\s*$", re.ASCII)
_UNIT_MB = {"MB": 1, "GB": 1024, "TB": 1024 * 1024}
_IQN_RE = LazyPattern(
    r"(iqn\.\d{4}-\d{2}\.[A-Za-z0-9.-]+(?::[A-Za-z0-9.:_-]+)?|eui\.[0-9A-Fa-f]{16})", re.ASCII
)
# A target name from the array always has the ":<unique part>" (iqn.2001-05.com.equallogic:…)
_TARGET_IQN_RE = LazyPattern(r"iqn\.\d{4}-\d{2}\.[A-Za-z0-9.-]+:[A-Za-z0-9.:_-]+", re.ASCII)
_TARGET_RE = LazyPattern(r"iSCSI target name is\s*(\S+)", re.ASCII)
_SNAPSHOT_RE = LazyPattern(r"^Snapshot name is\s+(\S+?)\.?\s*$", re.ASCII)
_DASHES_RE = LazyPattern(r"^-+( +-+)*\s*$", re.ASCII)
# A key starts the line or follows two or more spaces (two-column layout), is followed by a
# colon and then a space or the end of the line.  "allogic:0-8a09..." (a wrapped IQN) has no
# space after its colon and so is never taken for a key.
_KEY_RE = LazyPattern(
    r"(?:^|(?<=\s\s))([A-Za-z][A-Za-z0-9._/()-]*(?: [A-Za-z0-9._/()-]+)*):(?= |$)", re.ASCII
)
_BANNER_RE = LazyPattern(r"^_{3,}.*_{3,}\s*$", re.ASCII)


def find_error(lines: Sequence[str]) -> str | None:
    """The first error line, stripped, or None (eqlscript: first ``\\s*(%\\s)?Error:?``)."""
    for line in lines:
        if _ERROR_RE.match(line):
            return line.strip()
    return None


def parse_size_mb(text: str) -> Decimal:
    """``1.01GB`` → ``Decimal('1034.24')`` MB; raises SanProtocolError on anything else."""
    m = _SIZE_RE.match(text)
    if not m:
        raise SanProtocolError(
            f"The array printed the size {text!r}, which is not a number of MB, GB or TB; "
            "report this output."
        )
    # Imported here: decimal costs tens of ms to import and most actions parse no size.
    from decimal import Decimal  # noqa: PLC0415

    return Decimal(m.group(1)) * _UNIT_MB[m.group(2)]


def _floor_mb(value: Decimal) -> int:
    # Sizes are never negative, so truncation is the floor.
    return int(value)


# Up to this many digits, digits x 1024**2 stays below 10**28, decimal's default precision,
# so the integer arithmetic below gives exactly what Decimal gives.
_EXACT_DIGITS = 20


def size_floor_mb(text: str) -> int:
    """``_floor_mb(parse_size_mb(text))`` without importing decimal.

    ``monitor``, the action oned runs most often, parses four sizes and nothing else that
    needs decimal, whose import (libmpdec) costs each such remote ~1 ms; the same pattern
    and error apply.
    """
    m = _SIZE_RE.match(text)
    if not m:
        return _floor_mb(parse_size_mb(text))  # raises the same SanProtocolError
    whole, _, frac = m.group(1).partition(".")
    if len(whole) + len(frac) > _EXACT_DIGITS:
        return _floor_mb(parse_size_mb(text))
    scale: int = 10 ** len(frac)
    return int(whole + frac) * _UNIT_MB[m.group(2)] // scale


def parse_target_name(lines: Sequence[str], volume: str | None = None) -> str:
    """The IQN from ``iSCSI target name is <iqn>.``, joined across hard-wrapped lines.

    Hard wrap cuts at a column, not at a word, and the IQN may contain dots, so a line
    that happens to end in "." is not proof that the name ended there.  Every prefix that
    reads as ``<iqn>.`` is a candidate; when the volume name is known, the candidate that
    ends in ``-<volume>`` wins (EqualLogic appends the volume name, equallogic-cli.md §7;
    compared without case, which is unverified), otherwise the shortest one.
    """
    for i, line in enumerate(lines):
        start = line.find("iSCSI target name is")
        if start < 0:
            continue
        text = line[start:]
        rest = [x.strip() for x in lines[i + 1 :]]
        candidates: list[str] = []
        for j in range(len(rest) + 1):
            m = _TARGET_RE.match(text)
            if m and m.group(1).endswith(".") and _TARGET_IQN_RE.fullmatch(m.group(1)[:-1]):
                candidates.append(m.group(1)[:-1])
            if j == len(rest) or not rest[j]:
                break
            text += rest[j]
        if volume is not None:
            suffix = "-" + volume.casefold()
            candidates = [x for x in candidates if x.casefold().endswith(suffix)]
        if candidates:
            return candidates[0]
        break
    raise SanProtocolError(
        "The array did not print 'iSCSI target name is <iqn>.'; "
        "check the volume with 'volume select <name> show'."
    )


def parse_snapshot_name(lines: Sequence[str]) -> str:
    """The name from ``Snapshot name is <name>`` (printed by ``snapshot create-now``)."""
    for line in lines:
        m = _SNAPSHOT_RE.match(line.strip())
        if m:
            return m.group(1)
    raise SanProtocolError("The array did not print 'Snapshot name is <name>'; report this output.")


def parse_chap_password(lines: Sequence[str]) -> str | None:
    """``Password is X`` (chapuser create) or ``Password: X`` (chapuser show)."""
    for line in lines:
        s = line.strip()
        for prefix in ("Password is ", "Password: "):
            if s.startswith(prefix):
                return s[len(prefix) :].strip() or None
    return None


def _kv_region(lines: Sequence[str]) -> list[str]:
    # Key/value blocks are followed by tables (access records, connections); stop at the
    # header line above the first dashed underline.
    for i, line in enumerate(lines):
        if _DASHES_RE.match(line) and i > 0:
            return list(lines[: i - 1])
    return list(lines)


def parse_key_values(lines: Sequence[str]) -> dict[str, str]:
    """Parse ``Key: value`` pairs, one or two per line, joining wrapped values.

    Lines that are section banners (``____ Volume Information ____``) are skipped.  A line
    without a key continues the previous value (hard wrap); Flocker did the same for the
    wrapped ``iSCSI Name:`` line.  Only the first occurrence of a key is kept.
    """
    result: dict[str, str] = {}
    last: str | None = None
    for raw in _kv_region(lines):
        line = raw.rstrip()
        if not line.strip() or _BANNER_RE.match(line):
            last = None
            continue
        keys = list(_KEY_RE.finditer(line))
        if not keys:
            if last is not None and result.get(last):
                result[last] += line.strip()
            continue
        for n, m in enumerate(keys):
            end = keys[n + 1].start() if n + 1 < len(keys) else len(line)
            key = m.group(1)
            value = line[m.end() + 1 : end].strip()
            if key not in result:
                result[key] = value
                last = key
            else:
                last = None
    return result


def _require(kv: dict[str, str], key: str, what: str) -> str:
    if key not in kv:
        raise SanProtocolError(
            f"The array's {what} output has no '{key}:' line; check the account's cli-settings."
        )
    return kv[key]


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class PoolCapacity(Record):
    """Whole MB, rounded down so that free space is never overstated (Cinder 1421843)."""

    total_mb: int
    free_mb: int
    volume_reserve_mb: int | None
    reported_mb: int | None
    total_volumes: int | None

    @property
    def used_mb(self) -> int:
        return self.total_mb - self.free_mb


def parse_pool_capacity(lines: Sequence[str]) -> PoolCapacity:
    """``pool select P show``: TotalCapacity, FreeSpace and friends (§5.5)."""
    kv = parse_key_values(lines)
    what = "pool show"

    def opt(key: str) -> int | None:
        return size_floor_mb(kv[key]) if kv.get(key) else None

    tv = kv.get("TotalVolumes")
    return PoolCapacity(
        total_mb=size_floor_mb(_require(kv, "TotalCapacity", what)),
        free_mb=size_floor_mb(_require(kv, "FreeSpace", what)),
        volume_reserve_mb=opt("VolumeReserve"),
        reported_mb=opt("VolumeReportedSpace"),
        total_volumes=int(tv) if tv and tv.isdigit() else None,
    )


# Table parsing and account blocks live in submodules loaded on first use (see their
# docstrings): name -> submodule of eqliscsi.san.
_LAZY = dict.fromkeys(("AccountInfo", "AccountType", "parse_account"), "_accounts") | dict.fromkeys(
    (
        "AccessRecord",
        "GroupParams",
        "PoolSummary",
        "Table",
        "VolumeInfo",
        "parse_access_records",
        "parse_group_params",
        "parse_show_pool",
        "parse_tables",
        "parse_volume_info",
    ),
    "_tables",
)

if TYPE_CHECKING:
    from eqliscsi.san._accounts import AccountInfo, AccountType, parse_account
    from eqliscsi.san._tables import (
        AccessRecord,
        GroupParams,
        PoolSummary,
        Table,
        VolumeInfo,
        parse_access_records,
        parse_group_params,
        parse_show_pool,
        parse_tables,
        parse_volume_info,
    )


def __getattr__(name: str) -> object:
    return _lazy.load(__name__, "eqliscsi.san", _LAZY, name)


def __dir__() -> list[str]:
    return _lazy.names(__name__, _LAZY)
