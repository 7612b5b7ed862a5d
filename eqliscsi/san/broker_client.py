"""Client side of the SAN session broker — standard library only.

Every OpenNebula remote is its own short-lived process, ``import asyncssh`` alone costs
about 0.36 s, and arrays limit concurrent CLI sessions while oned fires many actions at
once.  So a small broker process per front-end user keeps up to N warm CLI sessions per
group (like OpenSSH's ControlPersist) and remotes borrow one for the length of an action.

This module is what a remote imports.  It never imports asyncssh (a test checks it), so a
remote with a warm broker starts in the time of a plain Python start.

Protocol: newline-delimited JSON over a Unix stream socket in a 0700 directory, the socket
itself 0600; only the owning user can connect, which is why the endpoint (password
included) may travel on it.  One connection = one action = one CLI session::

    -> {"op": "ping"}                          <- {"ok": true, "pid": 123}
    -> {"op": "acquire", "endpoint": {...}, "wait": 60}
                                               <- {"ok": true, "group": "g", "reused": false}
    -> {"op": "run", "line": ..., "display": ..., "mutating": false, "secrets": [...]}
                                               <- {"ok": true, "lines": [...], "mode": null, ...}
    (any reply may instead be {"ok": false, "error": {"reference": ..., "message": ...}})

Crash safety: a broker that does not answer ``ping`` in time is killed (after checking
that the pid is ours and is a broker) and replaced; if no broker can be started the
action falls back to a direct SSH connection, so it is never blocked past its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from eqliscsi.errors import SanError
from eqliscsi.san.broker_common import (
    LOG_NAME,
    MAX_MESSAGE,
    PROTOCOL_VERSION,
    SPAWN_LOCK,
    BrokerConfig,
    completed_from_reply,
    default_broker_dir,
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

__all__ = [
    "BrokerConfig",
    "BrokerRunner",
    "broker_session",
    "default_broker_dir",
    "open_runner",
    "run_action",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


class BrokerRunner:
    """A borrowed CLI session; implements :class:`eqliscsi.san.ops.CliRunner`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        endpoint: SanEndpoint,
        group: str,
        reused: bool,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.endpoint = endpoint
        self.group = group
        self.reused = reused
        self.mutating_sent = False
        self.round_trips = 0
        self._lock = asyncio.Lock()
        # time.monotonic() when the first command was written (the bench's "first CLI byte").
        self.first_sent_at: float | None = None

    async def run(self, command: Command, *, check: bool = True) -> CommandCompleted:
        if command.mutating:
            self.mutating_sent = True
        if self.first_sent_at is None:
            self.first_sent_at = time.monotonic()
        # The broker enforces the command timeout itself; the margin covers a stuck broker.
        # One request in flight at a time: replies carry no id, so two coroutines sharing
        # this runner must not interleave (the action's commands are serialized anyway).
        async with self._lock:
            reply = await _exchange(
                self._reader,
                self._writer,
                run_message(command),
                limit=self.endpoint.command_timeout + 5.0,
                what=f"'{command.display()}'",
                mutating_sent=self.mutating_sent,
            )
        self.round_trips += 1
        return completed_from_reply(command, reply, check=check, mutating_sent=self.mutating_sent)


async def _exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    msg: dict[str, Any],
    *,
    limit: float,
    what: str,
    mutating_sent: bool,
) -> dict[str, Any]:
    try:
        async with asyncio.timeout(limit):
            writer.write(json.dumps(msg).encode() + b"\n")
            await writer.drain()
            raw = await reader.readline()
    except TimeoutError:
        raise SanTimeout(
            f"The SAN session broker did not answer {what} within {limit:g} s; "
            "the next action will replace it.",
            mutating_sent=mutating_sent,
        ) from None
    except (OSError, ValueError) as exc:
        raise SanConnectionError(
            f"The connection to the SAN session broker broke during {what} "
            f"({type(exc).__name__}); retry the action.",
            mutating_sent=mutating_sent,
        ) from None
    if not raw:
        raise SanConnectionError(
            f"The SAN session broker closed the connection during {what}; retry the action.",
            mutating_sent=mutating_sent,
        )
    try:
        reply = json.loads(raw)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise SanProtocolError("The SAN session broker sent an unreadable reply; restart it.")
    return reply


