"""Blocking client of the SAN session broker: no asyncio, no asyncssh.

On the build VM ``import asyncio`` alone costs 50-70 ms of CPU, more than the whole
per-action budget (docs/performance.md), and a remote that only talks to the broker does
not need an event loop.  The operations in :mod:`eqliscsi.san.ops` are coroutines, but
with :class:`SyncBrokerRunner` they never suspend: every ``await`` reaches
:meth:`SyncBrokerRunner.run`, which does blocking socket I/O and returns.  :func:`drive`
therefore runs them to completion with a single ``send(None)`` and refuses any coroutine
that tries to wait for something else.

Timeouts are socket timeouts, each bounded by the endpoint's command timeout, so no call
blocks past its deadline; the broker lookup, start and replacement follow the same rules as
the asyncio client (:mod:`eqliscsi.san.broker_client`).
"""

from __future__ import annotations

# _socket is the C module under ``socket``: the Python wrapper converts every AF_*/SOCK_*/
# MSG_* constant into enums at import and pulls in selectors, select and array for
# sendfile, ~2.5 ms of each remote's start-up for a Unix-socket client that needs only
# connect, sendall, recv, settimeout and close (all of them methods of _socket.socket,
# which raise the same OSError/TimeoutError subclasses).
import _socket
import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager

from eqliscsi.errors import SanError
from eqliscsi.san._lazylog import LazyLogger
from eqliscsi.san.broker_common import (
    LOG_NAME,
    MAX_MESSAGE,
    PROTOCOL_VERSION,
    SPAWN_LOCK,
    BrokerConfig,
    completed_from_reply,
    ensure_private_dir,
    is_session_problem,
    kill_stuck,
    raise_remote,
    run_message,
    spawn,
)
from eqliscsi.san.commands import Command
from eqliscsi.san.conversation import CommandCompleted
from eqliscsi.san.endpoint import SanEndpoint
from eqliscsi.san.errors import (
    SanAuthError,
    SanConnectionError,
    SanHostKeyError,
    SanProtocolError,
    SanTimeout,
)
from eqliscsi.san.ops import CliRunner

__all__ = ["SyncBrokerRunner", "drive", "run_action_sync", "sync_broker_session"]

log = LazyLogger(__name__)
TYPE_CHECKING = False  # not typing's: importing typing costs a remote ~3 ms (docs/performance.md)

if TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (its awaits all end in blocking calls)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise SanProtocolError(
        "A SAN operation waited on an event loop under the blocking broker client; "
        "this is a bug: use eqliscsi.san.broker_client.run_action instead."
    )


