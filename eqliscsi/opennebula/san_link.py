"""From driver configuration to SAN operations: endpoint, session cap, volume specs.

* :func:`endpoint_for` turns an :class:`EqlConfig` into the SAN client's
  :class:`SanEndpoint`: host-key pinning when ``EQL_HOST_FINGERPRINT`` is set, a
  known_hosts file otherwise (never trust-on-first-use from a driver action).
* :func:`session_slot` caps concurrent CLI sessions across *processes*: oned runs
  many remotes at once and EqualLogic groups limit concurrent CLI sessions (the
  original add-on's "Prevent exhaust of Equallogic ssh sessions limit", §1.5).  The
  original's lock directory counted files and was not atomic; here each slot is a file
  held with ``flock``, which the kernel releases when a process dies, so a crash never
  leaves a stale slot.
* :func:`volume_spec` maps the original's free-form ``EQL_THINPROVISION`` and
  ``EQL_SECURITY_ACCESS`` words onto the typed operations API, refusing words it does
  not know instead of passing them through.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping

from eqliscsi.errors import ConfigError
from eqliscsi.opennebula.config import EqlConfig
from eqliscsi.san import commands as c
from eqliscsi.san.endpoint import HostKeyPolicy, SanEndpoint
from eqliscsi.san.ops import CliRunner, SanOps

TYPE_CHECKING = False  # not typing's: importing typing costs a remote ~3 ms (docs/performance.md)

if TYPE_CHECKING:
    from typing import TypeVar

    from eqliscsi.san.ops import VolumeSpec

    T = TypeVar("T")

__all__ = [
    "SessionBusy",
    "access_rules",
    "endpoint_for",
    "lock_dir",
    "run_san",
    "session_slot",
    "thin_options",
    "volume_spec",
]


class SessionBusy(ConfigError):
    """Every CLI session slot stayed taken for the whole wait."""

    reference = "driver-san-sessions-busy"


def endpoint_for(cfg: EqlConfig) -> SanEndpoint:
    cfg.require_san()
    policy = HostKeyPolicy.PINNED if cfg.host_fingerprint else HostKeyPolicy.KNOWN_HOSTS
    return SanEndpoint(
        host=cfg.host,
        username=cfg.user,
        port=cfg.ssh_port,
        password=cfg.password,
        host_key_policy=policy,
        known_hosts=str(cfg.known_hosts) if cfg.known_hosts else None,
        host_key_fingerprint=cfg.host_fingerprint,
    )


def lock_dir(environ: Mapping[str, str]) -> str:
    # A str, not a pathlib.Path: pathlib costs a remote ~3 ms of start-up.
    explicit = environ.get("EQLISCSI_LOCK_DIR")
    if explicit:
        return explicit
    # OpenNebula's own `exclusive` helper locks in /var/lock/one (§2.5).
    if os.access("/var/lock/one", os.W_OK):
        return "/var/lock/one"
    import tempfile  # noqa: PLC0415 - direct path off a front-end only

    return os.path.join(tempfile.gettempdir(), f"eqliscsi-locks-{os.getuid()}")


@contextlib.contextmanager
def session_slot(
    directory: str | os.PathLike[str],
    group: str,
    slots: int,
    *,
    wait: float = 120.0,
    poll: float = 0.2,
) -> Iterator[int]:
    """Hold one of ``slots`` CLI-session slots for ``group``; yields the slot number.

    Raises:
        SessionBusy: no slot became free within ``wait`` seconds.
    """
    os.makedirs(directory, mode=0o700, exist_ok=True)
    safe_group = "".join(ch if ch.isalnum() or ch in ".-" else "_" for ch in group)
    deadline = time.monotonic() + wait
    while True:
        for slot in range(slots):
            path = os.path.join(directory, f"eqliscsi-{safe_group}.{slot}.lock")
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield slot
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            return
        if time.monotonic() >= deadline:
            raise SessionBusy(
                f"All {slots} CLI session slots for group {group} stayed busy for "
                f"{wait:.0f} s; raise EQL_MAX_SESSIONS if the group allows more sessions."
            )
        time.sleep(poll)


def run_san(
    cfg: EqlConfig,
    datastore_id: int,
    environ: Mapping[str, str],
    operation: Callable[[SanOps], Awaitable[T]],
) -> T:
    """Run ``operation`` on one logged-in CLI session.

    With ``EQLISCSI_BROKER_DIR`` set (in oned's environment), the session is borrowed
    from the warm-session broker (docs/san-client.md): no SSH handshake per action,
    and neither asyncio nor asyncssh is imported on this path; the broker caps the
    group's CLI sessions at ``EQL_MAX_SESSIONS``.  Without it, the action connects
    directly, inside a cross-process session slot.
    """
    endpoint = endpoint_for(cfg)

    async def on_runner(runner: CliRunner) -> T:
        return await operation(SanOps(runner, datastore_id))

    broker_dir = environ.get("EQLISCSI_BROKER_DIR", "")
    if broker_dir:
        # Imported here so the direct path does not pay for them, and vice versa.
        from eqliscsi.san.broker_common import BrokerConfig  # noqa: PLC0415
        from eqliscsi.san.broker_sync import run_action_sync  # noqa: PLC0415

        if not broker_dir.startswith("/"):
            raise ConfigError("EQLISCSI_BROKER_DIR is not an absolute path; correct it.")
        broker = BrokerConfig(directory=broker_dir, max_sessions=cfg.max_sessions)
        return run_action_sync(endpoint, on_runner, broker=broker)

    import asyncio  # noqa: PLC0415

    from eqliscsi.san.session import CliSession, with_session  # noqa: PLC0415 - asyncssh

    async def on_session(session: CliSession) -> T:
        return await on_runner(session)

    with session_slot(lock_dir(environ), cfg.host, cfg.max_sessions):
        return asyncio.run(with_session(endpoint, on_session))


def thin_options(words: tuple[str, ...]) -> tuple[bool, int | None]:
    """``thin-provision [thin-min-reserve N%]`` → (thin, reserve percent)."""
    thin = False
    reserve: int | None = None
    it = iter(words)
    for word in it:
        if word == "thin-provision":
            thin = True
        elif word == "thin-min-reserve":
            value = next(it, "")
            if not value.endswith("%") or not value[:-1].isdigit():
                raise ConfigError(
                    "EQL_THINPROVISION: thin-min-reserve needs a percentage like 50%."
                )
            reserve = int(value[:-1])
        else:
            raise ConfigError(
                f"EQL_THINPROVISION word {word[:40]!r} is not supported; use "
                "'thin-provision [thin-min-reserve N%]'."
            )
    if reserve is not None and not thin:
        raise ConfigError("EQL_THINPROVISION: thin-min-reserve needs thin-provision as well.")
    return thin, reserve


_ACCESS_KEYS = {"initiator", "ipaddress", "username", "apply-to", "authmethod"}


def access_rules(words: tuple[str, ...]) -> tuple[c.AccessRule, ...]:
    """The original's ``access create`` words as one typed rule (empty: no rule)."""
    if not words:
        return ()
    if len(words) % 2:
        raise ConfigError(
            "EQL_SECURITY_ACCESS must be keyword/value pairs, e.g. 'ipaddress 192.168.*.*'."
        )
    pairs: dict[str, str] = {}
    for key, value in zip(words[0::2], words[1::2], strict=True):
        if key not in _ACCESS_KEYS:
            raise ConfigError(
                f"EQL_SECURITY_ACCESS keyword {key[:40]!r} is not supported; use initiator, "
                "ipaddress, username, authmethod or apply-to."
            )
        if key in pairs:
            raise ConfigError(f"EQL_SECURITY_ACCESS gives {key} twice; give it once.")
        pairs[key] = value
    method = pairs.get("authmethod", "chap" if "username" in pairs else "none")
    if method not in {"chap", "none"} or (method == "chap") != ("username" in pairs):
        raise ConfigError(
            "EQL_SECURITY_ACCESS: authmethod chap goes with a username, none without one."
        )
    try:
        apply_to = c.ApplyTo(pairs.get("apply-to", "both"))
    except ValueError:
        raise ConfigError(
            "EQL_SECURITY_ACCESS: apply-to must be volume, snapshot or both."
        ) from None
    return (
        c.AccessRule(
            initiator=pairs.get("initiator"),
            ipaddress=pairs.get("ipaddress"),
            username=pairs.get("username"),
            apply_to=apply_to,
        ),
    )


def volume_spec(cfg: EqlConfig, name: str, size_mb: int) -> VolumeSpec:
    from eqliscsi.san.ops import VolumeSpec  # noqa: PLC0415 - created on first use (ops._LAZY)

    thin, reserve = thin_options(cfg.thin_provision)
    return VolumeSpec(
        name=name,
        size_mb=size_mb,
        pool=cfg.pool,
        thin=thin,
        thin_min_reserve_pct=reserve,
        access=access_rules(cfg.security_access),
        multihost=cfg.multihost,
    )
