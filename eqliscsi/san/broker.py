"""The SAN session broker: a per-user process that keeps warm Group Manager CLI sessions.

Started on demand by :mod:`eqliscsi.san.broker_client` (``python -m eqliscsi.san.broker``),
it listens on a 0600 Unix socket in a private directory.  Each client connection is one
driver action; its commands run one at a time, in order, but **each command goes to
whichever warm session of its account is free**, so the commands of concurrent actions
interleave on the sessions.  A session is never left idle while a command waits just
because the action that used it last is still thinking (parsing a reply, starting its
next step): with N concurrent actions and ``max_sessions`` sessions, the array sees back
to back commands (bench/san_makespan.py).  This is safe because every command is a
complete one-liner that starts and ends at the group prompt; a session that ends anywhere
else is marked unusable by :class:`~eqliscsi.san.session.CliSession` and closed.

* Sessions are pooled by :meth:`SanEndpoint.credential_key` (host, account, hash of the
  credentials and host-key settings); the cap of ``max_sessions`` per *group* (host:port)
  counts busy and warm sessions together, because arrays limit CLI sessions per group.
* Waiting commands are served first come, first served (:class:`FairLimiter`), each with
  its own deadline, so concurrent actions advance in step and none is starved.  (Serving
  the oldest *action* first was tried: it leaves the youngest actions' chains of
  dependent commands for the end, run one after another on a few sessions while the
  others idle; bench/san_makespan.py measured a 25-30 % longer makespan.)
  When the cap is reached and a warm session of another account is idle, it
  is closed to make room.
* A session is returned to the pool only when it is back at the prompt; after a timeout or
  a broken channel it is closed.  A session idle for a while is probed with an idempotent
  ``cli-settings paging off`` before it is lent again.
* The broker exits after ``idle_exit`` seconds without clients and closes warm sessions
  idle for ``session_idle`` seconds.  Only one broker runs per directory (flock).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import struct
import sys
import time
from collections import deque
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from eqliscsi.errors import SanError
from eqliscsi.san.broker_common import (
    MAX_MESSAGE,
    PID_NAME,
    PROTOCOL_VERSION,
    SOCKET_NAME,
    ensure_private_dir,
)
from eqliscsi.san.commands import CliSetting, Command
from eqliscsi.san.endpoint import SanEndpoint
from eqliscsi.san.errors import SanConnectionError, SanTimeout
from eqliscsi.san.session import CliSession, open_session

__all__ = ["Broker", "FairLimiter", "main"]

log = logging.getLogger("eqliscsi.san.broker")

H = TypeVar("H")
_PROBE_AFTER = 5.0  # seconds idle after which a warm session is probed before lending


class FairLimiter(Generic[H]):
    """A counting semaphore that serves waiters strictly in arrival order.

    ``release(handoff)`` may pass an object (a warm session) along with the slot; the
    oldest waiter gets it when it waits for the same key, otherwise just the slot and the
    caller must dispose of the object (``release`` returns it).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self._waiters: deque[tuple[str, asyncio.Future[H | None]]] = deque()
        self._orphans: list[H] = []

    @property
    def waiting(self) -> int:
        return sum(1 for _, w in self._waiters if not w.done())

    async def acquire(self, key: str = "") -> H | None:
        if self.in_use < self.capacity and not self.waiting:
            self.in_use += 1
            return None
        fut: asyncio.Future[H | None] = asyncio.get_running_loop().create_future()
        self._waiters.append((key, fut))
        try:
            return await fut
        except asyncio.CancelledError:
            # A cancelled waiter stays queued as a done future; release() skips it.
            if fut.done() and not fut.cancelled():
                leftover = fut.result()
                if leftover is not None:
                    self._orphans.append(leftover)
                self.release()  # the slot was handed over just as we gave up
            raise

    def release(self, handoff: H | None = None, key: str = "") -> H | None:
        """Give the slot to the oldest waiter; returns ``handoff`` if nobody took it."""
        while self._waiters:
            wkey, fut = self._waiters.popleft()
            if fut.done():
                continue
            if handoff is not None and wkey == key:
                fut.set_result(handoff)
                return None
            fut.set_result(None)  # hand the slot over: in_use stays the same
            return handoff
        self.in_use -= 1
        return handoff

    def take_orphans(self) -> list[H]:
        """Sessions handed to a waiter that gave up at that moment; the caller closes them."""
        out = list(self._orphans)
        self._orphans.clear()
        return out


@dataclass
class _Warm:
    """A warm session the broker keeps for one endpoint."""

    key: str
    session: CliSession
    stack: AsyncExitStack
    last_used: float


@dataclass(frozen=True)
class _Relayed(Command):
    """A command built and validated by the client process, relayed as its line."""

    mutating: ClassVar[bool] = False
    text: str
    shown: str
    is_mutating: bool
    secret_values: tuple[bytes, ...]

    def words(self) -> tuple[str, ...]:
        return tuple(self.text.split(" "))

    def line(self) -> str:
        return self.text

    def display(self) -> str:
        return self.shown

    def secrets(self) -> tuple[bytes, ...]:
        return self.secret_values