class _Channel:
    """One JSON-lines connection to the broker with per-call deadlines."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self._buf = b""

    def exchange(
        self, msg: dict[str, Any], *, limit: float, what: str, mutating_sent: bool
    ) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        try:
            self.sock.settimeout(limit)
            self.sock.sendall(json.dumps(msg).encode() + b"\n")
            while b"\n" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.sock.settimeout(left)
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise SanConnectionError(
                        f"The SAN session broker closed the connection during {what}; "
                        "retry the action.",
                        mutating_sent=mutating_sent,
                    )
                self._buf += chunk
                if len(self._buf) > MAX_MESSAGE:
                    raise SanProtocolError("The SAN session broker sent an oversized reply.")
        except TimeoutError:
            raise SanTimeout(
                f"The SAN session broker did not answer {what} within {limit:g} s; "
                "the next action will replace it.",
                mutating_sent=mutating_sent,
            ) from None
        except OSError as exc:
            raise SanConnectionError(
                f"The connection to the SAN session broker broke during {what} "
                f"({type(exc).__name__}); retry the action.",
                mutating_sent=mutating_sent,
            ) from None
        raw, self._buf = self._buf.split(b"\n", 1)
        try:
            reply = json.loads(raw)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise SanProtocolError("The SAN session broker sent an unreadable reply; restart it.")
        return reply

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class SyncBrokerRunner:
    """A borrowed CLI session; a :class:`CliRunner` whose ``run`` never suspends."""

    def __init__(self, channel: _Channel, endpoint: SanEndpoint, group: str, reused: bool):
        self._channel = channel
        self.endpoint = endpoint
        self.group = group
        self.reused = reused
        self.mutating_sent = False
        self.round_trips = 0
        self.first_sent_at: float | None = None

    async def run(self, command: Command, *, check: bool = True) -> CommandCompleted:
        if command.mutating:
            self.mutating_sent = True
        if self.first_sent_at is None:
            self.first_sent_at = time.monotonic()
        reply = self._channel.exchange(
            run_message(command),
            limit=self.endpoint.command_timeout + 5.0,
            what=f"'{command.display()}'",
            mutating_sent=self.mutating_sent,
        )
        self.round_trips += 1
        return completed_from_reply(command, reply, check=check, mutating_sent=self.mutating_sent)


def _open(cfg: BrokerConfig) -> _Channel:
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(cfg.ping_timeout)
        sock.connect(cfg.socket)
        ch = _Channel(sock)
        reply = ch.exchange(
            {"op": "ping"}, limit=cfg.ping_timeout, what="ping", mutating_sent=False
        )
    except BaseException:
        sock.close()
        raise
    if not reply.get("ok") or reply.get("version") != PROTOCOL_VERSION:
        ch.close()
        raise SanProtocolError("The SAN session broker speaks another protocol; restart it.")
    return ch


def _connect_or_start(cfg: BrokerConfig) -> _Channel:
    ensure_private_dir(cfg.directory)
    try:
        return _open(cfg)
    except (OSError, SanError) as exc:
        stuck = isinstance(exc, SanTimeout | SanProtocolError)
    deadline = time.monotonic() + cfg.start_timeout
    lock_fd = os.open(cfg.file(SPAWN_LOCK), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SanTimeout(
                        "Another action is starting the SAN session broker and it did not "
                        f"come up within {cfg.start_timeout:g} s; see {cfg.file(LOG_NAME)}."
                    ) from None
                time.sleep(0.02)
        with contextlib.suppress(OSError, SanError):
            return _open(cfg)
        if stuck:
            kill_stuck(cfg)
        spawn(cfg)
        while time.monotonic() < deadline:
            time.sleep(0.02)
            with contextlib.suppress(OSError, SanError):
                return _open(cfg)
        raise SanTimeout(
            f"The SAN session broker did not start within {cfg.start_timeout:g} s; "
            f"see {cfg.file(LOG_NAME)}."
        )
    finally:
        os.close(lock_fd)


@contextmanager
def sync_broker_session(
    endpoint: SanEndpoint, cfg: BrokerConfig | None = None
) -> Iterator[SyncBrokerRunner]:
    """Borrow one warm CLI session for one action (blocking; starts the broker if needed)."""
    cfg = cfg or BrokerConfig()
    ch = _connect_or_start(cfg)
    try:
        reply = ch.exchange(
            {"op": "acquire", "endpoint": endpoint.to_wire(), "wait": cfg.queue_timeout},
            limit=cfg.queue_timeout + endpoint.connect_timeout * 2 + 5.0,
            what="the request for a CLI session",
            mutating_sent=False,
        )
        if not reply.get("ok"):
            raise_remote(reply.get("error") or {}, False)
        yield SyncBrokerRunner(ch, endpoint, str(reply.get("group")), bool(reply.get("reused")))
    finally:
        ch.close()


def run_action_sync(
    endpoint: SanEndpoint,
    action: Callable[[CliRunner], Coroutine[Any, Any, T]],
    *,
    broker: BrokerConfig | None = None,
    attempts: int = 3,
    backoff: float = 0.5,
) -> T:
    """:func:`eqliscsi.san.broker_client.run_action`, blocking, through the broker.

    Falls back to a direct SSH connection (asyncio + asyncssh, imported only then) when no
    broker can be had and ``fallback_direct`` is set.
    """
    cfg = broker or BrokerConfig()
    for attempt in range(1, attempts + 1):
        try:
            with sync_broker_session(endpoint, cfg) as runner:
                return drive(action(runner))
        except (SanAuthError, SanHostKeyError):
            raise
        except SanConnectionError as exc:
            if not exc.mutating_sent and cfg.fallback_direct and not is_session_problem(exc):
                log.warning("SAN session broker unavailable (%s); connecting directly", exc)
                import asyncio  # noqa: PLC0415 - direct mode only

                from eqliscsi.san.broker_client import run_action  # noqa: PLC0415

                return asyncio.run(run_action(endpoint, action, broker=None, attempts=attempts))
            if exc.mutating_sent or attempt == attempts:
                raise
            log.info("retrying the SAN action after: %s", exc)
            # Jitter from os.urandom: the random module imports hashlib (several ms).
            jitter = int.from_bytes(os.urandom(2), "big") / 65536
            time.sleep(backoff * attempt * (0.5 + jitter))
    raise AssertionError("unreachable")  # pragma: no cover
