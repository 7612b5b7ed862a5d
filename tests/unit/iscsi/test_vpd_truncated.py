"""VPD 0x83 pages longer than the allocation length (SPC-4 §6.6.1) keep what arrived."""

from __future__ import annotations

import pytest

from eqliscsi.iscsi_discovery.errors import PduDecodeError
from eqliscsi.iscsi_discovery.sansio import parse_device_identifiers

NAA = bytes([0x01, 0x03, 0x00, 0x08]) + bytes.fromhex("6001405abcdef012")
NAME = b"iqn.2001-05.com.equallogic:0-8a0906-000000001-0000000000000001-" + b"v" * 150
# SCSI name string designator associated with the target device (association 2).
TARGET_NAME = bytes([0x03, 0x28, 0x00, len(NAME)]) + NAME


def page(designators: bytes, declared: int | None = None) -> bytes:
    length = len(designators) if declared is None else declared
    return bytes([0x00, 0x83]) + length.to_bytes(2, "big") + designators


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(page(NAA + TARGET_NAME), ("naa.6001405abcdef012",), id="whole-page"),
        pytest.param(
            page(NAA + TARGET_NAME)[:255], ("naa.6001405abcdef012",), id="cut-by-allocation"
        ),
    ],
)
def test_cut_page_keeps_whole_designators(data: bytes, expected: tuple[str, ...]) -> None:
    assert parse_device_identifiers(data) == expected


def test_page_that_lies_about_its_designator_is_an_error() -> None:
    # The page length covers the bytes sent, but a designator claims more: the target
    # is broken, not our allocation length.
    bad = NAA[:3] + bytes([40]) + NAA[4:]
    with pytest.raises(PduDecodeError):
        parse_device_identifiers(page(bad))
