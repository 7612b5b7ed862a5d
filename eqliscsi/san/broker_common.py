"""What the broker and both of its clients share: paths, configuration, process control,
the wire format of command results.  Standard library only, and no asyncio, so that the
blocking client (:mod:`eqliscsi.san.broker_sync`) stays as light as possible.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from dataclasses import dataclass, field

from eqliscsi._record import Record
from eqliscsi.errors import SanError
from eqliscsi.san._lazylog import LazyLogger
from eqliscsi.san.commands import Command
from eqliscsi.san.conversation import CommandCompleted, check_result
from eqliscsi.san.errors import (
    SanAuthError,
    SanConnectionError,
    SanHostKeyError,
    SanProtocolError,
    SanTimeout,
)
from eqliscsi.san.parsers import find_error

TYPE_CHECKING = False  # not typing's: importing typing costs a remote ~3 ms (docs/performance.md)

if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "LOG_NAME",
    "MAX_MESSAGE",
    "PID_NAME",
    "PROTOCOL_VERSION",
    "SOCKET_NAME",
    "SPAWN_LOCK",
    "BrokerConfig",
    "completed_from_reply",
    "default_broker_dir",
    "ensure_private_dir",
    "is_session_problem",
    "kill_stuck",
    "raise_remote",
    "run_message",
    "spawn",
]

log = LazyLogger("eqliscsi.san.broker_client")

SOCKET_NAME = "broker.sock"
PID_NAME = "broker.pid"
SPAWN_LOCK = "spawn.lock"
LOG_NAME = "broker.log"
MAX_MESSAGE = 32 * 1024 * 1024
PROTOCOL_VERSION = 1


# Paths here are str, not pathlib.Path: pathlib (with urllib.parse, ipaddress, fnmatch)
# costs each remote ~3 ms of its start-up budget (docs/performance.md).


def default_broker_dir() -> str:
    env = os.environ.get("EQLISCSI_BROKER_DIR")
    if env:
        return env
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "eqliscsi")
    return f"/tmp/eqliscsi-{os.getuid()}"  # noqa: S108 - checked to be ours and 0700


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class BrokerConfig(Record):
    """How to find (and, when needed, start) the broker."""

    directory: str = field(default_factory=default_broker_dir)
    max_sessions: int = 4  # warm + busy CLI sessions per group
    idle_exit: float = 120.0  # the broker exits after this long without work
    session_idle: float = 60.0  # a warm session is closed after this long unused
    queue_timeout: float = 60.0  # how long an action waits for a free session
    ping_timeout: float = 2.0  # a broker slower than this is considered stuck
    start_timeout: float = 10.0  # spawning a broker (imports asyncssh) takes < 1 s
    fallback_direct: bool = True  # connect directly when no broker can be had

    @property
    def socket(self) -> str:
        return os.path.join(self.directory, SOCKET_NAME)

    def file(self, name: str) -> str:
        """``name`` in the broker's directory."""
        return os.path.join(self.directory, name)


def ensure_private_dir(path: str | os.PathLike[str]) -> None:
    """Create ``path`` 0700, or check that an existing one is ours and private."""
    with contextlib.suppress(FileExistsError):
        os.makedirs(path, mode=0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise SanConnectionError(
            f"The SAN session broker directory {path} is not a private directory of this user; "
            "remove it or set EQLISCSI_BROKER_DIR to one (mode 0700)."
        )


_ERRORS: dict[str, type[SanError]] = {
    cls.reference: cls
    for cls in (SanConnectionError, SanTimeout, SanAuthError, SanHostKeyError, SanProtocolError)
}


def raise_remote(error: dict[str, Any], mutating_sent: bool) -> None:
    cls = _ERRORS.get(str(error.get("reference")), SanConnectionError)
    message = str(error.get("message", "The session broker failed; retry the action."))
    sent = mutating_sent or bool(error.get("mutating_sent"))
    if issubclass(cls, SanConnectionError):
        raise cls(message, mutating_sent=sent)
    raise cls(message)


def _broker_pid(cfg: BrokerConfig) -> int | None:
    try:
        with open(cfg.file(PID_NAME)) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    try:
        st = os.stat(f"/proc/{pid}")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return None
    # Only ever signal our own broker, never a process that reused the pid.
    if st.st_uid != os.getuid() or b"eqliscsi.san.broker" not in cmdline:
        return None
    return pid


def kill_stuck(cfg: BrokerConfig) -> None:
    pid = _broker_pid(cfg)
    if pid is not None:
        log.warning("the SAN session broker (pid %d) is not answering; replacing it", pid)
        import signal  # noqa: PLC0415 - only when replacing a stuck broker

        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(cfg.socket)


def spawn(cfg: BrokerConfig) -> None:
    import subprocess  # noqa: PLC0415 - only the first action of a burst pays for it

    argv = [
        sys.executable,
        "-m",
        "eqliscsi.san.broker",
        "--dir",
        cfg.directory,
        "--max-sessions",
        str(cfg.max_sessions),
        "--idle-exit",
        str(cfg.idle_exit),
        "--session-idle",
        str(cfg.session_idle),
    ]
    log_fd = os.open(cfg.file(LOG_NAME), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
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


def run_message(command: Command) -> dict[str, Any]:
    """The request that runs ``command``; secrets go along only so the broker can redact."""
    return {
        "op": "run",
        "line": command.line(),
        "display": command.display(),
        "mutating": command.mutating,
        "secrets": [s.decode("utf-8", "replace") for s in command.secrets()],
    }


def completed_from_reply(
    command: Command, reply: dict[str, Any], *, check: bool, mutating_sent: bool
) -> CommandCompleted:
    if not reply.get("ok"):
        raise_remote(reply.get("error") or {}, mutating_sent)
    lines = tuple(str(x) for x in reply.get("lines", []))
    res = CommandCompleted(
        command=command,
        lines=lines,
        error=find_error(lines),
        mode=reply.get("mode"),
        reprinted=str(reply.get("reprinted", "")),
        events=(),
    )
    return check_result(res) if check else res


def is_session_problem(exc: SanConnectionError) -> bool:
    """True for errors the broker relayed from the group (not a broken broker).

    Timeouts talking to the array or a full session queue are answers: falling back to a
    direct connection would only add a session to an array that is already at its limit.
    """
    return not str(exc.message).startswith(("The SAN session broker", "Another action"))
