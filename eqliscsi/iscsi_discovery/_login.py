"""Sans-IO login state machine (RFC 7143 §6.3, §11.12-§11.13, §12.1.3).

Rules of this file (h11 ``_state.py`` style):

1. Every state change happens through ``_TRANSITIONS``, the table just below: a
   Login Response is first *classified* into a :class:`LoginInput`, then the pair
   ``(state, input)`` must be in the table, whose value is the set of states the
   handler may move to.  A pair missing from the table is the target breaking the
   protocol and raises :class:`RemoteProtocolError`.
2. The next stage always comes from the target's T/NSG, never from what we asked:
   LIO answers a CSG=0 -> NSG=3 request with NSG=1 (reference §4).
3. One login uses one ITT, one ISID, CmdSN does not advance (login PDUs are
   immediate), ExpStatSN = last StatSN + 1.
4. We offer ``AuthMethod=CHAP`` *or* ``None``, never ``CHAP,None`` (LIO with
   ``authentication=0`` picks the first entry and then fails, ceph-iscsi#68).
5. Nothing here does I/O: :meth:`LoginMachine.start` and :meth:`receive_data` return
   events; bytes to write are collected by :meth:`data_to_send`.

The adapter reacts to three terminal events: :class:`LoginSucceeded` (hand the
connection to :class:`._session.Session`), :class:`LoginRedirected` (reconnect to
the portal given, with :meth:`LoginConfig.redirected`), and :class:`RetryWithMd5`
(reconnect, with :meth:`LoginConfig.md5_only`).  Failures are exceptions.
"""

from __future__ import annotations

import dataclasses
import enum
import os
from dataclasses import dataclass, field

from eqliscsi.errors import IscsiError
from eqliscsi.iscsi_discovery._chap import (
    chap_response,
    decode_binary,
    encode_binary,
    new_challenge,
    parse_algorithm,
    parse_identifier,
    responses_equal,
    secret_warning,
)
from eqliscsi.iscsi_discovery._framing import ReceiveBuffer, pad_length
from eqliscsi.iscsi_discovery._negotiation import (
    OperationalOffer,
    SessionParams,
    SessionType,
    answer_proposals,
    negotiated_params,
)
from eqliscsi.iscsi_discovery._pdu import LoginResponse, Reject, Stage, login_request_bhs
from eqliscsi.iscsi_discovery._text import decode_text, encode_text, text_dict
from eqliscsi.iscsi_discovery._types import Auth, ChapAlgorithm, Portal, check_iscsi_name
from eqliscsi.iscsi_discovery.errors import (
    AuthMethodRejected,
    ChapAlgorithmRefused,
    InvalidPortal,
    LocalProtocolError,
    LoginFailed,
    MutualAuthFailed,
    PduRejected,
    RedirectLoop,
    RemoteProtocolError,
    login_error_for,
)

__all__ = [
    "LoginConfig",
    "LoginEvent",
    "LoginInput",
    "LoginMachine",
    "LoginRedirected",
    "LoginState",
    "LoginSucceeded",
    "LoginWarning",
    "RetryWithMd5",
    "new_isid",
]


class LoginState(enum.Enum):
    IDLE = "idle"
    SECURITY_AUTH_METHOD = "security: AuthMethod sent"
    SECURITY_CHAP_A = "security: CHAP_A sent"
    SECURITY_CHAP_RESPONSE = "security: CHAP_N/CHAP_R sent"
    OPERATIONAL = "operational negotiation"
    FULL_FEATURE = "full feature phase"
    REDIRECTED = "redirected"
    RETRY_MD5 = "retry with MD5"
    FAILED = "failed"

    # Members are singletons compared by identity, so the C identity hash is exact;
    # Enum's own __hash__ is a Python call on every table lookup (_TRANSITIONS,
    # _STAGE_OF: several per login PDU; docs/performance.md, 2026-11-24).
    __hash__ = object.__hash__


class LoginInput(enum.Enum):
    CONTINUE = "C=1: more text follows"
    STAY = "T=0: stay in this stage"
    TO_OPERATIONAL = "T=1 NSG=1"
    TO_FULL_FEATURE = "T=1 NSG=3"
    REDIRECT = "Status-Class 1"
    FAILURE = "Status-Class 2 or 3"

    __hash__ = object.__hash__  # as LoginState's


