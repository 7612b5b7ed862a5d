"""LIO requires SessionType on a leading connection (reference §4, §10).

RFC 7143 §13.21 makes Normal the default, and tgt applies it; LIO answers a first
Login Request without SessionType with 0x0207 (missing parameter).  The native
client always sends the key; this test shows why, with hand-built PDUs from the
client's own sans-IO codec, over a plain socket to the forwarded portal.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from eqliscsi.iscsi_discovery._framing import encode_pdu, pad_length
from eqliscsi.iscsi_discovery._pdu import LoginRequest, LoginResponse, Stage, decode_bhs
from eqliscsi.iscsi_discovery._text import encode_text
from rig.targets.lio import LioBackend
from tests.integration.guest.conftest import HOST_INITIATOR, new_iqn

pytestmark = [pytest.mark.guest, pytest.mark.lio, pytest.mark.timeout(900)]


def first_login(lio: LioBackend, pairs: list[tuple[str, str]]) -> LoginResponse:
    # Straight to operational negotiation with T=1 NSG=3: the target has no CHAP, so
    # the security stage may be skipped (RFC 7143 §6.2).
    req = LoginRequest(
        isid=bytes.fromhex("800011000001"),
        itt=1,
        csg=Stage.OPERATIONAL,
        nsg=Stage.FULL_FEATURE,
        transit=True,
        data=encode_text(pairs),
    )
    with socket.create_connection((lio.portal.host, lio.portal.port), timeout=30) as s:
        s.sendall(encode_pdu(req))
        f = s.makefile("rb")
        bhs = f.read(48)
        assert len(bhs) == 48, "LIO closed the connection without a Login Response"
        dsl = int.from_bytes(bhs[5:8], "big")
        data = f.read(dsl + pad_length(dsl))[:dsl]
    pdu = decode_bhs(bhs, data)
    assert isinstance(pdu, LoginResponse)
    return pdu


@pytest.mark.parametrize(
    ("session_type", "status"),
    [
        pytest.param("Normal", 0x0000, id="with-SessionType"),
        pytest.param(None, 0x0207, id="without-SessionType"),
    ],
)
def test_lio_requires_session_type(
    lio: LioBackend, new_volume: Path, session_type: str | None, status: int
) -> None:
    iqn = new_iqn()
    lio.create_target(iqn, new_volume)
    pairs = [("InitiatorName", HOST_INITIATOR), ("TargetName", iqn)]
    if session_type is not None:
        pairs.append(("SessionType", session_type))
    resp = first_login(lio, pairs)
    assert (resp.status_class << 8 | resp.status_detail) == status
