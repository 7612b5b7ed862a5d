"""The native client (eqliscsi.iscsi_discovery) against the kernel's LIO target.

The reference's interop table (§14) for LIO: open and CHAP discovery, one-way and
mutual CHAP, the CHAP_A matrix including SHA-256 (7) and SHA3-256 (8), which LIO
implements and tgt does not, ACL denial 0x0202, an unknown TargetName answered
with 0x0301, and the size ``probe`` reports.  The client connects to the forwarded
portal only: the 10.0.2.15 addresses in SendTargets answers are never dialled.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eqliscsi.iscsi_discovery import (
    Auth,
    AuthenticationFailed,
    AuthMethodRejected,
    AuthorizationFailed,
    ChapAlgorithm,
    ChapCredentials,
    MutualAuthFailed,
    Portal,
    TargetNotFound,
    discover,
    probe,
)
from eqliscsi.secret import Secret
from rig.targets.base import ChapAccount
from rig.targets.lio import LioBackend
from tests.integration.guest.conftest import (
    HOST_INITIATOR,
    OTHER_INITIATOR,
    VOLUME_BYTES,
    chap,
    new_iqn,
)

pytestmark = [pytest.mark.guest, pytest.mark.lio, pytest.mark.timeout(900)]

A = ChapAlgorithm
WRONG = ChapCredentials("wrong", Secret(b"wrong-secret-000", origin="test"))


def creds(acct: ChapAccount) -> ChapCredentials:
    return ChapCredentials(acct.user, acct.secret)


def portal(lio: LioBackend) -> Portal:
    return Portal(lio.portal.host, lio.portal.port)


async def test_open_discovery_lists_guest_address(lio: LioBackend, new_volume: Path) -> None:
    iqn = new_iqn()
    lio.create_target(iqn, new_volume)
    found = await discover(portal(lio), initiator_name=HOST_INITIATOR)
    mine = [t for t in found if t.name == iqn]
    assert len(mine) == 1
    # LIO puts the address the connection arrived on (the guest's own) for its
    # wildcard portal, with TPGT 1.
    assert [(p.address, p.port, p.tpgt) for p in mine[0].portals] == [("10.0.2.15", 3260, 1)]


@pytest.mark.parametrize("offer", ["right", "wrong", "none"])
async def test_discovery_chap(lio: LioBackend, new_volume: Path, offer: str) -> None:
    iqn = new_iqn()
    acct = chap("disc-user")
    lio.create_target(iqn, new_volume)
    lio.set_discovery_chap(acct, None)
    auth = {"right": Auth(chap=creds(acct)), "wrong": Auth(chap=WRONG), "none": Auth()}[offer]
    if offer == "right":
        found = await discover(portal(lio), auth=auth, initiator_name=HOST_INITIATOR)
        assert iqn in {t.name for t in found}
        return
    if offer == "none":
        # Without CHAP the client opens at CSG=1 (as libiscsi does), which LIO answers
        # with 0x0201.  (To AuthMethod=None in security negotiation LIO would answer
        # nothing and close the connection: 'Proposer's value list "None" contains no
        # valid values from Acceptor's value list "CHAP"'.)
        with pytest.raises(AuthMethodRejected, match="requires authentication") as rejected:
            await discover(portal(lio), auth=auth, initiator_name=HOST_INITIATOR)
        assert rejected.value.status == 0x0201
        return
    with pytest.raises(AuthenticationFailed) as info:
        await discover(portal(lio), auth=auth, initiator_name=HOST_INITIATOR)
    assert info.value.status == 0x0201
    assert acct.secret.reveal_str() not in str(info.value)


@pytest.mark.parametrize("target_secret_right", [True, False], ids=["right", "wrong"])
async def test_discovery_mutual_chap(
    lio: LioBackend, new_volume: Path, target_secret_right: bool
) -> None:
    iqn = new_iqn()
    inc, out = chap("disc-user"), chap("disc-target")
    lio.create_target(iqn, new_volume)
    lio.set_discovery_chap(inc, out)
    mutual = creds(out) if target_secret_right else ChapCredentials(out.user, WRONG.secret)
    auth = Auth(chap=creds(inc), mutual=mutual)
    if target_secret_right:
        found = await discover(portal(lio), auth=auth, initiator_name=HOST_INITIATOR)
        assert iqn in {t.name for t in found}
    else:
        with pytest.raises(MutualAuthFailed):
            await discover(portal(lio), auth=auth, initiator_name=HOST_INITIATOR)


CHAP_A_CASES = [
    pytest.param((A.MD5,), id="5"),
    pytest.param((A.SHA1,), id="6"),
    pytest.param((A.SHA256,), id="7"),
    pytest.param((A.SHA3_256,), id="8"),
    pytest.param((A.SHA3_256, A.SHA256, A.SHA1, A.MD5), id="8,7,6,5"),
]


@pytest.mark.parametrize("algorithms", CHAP_A_CASES)
@pytest.mark.parametrize("mutual", [False, True], ids=["one-way", "mutual"])
async def test_chap_algorithm_matrix(
    lio: LioBackend, new_volume: Path, algorithms: tuple[ChapAlgorithm, ...], mutual: bool
) -> None:
    # A one-element offer can only succeed if LIO computed that very algorithm.
    iqn = new_iqn()
    inc, out = chap("init-user"), chap("lio-user")
    lio.create_target(iqn, new_volume)
    lio.set_chap(iqn, inc, out if mutual else None)
    auth = Auth(chap=creds(inc), mutual=creds(out) if mutual else None, algorithms=algorithms)
    result = await probe(portal(lio), iqn, auth=auth, initiator_name=HOST_INITIATOR)
    assert [lun.lun for lun in result.luns] == [lio.lun_of(iqn)]


async def test_mutual_wrong_target_secret_is_caught(lio: LioBackend, new_volume: Path) -> None:
    iqn = new_iqn()
    inc, out = chap("init-user"), chap("lio-user")
    lio.create_target(iqn, new_volume)
    lio.set_chap(iqn, inc, out)
    auth = Auth(chap=creds(inc), mutual=ChapCredentials(out.user, WRONG.secret),
                algorithms=(A.SHA3_256,))  # fmt: skip
    with pytest.raises(MutualAuthFailed) as info:
        await probe(portal(lio), iqn, auth=auth, initiator_name=HOST_INITIATOR)
    for s in (inc.secret, out.secret, WRONG.secret):
        assert s.reveal_str() not in str(info.value)


async def test_wrong_secret_is_0x0201(lio: LioBackend, new_volume: Path) -> None:
    iqn = new_iqn()
    lio.create_target(iqn, new_volume)
    lio.set_chap(iqn, chap("init-user"), None)
    with pytest.raises(AuthenticationFailed) as info:
        await probe(portal(lio), iqn, auth=Auth(chap=WRONG), initiator_name=HOST_INITIATOR)
    assert info.value.status == 0x0201


async def test_no_chap_offered_to_chap_target(lio: LioBackend, new_volume: Path) -> None:
    # As for discovery: the CSG=1 opening gets 0x0201 from LIO, reported as "give the
    # CHAP user and secret" (AuthMethod=None in security would get a closed connection).
    iqn = new_iqn()
    lio.create_target(iqn, new_volume)
    lio.set_chap(iqn, chap("init-user"), None)
    with pytest.raises(AuthMethodRejected, match="requires authentication") as rejected:
        await probe(portal(lio), iqn, initiator_name=HOST_INITIATOR)
    assert rejected.value.status == 0x0201


async def test_initiator_not_in_acl_is_0x0202(lio: LioBackend, new_volume: Path) -> None:
    iqn = new_iqn()
    lio.create_target(iqn, new_volume)
    lio.set_initiators(iqn, [OTHER_INITIATOR])
    with pytest.raises(AuthorizationFailed) as info:
        await probe(portal(lio), iqn, initiator_name=HOST_INITIATOR)
    assert info.value.status == 0x0202
    # The listed initiator is let in: the ACL, not the target, refused.
    ok = await probe(portal(lio), iqn, initiator_name=OTHER_INITIATOR)
    assert ok.luns


async def test_unknown_target_is_0x0301(lio: LioBackend, new_volume: Path) -> None:
    iqn = new_iqn()
    lio.create_target(iqn, new_volume)
    with pytest.raises(TargetNotFound) as info:
        await probe(portal(lio), iqn + ".missing", initiator_name=HOST_INITIATOR)
    assert info.value.status == 0x0301


async def test_probe_reports_lio_disk_size(lio: LioBackend, new_volume: Path) -> None:
    iqn = new_iqn()
    lio.create_target(iqn, new_volume)
    result = await probe(portal(lio), iqn, initiator_name=HOST_INITIATOR)
    assert len(result.luns) == 1
    lun = result.luns[0]
    assert (lun.lun, lun.size_bytes, lun.block_size) == (lio.lun_of(iqn), VOLUME_BYTES, 512)
    assert lun.vendor.strip() == "LIO-ORG"
    assert result.redirected_to is None
