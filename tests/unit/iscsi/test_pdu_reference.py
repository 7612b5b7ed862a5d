"""The fast ``struct`` codec against the ``construct`` reference layouts.

``_pdu.encode_bhs``/``decode_bhs`` run on every PDU; ``_pdu_layout`` keeps the
readable Structs.  Two independent descriptions of RFC 7143 §11 must agree on every
PDU type: same bytes out, same dataclass back from any header, same refusals.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any, cast

import construct
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eqliscsi.iscsi_discovery._pdu import (
    _WIRES,
    LoginRequest,
    LogoutRequest,
    NopOut,
    Opcode,
    Pdu,
    ScsiCommand,
    TextRequest,
    decode_bhs,
    encode_bhs,
)
from eqliscsi.iscsi_discovery._pdu_layout import (
    REFERENCE_STRUCTS,
    reference_decode,
    reference_encode,
)
from eqliscsi.iscsi_discovery.errors import LocalProtocolError
from tests.unit.iscsi.test_pdu import PDU_STRATEGIES

_SUPPORTED = sorted(int(w.cls.opcode) for w in _WIRES)


def test_both_codecs_cover_the_same_pdus() -> None:
    assert {w.cls for w in _WIRES} == set(REFERENCE_STRUCTS)
    assert sorted(int(o) for o in Opcode) == _SUPPORTED
    for wire in _WIRES:
        assert wire.fmt.size == 48, wire.cls.__name__


@given(PDU_STRATEGIES, st.integers(0, 255))
def test_encode_matches_reference(pdu: Pdu, ahs_words: int) -> None:
    assert encode_bhs(pdu, ahs_words=ahs_words) == reference_encode(pdu, ahs_words=ahs_words)


@given(
    st.sampled_from(_SUPPORTED),
    st.integers(0, 3),  # the two bits above the opcode: I bit and reserved
    st.binary(min_size=47, max_size=47),
    st.binary(max_size=12),
)
def test_decode_matches_reference_on_any_header(
    opcode: int, top_bits: int, rest: bytes, data: bytes
) -> None:
    # Random reserved bits and bytes included: both must ignore them identically.
    bhs = bytes([top_bits << 6 | opcode]) + rest
    ours = decode_bhs(bhs, data)
    assert ours == reference_decode(bhs, data)
    assert type(ours).opcode == opcode


_BAD: list[Any] = [
    pytest.param(NopOut(itt=1 << 32), id="itt-33-bits"),
    pytest.param(NopOut(itt=-1), id="itt-negative"),
    pytest.param(TextRequest(itt=1, lun=1 << 64), id="lun-65-bits"),
    pytest.param(LoginRequest(isid=bytes(6), itt=1, csg=4, nsg=0), id="csg-3-bits"),
    pytest.param(LoginRequest(isid=bytes(6), itt=1, csg=0, nsg=-1), id="nsg-negative"),
    pytest.param(LoginRequest(isid=bytes(5), itt=1, csg=0, nsg=1), id="isid-5-bytes"),
    pytest.param(LoginRequest(isid=bytes(7), itt=1, csg=0, nsg=1), id="isid-7-bytes"),
    pytest.param(LogoutRequest(itt=1, reason=128), id="logout-reason-8-bits"),
    pytest.param(ScsiCommand(itt=1, cdb=b"\x00", attr=8), id="attr-4-bits"),
    pytest.param(LoginRequest(isid=bytes(6), itt=1, csg=0, nsg=1, cid=1 << 16), id="cid-17"),
]


@pytest.mark.parametrize("pdu", _BAD)
def test_out_of_range_refused_by_both(pdu: Pdu) -> None:
    with pytest.raises(LocalProtocolError, match="out of range"):
        encode_bhs(pdu)
    with pytest.raises((construct.ConstructError, ValueError, TypeError)):
        reference_encode(pdu)


def test_ahs_word_out_of_range() -> None:
    with pytest.raises(LocalProtocolError):
        encode_bhs(NopOut(itt=1), ahs_words=256)


def test_hot_path_imports_neither_construct_nor_crc32c() -> None:
    # Cold start of the CLI (docs/performance.md): the client imports these only
    # when needed: construct never at run time, crc32c when a digest is negotiated.
    code = (
        "import sys, eqliscsi.iscsi_discovery, eqliscsi.iscsi_discovery.sansio\n"
        "from eqliscsi.iscsi_discovery._framing import crc32c\n"
        "print(sorted(m for m in ('construct', 'crc32c') if m in sys.modules))\n"
        "assert crc32c(b'123456789') == 0xE3069283\n"
        "print('crc32c' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    ).stdout.split("\n")
    assert out[:2] == ["[]", "True"]


_REQUESTS = PDU_STRATEGIES.filter(lambda p: hasattr(p, "cmdsn") and hasattr(p, "exp_statsn"))


@given(_REQUESTS, st.integers(0, (1 << 32) - 1), st.integers(0, (1 << 32) - 1))
def test_numbers_stamp_like_a_copy(pdu: Pdu, cmdsn: int, exp_statsn: int) -> None:
    # The session stamps CmdSN/ExpStatSN at send time instead of copying the PDU.
    stamped = encode_bhs(pdu, numbers={"cmdsn": cmdsn, "exp_statsn": exp_statsn})
    copy = dataclasses.replace(cast(Any, pdu), cmdsn=cmdsn, exp_statsn=exp_statsn)
    assert stamped == encode_bhs(copy) == reference_encode(copy)


@pytest.mark.parametrize(
    ("pdu", "numbers"),
    [
        pytest.param(NopOut(itt=1), {"statsn": 1}, id="field-of-another-pdu"),
        pytest.param(NopOut(itt=1), {"immediate": 0}, id="flag-not-a-number"),
        pytest.param(LoginRequest(isid=bytes(6), itt=1, csg=0, nsg=1), {"isid": 0}, id="bytes"),
        pytest.param(NopOut(itt=1), {"cmdsn": 1 << 32}, id="out-of-range"),
    ],
)
def test_numbers_refused(pdu: Pdu, numbers: dict[str, int]) -> None:
    with pytest.raises(LocalProtocolError):
        encode_bhs(pdu, numbers=numbers)