St, In = LoginState, LoginInput
_FAIL = frozenset({St.FAILED})
_FAIL_OR_RETRY = frozenset({St.FAILED, St.RETRY_MD5})

# (state, input) -> states the handler may choose.  Anything else is a target error.
_TRANSITIONS: dict[tuple[LoginState, LoginInput], frozenset[LoginState]] = {
    # RFC 7143 §12.1.3 step 1: the target answers AuthMethod with T=0 (CHAP) or
    # transits at once (None).
    (St.SECURITY_AUTH_METHOD, In.CONTINUE): frozenset({St.SECURITY_AUTH_METHOD}),
    (St.SECURITY_AUTH_METHOD, In.STAY): frozenset({St.SECURITY_CHAP_A, St.SECURITY_AUTH_METHOD}),
    (St.SECURITY_AUTH_METHOD, In.TO_OPERATIONAL): frozenset({St.OPERATIONAL}),
    (St.SECURITY_AUTH_METHOD, In.TO_FULL_FEATURE): frozenset({St.FULL_FEATURE}),
    (St.SECURITY_AUTH_METHOD, In.REDIRECT): frozenset({St.REDIRECTED}),
    (St.SECURITY_AUTH_METHOD, In.FAILURE): _FAIL,
    # Step 2: CHAP_A list -> the target's CHAP_A, CHAP_I, CHAP_C.  Old LIO/Synology
    # fail any list with more than MD5 here (open-iscsi#180): retry with MD5.
    (St.SECURITY_CHAP_A, In.CONTINUE): frozenset({St.SECURITY_CHAP_A}),
    (St.SECURITY_CHAP_A, In.STAY): frozenset({St.SECURITY_CHAP_RESPONSE}),
    (St.SECURITY_CHAP_A, In.REDIRECT): frozenset({St.REDIRECTED}),
    (St.SECURITY_CHAP_A, In.FAILURE): _FAIL_OR_RETRY,
    # Step 3: CHAP_N/CHAP_R (+ our CHAP_I/CHAP_C for mutual) -> transit with the
    # target's CHAP_N/CHAP_R.  tgt picks "7" (its SHA-1), then fails 0x0200 on our
    # SHA-256 answer (open-iscsi#192): retry with MD5.
    (St.SECURITY_CHAP_RESPONSE, In.CONTINUE): frozenset({St.SECURITY_CHAP_RESPONSE}),
    (St.SECURITY_CHAP_RESPONSE, In.STAY): frozenset({St.SECURITY_CHAP_RESPONSE}),
    (St.SECURITY_CHAP_RESPONSE, In.TO_OPERATIONAL): frozenset({St.OPERATIONAL}),
    (St.SECURITY_CHAP_RESPONSE, In.TO_FULL_FEATURE): frozenset({St.FULL_FEATURE}),
    (St.SECURITY_CHAP_RESPONSE, In.REDIRECT): frozenset({St.REDIRECTED}),
    (St.SECURITY_CHAP_RESPONSE, In.FAILURE): _FAIL_OR_RETRY,
    # Operational stage (§6.3.2): T=0 means the target wants answers to its keys.
    (St.OPERATIONAL, In.CONTINUE): frozenset({St.OPERATIONAL}),
    (St.OPERATIONAL, In.STAY): frozenset({St.OPERATIONAL}),
    (St.OPERATIONAL, In.TO_FULL_FEATURE): frozenset({St.FULL_FEATURE}),
    (St.OPERATIONAL, In.REDIRECT): frozenset({St.REDIRECTED}),
    (St.OPERATIONAL, In.FAILURE): _FAIL,
}
del St, In

_STAGE_OF = {
    LoginState.SECURITY_AUTH_METHOD: Stage.SECURITY,
    LoginState.SECURITY_CHAP_A: Stage.SECURITY,
    LoginState.SECURITY_CHAP_RESPONSE: Stage.SECURITY,
    LoginState.OPERATIONAL: Stage.OPERATIONAL,
}
_TERMINAL = frozenset(
    {LoginState.FULL_FEATURE, LoginState.REDIRECTED, LoginState.RETRY_MD5, LoginState.FAILED}
)
MAX_LOGIN_EXCHANGES = 16  # a target that keeps answering T=0 is looping, not negotiating
LOGIN_TEXT_LIMIT = 8192  # LIO silently drops larger login payloads (reference §4)


