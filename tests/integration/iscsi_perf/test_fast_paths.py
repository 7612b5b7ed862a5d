"""The fast paths of docs/performance.md against a real tgtd, counted on the wire.

* a login without CHAP opens at CSG=1: one Login Request (reference §4);
* with CHAP it still goes through security: three security PDUs, one operational;
* a target that requires CHAP still reads as "give the CHAP user and secret";
* ``validate_many`` with a LUN number sends TEST UNIT READY and READ CAPACITY(16) only
  (no INQUIRY), while ``probe`` keeps INQUIRY and the VPD pages, and both agree on
  the size.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eqliscsi.iscsi_discovery import (
    Auth,
    AuthenticationFailed,
    AuthMethodRejected,
    ChapCredentials,
    IscsiConnectionError,
    Portal,
    TargetNotFound,
    ValidationRequest,
    discover,
    login,
    probe,
    validate_many,
)
from eqliscsi.iscsi_discovery._pdu import LoginRequest, LogoutRequest, ScsiCommand, TextRequest
from eqliscsi.secret import Secret
from rig.targets.base import ChapAccount
from rig.targets.tgt import TgtBackend

from .conftest import Relay, sparse_file

pytestmark = pytest.mark.tgt

IQN = "iqn.2026-01.test.eqliscsi.perf:vol"
USER, SECRET = "perf-user", "perf-secret-00001"


def _auth() -> Auth:
    return Auth(chap=ChapCredentials(USER, Secret(SECRET.encode())))


def _logins(relay: Relay, connection: int) -> list[tuple[int, int, bool]]:
    return [
        (p.csg, p.nsg, p.transit) for p in relay.pdus(connection) if isinstance(p, LoginRequest)
    ]


async def test_open_discovery_is_one_login_round_trip(
    tgt: TgtBackend, disk: Path, relay: Relay
) -> None:
    tgt.create_target(IQN, disk)
    found = await discover(relay.portal)
    assert [t.name for t in found] == [IQN]
    assert _logins(relay, 0) == [(1, 3, True)]
    kinds = [type(p) for p in relay.pdus(0)]
    assert kinds == [LoginRequest, TextRequest, LogoutRequest]


async def test_chap_login_keeps_the_security_stage(
    tgt: TgtBackend, disk: Path, relay: Relay
) -> None:
    tgt.create_target(IQN, disk)
    tgt.set_chap(IQN, ChapAccount(USER, Secret(SECRET.encode())), None)
    async with login(relay.portal, IQN, auth=_auth()) as session:
        assert session.tsih != 0
    # AuthMethod, CHAP_A, CHAP_N/CHAP_R in security, then the operational keys.
    assert _logins(relay, 0) == [(0, 0, False), (0, 0, False), (0, 1, True), (1, 3, True)]


async def test_chap_required_without_credentials(tgt: TgtBackend, disk: Path) -> None:
    tgt.create_target(IQN, disk)
    tgt.set_chap(IQN, ChapAccount(USER, Secret(SECRET.encode())), None)
    with pytest.raises(AuthMethodRejected, match="requires authentication") as info:
        async with login(tgt.portal.host + ":" + str(tgt.portal.port), IQN):
            pass
    assert info.value.status == 0x0201


async def test_validate_many_is_lean_and_probe_is_full(
    tgt: TgtBackend, tmp_path: Path, relay: Relay
) -> None:
    sizes = {f"{IQN}{n}": (n + 4) << 20 for n in range(3)}
    for name, size in sizes.items():
        tgt.create_target(name, sparse_file(tmp_path / f"{name.rsplit(':', 1)[-1]}.img", size))
    lun = tgt.lun_of(f"{IQN}0")
    requests = [ValidationRequest(relay.portal, name, lun=lun) for name in sizes]
    results = await validate_many(requests, concurrency=1)
    for req, res in zip(requests, results, strict=True):
        assert res.ok and res.result is not None, res.error
        (info,) = res.result.luns
        assert info.size_bytes == sizes[req.target]
        # No INQUIRY: what it would have told stays empty; READ CAPACITY(16) answering
        # GOOD is what makes the LUN a block device (type 0).
        assert (info.vendor, info.product, info.serial, info.identifiers) == ("", "", "", ())
        assert info.device_type == 0
    for connection in range(3):
        cdbs = [p.cdb[0] for p in relay.pdus(connection) if isinstance(p, ScsiCommand)]
        assert cdbs == [0x00, 0x9E]  # TEST UNIT READY, READ CAPACITY(16)
    full = await probe(relay.portal, f"{IQN}0", lun=lun)
    (info,) = full.luns
    assert info.size_bytes == sizes[f"{IQN}0"]
    assert info.serial and info.identifiers  # tgt answers VPD 0x80 and 0x83
    cdbs = [p.cdb[0] for p in relay.pdus(3) if isinstance(p, ScsiCommand)]
    assert cdbs == [0x00, 0x12, 0x9E, 0x12, 0x12]


async def test_validate_many_over_two_processes_matches_one(
    tgt: TgtBackend, disk: Path, unused_port: int
) -> None:
    names = [f"{IQN}{n}" for n in range(12)]
    for name in names:
        tgt.create_target(name, disk)
    tgt.set_chap(names[0], ChapAccount(USER, Secret(SECRET.encode())), None)
    portal = Portal(tgt.portal.host, tgt.portal.port)
    lun = tgt.lun_of(names[1])
    wrong = Auth(chap=ChapCredentials(USER, Secret(b"wrong-secret-00001")))
    requests = [ValidationRequest(portal, name, lun=lun) for name in names[1:]]
    requests += [
        ValidationRequest(portal, names[0], _auth(), lun=lun),
        ValidationRequest(portal, names[0], wrong, lun=lun),
        ValidationRequest(portal, IQN + "-missing", lun=lun),
        ValidationRequest(Portal("127.0.0.1", unused_port), names[1], lun=lun),
    ]
    one = await validate_many(requests, concurrency=4, processes=1)
    two = await validate_many(requests, concurrency=4, processes=2)
    assert [r.request for r in two] == requests
    assert [(r.ok, type(r.error), str(r.error)) for r in two] == [
        (r.ok, type(r.error), str(r.error)) for r in one
    ]
    assert [r.result.luns if r.result else None for r in two] == [
        r.result.luns if r.result else None for r in one
    ]
    assert [r.ok for r in two] == [True] * 12 + [False] * 3
    assert isinstance(two[12].error, AuthenticationFailed)
    assert isinstance(two[13].error, TargetNotFound)
    assert isinstance(two[14].error, IscsiConnectionError)
