"""Sizes, tables, key/value blocks and hard wrap (equallogic-cli.md §5, §6)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rig.fake_eql.render import format_size, hard_wrap, kv_lines, parse_size, table


@pytest.mark.parametrize(
    ("text", "mb"),
    [
        ("100", 100),
        ("100MB", 100),
        ("100m", 100),
        ("1G", 1024),
        ("1GB", 1024),
        ("1.5GB", 1536),
        ("2T", 2 * 1024 * 1024),
        ("1TB", 1024 * 1024),
        ("12XB", None),
        ("GB", None),
        ("1.2.3G", None),
        (".", None),
        ("-1", None),
    ],
    ids=str,
)
def test_parse_size(text: str, mb: int | None) -> None:
    assert parse_size(text) == mb


@pytest.mark.parametrize(
    ("mb", "in_mb", "text"),
    [
        (0, False, "0MB"),
        (100, False, "100MB"),
        (1024, False, "1GB"),
        (1035, False, "1.01GB"),
        (2055, False, "2.01GB"),
        (int(9.46 * 1024 * 1024), False, "9.46TB"),
        (1035, True, "1035MB"),
    ],
    ids=str,
)
def test_format_size(mb: int, in_mb: bool, text: str) -> None:
    assert format_size(mb, in_mb=in_mb) == text


def test_access_table_wraps_like_the_cinder_fixture() -> None:
    lines = table(
        ["ID", "Initiator", "Ipaddress", "AuthMethod", "UserName", "Apply-To"],
        [3, 29, 15, 10, 10, 8],
        [["1", "iqn.1993-08.org.debian:01:2227dab76162", "", "chap", "18.cloud_8_1_", "both"]],
    )
    assert lines == [
        "ID  Initiator                     Ipaddress       AuthMethod UserName   Apply-To",
        "--- ----------------------------- --------------- ---------- ---------- --------",
        "1   iqn.1993-08.org.debian:01:222                 chap       18.cloud_8 both",
        # continuation rows: column start + 2 spaces (UserName starts at column 61)
        "      7dab76162".ljust(61 + 2) + "_1_",
    ]


@given(st.text(alphabet="abcdefghij-.:0123456789", min_size=1, max_size=80))
def test_wrapped_cells_rejoin(cell: str) -> None:
    lines = table(["Name", "T"], [15, 1], [[cell, "Y"]])[2:]
    assert lines[0][:15].rstrip() == cell[:15]
    rest = [line[2:] for line in lines[1:]]
    assert all(line.startswith("  ") for line in lines[1:])
    assert cell[:15] + "".join(rest) == cell


def test_kv_lines() -> None:
    pairs = [("Name", "v1"), ("Description", ""), ("iSCSI Name", "x" * 50), ("Size", "1GB")]
    assert kv_lines(pairs, two_per_line=False) == [
        "Name: v1",
        "Description:",
        "iSCSI Name: " + "x" * 50,
        "Size: 1GB",
    ]
    assert kv_lines(pairs, two_per_line=True) == [
        "Name: v1".ljust(40) + "Description:",
        "iSCSI Name: " + "x" * 50,
        "Size: 1GB",
    ]


@given(st.text(max_size=300), st.integers(min_value=1, max_value=300))
def test_hard_wrap_keeps_every_character(line: str, width: int) -> None:
    pieces = hard_wrap(line, width)
    assert "".join(pieces) == line
    assert all(len(p) <= width for p in pieces)
    assert hard_wrap(line, None) == [line]
