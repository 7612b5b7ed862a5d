"""asyncssh adapter: one interactive Group Manager CLI session over SSH.

This module is only a pump around :class:`~eqliscsi.san.conversation.CliConversation`:
it opens a PTY shell channel (255 columns, so that little wraps even before ``stty``),
feeds the bytes it reads into the conversation, writes what the conversation returns, and
puts a timeout on every wait.  ``async with open_session(endpoint) as s`` connects, waits for
the prompt, sends :func:`~eqliscsi.san.commands.session_setup` and logs out on exit.

Host keys are checked against known_hosts by default.  A pinned SHA256 fingerprint and
trust-on-first-use (append to a known_hosts file the first time a host is seen, refuse a
changed key afterwards) are explicit options.  The password travels only inside asyncssh's
auth request; it is never put in argv, logs or messages.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import asyncssh

from eqliscsi.san.commands import Command, session_setup
from eqliscsi.san.conversation import (
    CliConversation,
    Closed,
    CommandCompleted,
    ConvState,
    Ready,
    check_result,
)
from eqliscsi.san.endpoint import HostKeyPolicy, SanEndpoint
from eqliscsi.san.errors import (
    SanAuthError,
    SanConnectionError,
    SanHostKeyError,
    SanProtocolError,
    SanTimeout,
)

if TYPE_CHECKING:
    from asyncssh import SSHKey

__all__ = [
    "CliSession",
    "HostKeyPolicy",
    "SanEndpoint",
    "check_result",
    "open_session",
    "with_session",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

_READ_SIZE = 65536
TERM_COLUMNS = 255


class _Client(asyncssh.SSHClient):
    """Host key decisions for the PINNED and TRUST_ON_FIRST_USE policies."""

    def __init__(self, endpoint: SanEndpoint) -> None:
        self._ep = endpoint

    def validate_host_public_key(self, host: str, addr: str, port: int, key: SSHKey) -> bool:
        ep = self._ep
        if ep.host_key_policy is HostKeyPolicy.PINNED:
            return bool(key.get_fingerprint("sha256") == ep.host_key_fingerprint)
        if ep.host_key_policy is HostKeyPolicy.TRUST_ON_FIRST_USE:
            assert ep.known_hosts is not None
            path = Path(ep.known_hosts)
            if path.exists() and path.stat().st_size:
                trusted = asyncssh.read_known_hosts(str(path)).match(host, addr, port)[0]
                if trusted:
                    return False  # a different key was recorded: refuse, never re-learn
            name = host if port == 22 else f"[{host}]:{port}"
            line = f"{name} {key.export_public_key('openssh').decode().strip()}\n"
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as f:
                f.write(line)
            log.info("recorded the SSH host key of %s (%s)", name, key.get_fingerprint("sha256"))
            return True
        return False


def _known_hosts_arg(ep: SanEndpoint) -> object:
    if ep.host_key_policy is HostKeyPolicy.PINNED:
        return ([], [], [])  # nothing trusted by list: every key goes to _Client
    if ep.host_key_policy is HostKeyPolicy.TRUST_ON_FIRST_USE:
        assert ep.known_hosts is not None
        p = Path(ep.known_hosts)
        if not p.exists() or not p.stat().st_size:
            return ([], [], [])
        return str(p)
    if ep.known_hosts is None:
        default = Path("~/.ssh/known_hosts").expanduser()
        if not default.is_file():
            # asyncssh would fall back to "trust nothing" anyway; say so clearly below.
            return ([], [], [])
        return str(default)
    if not Path(ep.known_hosts).is_file():
        raise SanHostKeyError(
            f"The known_hosts file {ep.known_hosts} does not exist; create it with the "
            "group's host key (ssh-keyscan) or choose another host key policy."
        )
    return ep.known_hosts


class CliSession:
    """A logged-in shell; commands run one at a time, in order."""

    def __init__(
        self,
        endpoint: SanEndpoint,
        process: asyncssh.SSHClientProcess[bytes],
        conversation: CliConversation,
    ) -> None:
        self.endpoint = endpoint
        self._proc = process
        self._conv = conversation
        self._lock = asyncio.Lock()
        self.round_trips = 0
        # Why the shell can no longer be trusted with a command (rejected input left in
        # the edit buffer, or a sub-mode prompt), or None.
        self._dirty: str | None = None

    @property
    def group(self) -> str | None:
        return self._conv.group

    @property
    def mutating_sent(self) -> bool:
        return self._conv.mutating_sent

    @property
    def usable(self) -> bool:
        """At the prompt with the channel open: safe to lend to another action."""
        return (
            self._dirty is None
            and self._conv.state is ConvState.READY
            and not self._proc.stdout.at_eof()
            and not self._proc.channel.get_connection().is_closed()
        )

    async def _pump_until_event(self, limit: float, what: str) -> Ready | CommandCompleted:
        try:
            async with asyncio.timeout(limit):
                while True:
                    ev = self._conv.next_event()
                    if isinstance(ev, Ready | CommandCompleted):
                        return ev
                    if isinstance(ev, Closed):
                        raise SanConnectionError(
                            f"The group closed the CLI session during {what}; retry, and "
                            "check the array's session limit if it happens again.",
                            mutating_sent=self._conv.mutating_sent,
                        )
                    out = self._conv.data_to_send()
                    if out:
                        self._proc.stdin.write(out)
                    data = await self._proc.stdout.read(_READ_SIZE)
                    if not data:
                        self._conv.receive_eof()
                        continue
                    self._conv.receive_data(data)
        except TimeoutError:
            raise SanTimeout(
                f"The group did not answer {what} within {limit:g} s; check that "
                f"{self.endpoint.host} is reachable and not overloaded.",
                mutating_sent=self._conv.mutating_sent,
            ) from None
        except (OSError, asyncssh.Error) as exc:
            raise SanConnectionError(
                f"The SSH session to {self.endpoint.host} broke during {what} "
                f"({type(exc).__name__}); retry the action.",
                mutating_sent=self._conv.mutating_sent,
            ) from None

    async def run(self, command: Command, *, check: bool = True) -> CommandCompleted:
        """Send one command and return its output; raise SanCommandError on an error line."""
        async with self._lock:
            if self._dirty is not None:
                raise SanProtocolError(
                    f"The CLI session to {self.endpoint.host} cannot take more commands: "
                    f"{self._dirty}; retry the action on a new session."
                )
            shown = command.display()
            log.debug("%s: > %s", self.endpoint.host, shown)
            self._proc.stdin.write(self._conv.send_command(command))
            ev = await self._pump_until_event(self.endpoint.command_timeout, f"'{shown}'")
            assert isinstance(ev, CommandCompleted)
            self.round_trips += 1
            if ev.error:
                log.debug("%s: %s", self.endpoint.host, ev.error)
            if ev.reprinted:
                # reprintBadInput is on: the array put the rejected line back in the edit
                # buffer, and the next command would be appended to it (Cinder 1378394).
                self._dirty = "the array kept rejected input in its edit buffer"
            elif ev.mode is not None:
                # Our commands are complete one-liners; a sub-mode prompt means the array
                # read one differently, and later commands would run inside that mode.
                self._dirty = f"the array is in sub-mode {ev.mode!r}"
            return check_result(ev) if check else ev

    async def _login(self) -> None:
        ev = await self._pump_until_event(self.endpoint.connect_timeout, "the login prompt")
        assert isinstance(ev, Ready)
        if self.endpoint.group is not None and ev.group != self.endpoint.group:
            raise SanConnectionError(
                f"The group at {self.endpoint.host} calls itself {ev.group!r}, not "
                f"{self.endpoint.group!r}; fix the configured group name or address."
            )
        for cmd in session_setup():
            # Old firmware may lack a setting (reprintBadInput, for one); that is worth a
            # warning, not a failed action.  A poisoned edit buffer is caught by run().
            res = await self.run(cmd, check=False)
            if res.error:
                log.warning("%s: '%s' failed: %s", self.endpoint.host, cmd.display(), res.error)

    async def _logout(self) -> None:
        # 'logout' asks for confirmation only when confirmation is on, which setup turned
        # off; closing the channel is enough if the array does not answer.
        try:
            self._proc.stdin.write(b"logout\r")
            self._proc.stdin.write_eof()
        except (OSError, asyncssh.Error):
            pass


async def _connect(ep: SanEndpoint) -> asyncssh.SSHClientConnection:
    kwargs: dict[str, object] = {
        "port": ep.port,
        "username": ep.username,
        "known_hosts": _known_hosts_arg(ep),
        "client_factory": lambda: _Client(ep),
        "connect_timeout": ep.connect_timeout,
        "agent_path": None,
        "config": None,
        "client_keys": list(ep.client_keys) if ep.client_keys else None,
        "password": ep.password.reveal_str() if ep.password is not None else None,
        "keepalive_interval": 30,
        # Old PS firmware may lack the modern algorithms, so the legacy ones stay allowed.
    }
    try:
        return await asyncssh.connect(ep.host, **kwargs)
    except asyncssh.HostKeyNotVerifiable:
        raise SanHostKeyError(
            f"The SSH host key of {ep.host} is not trusted; add it to known_hosts "
            "(or pin its fingerprint) after checking it on the array's console."
        ) from None
    except asyncssh.PermissionDenied:
        raise SanAuthError(
            f"The group at {ep.host} refused the login of {ep.username}; check the account "
            "and its password or key."
        ) from None
    except TimeoutError:
        raise SanTimeout(
            f"Connecting to {ep.host}:{ep.port} timed out after {ep.connect_timeout:g} s; "
            "check the address and the firewall."
        ) from None
    except (OSError, asyncssh.Error) as exc:
        raise SanConnectionError(
            f"Connecting to {ep.host}:{ep.port} failed ({type(exc).__name__}: "
            f"{getattr(exc, 'strerror', None) or getattr(exc, 'reason', '')}); check the "
            "address, port and that SSH is enabled on the group."
        ) from None


@asynccontextmanager
async def open_session(ep: SanEndpoint) -> AsyncIterator[CliSession]:
    """Connect, log in, set up the CLI; log out and close on exit."""
    conn = await _connect(ep)
    try:
        try:
            proc = await asyncio.wait_for(
                conn.create_process(
                    term_type="vt100", term_size=(TERM_COLUMNS, 200), encoding=None
                ),
                ep.connect_timeout,
            )
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            raise SanConnectionError(
                f"The group at {ep.host} did not open a CLI shell ({type(exc).__name__}); "
                "check the array's session limit."
            ) from None
        session = CliSession(ep, proc, CliConversation(ep.group))
        try:
            await session._login()
            yield session
        finally:
            await session._logout()
            # The group counts the session until it has processed the logout: wait
            # (bounded) for it to end the shell, so that whoever holds a CLI-session
            # slot releases it only when the group has too (else the next login of a
            # capped driver can be refused as "too many sessions").
            with suppress(TimeoutError, OSError, asyncssh.Error):
                await asyncio.wait_for(proc.wait_closed(), 2.0)
            proc.close()
    finally:
        conn.close()
        with suppress(TimeoutError, OSError, asyncssh.Error):
            await asyncio.wait_for(conn.wait_closed(), 2.0)


async def with_session(
    ep: SanEndpoint,
    action: Callable[[CliSession], Awaitable[T]],
    *,
    attempts: int = 3,
    backoff: float = 0.5,
) -> T:
    """Run ``action`` on a fresh session, retrying only while nothing was changed.

    A connection failure is retried when no mutating command had been written yet; after
    that, or on an auth/host-key problem, it is raised (Cinder re-sent creates, §2.1).
    """
    for attempt in range(1, attempts + 1):
        try:
            async with open_session(ep) as session:
                return await action(session)
        except (SanAuthError, SanHostKeyError):
            raise
        except SanConnectionError as exc:
            if exc.mutating_sent or attempt == attempts:
                raise
            log.info("retrying %s after: %s", ep.host, exc)
            await asyncio.sleep(backoff * attempt * (0.5 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover
