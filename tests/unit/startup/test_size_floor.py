"""``size_floor_mb`` (monitor's decimal-free size parser) equals the Decimal path."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eqliscsi.san.errors import SanProtocolError
from eqliscsi.san.parsers import _floor_mb, parse_size_mb, size_floor_mb

from .child import run_child

DIGITS = st.text("0123456789", min_size=1, max_size=30)


@given(
    whole=DIGITS,
    frac=st.none() | DIGITS,
    unit=st.sampled_from(["MB", "GB", "TB"]),
    pad=st.sampled_from(["", " ", "  "]),
)
def test_equals_the_decimal_floor(whole: str, frac: str | None, unit: str, pad: str) -> None:
    text = f"{pad}{whole}{'' if frac is None else '.' + frac}{pad}{unit}{pad}"
    assert size_floor_mb(text) == _floor_mb(parse_size_mb(text))


@pytest.mark.parametrize(
    ("text", "mb"),
    [
        pytest.param("1.01GB", 1034, id="gb-decimals"),
        pytest.param("9.46TB", 9919528, id="tb-decimals"),
        pytest.param("0MB", 0, id="zero"),
        pytest.param("500.99MB", 500, id="mb-floor"),
        pytest.param(" 10GB ", 10240, id="blanks"),
    ],
)
def test_known_sizes(text: str, mb: int) -> None:
    assert size_floor_mb(text) == mb


@pytest.mark.parametrize("text", ["", "1.GB", "-1GB", "1 KB", "1e3MB", "\uff11GB", "1,5GB"])
def test_refuses_what_parse_size_mb_refuses(text: str) -> None:
    with pytest.raises(SanProtocolError) as ours:
        size_floor_mb(text)
    with pytest.raises(SanProtocolError) as theirs:
        parse_size_mb(text)
    assert str(ours.value) == str(theirs.value)


def test_pool_capacity_needs_no_decimal(tmp_path: Path) -> None:
    # A fresh interpreter: pytest's own process has imported decimal long ago.
    code = (
        "import sys\n"
        "from eqliscsi.san.parsers import parse_pool_capacity\n"
        "cap = parse_pool_capacity(['TotalCapacity: 9.46TB', 'FreeSpace: 1.01GB',\n"
        "                           'VolumeReserve: 500.5MB', 'TotalVolumes: 3'])\n"
        "print(cap.total_mb, cap.free_mb, cap.volume_reserve_mb, 'decimal' in sys.modules)\n"
    )
    done = run_child(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["9919528", "1034", "500", "False"]