async def _open(cfg: BrokerConfig) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to a live broker and check it answers ``ping``; raise OSError/TimeoutError."""
    async with asyncio.timeout(cfg.ping_timeout):
        reader, writer = await asyncio.open_unix_connection(cfg.socket, limit=MAX_MESSAGE)
    try:
        reply = await _exchange(
            reader, writer, {"op": "ping"}, limit=cfg.ping_timeout, what="ping", mutating_sent=False
        )
    except BaseException:
        writer.close()
        raise
    if not reply.get("ok") or reply.get("version") != PROTOCOL_VERSION:
        writer.close()
        raise SanProtocolError("The SAN session broker speaks another protocol; restart it.")
    return reader, writer


async def _connect_or_start(
    cfg: BrokerConfig,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    ensure_private_dir(cfg.directory)
    try:
        return await _open(cfg)
    except (OSError, TimeoutError, SanError) as exc:
        stuck = isinstance(exc, TimeoutError | SanTimeout | SanProtocolError)
    deadline = time.monotonic() + cfg.start_timeout
    lock_fd = os.open(cfg.file(SPAWN_LOCK), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        # One spawner at a time; the others wait for its broker.  Bounded by the deadline.
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
                await asyncio.sleep(0.02)
        with contextlib.suppress(OSError, TimeoutError, SanError):
            return await _open(cfg)  # someone else started it while we waited
        if stuck:
            kill_stuck(cfg)
        spawn(cfg)
        while time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            with contextlib.suppress(OSError, TimeoutError, SanError):
                return await _open(cfg)
        raise SanTimeout(
            f"The SAN session broker did not start within {cfg.start_timeout:g} s; "
            f"see {cfg.file(LOG_NAME)}."
        )
    finally:
        os.close(lock_fd)


@asynccontextmanager
async def broker_session(
    endpoint: SanEndpoint, cfg: BrokerConfig | None = None
) -> AsyncIterator[BrokerRunner]:
    """Borrow one warm CLI session from the broker (starting it if needed) for one action."""
    cfg = cfg or BrokerConfig()
    reader, writer = await _connect_or_start(cfg)
    try:
        reply = await _exchange(
            reader,
            writer,
            {"op": "acquire", "endpoint": endpoint.to_wire(), "wait": cfg.queue_timeout},
            limit=cfg.queue_timeout + endpoint.connect_timeout * 2 + 5.0,
            what="the request for a CLI session",
            mutating_sent=False,
        )
        if not reply.get("ok"):
            raise_remote(reply.get("error") or {}, False)
        yield BrokerRunner(
            reader, writer, endpoint, str(reply.get("group")), bool(reply.get("reused"))
        )
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


@asynccontextmanager
async def open_runner(
    endpoint: SanEndpoint, broker: BrokerConfig | None
) -> AsyncIterator[CliRunner]:
    """A runner for one action: through the broker, or a direct SSH session when None.

    If the broker cannot be reached or started and ``fallback_direct`` is set, the action
    connects directly (slower, but never blocked by a broken broker).
    """
    if broker is not None:
        try:
            cm = broker_session(endpoint, broker)
            runner = await cm.__aenter__()
        except (SanAuthError, SanHostKeyError):
            raise
        except SanConnectionError as exc:
            if not broker.fallback_direct or is_session_problem(exc):
                raise
            log.warning("SAN session broker unavailable (%s); connecting directly", exc)
        else:
            try:
                yield runner
            except BaseException as exc:
                if not await cm.__aexit__(type(exc), exc, exc.__traceback__):
                    raise
            else:
                await cm.__aexit__(None, None, None)
            return
    # Imported here on purpose: only direct mode pays for asyncssh.
    from eqliscsi.san.session import open_session  # noqa: PLC0415

    async with open_session(endpoint) as session:
        yield session


async def run_action(
    endpoint: SanEndpoint,
    action: Callable[[CliRunner], Awaitable[T]],
    *,
    broker: BrokerConfig | None = None,
    attempts: int = 3,
    backoff: float = 0.5,
) -> T:
    """Run one driver action's commands on one session, retrying only safe failures.

    A connection failure is retried when no mutating command had been sent in that
    attempt; auth and host-key failures are never retried.
    """
    for attempt in range(1, attempts + 1):
        try:
            async with open_runner(endpoint, broker) as runner:
                return await action(runner)
        except (SanAuthError, SanHostKeyError):
            raise
        except SanConnectionError as exc:
            if exc.mutating_sent or attempt == attempts:
                raise
            log.info("retrying the SAN action after: %s", exc)
            await asyncio.sleep(backoff * attempt * (0.5 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover
