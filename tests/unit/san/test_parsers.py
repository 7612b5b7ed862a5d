"""Parsers over outputs from equallogic-cli.md §5 (transcripts and fixtures cited there)."""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eqliscsi.san import parsers as p
from eqliscsi.san.errors import SanProtocolError

IQN = (
    "iqn.2001-05.com.equallogic:0-8a0906-19f91850c-067000000b4532c1-"
    "volume-74cf9c04-4543-47ae-a937-a9b7c6c921e7"
)

# §5.2, the Cinder doc transcript (formatoutput off).
VOLUME_SHOW = f"""\
_______________________________ Volume Information ________________________________
Name: volume-74cf9c04-4543-47ae-a937-a9b7c6c921e7
Size: 1GB
VolReserve: 1.01GB
VolReserveInUse: 0MB
ReplReserveInUse: 0MB
iSCSI Alias: volume-74cf9c04-4543-47ae-a937-a9b7c6c921e7
iSCSI Name: {IQN}
ActualMembers: 1
Snap-Warn: 10%
Snap-Depletion: delete-oldest
Description:
Snap-Reserve: 100%
Snap-Reserve-Avail: 100% (1.01GB)
Permission: read-write
DesiredStatus: online
Status: online
Connections: 0
Snapshots: 0
Bind:
Type: not-replicated
ReplicationReserveSpace: 0MB
""".splitlines()


def _wrap(lines: list[str], width: int) -> list[str]:
    """Hard-wrap like the array does with stty hardwrap on."""
    out: list[str] = []
    for line in lines:
        rest = line
        while len(rest) > width:
            out.append(rest[:width])
            rest = rest[width:]
        out.append(rest)
    return out


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param(VOLUME_SHOW, id="one-per-line"),
        pytest.param(_wrap(VOLUME_SHOW, 80), id="wrapped-80"),
        pytest.param(_wrap(VOLUME_SHOW, 41), id="wrapped-41"),
        pytest.param(
            [*VOLUME_SHOW, "", "ID  Initiator", "--- ---------", "1   *"], id="trailing-table"
        ),
    ],
)
def test_volume_show(lines: list[str]) -> None:
    info = p.parse_volume_info(lines)
    assert info.name == "volume-74cf9c04-4543-47ae-a937-a9b7c6c921e7"
    assert info.size_mb == 1024
    assert info.iqn == IQN
    assert info.description == ""
    assert info.status == "online"
    assert info.connections == 0
    assert info.raw["Snap-Reserve-Avail"] == "100% (1.01GB)"
    assert info.raw["Bind"] == ""


def test_two_column_key_values() -> None:
    # formatoutput on: two pairs per line (§5.8; the exact layout is unverified, so the
    # parser only assumes pairs are separated by two or more spaces).
    lines = [
        "Name: vol1                             Size: 10GB",
        "VolReserve: 10.01GB                    Description: eqliscsi ds=100",
        "iSCSI Alias: vol1                      Bind:",
        "Snap-Reserve-Avail: 100% (1.01GB)      Status: online",
    ]
    kv = p.parse_key_values(lines)
    assert kv == {
        "Name": "vol1",
        "Size": "10GB",
        "VolReserve": "10.01GB",
        "Description": "eqliscsi ds=100",
        "iSCSI Alias": "vol1",
        "Bind": "",
        "Snap-Reserve-Avail": "100% (1.01GB)",
        "Status": "online",
    }


TARGET_LINES = [
    pytest.param(["Volume creation succeeded.", f"iSCSI target name is {IQN}."], id="plain"),
    pytest.param([f"iSCSI target name is {IQN}."], id="alone"),
    pytest.param(_wrap([f"iSCSI target name is {IQN}."], 80), id="wrapped-80"),
    pytest.param(_wrap([f"iSCSI target name is {IQN}."], 21), id="wrapped-after-is-space"),
    pytest.param(_wrap([f"iSCSI target name is {IQN}."], 20), id="wrapped-at-space"),
    pytest.param(_wrap([f"iSCSI target name is {IQN}."], 37), id="wrapped-after-dot"),
]


@pytest.mark.parametrize("lines", TARGET_LINES)
def test_target_name(lines: list[str]) -> None:
    assert p.parse_target_name(lines) == IQN


DOTTED = "iqn.2001-05.com.equallogic:0-8a0906-83bcb3401-16e0002fd0a46f3d-ubuntu.7"


