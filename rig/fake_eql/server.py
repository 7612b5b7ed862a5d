"""The asyncssh adapter around :class:`rig.fake_eql.shell.EqlShell`.

:class:`FakeEql` owns what the sessions share: the model, its state directory, the
data plane and the fault control file.  Each SSH shell channel gets its own
``EqlShell``; this module only pumps bytes and turns the shell's events into writes,
sleeps, data-plane calls and closed connections.

Ordering rule: before any reply is written, the model change it reports is saved to
disk and applied to the data plane, so a client that reads ``iSCSI target name is``
can log in at once, and a fake restarted after an acknowledged command still has it.

asyncssh's own line editor is turned off (``line_editor=False``): echo, CR/LF and
editing are the array's behaviour and live in the shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import asyncssh

from eqliscsi.secret import Secret
from rig.fake_eql import store
from rig.fake_eql.dataplane import DataPlane
from rig.fake_eql.faults import FAULTS_FILE, Faults, read_faults, write_faults
from rig.fake_eql.model import San, desired_targets
from rig.fake_eql.shell import ApplyLuns, Close, Delay, EqlShell, Send, ShellEvent, Stall

__all__ = ["SESSIONS_FILE", "FakeEql"]

log = logging.getLogger(__name__)
SESSIONS_FILE = "sessions.json"
HOST_KEY_FILE = "ssh_host_ed25519_key"
# What the fake prints when it refuses a session over the limit; the wording is the
# rig's own (no capture of a real array's refusal exists, equallogic-cli.md §9).
TOO_MANY_SESSIONS = "% Error - Too many CLI sessions are open; log out of one and try again."


class FakeEql:
    """One fake EqualLogic group: model + persistence + data plane + SSH listener."""

    def __init__(
        self,
        state_dir: Path,
        *,
        group_name: str,
        account: str,
        password: Secret,
        dataplane: DataPlane | None = None,
        group_ip: str = "127.0.0.1",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        loaded = store.load(state_dir)
        self.san = loaded or San(group_name=group_name, group_ip=group_ip)
        self.san.group_name = group_name
        self.san.group_ip = group_ip
        self.account = account
        self._password = password
        self.dataplane = dataplane
        self._clock = clock
        self._saved_generation = -1
        self._faults = Faults()
        self._faults_mtime: int | None = None
        self.sessions_open = 0
        self.max_sessions_seen = 0
        self.sessions_refused = 0
        self.sessions_started = 0
        self._commands_ended = 0  # commands of shell sessions that have ended
        self._live: set[EqlShell] = set()
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.commit()

    # -- shared state ------------------------------------------------------------

    def faults(self) -> Faults:
        """The current faults; the control file is re-read when its mtime changes."""
        path = self.state_dir / FAULTS_FILE
        try:
            mtime: int | None = path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime != self._faults_mtime:
            self._faults = read_faults(self.state_dir)
            self._faults_mtime = mtime
        return self._faults

    def set_faults(self, faults: Faults) -> None:
        write_faults(self.state_dir, faults)

    def commit(self, *, force: bool = False) -> None:
        """Save and apply the model if it changed since the last commit (or ``force``)."""
        if self.san.generation == self._saved_generation and not force:
            return
        if self.dataplane is not None:
            self.dataplane.reconcile(desired_targets(self.san))
        store.save(self.san, self.state_dir)
        self._saved_generation = self.san.generation

    @property
    def commands_run(self) -> int:
        """CLI commands typed in every session so far (setup commands included)."""
        return self._commands_ended + sum(sh.commands_run for sh in self._live)

    def connections(self, iqn: str) -> int:
        return 0 if self.dataplane is None else self.dataplane.session_count(iqn)

    def _write_sessions(self) -> None:
        data = {
            "open": self.sessions_open,
            "max_seen": self.max_sessions_seen,
            "refused": self.sessions_refused,
        }
        tmp = self.state_dir / f".{SESSIONS_FILE}.tmp"
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.state_dir / SESSIONS_FILE)

    # -- SSH -------------------------------------------------------------------------

    def host_key(self) -> asyncssh.SSHKey:
        path = self.state_dir / HOST_KEY_FILE
        if path.exists():
            return asyncssh.read_private_key(str(path))
        key = asyncssh.generate_private_key("ssh-ed25519")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.export_private_key())
        (self.state_dir / f"{HOST_KEY_FILE}.pub").write_bytes(key.export_public_key())
        return key

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        key = self.host_key()
        self._acceptor = await asyncssh.listen(
            host,
            port,
            server_host_keys=[key],
            server_factory=lambda: _AuthServer(self.account, self._password, self.san),
            process_factory=self._process,
            encoding=None,
            line_editor=False,
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
        )
        sockname = self._acceptor.sockets[0].getsockname()
        self._write_sessions()
        return str(sockname[0]), int(sockname[1])

    async def close(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _process(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._session(process)
        finally:
            self._tasks.discard(task)

    async def _session(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        limit = self.faults().max_sessions
        if limit is not None and self.sessions_open >= limit:
            self.sessions_refused += 1
            self._write_sessions()
            process.stdout.write(TOO_MANY_SESSIONS.encode() + b"\r\n")
            process.exit(1)
            return
        self.sessions_open += 1
        self.sessions_started += 1
        self.max_sessions_seen = max(self.max_sessions_seen, self.sessions_open)
        self._write_sessions()
        shell: EqlShell | None = None
        try:
            width, height, _, _ = process.get_terminal_size()
            # The shell runs as the account that logged in (its type decides what it
            # may do, its cli-settings are its own).
            user = process.get_extra_info("username") or self.account
            shell = EqlShell(
                self.san,
                str(user),
                columns=width or 80,
                rows=height or 24,
                faults=self.faults,
                clock=self._clock,
                connections=self.connections,
            )
            self._live.add(shell)
            if process.command is not None:
                # `ssh group 'volume show'`: the command runs as if typed into a
                # fresh session (banner, prompt, echo, reply), then the channel ends.
                await self._pump(process, shell.start())
                events = shell.feed(process.command.encode() + b"\r")
                await self._pump(process, events)
                if not shell.closed:
                    process.exit(0)
                return
            if not await self._pump(process, shell.start()):
                return
            while True:
                try:
                    data = await process.stdin.read(4096)
                except asyncssh.TerminalSizeChanged as change:
                    shell.resize(change.width, change.height)
                    continue
                except asyncssh.BreakReceived:
                    continue
                if not data:
                    break
                if not await self._pump(process, shell.feed(data)):
                    return
            process.exit(0)
        except (asyncssh.Error, ConnectionError, BrokenPipeError):
            pass
        finally:
            self.sessions_open -= 1
            if shell is not None:
                self._live.discard(shell)
                self._commands_ended += shell.commands_run
            self._write_sessions()

    async def _pump(
        self, process: asyncssh.SSHServerProcess[bytes], events: Sequence[ShellEvent]
    ) -> bool:
        """Carry out the shell's events; False once the session is over."""
        # Injected latency is the time from a command to its reply, the array's own work
        # included: the model is saved (fsync) and the LUNs changed during the wait, not
        # after it, so the latency the tests ask for is the latency the client sees.
        reply_at = 0.0
        for event in events:
            if isinstance(event, Send):
                self._commit_logged()
                await _sleep_until(reply_at)
                process.stdout.write(event.data)
            elif isinstance(event, ApplyLuns):
                self._apply_logged(event)
            elif isinstance(event, Delay):
                reply_at = time.monotonic() + event.seconds
            elif isinstance(event, Stall):
                # Never answer; keep reading so the client's close is noticed.
                self._commit_logged()
                with contextlib.suppress(asyncssh.Error):
                    while await process.stdin.read(4096):
                        pass
                return False
            elif isinstance(event, Close):
                self._commit_logged()
                await _sleep_until(reply_at)
                if event.exit_status == 0:
                    process.exit(0)
                else:
                    # A dropped connection: no exit status, no close handshake.
                    process.channel.get_connection().abort()
                return False
        self._commit_logged()
        return True

    def _apply_logged(self, event: ApplyLuns) -> None:
        try:
            if self.dataplane is not None:
                self.dataplane.apply(event.ops)
        except Exception:
            log.exception("applying LUN operations failed")
        self._commit_logged(force=True)

    def _commit_logged(self, *, force: bool = False) -> None:
        try:
            self.commit(force=force)
        except Exception:
            # The reply still goes out: the client must see what the model did, and
            # the rig's log says what the data plane failed to do.
            log.exception("applying the SAN model failed")


async def _sleep_until(deadline: float) -> None:
    wait = deadline - time.monotonic()
    if wait > 0:
        await asyncio.sleep(wait)


class _AuthServer(asyncssh.SSHServer):
    """Password authentication: the configured account, or an enabled account of the
    model (``account create``)."""

    def __init__(self, account: str, password: Secret, san: San) -> None:
        self._account = account
        self._password = password
        self._san = san

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        ok_user = hmac.compare_digest(username.encode(), self._account.encode())
        ok_pw = hmac.compare_digest(password.encode(), self._password.reveal())
        if ok_user and ok_pw:
            return True
        stored = self._san.accounts.get(username)
        if stored is None or not stored.enabled or username == self._account:
            return False
        return hmac.compare_digest(password.encode(), stored.password.encode())
