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

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eqliscsi.san.errors import SanProtocolError

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
]

_ERROR_RE = re.compile(r"^\s*(%\s*Error\b|Error:)", re.ASCII)
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(MB|GB|TB)\s*$", re.ASCII)
_UNIT_MB = {"MB": 1, "GB": 1024, "TB": 1024 * 1024}
_IQN_RE = re.compile(
    r"(iqn\.\d{4}-\d{2}\.[A-Za-z0-9.-]+(?::[A-Za-z0-9.:_-]+)?|eui\.[0-9A-Fa-f]{16})", re.ASCII
)
# A target name from the array always has the ":<unique part>" (iqn.2001-05.com.equallogic:…)
_TARGET_IQN_RE = re.compile(r"iqn\.\d{4}-\d{2}\.[A-Za-z0-9.-]+:[A-Za-z0-9.:_-]+", re.ASCII)
_TARGET_RE = re.compile(r"iSCSI target name is\s*(\S+)", re.ASCII)
_SNAPSHOT_RE = re.compile(r"^Snapshot name is\s+(\S+?)\.?\s*$", re.ASCII)
_DASHES_RE = re.compile(r"^-+( +-+)*\s*$", re.ASCII)
# A key starts the line or follows two or more spaces (two-column layout), is followed by a
# colon and then a space or the end of the line.  "allogic:0-8a09..." (a wrapped IQN) has no
# space after its colon and so is never taken for a key.
_KEY_RE = re.compile(
    r"(?:^|(?<=\s\s))([A-Za-z][A-Za-z0-9._/()-]*(?: [A-Za-z0-9._/()-]+)*):(?= |$)", re.ASCII
)
_BANNER_RE = re.compile(r"^_{3,}.*_{3,}\s*$", re.ASCII)


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