def test_target_name_wrapped_after_a_dot_in_the_volume_name() -> None:
    # The line breaks right after "ubuntu." : only the volume name tells the two readings
    # apart ("...-ubuntu" + "." vs "...-ubuntu.7" + ".").
    text = f"iSCSI target name is {DOTTED}."
    lines = [text[: text.index("ubuntu.") + 7], text[text.index("ubuntu.") + 7 :]]
    assert p.parse_target_name(lines, "ubuntu.7") == DOTTED
    assert p.parse_target_name(lines) == DOTTED[:-2]  # documented: shortest without a name
    with pytest.raises(SanProtocolError):
        p.parse_target_name(lines, "other")


def test_target_name_followed_by_more_output() -> None:
    lines = [f"iSCSI target name is {IQN}.", "Some later message."]
    assert p.parse_target_name(lines) == IQN
    assert p.parse_target_name(lines, "volume-74cf9c04-4543-47ae-a937-a9b7c6c921e7") == IQN


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param([], id="empty"),
        pytest.param(["Volume creation succeeded."], id="no-line"),
        pytest.param(["iSCSI target name is ."], id="no-iqn"),
        pytest.param(["iSCSI target name is foo."], id="not-an-iqn"),
    ],
)
def test_target_name_missing(lines: list[str]) -> None:
    with pytest.raises(SanProtocolError):
        p.parse_target_name(lines)


# §5.4: Cinder's fixture split the IQN at 29 characters; openQRM's sample wraps a CHAP name.
ACCESS = [
    "ID  Initiator                     Ipaddress       AuthMethod UserName   Apply-To",
    "--- ----------------------------- --------------- ---------- ---------- --------",
    "1   iqn.1993-08.org.debian:01:222 *.*.*.*         none                  both",
    "      7dab76162",
    "2                                 *.*.*.*         chap       18.cloud_8 both",
    "                                                                _1_",
    "3   *                             192.168.*.*     none                  volume",
]


def test_access_records_wrapped() -> None:
    recs = p.parse_access_records(ACCESS)
    assert [r.record_id for r in recs] == [1, 2, 3]
    assert recs[0].initiator == "iqn.1993-08.org.debian:01:2227dab76162"
    assert recs[0].ipaddress == "*.*.*.*"
    assert recs[1].initiator == ""
    assert recs[1].username == "18.cloud_8_1_"
    assert recs[1].authmethod == "chap"
    assert recs[2].ipaddress == "192.168.*.*"
    assert recs[2].apply_to == "volume"


def test_access_records_empty_table() -> None:
    assert p.parse_access_records(ACCESS[:2]) == []


# §5.3, the openQRM sample: the name wraps as 15 characters then 2 spaces + 13.
VOLUMES = [
    "Name            Size       SnapShots Status         Permission Connections T",
    "--------------- ---------- --------- -------------- ---------- ----------- -",
    "somelun         100MB      0         online         read-write 0           N",
    "a-lun-with-a-ve 100MB      0         online         read-write 0           N",
    "  ry-long-lun-n",
    "  ame",
    "otherlun        100MB      0         online         read-write 0           N",
]


def test_volume_table_wrapped() -> None:
    (table,) = p.parse_tables(VOLUMES)
    assert table.headers[:2] == ("Name", "Size")
    rows = table.dicts()
    assert [r["Name"] for r in rows] == ["somelun", "a-lun-with-a-very-long-lun-name", "otherlun"]
    assert rows[1]["T"] == "N"


def test_two_tables_in_one_output() -> None:
    tables = p.parse_tables([*VOLUMES, "", *ACCESS])
    assert len(tables) == 2
    assert len(tables[1].rows) == 3


@pytest.mark.parametrize(
    ("text", "mb"),
    [
        pytest.param("0MB", Decimal(0), id="zero"),
        pytest.param("1536.0MB", Decimal("1536.0"), id="mb-decimal"),
        pytest.param("1GB", Decimal(1024), id="gb"),
        pytest.param("1.01GB", Decimal("1034.24"), id="gb-decimal"),
        pytest.param("123.5GB", Decimal("126464.0"), id="gb-half"),
        pytest.param("9.46TB", Decimal("9919528.96"), id="tb-decimal"),
    ],
)
def test_sizes(text: str, mb: Decimal) -> None:
    assert p.parse_size_mb(text) == mb