class _MutatingRelayed(_Relayed):
    mutating: ClassVar[bool] = True


def _same_user(writer: asyncio.StreamWriter) -> bool:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return False
    # struct ucred {pid_t pid; uid_t uid; gid_t gid;} (Linux SO_PEERCRED)
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", raw)
    return bool(uid == os.getuid())


def _error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, SanError):
        return {
            "ok": False,
            "error": {
                "reference": exc.reference,
                "message": exc.message,
                "mutating_sent": bool(getattr(exc, "mutating_sent", False)),
            },
        }
    return {
        "ok": False,
        "error": {
            "reference": "san-connection-failed",
            "message": f"The SAN session broker failed ({type(exc).__name__}); retry the action.",
        },
    }


class Broker:
    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_sessions: int = 4,
        idle_exit: float = 120.0,
        session_idle: float = 60.0,
    ) -> None:
        self.directory = Path(directory)
        self.max_sessions = max_sessions
        self.idle_exit = idle_exit
        self.session_idle = session_idle
        self._limiters: dict[str, FairLimiter[_Warm]] = {}
        self._warm: dict[str, list[_Warm]] = {}  # group key -> idle sessions
        self._clients = 0
        self._last_activity = time.monotonic()
        self._stop = asyncio.Event()
        self.sessions_opened = 0
        self._group_names: dict[str, str | None] = {}  # credential key -> group name seen at login
        self._live: dict[str, int] = {}  # credential key -> open sessions (busy or warm)

    def _limiter(self, group: str) -> FairLimiter[_Warm]:
        if group not in self._limiters:
            self._limiters[group] = FairLimiter(self.max_sessions)
        return self._limiters[group]

    async def serve(self) -> None:
        ensure_private_dir(self.directory)
        lock_fd = os.open(self.directory / "broker.lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another broker owns %s; exiting", self.directory)
            os.close(lock_fd)
            return
        sock = self.directory / SOCKET_NAME
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()  # left by a broker that died; we hold the lock, so it is stale
        old = os.umask(0o177)
        try:
            server = await asyncio.start_unix_server(self._client, str(sock), limit=MAX_MESSAGE)
        finally:
            os.umask(old)
        os.chmod(sock, 0o600)
        (self.directory / PID_NAME).write_text(f"{os.getpid()}\n")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        log.info("broker %d listening on %s", os.getpid(), sock)
        janitor = asyncio.create_task(self._janitor())
        try:
            await self._stop.wait()
        finally:
            janitor.cancel()
            server.close()
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
            with contextlib.suppress(FileNotFoundError):
                (self.directory / PID_NAME).unlink()
            for warm_list in self._warm.values():
                for w in warm_list:
                    await self._close(w)
            os.close(lock_fd)
            log.info("broker %d exiting", os.getpid())

    async def _janitor(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.idle_exit / 2))
            try:
                if await self._sweep():
                    self._stop.set()
                    return
            except Exception:
                # The janitor must outlive any one bad session: it is what makes the
                # broker exit when idle.
                log.exception("cleaning up idle sessions failed")

    async def _sweep(self) -> bool:
        """Close idle sessions and orphans; True when the broker should exit."""
        now = time.monotonic()
        # Copies: _take() runs while this task awaits a close.
        for group, warm_list in list(self._warm.items()):
            for w in [w for w in warm_list if now - w.last_used > self.session_idle]:
                if w not in warm_list:
                    continue  # lent out meanwhile
                warm_list.remove(w)
                await self._close(w)
                self._limiter(group).release()
            for w in self._limiter(group).take_orphans():
                await self._close(w)
        idle = self._clients == 0 and not any(self._warm.values())
        return idle and now - self._last_activity > self.idle_exit

    async def _close(self, w: _Warm) -> None:
        self._live[w.key] = self._live.get(w.key, 1) - 1
        with contextlib.suppress(Exception):
            await asyncio.wait_for(w.stack.aclose(), 3.0)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not _same_user(writer):
            # The socket is 0600 in a 0700 directory; this is the second lock on the door
            # in case someone loosened those modes.
            log.warning("refused a connection from another user")
            writer.close()
            return
        self._clients += 1
        self._last_activity = time.monotonic()
        try:
            await self._conversation(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self._clients -= 1
            self._last_activity = time.monotonic()
            writer.close()

    async def _send(self, writer: asyncio.StreamWriter, msg: dict[str, Any]) -> None:
        writer.write(json.dumps(msg).encode() + b"\n")
        await writer.drain()

    async def _conversation(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            raw = await reader.readline()
            if not raw:
                return
            msg = json.loads(raw)
            op = msg.get("op") if isinstance(msg, dict) else None
            if op == "ping":
                await self._send(
                    writer, {"ok": True, "pid": os.getpid(), "version": PROTOCOL_VERSION}
                )
            elif op == "acquire":
                await self._lend(msg, reader, writer)
                return
            else:
                await self._send(
                    writer, _error(SanConnectionError("The broker got an unknown request."))
                )
                return

    async def _take(self, ep: SanEndpoint, wait: float) -> tuple[_Warm, bool]:
        """A session for one command: a warm one, one handed over, or a new one."""
        group, key = ep.group_key, ep.credential_key()
        limiter = self._limiter(group)
        warm_list = self._warm.setdefault(group, [])
        # A warm session of our key needs no new slot.
        for w in reversed(warm_list):
            if w.key == key:
                warm_list.remove(w)
                if await self._healthy(w):
                    return w, True
                await self._close(w)
                limiter.release()
                break
        # Cap reached while sessions of other accounts sit idle: close one to make room.
        if limiter.in_use >= limiter.capacity and warm_list:
            victim = warm_list.pop(0)
            await self._close(victim)
            leftover = limiter.release()
            assert leftover is None
        try:
            handed = await asyncio.wait_for(limiter.acquire(key), wait)
        except TimeoutError:
            raise SanTimeout(
                f"No CLI session to {ep.host} became free within {wait:g} s "
                f"({limiter.capacity} in use); retry later or raise the session limit."
            ) from None
        if handed is not None:
            return handed, True  # a warm session passed straight from the previous action
        try:
            stack = AsyncExitStack()
            session = await stack.enter_async_context(open_session(ep))
            self.sessions_opened += 1
        except BaseException:
            limiter.release()
            raise
        self._live[key] = self._live.get(key, 0) + 1
        self._group_names[key] = session.group
        return _Warm(key, session, stack, time.monotonic()), False

    async def _healthy(self, w: _Warm) -> bool:
        if not w.session.usable:
            return False
        if time.monotonic() - w.last_used < _PROBE_AFTER:
            return True
        try:
            res = await w.session.run(CliSetting("paging"), check=False)
        except SanError:
            return False
        return res.error is None

    async def _give_back(self, w: _Warm, group: str, *, healthy: bool) -> None:
        """Return a session after one command: to the best waiter, the warm list or closed."""
        w.last_used = time.monotonic()
        limiter = self._limiter(group)
        if healthy and w.session.usable:
            if limiter.waiting:
                # Someone is queued: pass the session on if it wants this account,
                # otherwise close it so that the slot moves on.
                left = limiter.release(w, key=w.key)
                if left is not None:
                    await self._close(left)
            else:
                self._warm.setdefault(group, []).append(w)
        else:
            await self._close(w)
            limiter.release()

    async def _lend(
        self, msg: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            ep = SanEndpoint.from_wire(msg.get("endpoint") or {})
            wait = float(msg.get("wait", 60.0))
            key = ep.credential_key()
            if self._live.get(key, 0) > 0 and key in self._group_names:
                name: str | None = self._group_names[key]
                reused = True
            else:
                # No session of this account yet: log in now, so that a wrong password
                # or host key fails the acquire, as the client expects.
                w, reused = await self._take(ep, wait)
                name = w.session.group
                await self._give_back(w, ep.group_key, healthy=True)
        except Exception as exc:
            await self._send(writer, _error(exc))
            return
        await self._send(writer, {"ok": True, "group": name, "reused": reused})
        await self._relay(ep, wait, reader, writer)

    async def _relay(
        self,
        ep: SanEndpoint,
        wait: float,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """Run the client's commands, each on whichever session is free first."""
        while True:
            raw = await reader.readline()
            if not raw:
                return
            msg = json.loads(raw)
            if not isinstance(msg, dict) or msg.get("op") != "run":
                return
            cls = _MutatingRelayed if msg.get("mutating") else _Relayed
            cmd = cls(
                text=str(msg["line"]),
                shown=str(msg.get("display", "")),
                is_mutating=bool(msg.get("mutating")),
                secret_values=tuple(str(s).encode() for s in msg.get("secrets", [])),
            )
            if "\r" in cmd.text or "\n" in cmd.text:
                await self._send(
                    writer, _error(SanConnectionError("The broker refused a multi-line command."))
                )
                return
            try:
                w, _ = await self._take(ep, wait)
            except Exception as exc:
                await self._send(writer, _error(exc))
                return
            try:
                res = await w.session.run(cmd, check=False)
            except SanError as exc:
                await self._give_back(w, ep.group_key, healthy=False)
                await self._send(writer, _error(exc))
                return
            except BaseException:
                await self._give_back(w, ep.group_key, healthy=False)
                raise
            # The session goes back before the reply does: the next queued command (of
            # any action) runs while this client reads its reply.
            await self._give_back(w, ep.group_key, healthy=True)
            await self._send(
                writer,
                {
                    "ok": True,
                    "lines": list(res.lines),
                    "mode": res.mode,
                    "reprinted": res.reprinted,
                },
            )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eqliscsi.san.broker")
    ap.add_argument("--dir", required=True, type=Path)
    ap.add_argument("--max-sessions", type=int, default=4)
    ap.add_argument("--idle-exit", type=float, default=120.0)
    ap.add_argument("--session-idle", type=float, default=60.0)
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s broker[%(process)d] %(levelname)s %(message)s"
    )
    broker = Broker(
        args.dir,
        max_sessions=max(1, args.max_sessions),
        idle_exit=args.idle_exit,
        session_idle=args.session_idle,
    )
    asyncio.run(broker.serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
