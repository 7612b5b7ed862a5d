"""Tables and key/value blocks of the CLI (see :mod:`eqliscsi.san.parsers`).

Imported by ``parsers`` on first use of one of its names (PEP 562): a ``monitor``
parses one pool block and no table, and every remote pays its imports on each oned
call (docs/performance.md, "Remote start-up").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from eqliscsi.san.errors import SanProtocolError
from eqliscsi.san.parsers import (
    _BANNER_RE,
    _DASHES_RE,
    _IQN_RE,
    _floor_mb,
    _require,
    parse_key_values,
    parse_size_mb,
)

__all__ = [
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
]


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
    """One row of ``volume select V access show``."""

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


@dataclass(frozen=True, slots=True)
class VolumeInfo:
    """What ``volume select V show`` says about a volume."""

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
class PoolSummary:
    """One row of ``show pool``."""

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
    """What ``grpparams show`` says about the group."""

    group_ip: str
    name: str | None


def parse_group_params(lines: Sequence[str]) -> GroupParams:
    """``grpparams show``: ``Group-Ipaddress:`` (§5.7)."""
    kv = parse_key_values(lines)
    return GroupParams(
        group_ip=_require(kv, "Group-Ipaddress", "grpparams show"), name=kv.get("Name") or None
    )