@pytest.mark.parametrize("text", ["", "GB", "1,5GB", "1PB", "-1GB", "1 G", "1e3MB", "\u0661GB"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(SanProtocolError):
        p.parse_size_mb(text)


def test_pool_capacity_with_volume_listing() -> None:
    lines = [
        "TotalCapacity: 9.46TB",
        "FreeSpace: 123.5GB",
        "VolumeReserve: 80GB",
        "VolumeReportedSpace: 80GB",
        "TotalVolumes: 100",
        "",
        *VOLUMES,
    ]
    cap = p.parse_pool_capacity(lines)
    assert cap.total_mb == 9919528
    assert cap.free_mb == 126464
    assert cap.used_mb == 9919528 - 126464
    assert cap.volume_reserve_mb == 81920
    assert cap.reported_mb == 81920
    assert cap.total_volumes == 100


def test_pool_capacity_missing_is_an_error_not_infinite() -> None:
    with pytest.raises(SanProtocolError):
        p.parse_pool_capacity(["FreeSpace: 1GB"])


def test_show_pool() -> None:
    lines = [
        "Name                 Default Members Volumes Capacity   FreeSpace",
        "-------------------- ------- ------- ------- ---------- ----------",
        "default              true    1       12      9.46TB     1.5TB",
        "fast                 false   1       0       500GB      499.9GB",
    ]
    pools = p.parse_show_pool(lines)
    assert [(x.name, x.default) for x in pools] == [("default", True), ("fast", False)]
    assert pools[1].capacity_mb == 512000
    assert pools[1].free_mb == 511897


def test_group_params() -> None:
    lines = ["Name: group-0", "Group-Ipaddress: 10.1.2.3", "Def-Snap-Reserve: 100%"]
    gp = p.parse_group_params(lines)
    assert gp.group_ip == "10.1.2.3"
    assert gp.name == "group-0"


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        pytest.param(
            ["% Error - Volume does not exist."], "% Error - Volume does not exist.", id="pct"
        ),
        pytest.param(["Error: bad"], "Error: bad", id="colon"),
        pytest.param(["ok", "  % Error - x"], "% Error - x", id="indented"),
        pytest.param(["Volume deletion succeeded."], None, id="none"),
        pytest.param(["Description: Error: not at start"], None, id="in-value"),
    ],
)
def test_find_error(lines: list[str], error: str | None) -> None:
    assert p.find_error(lines) == error


def test_snapshot_and_password_lines() -> None:
    out = ["Snapshot creation succeeded.", "Snapshot name is vol1-2024-01-02-03:04:05.1"]
    assert p.parse_snapshot_name(out) == "vol1-2024-01-02-03:04:05.1"
    assert p.parse_chap_password(["Password is abcdefgh12345"]) == "abcdefgh12345"
    assert p.parse_chap_password(["Password: xyz"]) == "xyz"


_SURROGATES: tuple[Literal["Cs"]] = ("Cs",)
_LINE = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=_SURROGATES), max_size=120)


@given(st.lists(_LINE, max_size=30))
def test_parsers_never_crash_with_other_errors(lines: list[str]) -> None:
    """Any text: the parsers return or raise SanProtocolError, nothing else."""
    p.parse_key_values(lines)
    p.parse_tables(lines)
    p.find_error(lines)
    for fn in (p.parse_target_name, p.parse_volume_info, p.parse_pool_capacity):
        with contextlib.suppress(SanProtocolError):
            fn(lines)


@given(
    st.dictionaries(
        st.from_regex(r"[A-Z][a-z]{1,10}(-[A-Z][a-z]{1,8})?", fullmatch=True),
        st.from_regex(r"[a-z0-9.%()]{1,12}( [a-z0-9.%()]{1,12})?", fullmatch=True),
        min_size=1,
        max_size=12,
    ),
    st.booleans(),
)
def test_key_values_roundtrip(kv: dict[str, str], two_columns: bool) -> None:
    items = [f"{k}: {v}" for k, v in kv.items()]
    if two_columns:
        lines = [
            items[i].ljust(40) + ("  " + items[i + 1] if i + 1 < len(items) else "")
            for i in range(0, len(items), 2)
        ]
    else:
        lines = items
    assert p.parse_key_values(lines) == kv


@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[a-z0-9.-]{1,40}", fullmatch=True),
            st.sampled_from(["10MB", "1.5GB", "2TB"]),
        ),
        min_size=1,
        max_size=8,
        unique_by=lambda t: t[0],
    ),
    st.integers(min_value=5, max_value=15),
)
def test_wrapped_tables_roundtrip(rows: list[tuple[str, str]], width: int) -> None:
    """Render a table the way §5.3 describes (wrap inside the column) and parse it back."""
    lines = ["Name".ljust(width) + " Size", "-" * width + " ----------"]
    for name, size in rows:
        lines.append(name[:width].ljust(width) + " " + size)
        rest = name[width:]
        while rest:
            lines.append("  " + rest[: width - 2])
            rest = rest[width - 2 :]
    (table,) = p.parse_tables(lines)
    assert [(r["Name"], r["Size"]) for r in table.dicts()] == rows
