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
  later request (SendTargets, a batch of SCSI commands, Logout) under its own loop
  timer.  A timeout is
  an :class:`IscsiTimeout`, a refused/reset/closed socket an
  :class:`IscsiConnectionError`; nothing else escapes as a raw ``OSError``.
* sessions are ``async with`` blocks that always try a Logout (reason 0,
  RFC 7143 §11.14) and always close the socket, even when the body raised.

``discover``, ``probe`` and ``validate_many`` are the public operations built on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

from eqliscsi.errors import IscsiError
from eqliscsi.iscsi_discovery._login import DEFAULT_OFFER
from eqliscsi.iscsi_discovery._probe import (
    CAPACITY_COMMANDS,
    UA_RETRIES,
    CapacityAnswers,
    CapacityProbe,
    ProbePhase,
    absent,
)
from eqliscsi.iscsi_discovery._shard import run_sharded
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
    TargetNotListed,
)
from eqliscsi.iscsi_discovery.sansio import (
    AsyncEvent,
    DeviceType,
    LoginConfig,
    LoginMachine,
    LoginRedirected,
    LoginState,
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
    "SHARD_MIN_REQUESTS",
    "IscsiSession",
    "LunNotPresent",
    "default_processes",
    "discover",
    "discover_and_login",
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
_Outcome = tuple[bool, ProbeResult | None, IscsiError | None]


class LunNotPresent(ScsiCommandFailed):
    """INQUIRY says no logical unit is attached at this LUN (peripheral qualifier 3).

    Targets answer GOOD with qualifier 3 / type 0x1F rather than an error (SPC-4
    §6.6.2), so without this check a probe of a wrong LUN would "succeed" with size 0.
    """

    reference = "iscsi-lun-not-present"

    def __init__(self, target: str, lun: int) -> None:
        super().__init__(
            "INQUIRY", status=0, sense_key=None, asc=None, ascq=None, target=target, lun=lun
        )
        self.message = (
            f"Target {target} has no logical unit at LUN {lun}; "
            "probe without a LUN number to list the LUNs it has."
        )
        self.args = (self.message,)


def _name_portal(exc: RemoteProtocolError, portal: Portal, during: str) -> None:
    """Put the portal into a decoder's message, which cannot know it (h11's split).

    The codec raises on bytes alone; only the adapter knows whose bytes they were.
    The exception keeps its type and fields; only its one sentence grows.
    """
    if str(portal) in exc.message:
        return
    # Keep what happened; drop the decoder's own advice, ours replaces it.
    detail = exc.message.split(";", 1)[0].rstrip(".")
    detail = detail[:1].lower() + detail[1:]
    exc.message = (
        f"The target at portal {portal} broke the iSCSI protocol {during} ({detail}); "
        "check the target's log, or report it with the target's model."
    )
    exc.args = (exc.message,)


def _is_ip(address: str) -> bool:
    return _ip_family(address) is not None


def _portal(value: Portal | str) -> Portal:
    return value if isinstance(value, Portal) else Portal.parse(value)


# Called in the loop's reader callback with the bytes just received; returns the bytes
# to write at once and whether the exchange is complete.
_Step = Callable[[bytes], tuple[bytes, bool]]


class _Connection:
    """One TCP connection on a bare non-blocking socket and a loop reader.

    No asyncio Transport: a Transport adds per connection a waiter future, two
    scheduled callbacks to start, one to close, and buffering we never use.

    Exchanges run *in the reader callback* (:meth:`converse`): each chunk received
    goes straight to the sans-IO machine, whose answer is written before the callback
    returns, and the waiting task wakes once, when the whole exchange is complete.
    A CHAP login is four round trips and the probe three more; waking the task
    for each of them (a future, a scheduled step, the coroutine stack resumed, a
    ``sock_sendall`` coroutine) cost more client CPU than the protocol work itself
    (docs/performance.md, "iSCSI client", 2026-11-24).

    Outside an exchange, received chunks go to a list and wake at most one waiter;
    reading stops while more than 256 KiB wait unread, so a target that floods us
    waits for the reader instead of filling our memory.  Inside one, the machines'
    own receive buffers bound what they keep.  A write the kernel does not take at
    once waits in ``_unsent`` for a loop writer, in order.
    """

    _READ_LIMIT = 4 * _READ_CHUNK  # stop reading while this much waits unread

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self.loop = loop
        self.sock = sock
        self._fd = sock.fileno()
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.eof = False
        self.error: OSError | None = None  # why reading ended, when it was not a FIN
        self.received = False  # anything ever arrived: the TCP connection is up
        self.reading = False
        self.writing = False
        self._unsent = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._step: _Step | None = None
        self._done: asyncio.Future[None] | None = None
        self._resume_reading()

    def _resume_reading(self) -> None:
        if not self.reading and not self.eof:
            self.loop.add_reader(self._fd, self._on_readable)
            self.reading = True

    def _pause_reading(self) -> None:
        if self.reading:
            self.loop.remove_reader(self._fd)
            self.reading = False

    def _on_readable(self) -> None:
        try:
            data = self.sock.recv(_READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            data = b""  # reset by the peer: for us the same as a close
            self.error = exc
        if data:
            self.received = True
            if self._step is not None:
                self._advance(data)
                return
            self.chunks.append(data)
            self.buffered += len(data)
            if self.buffered > self._READ_LIMIT:
                self._pause_reading()
        else:
            self.eof = True  # iSCSI has no half-closed state: a FIN ends the connection
            self._pause_reading()
            self._fail(EOFError())
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def readable(self) -> None:
        self._waiter = self.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def take(self) -> bytes:
        data = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        self._resume_reading()
        return data

    def converse(self, step: _Step) -> asyncio.Future[None]:
        """Feed everything received to ``step`` until it reports the exchange complete.

        The future completes with None, or with ``step``'s exception, ``EOFError``
        (the peer closed) or the ``OSError`` of a failed write.  Call
        :meth:`end_conversation` when done waiting (also after a cancellation).
        """
        done = self.loop.create_future()
        self._step, self._done = step, done
        if self.chunks:  # arrived before this exchange began (an unsolicited PDU)
            self._advance(self.take())
        if self.eof:
            self._fail(EOFError())
        return done

    def end_conversation(self) -> None:
        self._step = self._done = None

    def _advance(self, data: bytes) -> None:
        step, done = self._step, self._done
        assert step is not None and done is not None
        try:
            out, finished = step(data)
            if out:
                self.write(out)
        except Exception as exc:  # handed to the waiting task, which raises it
            self._step = None
            if not done.done():
                done.set_exception(exc)
            return
        if finished:
            self._step = None
            if not done.done():
                done.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        done = self._done
        self._step = None
        if done is not None and not done.done():
            done.set_exception(exc)

    def write(self, data: bytes) -> None:
        """Send ``data`` now, or queue it behind what already waits for the socket.

        Raises:
            OSError: the connection is broken (reset, closed by the peer).
        """
        if self._unsent:
            self._unsent += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        if sent < len(data):
            # A large write to a slow target: the rest goes when the socket drains.
            self._unsent += memoryview(data)[sent:]
            self.loop.add_writer(self._fd, self._on_writable)
            self.writing = True

    def _on_writable(self) -> None:
        try:
            sent = self.sock.send(self._unsent)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._unsent.clear()
            self._stop_writing()
            self._fail(exc)
            return
        del self._unsent[:sent]
        if not self._unsent:
            self._stop_writing()

    def _stop_writing(self) -> None:
        if self.writing:
            self.loop.remove_writer(self._fd)
            self.writing = False

    def close(self) -> None:
        # No loop registration may outlive the socket: its number is reused at once.
        self._pause_reading()
        self._stop_writing()
        self._unsent.clear()
        self.eof = True
        self.end_conversation()
        self.sock.close()


@functools.lru_cache(maxsize=256)
def _ip_family(address: str) -> int | None:
    """AF_INET or AF_INET6 for an IP address, None for a host name.

    Cached: a batch opens hundreds of connections to the same few portals, and
    ``ipaddress`` parses in Python.
    """
    try:
        version = ipaddress.ip_address(address).version
    except ValueError:
        return None
    return int(socket.AF_INET6 if version == 6 else socket.AF_INET)


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _connected(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _connect(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, address: str, port: int
) -> None:
    """Connect a non-blocking IPv4 socket: ``sock_connect`` minus its resolution step.

    Raises:
        OSError: the connection failed (refused, unreachable).
    """
    err = sock.connect_ex((address, port))
    if err in (errno.EINPROGRESS, errno.EINTR):
        done = loop.create_future()
        fd = sock.fileno()
        loop.add_writer(fd, _connected, done)
        try:
            await done
        finally:
            loop.remove_writer(fd)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, os.strerror(err))


def _start_connect(portal: Portal) -> socket.socket | None:
    """A non-blocking IPv4 socket whose connect to ``portal`` is under way, or None.

    Nothing waits for the handshake: the first write does.  A socket still
    connecting takes no data (EAGAIN), so the write waits for a loop writer; a
    refused connection fails that write (or the read) with the connect's own error,
    which :meth:`_Stream.converse` reports as a connect failure.  On loopback the
    handshake completes inside ``connect()`` and the write goes out at once: a
    future, a writer registration and its removal, and a loop pass fewer per
    connection.  Host names and IPv6 keep the waiting path (:func:`_open_socket`).

    Raises:
        OSError: the connect failed at once (no route, no such address).
    """
    if _ip_family(portal.address) != socket.AF_INET:
        return None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex((portal.address, portal.port))
        if err not in (0, errno.EINPROGRESS, errno.EINTR):
            raise OSError(err, os.strerror(err))
    except BaseException:
        sock.close()
        raise
    return sock


async def _open_socket(loop: asyncio.AbstractEventLoop, portal: Portal) -> socket.socket:
    """A connected non-blocking TCP socket to ``portal``; addresses tried in order.

    Raises:
        socket.gaierror: the host name does not resolve; OSError: no address answered.
    """
    family = _ip_family(portal.address)
    if family is not None:
        targets: list[tuple[int, tuple[str, int]]] = [(family, (portal.address, portal.port))]
    else:  # a host name: resolve it (in asyncio's thread pool)
        infos = await loop.getaddrinfo(portal.address, portal.port, type=socket.SOCK_STREAM)
        targets = [(info[0], (str(info[4][0]), int(info[4][1]))) for info in infos]
    error: OSError = OSError(errno.EHOSTUNREACH, os.strerror(errno.EHOSTUNREACH))
    for af, address in targets:
        sock = socket.socket(af, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            # Login and text exchanges are small request/response PDUs: no Nagle delay.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if af == socket.AF_INET:
                await _connect(loop, sock, *address)
            else:  # IPv6 (scope IDs, flow info): asyncio's general path
                await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
        else:
            return sock
    raise error


class _Stream:
    """One TCP connection with a timeout on every wait and typed errors."""

    def __init__(self, portal: Portal, conn: _Connection, *, connecting: bool = False) -> None:
        self.portal = portal
        self._conn = conn
        self._connecting = connecting  # the handshake may still be under way

    @classmethod
    async def connect(cls, portal: Portal) -> _Stream:
        loop = asyncio.get_running_loop()
        try:
            sock = _start_connect(portal)
            if sock is not None:
                return cls(portal, _Connection(loop, sock), connecting=True)
            sock = await _open_socket(loop, portal)
        except socket.gaierror:
            raise IscsiConnectionError(
                f"The portal address {portal.address} does not resolve; fix the host name."
            ) from None
        except OSError as exc:
            raise cls._cannot_connect(portal, exc) from None
        return cls(portal, _Connection(loop, sock))

    @staticmethod
    def _cannot_connect(portal: Portal, exc: OSError) -> IscsiConnectionError:
        # The errno text is the useful part; the portal is named by us.
        why = os.strerror(exc.errno).lower() if exc.errno else type(exc).__name__
        return IscsiConnectionError(
            f"Cannot connect to iSCSI portal {portal} ({why}); "
            "check the address, the port and any firewall."
        )

    async def converse(
        self,
        data: bytes,
        step: _Step,
        during: str | Callable[[], str],
        timeout: float | None = None,  # noqa: ASYNC109 - a loop timer, see below
    ) -> None:
        """Write ``data``, then run ``step`` on every chunk received until it is done.

        ``timeout`` is a plain loop timer on the exchange's future: the same clock as
        ``asyncio.timeout`` without its per-use context manager and task bookkeeping.
        ``during`` says what was going on, for a lost connection's message; a callable
        is asked only then (the capacity probe's phase changes within one exchange).

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
            IscsiConnectionError: the peer closed or reset the connection, or a write
                failed; whatever ``step`` raises (typed protocol errors) as is.
        """
        conn = self._conn
        if conn.eof:
            raise self._lost(during if isinstance(during, str) else during())
        timer = None
        try:
            if data:
                conn.write(data)
            done = conn.converse(step)
            if timeout is not None and not done.done():
                timer = conn.loop.call_later(timeout, _expire, done)
            await done
        except TimeoutError:  # an OSError subclass: not a lost connection
            raise
        except EOFError:
            if self._connecting and not conn.received and conn.error is not None:
                raise self._cannot_connect(self.portal, conn.error) from None
            raise self._lost(during if isinstance(during, str) else during()) from None
        except OSError as exc:
            if self._connecting and not conn.received:
                raise self._cannot_connect(self.portal, exc) from None
            raise self._lost("while we were sending") from None
        finally:
            if timer is not None:
                timer.cancel()
            conn.end_conversation()

    def _lost(self, during: str) -> IscsiConnectionError:
        return IscsiConnectionError(
            f"The target at portal {self.portal} closed the connection {during}; "
            "check the target's log and its access settings."
        )

    async def close(self) -> None:
        self._conn.close()


async def _login_attempt(
    config: LoginConfig,
    stream: _Stream | None = None,
    gate: asyncio.Future[None] | None = None,
) -> tuple[_Stream, LoginMachine, LoginSucceeded | LoginRedirected | RetryWithMd5]:
    """One login attempt: on ``stream`` when given (already connecting), else a new one.

    With a ``gate``, the first operational Login Request (T=1 NSG=3, whose answer
    creates the session: RFC 7143 §6.3) waits for the gate, while the security stage
    runs at once.  The *first* request is never held: LIO reads a new connection's
    first Login Request before it accepts the next connection, so an idle connection
    would stall every other login at that portal.  See :func:`discover_and_login`.
    """
    if stream is None:
        stream = await _Stream.connect(config.portal)
    try:
        machine = LoginMachine(config)
        for event in machine.start():
            _warn(event)
        outcome: list[LoginSucceeded | LoginRedirected | RetryWithMd5] = []
        held: list[bytes] = []

        def step(data: bytes) -> tuple[bytes, bool]:
            for event in machine.receive_data(data):
                if isinstance(event, LoginWarning):
                    _warn(event)
                else:
                    outcome.append(event)
            out = machine.data_to_send()
            if gate is not None and not gate.done() and _asks_full_feature(machine, outcome):
                held.append(out)
                return b"", True
            return out, bool(outcome)

        await stream.converse(machine.data_to_send(), step, "during login")
        if held:
            assert gate is not None  # only a gate holds a request
            await gate
            await stream.converse(held[0], step, "during login")
        return stream, machine, outcome[0]
    except RemoteProtocolError as exc:
        _name_portal(exc, config.portal, "during login")
        await stream.close()
        raise
    except BaseException:
        await stream.close()
        raise


def _asks_full_feature(machine: LoginMachine, outcome: Sequence[object]) -> bool:
    """The machine's next request is an operational one, which asks for NSG=3."""
    return not outcome and machine.state is LoginState.OPERATIONAL


def _warn(event: object) -> None:
    if isinstance(event, LoginWarning):
        log.warning("%s", event.message)


async def _establish(
    config: LoginConfig,
    stream: _Stream | None = None,
    gate: asyncio.Future[None] | None = None,
) -> tuple[_Stream, Session, Portal | None]:
    """Log in, following redirects and the one MD5 retry; returns a full-feature session.

    ``stream`` (a connection already under way) serves the first attempt; ``gate``
    holds every attempt's final request (:func:`_login_attempt`).
    """
    redirected_to: Portal | None = None
    retried_md5 = False
    while True:
        stream, machine, outcome = await _login_attempt(config, stream, gate)
        if isinstance(outcome, LoginSucceeded):
            return stream, Session(config, outcome, machine.take_remaining()), redirected_to
        await stream.close()
        stream = None
        config = _next_attempt(config, outcome, retried_md5)
        if isinstance(outcome, LoginRedirected):
            redirected_to = outcome.portal
        else:
            retried_md5 = True


def _next_attempt(
    config: LoginConfig, outcome: LoginRedirected | RetryWithMd5, retried_md5: bool
) -> LoginConfig:
    """The login to try after a redirect or a request for the MD5 retry."""
    if isinstance(outcome, LoginRedirected):
        # RFC 7143 §11.13.5: restart from scratch at the new portal, same ISID.
        log.info("login to %s redirected to %s", config.portal, outcome.portal)
        return config.redirected(outcome.portal)
    if retried_md5:  # pragma: no cover - md5_only() offers only MD5, which never retries
        raise RemoteProtocolError(
            f"The target at portal {config.portal} asked for a second MD5 retry; "
            "check the target's CHAP settings."
        )
    log.warning(
        "The target at portal %s failed CHAP with algorithm %s (status 0x%04x); "
        "retrying with MD5 only.",
        config.portal,
        outcome.algorithm.name if outcome.algorithm else "(none chosen)",
        outcome.status,
    )
    return config.md5_only()


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
        # What SendTargets listed for this target (set by discover_and_login).
        self.discovered: tuple[DiscoveredTarget, ...] = ()

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
        return (await self._run_many([itt], what))[itt]

    async def _run_many(self, itts: list[int], what: str) -> dict[int, SessionEvent]:
        """Send what the session queued and pump until every task in ``itts`` completes.

        Several tasks in flight at once cost one round trip instead of one each; the
        sans-IO session holds back whatever the CmdSN window does not admit yet.
        """
        if self._broken or self._closed:
            raise IscsiConnectionError(
                f"The session with portal {self.portal} is closed; open a new session."
            )
        wanted = set(itts)
        done: dict[int, SessionEvent] = {}
        session = self._session

        def step(data: bytes) -> tuple[bytes, bool]:
            for event in session.receive_data(data):
                if isinstance(event, AsyncEvent):
                    self._on_async(event)
                elif isinstance(event, TaskRejected) and event.itt in wanted:
                    raise PduRejected(event.reason, self._stream.portal, what)
                elif (itt := getattr(event, "itt", None)) in wanted:
                    done[itt] = event
            # NOP-In answers, continuations and window-held commands go out now.
            return session.data_to_send(), len(done) >= len(wanted)

        try:
            await self._stream.converse(
                session.data_to_send(), step, f"while waiting for {what}", self.timeout
            )
            return done
        except TimeoutError:
            self._broken = True
            raise _answer_timeout(self._stream.portal, what, self.timeout) from None
        except RemoteProtocolError as exc:
            self._broken = True
            _name_portal(exc, self._stream.portal, f"answering {what}")
            raise
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

    async def scsi_batch(
        self, lun: int, commands: list[tuple[str, bytes, int]]
    ) -> list[ScsiCompleted]:
        """Run ``(name, cdb, read_length)`` commands in flight together; raw completions.

        No status check and no unit-attention retry here: the caller decides which
        failures matter (see :meth:`lun_info`).
        """
        async with self._lock:
            itts = [
                self._session.scsi_command(lun, cdb, read_length=length)
                for _, cdb, length in commands
            ]
        events = await self._run_many(itts, "SCSI " + ", ".join(c[0] for c in commands))
        out = []
        for itt in itts:
            event = events[itt]
            if not isinstance(event, ScsiCompleted):  # pragma: no cover - table bug
                raise RemoteProtocolError(f"A SCSI command to {self.portal} ended unexpectedly.")
            out.append(event)
        return out

    async def lun_info(self, lun: int, *, vpd: bool = True) -> LunInfo:
        """INQUIRY (standard, VPD 0x80 and 0x83) and READ CAPACITY(16) of one LUN.

        All commands go out at once.  TEST UNIT READY leads so that it, not a
        command we need, receives the unit attention a target queues after login
        (tgt: 06/29/00, reference §8); any other command hit by one is re-run alone.
        With ``vpd=False`` (validation) the two VPD pages are skipped: the LUN's
        serial and identifiers stay empty, 4 of 14 PDUs fewer per target.
        """
        commands = [
            ("TEST UNIT READY", cdb_test_unit_ready(), 0),
            ("INQUIRY", cdb_inquiry(), 255),
            ("READ CAPACITY(16)", cdb_read_capacity16(), 32),
        ]
        if vpd:
            commands += [
                ("INQUIRY VPD 80", cdb_inquiry(0x80), 255),
                # 0x83 lists several designators, one of them the target's SCSI name
                # (an EqualLogic IQN alone is ~70 bytes), so 255 bytes cut it short on
                # LIO; 1024 leaves room, and a page cut anyway is read as far as it goes.
                ("INQUIRY VPD 83", cdb_inquiry(0x83, _VPD83_ALLOCATION), _VPD83_ALLOCATION),
            ]
        # tgt opens a session with a window of two commands (MaxCmdSN = ExpCmdSN + 1),
        # so READ CAPACITY(16) waits for the first answer: on tgt this is two round
        # trips.  Sending TEST UNIT READY for immediate delivery (RFC 7143 §4.2.2.1)
        # would fit all three in one, but LIO rejects immediate SCSI commands (Reject
        # reason 0x09), so it is not done (docs/performance.md).
        results = await self.scsi_batch(lun, commands)
        data: dict[str, bytes | None] = {}
        for (name, cdb, length), done in zip(commands, results, strict=True):
            if done.unit_attention and name != "TEST UNIT READY":
                try:
                    data[name] = await self.scsi(lun, cdb, read_length=length, command=name)
                except ScsiCommandFailed:
                    data[name] = None
            else:
                data[name] = done.data if done.good else None
        inquiry_data = data["INQUIRY"]
        failed = results[1].sense
        if inquiry_data is None and failed is not None and failed.lun_not_supported:
            # LIO answers INQUIRY to an absent LUN with CHECK CONDITION 05/25/00
            # (LOGICAL UNIT NOT SUPPORTED, SPC-4 §6.6.1) instead of qualifier 3.
            raise LunNotPresent(self.target or "", lun)
        if inquiry_data is None:
            # Standard INQUIRY is mandatory (SPC-4): without it the LUN is unusable.
            results[1].check("INQUIRY", self.target or "")
            raise AssertionError("unreachable: check() raises for a failed command")
        inquiry = parse_inquiry(inquiry_data)
        if inquiry.qualifier == 3 or inquiry.device_type == DeviceType.UNKNOWN:
            raise LunNotPresent(self.target or "", lun)
        capacity = None
        if inquiry.device_type == DeviceType.DISK:
            capacity_data = data["READ CAPACITY(16)"]
            if capacity_data is None:
                results[2].check("READ CAPACITY(16)", self.target or "")
                raise AssertionError("unreachable: check() raises for a failed command")
            capacity = parse_read_capacity16(capacity_data)
        # VPD pages are optional (SPC-4 makes only 0x00 and 0x83 mandatory, and not
        # every target honours that): a target that refuses one still has a usable LUN.
        serial_data, ids_data = data.get("INQUIRY VPD 80"), data.get("INQUIRY VPD 83")
        serial = parse_unit_serial(serial_data) if serial_data else ""
        identifiers = parse_device_identifiers(ids_data) if ids_data else ()
        return lun_info(lun, inquiry, capacity, serial, identifiers)

    async def lun_capacity(self, lun: int) -> LunInfo:
        """READ CAPACITY(16) of one LUN, with TEST UNIT READY ahead of it; no INQUIRY.

        What validation asks for is the login and the size, so this reads only that:
        both commands go out at once and fit tgt's opening CmdSN window of two, so
        this is one round trip and two commands on the target, where
        :meth:`lun_info` without VPD pages is two round trips and three commands.
        TEST UNIT READY leads so that it takes the unit attention a target queues
        after login (tgt: 06/29/00, reference §8); a READ CAPACITY(16) hit by one
        anyway is re-run alone, up to ``UA_RETRIES`` times.  ``validate_many`` sends
        the same commands through :class:`._probe.CapacityProbe`.

        Without INQUIRY the returned :class:`LunInfo` has empty ``vendor``,
        ``product``, ``serial`` and ``identifiers``, and ``device_type`` is
        ``DeviceType.DISK``: READ CAPACITY(16) is an SBC command (SBC-3 §5.16), so a
        LUN that answers it GOOD with a block size is a block device.  A LUN that is
        not there answers CHECK CONDITION 05/25/00 (LOGICAL UNIT NOT SUPPORTED,
        SPC-4 §4.5.1; tgt and LIO both do) to either command, read as
        :class:`LunNotPresent`; any other failure of READ CAPACITY(16) (a LUN that
        is no disk: 05/20/00) is a :class:`ScsiCommandFailed` naming it.
        """
        name = "READ CAPACITY(16)"
        ready, done = await self.scsi_batch(
            lun, [("TEST UNIT READY", cdb_test_unit_ready(), 0), (name, cdb_read_capacity16(), 32)]
        )
        retries = 0  # the same rule as validate_many's CapacityProbe
        while done.unit_attention and retries < UA_RETRIES and not absent(ready):
            retries += 1
            (done,) = await self.scsi_batch(lun, [(name, cdb_read_capacity16(), 32)])
        return _capacity_info(lun, self.target or "", ready, done)


_VPD83_ALLOCATION = 1024


def _capacity_info(lun: int, target: str, ready: ScsiCompleted, capacity: ScsiCompleted) -> LunInfo:
    """What the last answers to TEST UNIT READY and READ CAPACITY(16) say about ``lun``.

    Raises:
        LunNotPresent: either answered 05/25/00 (LOGICAL UNIT NOT SUPPORTED).
        ScsiCommandFailed: READ CAPACITY(16) failed otherwise (a LUN that is no disk:
            05/20/00; a unit attention that never cleared).
    """
    if absent(ready) or absent(capacity):
        raise LunNotPresent(target, lun)
    blocks, block_size = parse_read_capacity16(capacity.check("READ CAPACITY(16)", target))
    return LunInfo(
        lun=lun, size_bytes=blocks * block_size, block_size=block_size, vendor="",
        product="", serial="", device_type=DeviceType.DISK, identifiers=(),
    )  # fmt: skip


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
        offer=offer or DEFAULT_OFFER,
        start_operational=True,
    )
    try:
        async with asyncio.timeout(timeout):
            stream, session, redirected_to = await _establish(config)
    except TimeoutError:
        raise _login_timeout(start, timeout) from None
    client = IscsiSession(
        stream, session, portal=start, target=target, redirected_to=redirected_to,
        timeout=timeout,
    )  # fmt: skip
    try:
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def discover_and_login(
    portal: Portal | str,
    target: str,
    *,
    auth: Auth = Auth(),  # noqa: B008 - frozen, hence a safe default
    discovery_auth: Auth | None = None,
    initiator_name: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - as login()'s
    max_redirects: int = 3,
    offer: OperationalOffer | None = None,
) -> AsyncIterator[IscsiSession]:
    """Find ``target`` at a discovery portal and log in to it there, overlapped.

    For a caller that wants "is this target listed to me, and can I log in to it":
    a Discovery session at ``portal`` asks ``SendTargets=<target>`` (with
    ``discovery_auth``, by default ``auth``), and a Normal session to ``target``
    at the same ``portal`` (redirects followed, as :func:`login`) is yielded;
    its ``discovered`` attribute holds what SendTargets listed for the target.
    The result is what :func:`discover` then :func:`login` would give; the two
    run on two TCP connections at once, so the wall time is less than their sum:

    * with CHAP (``auth``), both connections are opened together, and the target
      login runs its security stage (AuthMethod, CHAP_A, CHAP_N/CHAP_R: the
      credentials are checked) while discovery runs; its final request (the
      operational one asking for full feature phase, T=1 NSG=3) is held until
      SendTargets has listed the target: the target creates the session only with
      that request's answer (RFC 7143 §6.3), so none exists unless discovery
      found the target;
    * without CHAP the login's first request is already that final one, and a
      connection may not sit idle before it (LIO reads a new connection's first
      Login Request before accepting the next connection: an idle one would stall
      the discovery login), so that login starts once the listing is in;
    * either way the Discovery session's Logout (RFC 7143 §11.14) runs while the
      login completes, and is complete before this returns the session.

    A failed or empty discovery closes the held login connection mid-login (a
    connection may be dropped during login, RFC 7143 §6.3.6: no session was made)
    and raises; a failed login still completes the discovery Logout first.

    Raises:
        TargetNotListed: SendTargets did not list ``target``; everything
            :func:`login` raises, for either session.
    """
    start = _portal(portal)
    check_iscsi_name(target, "target name")
    initiator = check_iscsi_name(initiator_name or DEFAULT_INITIATOR_NAME, "initiator name")
    ops = offer or DEFAULT_OFFER
    discovery_config = LoginConfig(
        portal=start, initiator_name=initiator, target_name=None,
        auth=auth if discovery_auth is None else discovery_auth,
        max_redirects=max_redirects, offer=ops, start_operational=True,
    )  # fmt: skip
    login_config = LoginConfig(
        portal=start, initiator_name=initiator, target_name=target, auth=auth,
        max_redirects=max_redirects, offer=ops, start_operational=True,
    )  # fmt: skip
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[None] = loop.create_future()
    logout: asyncio.Task[None] | None = None
    found: list[DiscoveredTarget] = []

    async def find() -> None:
        nonlocal logout
        stream, session, redirected_to = await _establish(discovery_config)
        discovery = IscsiSession(
            stream, session, portal=start, target=None, redirected_to=redirected_to,
            timeout=timeout,
        )  # fmt: skip
        try:
            found.extend(t for t in await discovery.send_targets(target) if t.name == target)
        except BaseException:
            await discovery.close()
            raise
        # The listing is in: the held login may finish while the Logout is answered.
        logout = loop.create_task(discovery.close())
        if not found:
            raise TargetNotListed(start, target)
        gate.set_result(None)

    first: _Stream | None = None
    joining: asyncio.Task[tuple[_Stream, Session, Portal | None]] | None = None
    if login_config.auth.uses_chap:
        # Connect at once: the login's first request goes out as discovery starts.
        with contextlib.suppress(IscsiConnectionError):  # discovery reports it too
            first = await _Stream.connect(start)
        joining = loop.create_task(_establish(login_config, first, gate))
    try:
        async with asyncio.timeout(timeout):
            await find()
            if joining is None:
                joining = loop.create_task(_establish(login_config))
            stream, session, redirected_to = await joining
    except BaseException as exc:
        if joining is not None:
            joining.cancel()
            with contextlib.suppress(BaseException):
                done = await joining
                await IscsiSession(done[0], done[1], portal=start, target=target,
                                   redirected_to=None, timeout=timeout).close()  # fmt: skip
        if first is not None:
            await first.close()
        if logout is not None:
            await logout
        if isinstance(exc, TimeoutError):
            raise IscsiTimeout(
                f"The target at portal {start} did not complete discovery and login "
                f"within {timeout:g} s; check that the portal is an iSCSI target and reachable."
            ) from None
        raise
    if logout is not None:
        await logout
    client = IscsiSession(
        stream, session, portal=start, target=target, redirected_to=redirected_to,
        timeout=timeout,
    )  # fmt: skip
    client.discovered = tuple(found)
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
    return await _probe(
        _portal(portal), target, lun=lun, auth=auth, initiator_name=initiator_name,
        timeout=timeout, max_redirects=max_redirects, vpd=True,
    )  # fmt: skip


async def _probe(
    start: Portal,
    target: str,
    *,
    lun: int | None,
    auth: Auth,
    initiator_name: str | None,
    timeout: float,  # noqa: ASYNC109 - passed through from the public API
    max_redirects: int,
    vpd: bool,
) -> ProbeResult:
    async with login(
        start, target, auth=auth, initiator_name=initiator_name, timeout=timeout,
        max_redirects=max_redirects,
    ) as s:  # fmt: skip
        luns: tuple[LunInfo, ...]
        if lun is not None:
            luns = (await s.lun_info(lun, vpd=vpd),)
        else:
            infos = [await s.lun_info(n, vpd=vpd) for n in await s.report_luns()]
            luns = tuple(i for i in infos if i.device_type == DeviceType.DISK)
    return ProbeResult(target=target, portal=start, luns=luns, redirected_to=s.redirected_to)


async def _probe_capacity(
    start: Portal,
    target: str,
    lun: int,
    *,
    auth: Auth,
    initiator_name: str | None,
    timeout: float,  # noqa: ASYNC109 - passed through from the public API
    max_redirects: int,
) -> ProbeResult:
    """``validate_many``'s probe of one LUN: what ``login()`` and
    :meth:`IscsiSession.lun_capacity` do, as one exchange per connection
    (:class:`._probe.CapacityProbe`).

    Same PDUs, same errors and messages; the differences are in the clock and the
    cost.  ``timeout`` bounds the whole probe (login with its redirects, the
    commands, Logout) where ``login()`` gives each phase its own, and the task wakes
    once per connection instead of once per phase.  As with ``login()``, a Logout
    that fails or goes unanswered does not spoil the answers read before it.
    """
    config = LoginConfig(
        portal=start,
        initiator_name=initiator_name or DEFAULT_INITIATOR_NAME,
        target_name=target,
        auth=auth,
        max_redirects=max_redirects,
        start_operational=True,
    )
    deadline = asyncio.get_running_loop().time() + timeout
    redirected_to: Portal | None = None
    retried_md5 = False
    while True:
        outcome = await _capacity_attempt(config, lun, deadline, timeout)
        if isinstance(outcome, CapacityAnswers):
            if outcome.logout is not None and outcome.logout.response != 0:
                log.info("logout from %s answered %d", start, outcome.logout.response)
            info = _capacity_info(lun, target, outcome.ready, outcome.capacity)
            return ProbeResult(target, start, (info,), redirected_to)
        config = _next_attempt(config, outcome, retried_md5)
        if isinstance(outcome, LoginRedirected):
            redirected_to = outcome.portal
        else:
            retried_md5 = True


async def _capacity_attempt(
    config: LoginConfig,
    lun: int,
    deadline: float,
    timeout: float,  # noqa: ASYNC109 - for the message; the clock is ``deadline``
) -> CapacityAnswers | LoginRedirected | RetryWithMd5:
    """One connection of :func:`_probe_capacity`: its answers, or where to log in next."""
    loop = asyncio.get_running_loop()
    if _ip_family(config.portal.address) == socket.AF_INET:
        stream = await _Stream.connect(config.portal)  # returns at once (_start_connect)
    else:  # a host name or IPv6: the connect itself is waited for
        try:
            async with asyncio.timeout_at(deadline):
                stream = await _Stream.connect(config.portal)
        except TimeoutError:
            raise _probe_timeout(ProbePhase.LOGIN, config.portal, timeout) from None
    probe = CapacityProbe(config, lun)

    def step(data: bytes) -> tuple[bytes, bool]:
        for event in probe.receive_data(data):
            if isinstance(event, AsyncEvent):
                log.info("target at %s sent async event %d", config.portal, event.event)
            else:
                _warn(event)
        return probe.data_to_send(), probe.outcome is not None

    try:
        for event in probe.start():
            _warn(event)
        await stream.converse(
            probe.data_to_send(), step, lambda: probe.phase.value, deadline - loop.time()
        )
    except TimeoutError:
        if probe.answers is None:
            raise _probe_timeout(probe.phase, stream.portal, timeout) from None
    except RemoteProtocolError as exc:
        if probe.answers is None:
            _name_portal(exc, stream.portal, _PROTOCOL_DURING[probe.phase])
            raise
    except IscsiError:
        if probe.answers is None:
            raise
    finally:
        await stream.close()
    # Once the answers are in, a Logout that failed or timed out leaves them standing.
    outcome = probe.outcome if probe.answers is None else probe.answers
    assert outcome is not None  # the exchange ends only with an outcome
    return outcome


# What ``_name_portal`` says the target was doing when it broke the protocol.
_PROTOCOL_DURING = {
    ProbePhase.LOGIN: "during login",
    ProbePhase.COMMANDS: "answering " + CAPACITY_COMMANDS,
    ProbePhase.LOGOUT: "answering Logout",
    ProbePhase.DONE: "after Logout",
}


def _probe_timeout(phase: ProbePhase, portal: Portal, timeout: float) -> IscsiTimeout:
    if phase is ProbePhase.LOGIN:
        return _login_timeout(portal, timeout)
    return _answer_timeout(portal, CAPACITY_COMMANDS, timeout)


def _login_timeout(portal: Portal, timeout: float) -> IscsiTimeout:
    return IscsiTimeout(
        f"The target at portal {portal} did not complete the login within {timeout:g} s; "
        "check that the portal is an iSCSI target and reachable."
    )


def _answer_timeout(portal: Portal, what: str, timeout: float) -> IscsiTimeout:
    return IscsiTimeout(
        f"The target at portal {portal} did not answer {what} within {timeout:g} s; "
        "check that the target is healthy."
    )


# Below this many requests per process a batch is not worth a fork (each child
# costs a few ms of page-table copy and copy-on-write faults; docs/performance.md).
SHARD_MIN_REQUESTS = 200
# Probes in flight.  More of them let each event-loop wake-up serve more ready
# connections: on 2 idle CPUs with tgtd, 500 CHAP validations in one process took
# 0.45-0.46 ms per target at 32 and 0.42-0.43 ms at 64 (128: no better); two
# processes get half each (docs/performance.md, session 4).  With the one-exchange
# probe (session 5), 32, 64 and 128 were within noise of each other (0.39-0.40 ms).
DEFAULT_CONCURRENCY = 64
_SHARD_MAX_PROCESSES = 4  # one tgtd or array answers them all; more only add forks


_LOADAVG = "/proc/loadavg"


def _busy_cpus() -> float:
    """How many CPUs other work is using now.

    The runnable tasks that ``/proc/loadavg`` counts (its fourth field: runnable /
    all, this process included), less this one, the most of three readings 1 ms
    apart.  Not the 1-minute load average: it lags, and right after this very
    process (or the caller's earlier steps, or the target it just discovered) kept a
    CPU busy it reads ~1 on a machine that is idle now, which kept batches in one
    process that two would have finished 1.3x sooner (docs/performance.md, session 4).
    The load average is the fallback where the file is missing.
    """
    try:
        most = 0
        for reading in range(3):
            if reading:
                time.sleep(0.001)
            with open(_LOADAVG, "rb") as f:
                runnable = int(f.read().split()[3].split(b"/")[0])
            most = max(most, runnable - 1)
        return float(most)
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except (AttributeError, OSError):  # pragma: no cover - no load average here
            return 1.0


def default_processes(requests: int) -> int:
    """The ``processes`` that :func:`validate_many` uses by default for ``requests``.

    One per CPU that nothing else is using (the CPUs this process may run on, less
    :func:`_busy_cpus`, rounded), at most 4, and never fewer than
    ``SHARD_MIN_REQUESTS`` requests per process; 1 without ``os.fork`` or with other
    threads running (a fork copies only the calling thread, see :mod:`._shard`).
    Measured on 2 idle CPUs with tgtd on the same two (docs/performance.md, session 5):
    two processes validated 500 CHAP targets ~5 % faster than one (7 of 7 bench runs
    of six rounds; interleaved, 0.345 against 0.365 ms per target), for ~10 % more CPU,
    so a target on this machine no longer keeps a CPU for itself (before the
    one-exchange probe, with more client CPU per target, it did); with other jobs on
    the CPUs, two were no faster and spent 25-50 % more CPU, so a busy machine keeps
    the batch in one process.
    """
    if not hasattr(os, "fork") or threading.active_count() > 1:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = os.cpu_count() or 1
    idle = int(cpus - _busy_cpus() + 0.5)
    return max(1, min(idle, _SHARD_MAX_PROCESSES, requests // SHARD_MIN_REQUESTS))


async def validate_many(
    requests: Iterable[ValidationRequest],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 - the agreed public API
    initiator_name: str | None = None,
    processes: int | None = None,
) -> list[ValidationResult]:
    """Probe every request, at most ``concurrency`` at once; results in request order.

    An iSCSI failure of one request becomes that item's ``error``; it never stops the
    others.  Validation needs the login and the size, so each probe is a lean one:

    * a request with a ``lun`` (the issue's "CHAP login + READ CAPACITY"): login,
      then TEST UNIT READY and READ CAPACITY(16) pipelined (one round trip, see
      :meth:`IscsiSession.lun_capacity`), then logout.  No INQUIRY is sent, so its
      ``LunInfo`` has empty ``vendor``, ``product``, ``serial`` and ``identifiers``,
      and ``device_type`` is 0 (direct access), inferred from READ CAPACITY(16)
      answering GOOD; an absent LUN is still :class:`LunNotPresent` (05/25/00),
      a LUN that is no disk a :class:`ScsiCommandFailed` for READ CAPACITY(16);
    * a request without a ``lun``: REPORT LUNS, then per LUN TEST UNIT READY,
      standard INQUIRY and READ CAPACITY(16) (INQUIRY picks the disk LUNs), so
      ``vendor`` and ``product`` are filled and only ``serial`` and ``identifiers``
      are empty.

    :func:`probe` reads everything, VPD pages included.

    ``timeout`` bounds each probe: with a ``lun``, the whole of it (connect, login
    with its redirects, the commands, Logout; :func:`_probe_capacity`); without,
    the login and then each request, as in :func:`login`.

    The client's CPU limits a batch (see :mod:`._shard`), so by default a large batch
    is split over forked processes on a machine with CPUs to spare
    (:func:`default_processes`: one per idle CPU; all its portals must be IP
    addresses, as a host name would be resolved in a thread).
    ``processes=1`` keeps it in this process; ``concurrency`` is shared out among them.
    Against an array close to its iSCSI connection limit, pass a smaller
    ``concurrency``: each probe in flight is one connection.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if processes is not None and processes < 1:
        raise ValueError("processes must be at least 1")
    items = list(requests)
    if processes is None:
        ip_only = all(_is_ip(req.portal.address) for req in items)
        processes = default_processes(len(items)) if ip_only else 1
    shards = max(1, min(processes, len(items)))
    per_shard = max(1, concurrency // shards)

    async def shard(part: Sequence[ValidationRequest]) -> list[_Outcome]:
        out: list[_Outcome] = [(False, None, None)] * len(part)
        todo = iter(enumerate(part))

        async def worker() -> None:
            # A fixed pool of workers sharing one iterator, instead of a task per
            # request queued on a semaphore: no task, semaphore future and extra
            # wake-up per request (docs/performance.md, 2026-11-24).
            for i, req in todo:
                try:
                    if req.lun is not None:
                        result = await _probe_capacity(
                            req.portal, req.target, req.lun, auth=req.auth,
                            initiator_name=initiator_name, timeout=timeout, max_redirects=3,
                        )  # fmt: skip
                    else:
                        result = await _probe(
                            req.portal, req.target, lun=None, auth=req.auth,
                            initiator_name=initiator_name, timeout=timeout, max_redirects=3,
                            vpd=False,
                        )  # fmt: skip
                except IscsiError as exc:
                    out[i] = (False, None, exc)
                else:
                    out[i] = (True, result, None)

        await asyncio.gather(*(worker() for _ in range(min(per_shard, len(part)))))
        return out

    # Only outcomes cross between processes: requests (and their CHAP secrets) stay here.
    outcomes = await run_sharded(items, shard, processes=shards)
    return [ValidationResult(req, *outcome) for req, outcome in zip(items, outcomes, strict=True)]