@dataclass(frozen=True, slots=True)
class Table:
    """A table: header names and rows of cells (continuation rows already joined)."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def dicts(self) -> list[dict[str, str]]:
        return [dict(zip(self.headers, row, strict=True)) for row in self.rows]


def _spans(dashes: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"-+", dashes)]


def _cells(line: str, spans: list[tuple[int, int]]) -> list[str]:
    cells = []
    for n, (start, _end) in enumerate(spans):
        # A cell runs to the start of the next column; the last one to the end of the line
        # (a value longer than its dashes is not cut).
        stop = spans[n + 1][0] if n + 1 < len(spans) else len(line)
        cells.append(line[start:stop].strip())
    return cells


def parse_tables(lines: Sequence[str]) -> list[Table]:
    """Every table in ``lines``, split by the column spans of its dashed underline."""
    tables: list[Table] = []
    i = 1
    while i < len(lines):
        if not _DASHES_RE.match(lines[i]) or not lines[i - 1].strip():
            i += 1
            continue
        spans = _spans(lines[i])
        headers = tuple(_cells(lines[i - 1], spans))
        rows: list[list[str]] = []
        j = i + 1
        while j < len(lines):
            line = lines[j].rstrip()
            if not line.strip() or _BANNER_RE.match(line):
                break
            if j + 1 < len(lines) and _DASHES_RE.match(lines[j + 1]):
                break  # the header of the next table
            cells = _cells(line, spans)
            # A wrapped cell continues at its column start + 2 (§5.3), while a new row has
            # at least one cell starting right at its column start.
            continuation = all(not line[a : a + 2].strip() for a, _ in spans)
            if continuation and rows:
                # Each non-empty piece continues the cell above it.
                for c, piece in enumerate(cells):
                    rows[-1][c] += piece
            else:
                rows.append(cells)
            j += 1
        tables.append(Table(headers, tuple(tuple(r) for r in rows)))
        i = j
    return tables


@dataclass(frozen=True, slots=True)
class AccessRecord:
    record_id: int
    initiator: str
    ipaddress: str
    authmethod: str
    username: str
    apply_to: str


def parse_access_records(lines: Sequence[str]) -> list[AccessRecord]:
    """Rows of ``volume select V access show`` (columns ID, Initiator, Ipaddress, ...)."""
    records: list[AccessRecord] = []
    for table in parse_tables(lines):
        lowered = [h.lower() for h in table.headers]
        if not lowered or lowered[0] != "id" or "initiator" not in lowered:
            continue
        for row in table.dicts():
            low = {k.lower(): v for k, v in row.items()}
            if not low["id"].isdigit():
                raise SanProtocolError(
                    f"The access table has the record id {low['id']!r}; report this output."
                )
            records.append(
                AccessRecord(
                    record_id=int(low["id"]),
                    initiator=low.get("initiator", ""),
                    ipaddress=low.get("ipaddress", ""),
                    authmethod=low.get("authmethod", ""),
                    username=low.get("username", ""),
                    apply_to=low.get("apply-to", ""),
                )
            )
    return records


def _require(kv: dict[str, str], key: str, what: str) -> str:
    if key not in kv:
        raise SanProtocolError(
            f"The array's {what} output has no '{key}:' line; check the account's cli-settings."
        )
    return kv[key]


@dataclass(frozen=True, slots=True)
class VolumeInfo:
    name: str
    size_mb: int
    iqn: str
    description: str
    status: str
    connections: int
    raw: dict[str, str]


def parse_volume_info(lines: Sequence[str]) -> VolumeInfo:
    """``volume select V show`` (equallogic-cli.md §5.2)."""
    kv = parse_key_values(lines)
    what = "volume show"
    iqn = _require(kv, "iSCSI Name", what).replace(" ", "")
    if not _IQN_RE.fullmatch(iqn):
        raise SanProtocolError(f"The array printed the iSCSI name {iqn!r}; report this output.")
    conns = kv.get("Connections", "0") or "0"
    if not conns.isdigit():
        raise SanProtocolError(f"The array printed Connections: {conns!r}; report this output.")
    return VolumeInfo(
        name=_require(kv, "Name", what),
        size_mb=_floor_mb(parse_size_mb(_require(kv, "Size", what))),
        iqn=iqn,
        description=kv.get("Description", ""),
        status=kv.get("Status", ""),
        connections=int(conns),
        raw=kv,
    )


@dataclass(frozen=True, slots=True)
class PoolCapacity:
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
        return _floor_mb(parse_size_mb(kv[key])) if kv.get(key) else None

    tv = kv.get("TotalVolumes")
    return PoolCapacity(
        total_mb=_floor_mb(parse_size_mb(_require(kv, "TotalCapacity", what))),
        free_mb=_floor_mb(parse_size_mb(_require(kv, "FreeSpace", what))),
        volume_reserve_mb=opt("VolumeReserve"),
        reported_mb=opt("VolumeReportedSpace"),
        total_volumes=int(tv) if tv and tv.isdigit() else None,
    )


@dataclass(frozen=True, slots=True)
class PoolSummary:
    name: str
    default: bool
    capacity_mb: int
    free_mb: int


def parse_show_pool(lines: Sequence[str]) -> list[PoolSummary]:
    """``show pool``: Name, Default, Members, Volumes, Capacity, FreeSpace (§5.6)."""
    for table in parse_tables(lines):
        low = [h.lower() for h in table.headers]
        if "name" in low and "capacity" in low and "freespace" in low:
            out = []
            for row in table.dicts():
                r = {k.lower(): v for k, v in row.items()}
                out.append(
                    PoolSummary(
                        name=r["name"],
                        default=r.get("default", "").lower() == "true",
                        capacity_mb=_floor_mb(parse_size_mb(r["capacity"])),
                        free_mb=_floor_mb(parse_size_mb(r["freespace"])),
                    )
                )
            return out
    raise SanProtocolError("The array's 'show pool' output has no pool table; report this output.")


@dataclass(frozen=True, slots=True)
class GroupParams:
    group_ip: str
    name: str | None


def parse_group_params(lines: Sequence[str]) -> GroupParams:
    """``grpparams show``: ``Group-Ipaddress:`` (§5.7)."""
    kv = parse_key_values(lines)
    return GroupParams(
        group_ip=_require(kv, "Group-Ipaddress", "grpparams show"), name=kv.get("Name") or None
    )


class AccountType(enum.Enum):
    """Administration account types (Administrator's Guide, "Account Permissions")."""

    GROUP_ADMIN = "group-admin"
    POOL_ADMIN = "pool-admin"
    VOLUME_ADMIN = "volume-admin"
    READ_ONLY = "read-only"


@dataclass(frozen=True, slots=True)
class AccountInfo:
    name: str
    type: AccountType | None  # None: a type this parser does not know
    type_text: str
    pools: tuple[str, ...]


def parse_account(lines: Sequence[str]) -> AccountInfo:
    """``account select NAME show``: ``Name:``, ``Type:`` and ``Pools:`` (comma-separated).

    The key names are unverified [U]; an unknown type is kept as text (``type`` None)
    so the caller can say what it saw instead of guessing what it allows.
    """
    kv = parse_key_values(lines)
    text = _require(kv, "Type", "account select show")
    try:
        kind: AccountType | None = AccountType(text.strip().lower())
    except ValueError:
        kind = None
    pools = tuple(p.strip() for p in kv.get("Pools", "").split(",") if p.strip())
    return AccountInfo(kv.get("Name", ""), kind, text.strip(), pools)