DEFAULT_OFFER = OperationalOffer()


def new_isid(qualifier: int | None = None) -> bytes:
    """A "Random" type ISID: T=10b, 24 random bits, 16-bit qualifier (RFC 7143 §11.12.5).

    One ``os.urandom`` call (the source :mod:`secrets` reads) for all random bytes:
    a batch of validations opens a login per target.
    """
    if qualifier is None:
        return b"\x80" + os.urandom(5)
    return b"\x80" + os.urandom(3) + qualifier.to_bytes(2, "big")


def _new_itt() -> int:
    # Any 32-bit value but 0xFFFFFFFF, the reserved tag (RFC 7143 §11.2.1.8).
    return int.from_bytes(os.urandom(4), "big") % 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class LoginConfig:
    """Everything one login attempt needs.  Keep ``isid`` across redirects and retries."""

    portal: Portal
    initiator_name: str
    target_name: str | None = None  # None: a Discovery session
    auth: Auth = field(default_factory=Auth)
    session_type: SessionType | None = None  # default: Discovery iff no target name
    isid: bytes = field(default_factory=new_isid)
    itt: int = field(default_factory=_new_itt)
    cmdsn: int = 1
    offer: OperationalOffer = DEFAULT_OFFER  # frozen, so one instance serves every login
    initiator_alias: str | None = None
    skip_operational: bool = False  # ask for NSG=3 right after security
    # Without CHAP, open at CSG=1 with every operational key, T=1 NSG=3: one round trip
    # instead of two, as libiscsi and open-iscsi do (reference §4).  A target that
    # requires authentication answers 0x0201 (LIO and tgt), reported as
    # AuthMethodRejected.  Ignored when CHAP is configured.
    start_operational: bool = False
    redirects: int = 0
    max_redirects: int = 3

    def __post_init__(self) -> None:
        check_iscsi_name(self.initiator_name, "initiator name")
        if self.target_name is not None:
            check_iscsi_name(self.target_name, "target name")
        if self.session_type is None:
            kind = SessionType.DISCOVERY if self.target_name is None else SessionType.NORMAL
            object.__setattr__(self, "session_type", kind)
        if self.session_type is SessionType.NORMAL and not self.target_name:
            raise LocalProtocolError("A Normal session needs a target name; give the target IQN.")
        if len(self.isid) != 6 or not any(self.isid):
            # tgt refuses an all-zero ISID with 0x0207 (reference §3).
            raise LocalProtocolError("The ISID must be 6 bytes and not all zero; use new_isid().")
        if self.itt == 0xFFFFFFFF:
            raise LocalProtocolError("ITT 0xFFFFFFFF is reserved; pick another task tag.")

    @property
    def kind(self) -> SessionType:
        assert self.session_type is not None
        return self.session_type

    def redirected(self, portal: Portal) -> LoginConfig:
        """The same login (same ISID) restarted at ``portal`` one hop further."""
        return dataclasses.replace(self, portal=portal, redirects=self.redirects + 1)

    def md5_only(self) -> LoginConfig:
        return dataclasses.replace(
            self, auth=dataclasses.replace(self.auth, algorithms=(ChapAlgorithm.MD5,))
        )


@dataclass(frozen=True, slots=True)
class LoginSucceeded:
    """Full feature phase reached."""

    tsih: int
    statsn: int
    exp_cmdsn: int
    max_cmdsn: int
    params: SessionParams
    chap_algorithm: ChapAlgorithm | None


@dataclass(frozen=True, slots=True)
class LoginRedirected:
    """The target sent Status-Class 1: log in again at ``portal``."""

    portal: Portal
    permanent: bool


@dataclass(frozen=True, slots=True)
class RetryWithMd5:
    """The target refused or mis-numbered a stronger CHAP_A; retry offering only MD5."""

    algorithm: ChapAlgorithm | None  # what the target had chosen, if it got that far
    status: int


