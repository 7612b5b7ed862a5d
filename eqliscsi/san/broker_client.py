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
import signal
import stat
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from eqliscsi.errors import SanError
from eqliscsi.san.commands import Command
from eqliscsi.san.conversation import CommandCompleted, check_result
from eqliscsi.san.endpoint import SanEndpoint
from eqliscsi.san.errors import (
    SanAuthError,
    SanConnectionError,
    SanHostKeyError,
    SanProtocolError,
    SanTimeout,
)
from eqliscsi.san.ops import CliRunner
from eqliscsi.san.parsers import find_error

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

SOCKET_NAME = "broker.sock"
PID_NAME = "broker.pid"
SPAWN_LOCK = "spawn.lock"
LOG_NAME = "broker.log"
MAX_MESSAGE = 32 * 1024 * 1024
PROTOCOL_VERSION = 1


def default_broker_dir() -> Path:
    env = os.environ.get("EQLISCSI_BROKER_DIR")
    if env:
        return Path(env)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "eqliscsi"
    return Path(f"/tmp/eqliscsi-{os.getuid()}")  # noqa: S108 - checked to be ours and 0700


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """How to find (and, when needed, start) the broker."""

    directory: Path = field(default_factory=default_broker_dir)
    max_sessions: int = 4  # warm + busy CLI sessions per group
    idle_exit: float = 120.0  # the broker exits after this long without work
    session_idle: float = 60.0  # a warm session is closed after this long unused
    queue_timeout: float = 60.0  # how long an action waits for a free session
    ping_timeout: float = 2.0  # a broker slower than this is considered stuck
    start_timeout: float = 10.0  # spawning a broker (imports asyncssh) takes < 1 s
    fallback_direct: bool = True  # connect directly when no broker can be had

    @property
    def socket(self) -> Path:
        return self.directory / SOCKET_NAME


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` 0700, or check that an existing one is ours and private."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise SanConnectionError(
            f"The broker directory {path} is not a private directory of this user; "
            "remove it or set EQLISCSI_BROKER_DIR to one (mode 0700)."
        )


_ERRORS: dict[str, type[SanError]] = {
    cls.reference: cls
    for cls in (SanConnectionError, SanTimeout, SanAuthError, SanHostKeyError, SanProtocolError)
}


def _raise_remote(error: dict[str, Any], mutating_sent: bool) -> None:
    cls = _ERRORS.get(str(error.get("reference")), SanConnectionError)
    message = str(error.get("message", "The session broker failed; retry the action."))
    sent = mutating_sent or bool(error.get("mutating_sent"))
    if issubclass(cls, SanConnectionError):
        raise cls(message, mutating_sent=sent)
    raise cls(message)


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
        # time.monotonic() when the first command was written (the bench's "first CLI byte").
        self.first_sent_at: float | None = None

    async def run(self, command: Command, *, check: bool = True) -> CommandCompleted:
        msg = {
            "op": "run",
            "line": command.line(),
            "display": command.display(),
            "mutating": command.mutating,
            "secrets": [s.decode("utf-8", "replace") for s in command.secrets()],
        }
        if command.mutating:
            self.mutating_sent = True
        if self.first_sent_at is None:
            self.first_sent_at = time.monotonic()
        # The broker enforces the command timeout itself; the margin covers a stuck broker.
        reply = await _exchange(
            self._reader,
            self._writer,
            msg,
            limit=self.endpoint.command_timeout + 5.0,
            what=f"'{command.display()}'",
            mutating_sent=self.mutating_sent,
        )
        if not reply.get("ok"):
            _raise_remote(reply.get("error") or {}, self.mutating_sent)
        lines = tuple(str(x) for x in reply.get("lines", []))
        self.round_trips += 1
        res = CommandCompleted(
            command=command,
            lines=lines,
            error=find_error(lines),
            mode=reply.get("mode"),
            reprinted=str(reply.get("reprinted", "")),
            events=(),
        )
        return check_result(res) if check else res


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
        reader, writer = await asyncio.open_unix_connection(str(cfg.socket), limit=MAX_MESSAGE)
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


def _broker_pid(cfg: BrokerConfig) -> int | None:
    try:
        pid = int((cfg.directory / PID_NAME).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        st = os.stat(f"/proc/{pid}")
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    # Only ever signal our own broker, never a process that reused the pid.
    if st.st_uid != os.getuid() or b"eqliscsi.san.broker" not in cmdline:
        return None
    return pid


def _kill_stuck(cfg: BrokerConfig) -> None:
    pid = _broker_pid(cfg)
    if pid is not None:
        log.warning("the SAN session broker (pid %d) is not answering; replacing it", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        cfg.socket.unlink()


def _spawn(cfg: BrokerConfig) -> None:
    import subprocess  # noqa: PLC0415 - only the first action of a burst pays for it

    argv = [
        sys.executable,
        "-m",
        "eqliscsi.san.broker",
        "--dir",
        str(cfg.directory),
        "--max-sessions",
        str(cfg.max_sessions),
        "--idle-exit",
        str(cfg.idle_exit),
        "--session-idle",
        str(cfg.session_idle),
    ]
    log_fd = os.open(cfg.directory / LOG_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        # A new session: the broker must outlive this remote and not get its signals.
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            start_new_session=True,
            close_fds=True,
            cwd="/",
        )
    finally:
        os.close(log_fd)


async def _connect_or_start(
    cfg: BrokerConfig,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    ensure_private_dir(cfg.directory)
    try:
        return await _open(cfg)
    except (OSError, TimeoutError, SanError) as exc:
        stuck = isinstance(exc, TimeoutError | SanTimeout | SanProtocolError)
    deadline = time.monotonic() + cfg.start_timeout
    lock_fd = os.open(cfg.directory / SPAWN_LOCK, os.O_WRONLY | os.O_CREAT, 0o600)
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
                        f"come up within {cfg.start_timeout:g} s; see {cfg.directory / LOG_NAME}."
                    ) from None
                await asyncio.sleep(0.02)
        with contextlib.suppress(OSError, TimeoutError, SanError):
            return await _open(cfg)  # someone else started it while we waited
        if stuck:
            _kill_stuck(cfg)
        _spawn(cfg)
        while time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            with contextlib.suppress(OSError, TimeoutError, SanError):
                return await _open(cfg)
        raise SanTimeout(
            f"The SAN session broker did not start within {cfg.start_timeout:g} s; "
            f"see {cfg.directory / LOG_NAME}."
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
            _raise_remote(reply.get("error") or {}, False)
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
            if not broker.fallback_direct or _is_session_problem(exc):
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


def _is_session_problem(exc: SanConnectionError) -> bool:
    # Errors the broker relayed from the group itself (timeouts talking to the array, a
    # full session queue) are answers, not a broken broker: falling back would only add
    # one more session to an array that is already at its limit.
    return not str(exc.message).startswith("The SAN session broker")


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
