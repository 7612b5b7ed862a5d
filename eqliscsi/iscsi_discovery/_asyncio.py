"""The one asyncio adapter of the native iSCSI client.

Everything protocol-shaped lives in the sans-IO core (:mod:`._login`,
:mod:`._session`); this module only moves bytes between a TCP stream and those
objects, and puts a clock on every wait:

* ``login`` connects, runs :class:`._login.LoginMachine` to full feature phase and
  hands the connection to :class:`._session.Session`.  It follows Status-Class 1
  redirects with a fresh connection and the same ISID (RFC 7143 §6.2 / §11.13.5;
  EqualLogic redirects every login from the group IP to a member port), and retries
  once offering only MD5 when the target fails a stronger CHAP_A (tgt's CHAP_A=7
  off-by-one, open-iscsi#192).
* the whole login, redirects included, runs under one ``asyncio.timeout``; each
  later request (SendTargets, one SCSI command, Logout) under its own.  A timeout is
  an :class:`IscsiTimeout`, a refused/reset/closed socket an
  :class:`IscsiConnectionError`; nothing else escapes as a raw ``OSError``.
* sessions are ``async with`` blocks that always try a Logout (reason 0,
  RFC 7143 §11.14) and always close the socket, even when the body raised.

``discover``, ``probe`` and ``validate_many`` are the public operations built on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Iterable

from eqliscsi.errors import IscsiError
from eqliscsi.iscsi_discovery._types import (
    Auth,
    DiscoveredTarget,
    LunInfo,
    Portal,
    ProbeResult,
    ValidationRequest,
    ValidationResult,
)
from eqliscsi.iscsi_discovery.errors import (
    IscsiConnectionError,
    IscsiTimeout,
    PduRejected,
    RemoteProtocolError,
    ScsiCommandFailed,
)
from eqliscsi.iscsi_discovery.sansio import (
    AsyncEvent,
    DeviceType,
    LoginConfig,
    LoginMachine,
    LoginRedirected,
    LoginSucceeded,
    LoginWarning,
    LogoutCompleted,
    OperationalOffer,
    RetryWithMd5,
    ScsiCompleted,
    SendTargetsCompleted,
    Session,
    SessionEvent,
    SessionParams,
    SessionType,
    TaskRejected,
    cdb_inquiry,
    cdb_read_capacity16,
    cdb_report_luns,
    cdb_test_unit_ready,
    check_iscsi_name,
    decode_lun,
    lun_info,
    parse_device_identifiers,
    parse_inquiry,
    parse_read_capacity16,
    parse_report_luns,
    parse_unit_serial,
)

__all__ = [
    "DEFAULT_INITIATOR_NAME",
    "IscsiSession",
    "discover",
    "login",
    "probe",
    "validate_many",
]

log = logging.getLogger("eqliscsi.iscsi")

# The validator's own identity.  It must never equal a production initiator's IQN
# with the same ISID, or the target would reinstate (drop) that session (§14.18).
DEFAULT_INITIATOR_NAME = "iqn.2026-01.org.opennebula.eqliscsi:validator"
DEFAULT_TIMEOUT = 10.0
_READ_CHUNK = 64 * 1024
_LOGOUT_TIMEOUT = 2.0  # a courtesy: never let a silent target delay the caller long
_UA_RETRIES = 3  # unit attentions queued after login (tgt: 06/29/00) clear one per command
_MAX_REPORT_LUNS = 256 * 8 + 8


def _portal(value: Portal | str) -> Portal:
    return value if isinstance(value, Portal) else Portal.parse(value)


class _Stream:
    """One TCP connection with a timeout on every wait and typed errors."""

    def __init__(
        self, portal: Portal, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.portal = portal
        self._reader = reader
        self._writer = writer

    @classmethod
    async def connect(cls, portal: Portal) -> _Stream:
        try:
            reader, writer = await asyncio.open_connection(portal.address, portal.port)
        except socket.gaierror:
            raise IscsiConnectionError(
                f"The portal address {portal.address} does not resolve; fix the host name."
            ) from None
        except OSError as exc:
            # asyncio's strerror repeats the address; the errno text is the useful part.
            why = os.strerror(exc.errno).lower() if exc.errno else type(exc).__name__
            raise IscsiConnectionError(
                f"Cannot connect to iSCSI portal {portal} ({why}); "
                "check the address, the port and any firewall."
            ) from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # Login and text exchanges are small request/response PDUs: no Nagle delay.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(portal, reader, writer)

    async def send(self, data: bytes) -> None:
        if not data:
            return
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError:
            raise self._lost("while we were sending") from None

    async def receive(self, during: str) -> bytes:
        try:
            data = await self._reader.read(_READ_CHUNK)
        except OSError:
            raise self._lost(during) from None
        if not data:
            raise self._lost(during)
        return data

    def _lost(self, during: str) -> IscsiConnectionError:
        return IscsiConnectionError(
            f"The target at portal {self.portal} closed the connection {during}; "
            "check the target's log and its access settings."
        )

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError, TimeoutError):
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()


async def _login_attempt(
    config: LoginConfig,
) -> tuple[_Stream, LoginMachine, LoginSucceeded | LoginRedirected | RetryWithMd5]:
    stream = await _Stream.connect(config.portal)
    try:
        machine = LoginMachine(config)
        for event in machine.start():
            _warn(event)
        await stream.send(machine.data_to_send())
        while True:
            data = await stream.receive("during login")
            outcome = None
            for event in machine.receive_data(data):
                if isinstance(event, LoginWarning):
                    _warn(event)
                else:
                    outcome = event
            await stream.send(machine.data_to_send())
            if outcome is not None:
                return stream, machine, outcome
    except BaseException:
        await stream.close()
        raise


def _warn(event: object) -> None:
    if isinstance(event, LoginWarning):
        log.warning("%s", event.message)


async def _establish(config: LoginConfig) -> tuple[_Stream, Session, Portal | None]:
    """Log in, following redirects and the one MD5 retry; returns a full-feature session."""
    redirected_to: Portal | None = None
    retried_md5 = False
    while True:
        stream, machine, outcome = await _login_attempt(config)
        if isinstance(outcome, LoginSucceeded):
            return stream, Session(config, outcome, machine.take_remaining()), redirected_to
        await stream.close()
        if isinstance(outcome, LoginRedirected):
            # RFC 7143 §11.13.5: restart from scratch at the new portal, same ISID.
            log.info("login to %s redirected to %s", config.portal, outcome.portal)
            redirected_to = outcome.portal
            config = config.redirected(outcome.portal)
        elif not retried_md5:
            log.warning(
                "The target at portal %s failed CHAP with algorithm %s (status 0x%04x); "
                "retrying with MD5 only.",
                config.portal,
                outcome.algorithm.name if outcome.algorithm else "(none chosen)",
                outcome.status,
            )
            retried_md5 = True
            config = config.md5_only()
        else:  # pragma: no cover - md5_only() offers only MD5, which never retries
            raise RemoteProtocolError(
                f"The target at portal {config.portal} asked for a second MD5 retry; "
                "check the target's CHAP settings."
            )


class IscsiSession:
    """An open session in full feature phase, as yielded by :func:`login`.

    Requests run one at a time (a lock serialises them); each waits at most
    ``timeout`` seconds for its answer.
    """

    def __init__(
        self,
        stream: _Stream,
        session: Session,
        *,
        portal: Portal,
        target: str | None,
        redirected_to: Portal | None,
        timeout: float,
    ) -> None:
        self._stream = stream
        self._session = session
        self._lock = asyncio.Lock()
        self._broken = False
        self._closed = False
        self.portal = portal
        self.target = target
        self.redirected_to = redirected_to
        self.timeout = timeout

    @property
    def params(self) -> SessionParams:
        return self._session.params

    @property
    def tsih(self) -> int:
        return self._session.tsih

    @property
    def connected_portal(self) -> Portal:
        return self._stream.portal

    async def _run(self, itt: int, what: str) -> SessionEvent:
        """Send what the session queued and pump until task ``itt`` completes."""
        if self._broken or self._closed:
            raise IscsiConnectionError(
                f"The session with portal {self.portal} is closed; open a new session."
            )
        try:
            async with asyncio.timeout(self.timeout):
                await self._stream.send(self._session.data_to_send())
                while True:
                    data = await self._stream.receive(f"while waiting for {what}")
                    found: SessionEvent | None = None
                    for event in self._session.receive_data(data):
                        if isinstance(event, AsyncEvent):
                            self._on_async(event)
                        elif getattr(event, "itt", None) == itt:
                            found = event
                    # NOP-In answers and continuation requests go out right away.
                    await self._stream.send(self._session.data_to_send())
                    if found is not None:
                        if isinstance(found, TaskRejected):
                            raise PduRejected(found.reason, self._stream.portal, what)
                        return found
        except TimeoutError:
            self._broken = True
            raise IscsiTimeout(
                f"The target at portal {self._stream.portal} did not answer {what} within "
                f"{self.timeout:g} s; check that the target is healthy."
            ) from None
        except IscsiError:
            self._broken = True
            raise

    def _on_async(self, event: AsyncEvent) -> None:
        # Async event 1: the target (EqualLogic rebalancing) asks us to log out; our
        # sessions are short, so we note it and finish (logout happens on exit).
        log.info("target at %s sent async event %d", self._stream.portal, event.event)

    async def send_targets(self, value: str = "All") -> list[DiscoveredTarget]:
        """``SendTargets=<value>`` (RFC 7143 Appendix C): ``All``, an IQN, or empty."""
        if value not in ("All", ""):
            check_iscsi_name(value, "SendTargets target name")
        async with self._lock:
            itt = self._session.send_targets(value)
            event = await self._run(itt, "SendTargets")
        if not isinstance(event, SendTargetsCompleted):  # pragma: no cover - table bug
            raise RemoteProtocolError(f"SendTargets to {self.portal} ended unexpectedly.")
        return list(event.targets)

    async def scsi(
        self,
        lun: int,
        cdb: bytes,
        *,
        read_length: int = 0,
        write_data: bytes = b"",
        command: str = "command",
    ) -> bytes:
        """Run one SCSI command; returns its data, retrying unit attentions.

        Raises:
            ScsiCommandFailed: a status other than GOOD after the retries.
        """
        attempt = 0
        while True:
            async with self._lock:
                itt = self._session.scsi_command(
                    lun, cdb, read_length=read_length, write_data=write_data
                )
                event = await self._run(itt, f"SCSI {command}")
            if not isinstance(event, ScsiCompleted):  # pragma: no cover - table bug
                raise RemoteProtocolError(f"SCSI {command} to {self.portal} ended unexpectedly.")
            attempt += 1
            # A unit attention (tgt: 06/29/00 after login) reports an event once;
            # retry the same command a few times (reference §8).
            if event.unit_attention and attempt <= _UA_RETRIES:
                continue
            return event.check(command, self.target or "")

    async def logout(self) -> None:
        """Logout reason 0 (close the session); tgt and LIO answer response 0."""
        if self._broken or self._closed:
            return
        async with self._lock:
            itt = self._session.logout()
            saved, self.timeout = self.timeout, min(self.timeout, _LOGOUT_TIMEOUT)
            try:
                event = await self._run(itt, "Logout")
            finally:
                self.timeout = saved
        self._closed = True
        if isinstance(event, LogoutCompleted) and event.response != 0:
            log.info("logout from %s answered %d", self.portal, event.response)

    async def close(self) -> None:
        """Log out when the connection is healthy, then close the socket; idempotent."""
        try:
            if not self._broken and not self._closed:
                with contextlib.suppress(IscsiError):
                    await self.logout()
        finally:
            self._closed = True
            await self._stream.close()

    # -- probe helpers ---------------------------------------------------------------

    async def report_luns(self) -> list[int]:
        data = await self.scsi(
            0, cdb_report_luns(_MAX_REPORT_LUNS), read_length=_MAX_REPORT_LUNS,
            command="REPORT LUNS",
        )  # fmt: skip
        return [decode_lun(field) for field in parse_report_luns(data)]

    async def lun_info(self, lun: int) -> LunInfo:
        """INQUIRY (standard, VPD 0x80 and 0x83) and READ CAPACITY(16) of one LUN."""
        await self.scsi(lun, cdb_test_unit_ready(), command="TEST UNIT READY")
        inquiry = parse_inquiry(
            await self.scsi(lun, cdb_inquiry(), read_length=255, command="INQUIRY")
        )
        capacity = None
        if inquiry.device_type == DeviceType.DISK:
            capacity = parse_read_capacity16(
                await self.scsi(
                    lun, cdb_read_capacity16(), read_length=32, command="READ CAPACITY(16)"
                )
            )
        serial = ""
        identifiers: tuple[str, ...] = ()
        # VPD pages are optional (SPC-4 makes only 0x00 and 0x83 mandatory): a target
        # that refuses one still has a usable LUN.
        with contextlib.suppress(ScsiCommandFailed):
            serial = parse_unit_serial(
                await self.scsi(lun, cdb_inquiry(0x80), read_length=255, command="INQUIRY VPD 80")
            )
        with contextlib.suppress(ScsiCommandFailed):
            identifiers = parse_device_identifiers(
                await self.scsi(lun, cdb_inquiry(0x83), read_length=255, command="INQUIRY VPD 83")
            )
        return lun_info(lun, inquiry, capacity, serial, identifiers)


@contextlib.asynccontextmanager
async def login(
    portal: Portal | str,
    target: str | None = None,
    *,
    auth: Auth = Auth(),  # noqa: B008 - frozen, hence a safe default
    session_type: SessionType | None = None,
    initiator_name: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - the agreed public API
    max_redirects: int = 3,
    offer: OperationalOffer | None = None,
) -> AsyncIterator[IscsiSession]:
    """Open a session (Discovery when ``target`` is ``None``) and log out on exit.

    Raises:
        LoginFailed (and subclasses), MutualAuthFailed, RedirectLoop: the target
            refused us; IscsiTimeout: no answer within ``timeout``;
            IscsiConnectionError: the TCP connection failed or was closed.
    """
    start = _portal(portal)
    if target is not None:
        check_iscsi_name(target, "target name")
    config = LoginConfig(
        portal=start,
        initiator_name=check_iscsi_name(initiator_name or DEFAULT_INITIATOR_NAME, "initiator name"),
        target_name=target,
        auth=auth,
        session_type=session_type,
        max_redirects=max_redirects,
        offer=offer or OperationalOffer(),
    )
    try:
        async with asyncio.timeout(timeout):
            stream, session, redirected_to = await _establish(config)
    except TimeoutError:
        raise IscsiTimeout(
            f"The target at portal {start} did not complete the login within {timeout:g} s; "
            "check that the portal is an iSCSI target and reachable."
        ) from None
    client = IscsiSession(
        stream, session, portal=start, target=target, redirected_to=redirected_to,
        timeout=timeout,
    )  # fmt: skip
    try:
        yield client
    finally:
        await client.close()


async def discover(
    portal: Portal | str,
    *,
    auth: Auth = Auth(),  # noqa: B008
    target: str | None = None,
    initiator_name: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - the agreed public API
) -> list[DiscoveredTarget]:
    """SendTargets over a Discovery session: ``All``, or only ``target`` when given."""
    async with login(portal, None, auth=auth, initiator_name=initiator_name, timeout=timeout) as s:
        return await s.send_targets("All" if target is None else target)


async def probe(
    portal: Portal | str,
    target: str,
    *,
    lun: int | None = None,
    auth: Auth = Auth(),  # noqa: B008
    initiator_name: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - the agreed public API
    max_redirects: int = 3,
) -> ProbeResult:
    """Log in to ``target`` and describe its LUNs (all disk LUNs when ``lun`` is None)."""
    start = _portal(portal)
    async with login(
        start, target, auth=auth, initiator_name=initiator_name, timeout=timeout,
        max_redirects=max_redirects,
    ) as s:  # fmt: skip
        luns: tuple[LunInfo, ...]
        if lun is not None:
            luns = (await s.lun_info(lun),)
        else:
            infos = [await s.lun_info(n) for n in await s.report_luns()]
            luns = tuple(i for i in infos if i.device_type == DeviceType.DISK)
    return ProbeResult(target=target, portal=start, luns=luns, redirected_to=s.redirected_to)


async def validate_many(
    requests: Iterable[ValidationRequest],
    *,
    concurrency: int = 32,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - the agreed public API
    initiator_name: str | None = None,
) -> list[ValidationResult]:
    """Probe every request, at most ``concurrency`` at once; results in request order.

    An iSCSI failure of one request becomes that item's ``error``; it never stops the
    others.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    gate = asyncio.Semaphore(concurrency)

    async def one(req: ValidationRequest) -> ValidationResult:
        async with gate:
            try:
                result = await probe(
                    req.portal, req.target, lun=req.lun, auth=req.auth,
                    initiator_name=initiator_name, timeout=timeout,
                )  # fmt: skip
            except IscsiError as exc:
                return ValidationResult(req, False, None, exc)
            return ValidationResult(req, True, result, None)

    return list(await asyncio.gather(*(one(r) for r in requests)))