@dataclass(frozen=True, slots=True)
class LoginWarning:
    """Something the admin should hear about, such as a short CHAP secret."""

    message: str


LoginEvent = LoginSucceeded | LoginRedirected | RetryWithMd5 | LoginWarning


class LoginMachine:
    """One login attempt on one connection, as a sans-IO state machine."""

    def __init__(self, config: LoginConfig) -> None:
        self.config = config
        self.state = LoginState.IDLE
        self._buffer = ReceiveBuffer(LOGIN_TEXT_LIMIT)
        self._out = bytearray()
        self._text = bytearray()  # response text gathered over C=1 PDUs
        self._received: dict[str, str] = {}
        self._operational_sent: dict[str, str] = {}
        self._exp_statsn = 0
        self._exchanges = 0
        self._algorithm: ChapAlgorithm | None = None
        self._target_challenge = b""
        self._mutual: tuple[int, bytes] | None = None  # our CHAP_I, CHAP_C
        self._opened_operational = False  # the first PDU was CSG=1 (no security stage)

    # -- public API --------------------------------------------------------------

    def start(self) -> list[LoginEvent]:
        """Queue the first Login Request; returns warnings (short secrets)."""
        if self.state is not LoginState.IDLE:
            raise LocalProtocolError("This login was already started; create a new machine.")
        events: list[LoginEvent] = []
        auth = self.config.auth
        for creds in (auth.chap, auth.mutual):
            warning = secret_warning(creds) if creds else None
            if warning:
                events.append(LoginWarning(warning))
        pairs = [("InitiatorName", self.config.initiator_name)]
        if self.config.initiator_alias:
            pairs.append(("InitiatorAlias", self.config.initiator_alias))
        # LIO requires SessionType on a leading connection (reference §4).
        pairs.append(("SessionType", self.config.kind.value))
        if self.config.kind is SessionType.NORMAL:
            assert self.config.target_name is not None
            pairs.append(("TargetName", self.config.target_name))
        if self.config.start_operational and not auth.uses_chap:
            offer = self.config.offer.keys(self.config.kind)
            self._operational_sent = dict(offer)
            self._opened_operational = True
            self.state = LoginState.OPERATIONAL
            self._send(pairs + offer, Stage.OPERATIONAL, Stage.FULL_FEATURE)
            return events
        pairs.append(("AuthMethod", "CHAP" if auth.uses_chap else "None"))
        self.state = LoginState.SECURITY_AUTH_METHOD
        if auth.uses_chap:
            self._send(pairs, Stage.SECURITY, None)
        else:
            self._send(pairs, Stage.SECURITY, self._after_security())
        return events

    def receive_data(self, data: bytes) -> list[LoginEvent]:
        """Feed bytes from the target; returns the events they complete.

        Raises:
            LoginFailed: Status-Class 2/3 (typed by status).
            MutualAuthFailed, RedirectLoop, ChapAlgorithmMismatch, RemoteProtocolError.
        """
        if self.state in _TERMINAL or self.state is LoginState.IDLE:
            raise LocalProtocolError(f"The login is {self.state.value}; it takes no more data.")
        self._buffer.feed(data)
        events: list[LoginEvent] = []
        try:
            while self.state not in _TERMINAL:
                pdu = self._buffer.next_pdu()
                if pdu is None:
                    break
                events.extend(self._on_pdu(pdu))
        except IscsiError:
            self.state = LoginState.FAILED
            raise
        return events

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def take_remaining(self) -> bytes:
        """Bytes received after the final Login Response (the session's first PDUs)."""
        return self._buffer.take_remaining()

    # -- internals ---------------------------------------------------------------

    def _after_security(self) -> Stage:
        return Stage.FULL_FEATURE if self.config.skip_operational else Stage.OPERATIONAL

    def _send(self, pairs: list[tuple[str, str]], csg: Stage, nsg: Stage | None) -> None:
        data = encode_text(pairs)
        if len(data) > LOGIN_TEXT_LIMIT:
            raise LocalProtocolError("A login request exceeds 8192 bytes; shorten the names.")
        self._exchanges += 1
        if self._exchanges > MAX_LOGIN_EXCHANGES:
            raise RemoteProtocolError(
                f"The target at portal {self.config.portal} did not finish the login "
                f"in {MAX_LOGIN_EXCHANGES} exchanges; check the target."
            )
        # RFC 7143 §11.12: a Login Request is immediate (I=1), C=0, version 0, TSIH 0
        # for a new session, CID 0; never digests (§13.1).  Only data varies in length.
        self._out += login_request_bhs(
            isid=self.config.isid,
            itt=self.config.itt,
            csg=csg,
            nsg=nsg if nsg is not None else 0,
            transit=nsg is not None,
            cmdsn=self.config.cmdsn,
            exp_statsn=self._exp_statsn,
            data_length=len(data),
        )
        if data:
            self._out += data
            self._out += bytes(pad_length(len(data)))

    def _protocol(self, what: str) -> RemoteProtocolError:
        return RemoteProtocolError(
            f"The target at portal {self.config.portal} {what} during login; "
            "check the target or report it with the target model."
        )

    def _classify(self, pdu: LoginResponse) -> LoginInput:
        if pdu.status_class == 1:
            return LoginInput.REDIRECT
        if pdu.status_class != 0:
            return LoginInput.FAILURE
        stage = _STAGE_OF[self.state]
        if pdu.itt != self.config.itt or pdu.isid != self.config.isid:
            raise self._protocol("answered with another ITT or ISID")
        if pdu.version_active != 0:
            raise self._protocol(f"chose iSCSI version {pdu.version_active}")
        if pdu.csg != stage:
            raise self._protocol(f"answered in stage {pdu.csg} instead of {int(stage)}")
        if pdu.transit and pdu.cont:
            raise self._protocol("set both T and C")
        if pdu.cont:
            return LoginInput.CONTINUE
        if not pdu.transit:
            return LoginInput.STAY
        if pdu.nsg == Stage.OPERATIONAL and stage == Stage.SECURITY:
            return LoginInput.TO_OPERATIONAL
        if pdu.nsg == Stage.FULL_FEATURE:
            return LoginInput.TO_FULL_FEATURE
        raise self._protocol(f"asked to move from stage {pdu.csg} to stage {pdu.nsg}")

    def _on_pdu(self, pdu: object) -> list[LoginEvent]:
        if isinstance(pdu, Reject):
            raise PduRejected(pdu.reason, self.config.portal, "the login request")
        if not isinstance(pdu, LoginResponse):
            raise self._protocol(f"sent a {type(pdu).__name__}")
        kind = self._classify(pdu)
        allowed = _TRANSITIONS.get((self.state, kind))
        if allowed is None:
            raise self._protocol(f"sent '{kind.value}' while we were in '{self.state.value}'")
        if pdu.status_class == 0:
            self._exp_statsn = (pdu.statsn + 1) & 0xFFFFFFFF
        if kind is LoginInput.CONTINUE:
            # RFC 7143 §11.12.2: answer an empty request in the same stage until C=0.
            self._text += pdu.data
            self._send([], _STAGE_OF[self.state], None)
            return []
        if self._text:  # the end of a text sent over several PDUs
            text = bytes(self._text + pdu.data)
            self._text.clear()
        else:
            text = pdu.data
        if kind is LoginInput.FAILURE:
            # The status says what went wrong; a garbled text segment beside it must
            # not hide that behind a decode error.
            try:
                keys = text_dict(decode_text(text))
            except RemoteProtocolError:
                keys = {}
        else:
            keys = text_dict(decode_text(text))
        if kind is LoginInput.REDIRECT:
            events, new_state = self._on_redirect(pdu, kind, keys)
        elif kind is LoginInput.FAILURE:
            events, new_state = self._on_failure(pdu, kind, keys)
        else:
            events, new_state = self._on_progress(pdu, kind, keys)
        if new_state not in allowed:  # pragma: no cover - a bug in this file
            raise LocalProtocolError(f"login handler chose {new_state} outside the table")
        self.state = new_state
        return events

    def _on_redirect(
        self, pdu: LoginResponse, kind: LoginInput, keys: dict[str, str]
    ) -> tuple[list[LoginEvent], LoginState]:
        address = keys.get("TargetAddress")
        if not address:
            raise self._protocol("redirected without a TargetAddress")
        if self.config.redirects >= self.config.max_redirects:
            raise RedirectLoop(self.config.portal, self.config.max_redirects)
        try:
            portal = Portal.parse(address)
        except InvalidPortal:
            raise self._protocol(f"redirected to an unusable address {address[:60]!r}") from None
        # 0x0102 is permanent; 0x0101 temporary, and 0x0100 (detail left out by some
        # targets, noted in libiscsi) is treated as temporary too.
        permanent = pdu.status_detail == 0x02
        return [LoginRedirected(portal, permanent)], LoginState.REDIRECTED

    def _on_failure(
        self, pdu: LoginResponse, kind: LoginInput, keys: dict[str, str]
    ) -> tuple[list[LoginEvent], LoginState]:
        auth = self.config.auth
        offered = auth.algorithms
        status = (pdu.status_class << 8) | pdu.status_detail
        stronger = ChapAlgorithm.MD5 in offered and offered != (ChapAlgorithm.MD5,)
        if (
            stronger
            and pdu.status_class == 2
            and (
                self.state is LoginState.SECURITY_CHAP_A
                or (
                    self.state is LoginState.SECURITY_CHAP_RESPONSE
                    and self._algorithm is not ChapAlgorithm.MD5
                    and status in (0x0200, 0x0201)
                )
            )
        ):
            return [RetryWithMd5(self._algorithm, status)], LoginState.RETRY_MD5
        user = auth.chap.user if auth.chap else None
        if (
            self.state is LoginState.SECURITY_CHAP_RESPONSE
            and self._algorithm not in (None, ChapAlgorithm.MD5)
            and status == 0x0200
        ):
            raise ChapAlgorithmRefused(
                pdu.status_class, pdu.status_detail, self.config.portal, user,
                self.config.target_name,
            )  # fmt: skip
        if status == 0x0201 and (
            self.state is LoginState.SECURITY_AUTH_METHOD or self._opened_operational
        ):
            # Without a security stage, 0x0201 can only mean "authenticate first".
            raise AuthMethodRejected(
                pdu.status_class, pdu.status_detail, self.config.portal, user,
                self.config.target_name,
            )  # fmt: skip
        error: LoginFailed = login_error_for(
            pdu.status_class, pdu.status_detail, self.config.portal, user, self.config.target_name
        )
        raise error

    def _on_progress(
        self, pdu: LoginResponse, kind: LoginInput, keys: dict[str, str]
    ) -> tuple[list[LoginEvent], LoginState]:
        state = self.state
        for key, value in keys.items():
            if not key.startswith("CHAP_") and key != "AuthMethod":
                self._received[key] = value
        if state is LoginState.SECURITY_AUTH_METHOD:
            self._check_auth_method(keys)
            if self.config.auth.uses_chap:
                if kind is not LoginInput.STAY:
                    # Accepting AuthMethod=CHAP and then skipping it would let a
                    # validation pass without checking any credential.
                    raise self._protocol("accepted AuthMethod=CHAP but skipped the CHAP exchange")
                offer = ",".join(str(int(a)) for a in self.config.auth.algorithms)
                self._send([("CHAP_A", offer)], Stage.SECURITY, None)
                return [], LoginState.SECURITY_CHAP_A
            if kind is LoginInput.STAY:
                self._send([], Stage.SECURITY, self._after_security())
                return [], state
        elif state is LoginState.SECURITY_CHAP_A:
            self._answer_challenge(keys)
            return [], LoginState.SECURITY_CHAP_RESPONSE
        elif state is LoginState.SECURITY_CHAP_RESPONSE:
            if kind is LoginInput.STAY:
                if self._mutual is not None and "CHAP_N" in keys:
                    self._verify_target(keys)
                    self._mutual = None
                self._send([], Stage.SECURITY, self._after_security())
                return [], state
            if self._mutual is not None:
                self._verify_target(keys)
        elif state is LoginState.OPERATIONAL and kind is LoginInput.STAY:
            answers = answer_proposals(
                keys, self._operational_sent, self.config.kind, self.config.offer
            )
            self._operational_sent.update(answers)
            self._send(answers, Stage.OPERATIONAL, Stage.FULL_FEATURE)
            return [], state
        # Transit: to the operational stage, or straight into full feature phase.
        if kind is LoginInput.TO_OPERATIONAL:
            pairs = self.config.offer.keys(self.config.kind)
            self._operational_sent = dict(pairs)
            self._send(pairs, Stage.OPERATIONAL, Stage.FULL_FEATURE)
            return [], LoginState.OPERATIONAL
        negotiated = self.config.offer
        if not self._operational_sent:
            # No operational stage: nothing was declared, so RFC 7143 defaults hold on
            # both sides (MaxRecvDataSegmentLength 8192, no digests).
            negotiated = dataclasses.replace(
                negotiated, max_recv_data_segment_length=8192, header_digest=("None",),
                data_digest=("None",),
            )  # fmt: skip
        params = negotiated_params(self._received, negotiated)
        done = LoginSucceeded(
            pdu.tsih, pdu.statsn, pdu.exp_cmdsn, pdu.max_cmdsn, params, self._algorithm
        )
        return [done], LoginState.FULL_FEATURE

    def _check_auth_method(self, keys: dict[str, str]) -> None:
        wanted = "CHAP" if self.config.auth.uses_chap else "None"
        got = keys.get("AuthMethod")
        # tgt omits AuthMethod when it transits at once for None; LIO echoes it.
        if got == wanted or (got is None and wanted == "None"):
            return
        raise self._protocol(f"answered AuthMethod={got} to our AuthMethod={wanted}")

    def _answer_challenge(self, keys: dict[str, str]) -> None:
        auth = self.config.auth
        assert auth.chap is not None
        portal = self.config.portal
        for key in ("CHAP_A", "CHAP_I", "CHAP_C"):
            if key not in keys:
                raise self._protocol(f"sent no {key} in the CHAP challenge")
        algorithm = parse_algorithm(keys["CHAP_A"], auth.algorithms, portal)
        self._algorithm = algorithm
        identifier = parse_identifier(keys["CHAP_I"])
        challenge = decode_binary(keys["CHAP_C"], "CHAP_C")
        self._target_challenge = challenge
        response = chap_response(algorithm, identifier, auth.chap.secret.reveal(), challenge)
        pairs = [("CHAP_N", auth.chap.user), ("CHAP_R", encode_binary(response))]
        if auth.mutual is not None:
            mine = new_challenge(algorithm, avoid=challenge)
            self._mutual = (mine.identifier, mine.value)
            pairs += [("CHAP_I", str(mine.identifier)), ("CHAP_C", encode_binary(mine.value))]
        self._send(pairs, Stage.SECURITY, self._after_security())

    def _verify_target(self, keys: dict[str, str]) -> None:
        auth = self.config.auth
        assert auth.mutual is not None and auth.chap is not None and self._mutual is not None
        assert self._algorithm is not None
        portal, user = self.config.portal, auth.mutual.user
        name, value = keys.get("CHAP_N"), keys.get("CHAP_R")
        if name is None or value is None:
            # LIO without mutual credentials completes one-way and omits these.
            raise MutualAuthFailed(portal, user, "it sent no CHAP_N/CHAP_R")
        if name != user:
            raise MutualAuthFailed(portal, user, "it answered with another CHAP name")
        try:
            got = decode_binary(value, "CHAP_R")
        except RemoteProtocolError:
            raise MutualAuthFailed(portal, user, "its CHAP_R is not hex or base64") from None
        identifier, challenge = self._mutual
        if responses_equal(
            got, chap_response(self._algorithm, identifier, auth.chap.secret.reveal(), challenge)
        ):
            # RFC 7143 §12.1.3: the answer our own secret gives means reflection.
            raise MutualAuthFailed(portal, user, "it reflected our own answer")
        expected = chap_response(
            self._algorithm, identifier, auth.mutual.secret.reveal(), challenge
        )
        if not responses_equal(got, expected):
            raise MutualAuthFailed(portal, user, "its CHAP_R is wrong")
