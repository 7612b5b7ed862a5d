from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eqliscsi.opennebula.errors import BadValueError
from eqliscsi.opennebula.naming import (
    MAX_VOLUME_NAME,
    check_volume_name,
    clean_name,
    image_volume_name,
    snapshot_name,
    vm_disk_volume_name,
    volume_from_source,
)

VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,62}$")


@pytest.mark.parametrize(
    ("name", "image_id", "expected"),
    [
        pytest.param("Ubuntu 14.04_srv", 7, "ubuntu-14-04-srv.7", id="original-example"),
        pytest.param("web", 0, "web.0", id="simple"),
        pytest.param("Débian Ünstable", 3, "debian-unstable.3", id="accents-folded"),
        pytest.param("日本語", 4, "img.4", id="no-ascii"),
        pytest.param("", 5, "img.5", id="empty"),
        pytest.param('data "disk"; $(rm -rf /)', 9, "data-disk-rm-rf.9", id="shell-chars"),
        pytest.param("a\nb\r\nc", 1, "a-b-c.1", id="newlines"),
        pytest.param("--x--", 2, "x.2", id="edge-dashes"),
        pytest.param("x" * 200, 123456, "x" * 56 + ".123456", id="200-chars"),
    ],
)
def test_image_volume_name(name: str, image_id: int, expected: str) -> None:
    assert image_volume_name(name, image_id) == expected


@given(st.text(max_size=300), st.integers(min_value=0, max_value=10**9))
def test_image_volume_name_always_valid(name: str, image_id: int) -> None:
    vol = image_volume_name(name, image_id)
    assert VALID.match(vol)
    assert vol.endswith(f".{image_id}")  # the id keeps every image's volume unique


@pytest.mark.parametrize(
    ("source", "vm", "disk", "expected"),
    [
        pytest.param("ubuntu-14-04-srv.7", 42, 0, "ubuntu-14-04-srv.7-42-0", id="simple"),
        pytest.param("a" * 50 + ".1", 1234567, 12, None, id="long-source-hashed"),
    ],
)
def test_vm_disk_volume_name(source: str, vm: int, disk: int, expected: str | None) -> None:
    vol = vm_disk_volume_name(source, vm, disk)
    assert VALID.match(vol) and len(vol) <= MAX_VOLUME_NAME
    assert vol.endswith(f"-{vm}-{disk}")
    if expected is not None:
        assert vol == expected


def test_vm_disk_same_image_twice_differs() -> None:
    # The original's <vol>-<vmid> collided when one VM attached an image twice.
    assert vm_disk_volume_name("img.1", 5, 0) != vm_disk_volume_name("img.1", 5, 1)


@given(
    st.from_regex(r"[a-z0-9][a-z0-9.\-]{0,62}", fullmatch=True),
    st.from_regex(r"[a-z0-9][a-z0-9.\-]{0,62}", fullmatch=True),
    st.integers(0, 10**7),
    st.integers(0, 999),
)
def test_vm_disk_unique_and_valid(a: str, b: str, vm: int, disk: int) -> None:
    va, vb = vm_disk_volume_name(a, vm, disk), vm_disk_volume_name(b, vm, disk)
    assert VALID.match(va) and VALID.match(vb)
    assert (va == vb) == (a == b)


@pytest.mark.parametrize(
    ("source", "volume"),
    [
        pytest.param("ubuntu-14-04-srv.7", "ubuntu-14-04-srv.7", id="bare"),
        pytest.param("192.168.0.1:ubuntu-14-04-srv.7", "ubuntu-14-04-srv.7", id="host-vol"),
        pytest.param(
            "192.168.0.1:iqn.2001-05.com.equallogic:0-8a0906-0f2a3b4c5-0123456789abcdef-ubuntu-14-04-srv.7",
            "ubuntu-14-04-srv.7",
            id="v0.1-host-iqn",
        ),
        pytest.param(
            "iqn.2001-05.com.equallogic:0-8a0906-0f2a3b4c5-0123456789abcdef-web.3",
            "web.3",
            id="bare-iqn",
        ),
    ],
)
def test_volume_from_source(source: str, volume: str) -> None:
    assert volume_from_source(source) == volume


@pytest.mark.parametrize(
    "source",
    [
        "",
        "vol; volume delete x",
        "vol name",
        "-rf",
        "host:",
        "iqn.2003-01.org.linux-iscsi.x:sn.123",
        "iqn.2001-05.com.equallogic:0-8a0906-0f2a3b4c5-0123456789abcdef-",
        "x" * 64,
        "vol\nx",
    ],
)
def test_volume_from_source_rejects(source: str) -> None:
    with pytest.raises(BadValueError):
        volume_from_source(source)


@pytest.mark.parametrize("name", ["a", "a.b-c", "A" * 63])
def test_check_volume_name_accepts(name: str) -> None:
    assert check_volume_name(name) == name


@pytest.mark.parametrize("name", ["", ".a", "-a", "a_b", "a:b", "a" * 64, "ä"])
def test_check_volume_name_rejects(name: str) -> None:
    with pytest.raises(BadValueError):
        check_volume_name(name)


def test_clean_name() -> None:
    assert clean_name("A__B..C  D") == "a-b-c-d"


def test_snapshot_name() -> None:
    assert snapshot_name("web.3", 0) == "web.3-one-snap0"
    assert snapshot_name("x" * 63, 999999) == "x" * 63 + "-one-snap999999"
    with pytest.raises(BadValueError):
        snapshot_name("web.3", -1)
    with pytest.raises(BadValueError):
        snapshot_name("bad name", 1)
