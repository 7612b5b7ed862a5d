"""``validate_many``'s one-exchange capacity probe against ``login()`` + ``lun_capacity``.

:class:`CapacityProbe` (``_probe.py``) runs a whole validation (login, TEST UNIT
READY + READ CAPACITY(16), Logout) as one exchange.  It must be the same client as
the general path, only cheaper: for every case in the table, both paths give the
same result or the same error (type *and* sentence), and the target sees the same
SCSI commands.  The cases are the fake target's switches (CHAP, mutual CHAP, the
CHAP_A quirks behind the MD5 retry, redirects, LIO's operational stage, unit
attentions, closed windows, unsolicited PDUs) and hostile peers (closing, stalling,
rejecting, short data).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import pytest

from eqliscsi.errors import IscsiError
from eqliscsi.iscsi_discovery import (
    Auth,
    ChapAlgorithm,
    ChapCredentials,
    LunInfo,
    Portal,
    ProbeResult,
    login,
)
from eqliscsi.iscsi_discovery._asyncio import _probe_capacity
from eqliscsi.iscsi_discovery._pdu import (
    LoginRequest,
    LogoutRequest,
    LogoutResponse,
    Pdu,
    Reject,
    ScsiCommand,
    encode_bhs,
)
from eqliscsi.secret import Secret
from tests.unit.iscsi.fake_target import TGT_CHAP_A, FakeTarget, Lun, TargetConfig
from tests.unit.iscsi_capacity.serve import Served, TwoAttentions, serve

IQN = "iqn.2026-01.test.eqliscsi.parity:vol"
DISK = Lun(blocks=4096, block_size=512)
USER, SECRET = "parity-user", b"parity-secret-01"
TUSER, TSECRET = "parity-target", b"parity-target-02"
TIMEOUT = 0.5


def _chap(*algorithms: ChapAlgorithm, mutual: bool = False) -> Auth:
    return Auth(
        chap=ChapCredentials(USER, Secret(SECRET)),
        mutual=ChapCredentials(TUSER, Secret(TSECRET)) if mutual else None,
        algorithms=algorithms or (ChapAlgorithm.MD5,),
    )


# -- peers that misbehave once the login is done -------------------------------------


class _Closes(FakeTarget):
    """Closes the connection on the first SCSI command."""

    def _scsi(self, cmd: ScsiCommand) -> None:
        self.commands.append(cmd)
        self.closed = True


class _Silent(FakeTarget):
    """Never answers a SCSI command."""

    def _scsi(self, cmd: ScsiCommand) -> None:
        self.commands.append(cmd)


class _SilentLogin(FakeTarget):
    """Never answers a Login Request."""

    def _login(self, req: LoginRequest) -> None:
        pass


class _Rejects(FakeTarget):
    """Rejects every SCSI command (reason 0x04, protocol error), with its header."""

    def _scsi(self, cmd: ScsiCommand) -> None:
        self.commands.append(cmd)
        exp, mx = self._window()
        self._send(Reject(reason=0x04, statsn=self.statsn, exp_cmdsn=exp, max_cmdsn=mx,
                          data=encode_bhs(cmd)))  # fmt: skip


class _ShortCapacity(FakeTarget):
    """Answers READ CAPACITY(16) with 8 bytes where 32 were asked for."""

    def _good(self, cmd: ScsiCommand, data: bytes) -> None:
        super()._good(cmd, data[:8] if cmd.cdb[0] == 0x9E else data)


class _Stuck(FakeTarget):
    """A unit attention that never clears: READ CAPACITY(16) fails every time."""

    def _scsi(self, cmd: ScsiCommand) -> None:
        self.ua_pending = {1}
        super()._scsi(cmd)


class _LogoutIgnored(FakeTarget):
    """Answers everything but Logout."""

    def _dispatch(self, pdu: Pdu) -> None:
        if not isinstance(pdu, LogoutRequest):
            super()._dispatch(pdu)


class _LogoutRefused(FakeTarget):
    """Answers Logout with response 1 ("CID not found"), then closes."""

    def _dispatch(self, pdu: Pdu) -> None:
        if not isinstance(pdu, LogoutRequest):
            return super()._dispatch(pdu)
        exp, mx = self._window()
        self._send(LogoutResponse(itt=pdu.itt, response=1, statsn=self._next_statsn(),
                                  exp_cmdsn=exp, max_cmdsn=mx))  # fmt: skip
        self.closed = True
        return None


class _LogoutCloses(FakeTarget):
    """Closes the connection instead of answering Logout."""

    def _dispatch(self, pdu: Pdu) -> None:
        if isinstance(pdu, LogoutRequest):
            self.closed = True
        else:
            super()._dispatch(pdu)


@dataclass(frozen=True)
class Case:
    cfg: TargetConfig
    kind: type[FakeTarget] = FakeTarget
    auth: Auth = field(default_factory=Auth)
    lun: int = 1
    redirect: bool = False  # serve a second target and redirect every login to it


def _cfg(**kw: object) -> TargetConfig:
    base = TargetConfig(targets={IQN: {1: DISK}}, window=2)
    return replace(base, **kw)  # type: ignore[arg-type]


_chap_cfg = {"chap": (USER, SECRET)}
_mutual_cfg = {"chap": (USER, SECRET), "mutual": (TUSER, TSECRET)}

CASES = [
    pytest.param(Case(_cfg()), id="disk"),
    pytest.param(Case(_cfg(unit_attention=True)), id="unit-attention-after-login"),
    pytest.param(Case(_cfg(unit_attention=True), TwoAttentions), id="unit-attention-twice"),
    pytest.param(Case(_cfg(), _Stuck), id="unit-attention-never-clears"),
    pytest.param(Case(_cfg(), lun=5), id="absent-lun"),
    pytest.param(Case(_cfg(unit_attention=True), lun=5), id="absent-lun-unit-attention"),
    pytest.param(Case(_cfg(window=1)), id="window-of-one"),
    pytest.param(Case(_cfg(hold_window_once=True)), id="window-held-once"),
    pytest.param(Case(_cfg(nop_in_before_scsi=True)), id="nop-in-asks-for-an-answer"),
    pytest.param(Case(_cfg(async_logout_after_login=True)), id="async-logout-request"),
    pytest.param(Case(_cfg(nsg_downgrade=True, propose_keys=True)), id="lio-operational-stage"),
    pytest.param(Case(_cfg(**_chap_cfg), auth=_chap()), id="chap"),
    pytest.param(
        Case(_cfg(chap=(USER, b"another-secret-1")), auth=_chap()), id="chap-wrong-secret"
    ),
    pytest.param(Case(_cfg(**_chap_cfg)), id="chap-required-none-given"),
    pytest.param(Case(_cfg(**_mutual_cfg), auth=_chap(mutual=True)), id="mutual-chap"),
    pytest.param(
        Case(
            _cfg(**_chap_cfg, reflect_mutual=True, mutual=(TUSER, TSECRET)), auth=_chap(mutual=True)
        ),
        id="mutual-chap-reflected",
    ),
    pytest.param(
        Case(
            _cfg(**_chap_cfg, chap_a=dict(TGT_CHAP_A)),
            auth=_chap(ChapAlgorithm.SHA256, ChapAlgorithm.MD5),
        ),
        id="tgt-chap-a-off-by-one-md5-retry",
    ),
    pytest.param(
        Case(
            _cfg(**_chap_cfg, reject_chap_a_lists=True),
            auth=_chap(ChapAlgorithm.SHA256, ChapAlgorithm.MD5),
        ),
        id="chap-a-list-refused-md5-retry",
    ),
    pytest.param(Case(_cfg(targets={}), lun=1), id="target-not-found"),
    pytest.param(Case(_cfg(), redirect=True), id="redirect"),
    pytest.param(Case(_cfg(**_chap_cfg), auth=_chap(), redirect=True), id="redirect-chap"),
    pytest.param(Case(_cfg(), _Closes), id="closes-on-scsi"),
    pytest.param(Case(_cfg(), _Silent), id="silent-on-scsi"),
    pytest.param(Case(_cfg(), _SilentLogin), id="silent-on-login"),
    pytest.param(Case(_cfg(), _Rejects), id="rejects-scsi"),
    pytest.param(Case(_cfg(), _ShortCapacity), id="short-read-capacity"),
    pytest.param(Case(_cfg(), _LogoutIgnored), id="logout-unanswered"),
    pytest.param(Case(_cfg(), _LogoutRefused), id="logout-refused"),
    pytest.param(Case(_cfg(), _LogoutCloses), id="logout-closes"),
]

Outcome = tuple[str, object, object]


def _outcome(result: ProbeResult | None, info: LunInfo | None, error: IscsiError | None) -> Outcome:
    if error is not None:
        return ("error", type(error).__name__, str(error))
    assert result is not None and info is not None
    return ("ok", info, result.redirected_to is not None)


async def _general(portal: Portal, case: Case) -> Outcome:
    info: LunInfo | None = None
    try:
        async with login(portal, IQN, auth=case.auth, timeout=TIMEOUT) as session:
            info = await session.lun_capacity(case.lun)
        result = ProbeResult(IQN, portal, (info,), session.redirected_to)
    except IscsiError as exc:
        return _outcome(None, None, exc)
    return _outcome(result, info, None)


async def _lean(portal: Portal, case: Case) -> Outcome:
    try:
        result = await _probe_capacity(
            portal, IQN, case.lun, auth=case.auth, initiator_name=None, timeout=TIMEOUT,
            max_redirects=3,
        )  # fmt: skip
    except IscsiError as exc:
        return _outcome(None, None, exc)
    return _outcome(result, result.luns[0], None)


@contextlib.asynccontextmanager
async def _target(case: Case) -> AsyncIterator[tuple[Served, Served | None]]:
    if not case.redirect:
        async with serve(case.cfg, case.kind) as served:
            yield served, None
        return
    async with serve(case.cfg, case.kind) as member:
        front = replace(case.cfg, redirect_to=f"{member.address.address}:{member.address.port},1")
        async with serve(front, case.kind) as served:
            yield served, member


@pytest.mark.parametrize("case", CASES)
async def test_one_exchange_probe_matches_the_general_path(
    case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    outcomes: list[Outcome] = []
    seen: list[list[int]] = []
    for run in (_general, _lean):
        async with _target(case) as (served, member):
            outcomes.append(await run(served.address, case))
            seen.append(served.commands() + (member.commands() if member else []))
            targets = served.targets + (member.targets if member else [])
            assert not [v for t in targets for v in t.violations]
    general, lean = outcomes
    if general[0] == "error":
        # A redirect's member portal differs per run; compare the sentences without it.
        assert lean[:2] == general[:2]
        assert _no_ports(str(lean[2])) == _no_ports(str(general[2]))
    else:
        assert lean == general
    assert seen[1] == seen[0]
    # Secrets never reach a log line, on either path.
    assert not [r for r in caplog.records if SECRET.decode() in r.getMessage()]


def _no_ports(text: str) -> str:
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)


async def test_the_whole_probe_is_bounded_by_its_timeout() -> None:
    # One clock for login, commands and Logout: a target that answers the login and
    # then says nothing costs at most ``timeout``, never one timeout per phase.
    async with serve(_cfg(), _Silent) as served:
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcome = await _lean(served.address, Case(_cfg(), _Silent))
        assert outcome[:2] == ("error", "IscsiTimeout")
        assert loop.time() - started < TIMEOUT + 0.3


async def test_a_host_name_portal_takes_the_waiting_connect() -> None:
    # A host name is resolved and its connect awaited under the probe's clock (the
    # IPv4 fast path does not wait); the answers are the same.
    async with serve(_cfg()) as served:
        by_name = Portal("localhost", served.address.port)
        assert await _lean(by_name, Case(_cfg())) == await _lean(served.address, Case(_cfg()))
        assert served.commands() == [0x00, 0x9E, 0x00, 0x9E]
