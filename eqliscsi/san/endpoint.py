"""Where and how to reach a group: a light, stdlib-only value shared by the SSH session,
the broker and the broker's client (which must not import asyncssh)."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from eqliscsi._record import Record
from eqliscsi.san.errors import SanAuthError, SanHostKeyError, SanInvalidValue
from eqliscsi.secret import Secret

TYPE_CHECKING = False  # not typing's: importing typing costs a remote ~3 ms (docs/performance.md)

if TYPE_CHECKING:
    from typing import Any

__all__ = ["HostKeyPolicy", "SanEndpoint"]


class HostKeyPolicy(enum.Enum):
    KNOWN_HOSTS = "known-hosts"
    PINNED = "pinned"
    TRUST_ON_FIRST_USE = "trust-on-first-use"


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class SanEndpoint(Record):
    """Where and how to log in to a group.  ``group`` is the expected prompt name, if known."""

    host: str
    username: str
    port: int = 22
    password: Secret | None = None
    client_keys: tuple[str, ...] = ()
    host_key_policy: HostKeyPolicy = HostKeyPolicy.KNOWN_HOSTS
    known_hosts: str | None = None  # None: ~/.ssh/known_hosts
    host_key_fingerprint: str | None = None  # "SHA256:..." for PINNED
    group: str | None = None
    connect_timeout: float = 15.0
    command_timeout: float = 60.0

    def __post_init__(self) -> None:
        if not self.host or any(ch.isspace() for ch in self.host) or not self.username:
            raise SanInvalidValue("The group address and account must be set, without spaces.")
        if not 0 < self.port < 65536:
            raise SanInvalidValue(f"The SSH port {self.port} is not a TCP port; use 1-65535.")
        for t in (self.connect_timeout, self.command_timeout):
            if not (math.isfinite(t) and 0 < t <= 3600):
                raise SanInvalidValue(f"The timeout {t} is not between 0 and 3600 seconds.")
        if self.host_key_policy is HostKeyPolicy.PINNED and not self.host_key_fingerprint:
            raise SanHostKeyError(
                "Host key pinning needs a fingerprint; set it to the SHA256:... value "
                "printed by 'ssh-keygen -lf' for the group's key."
            )
        if self.host_key_policy is HostKeyPolicy.TRUST_ON_FIRST_USE and not self.known_hosts:
            raise SanHostKeyError(
                "Trust-on-first-use needs a known_hosts file to record keys in; set its path."
            )
        if self.password is None and not self.client_keys:
            raise SanAuthError(
                f"No password or SSH key is configured for {self.username}@{self.host}; "
                "configure one of them."
            )

    @property
    def group_key(self) -> str:
        """The array this endpoint reaches; the session cap applies per group."""
        return f"{self.host}:{self.port}"

    def credential_key(self) -> str:
        """Host, account and a hash of everything else: equal keys may share sessions."""
        import hashlib  # noqa: PLC0415 - only the broker calls this; remotes skip the import

        h = hashlib.sha256()
        for part in (
            self.host,
            str(self.port),
            self.username,
            self.host_key_policy.value,
            self.known_hosts or "",
            self.host_key_fingerprint or "",
            self.group or "",
            *self.client_keys,
        ):
            h.update(part.encode() + b"\0")
        if self.password is not None:
            h.update(self.password.reveal())
        return f"{self.username}@{self.host}:{self.port}/{h.hexdigest()[:24]}"

    def to_wire(self) -> dict[str, Any]:
        """A JSON-able form for the broker's Unix socket (owner-only); holds the password."""
        return {
            "host": self.host,
            "username": self.username,
            "port": self.port,
            "password": None if self.password is None else self.password.reveal_str(),
            "client_keys": list(self.client_keys),
            "host_key_policy": self.host_key_policy.value,
            "known_hosts": self.known_hosts,
            "host_key_fingerprint": self.host_key_fingerprint,
            "group": self.group,
            "connect_timeout": self.connect_timeout,
            "command_timeout": self.command_timeout,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> SanEndpoint:
        try:
            pw = data["password"]
            return cls(
                host=str(data["host"]),
                username=str(data["username"]),
                port=int(data["port"]),
                password=None if pw is None else Secret(str(pw).encode(), origin="broker client"),
                client_keys=tuple(str(k) for k in data["client_keys"]),
                host_key_policy=HostKeyPolicy(data["host_key_policy"]),
                known_hosts=data["known_hosts"],
                host_key_fingerprint=data["host_key_fingerprint"],
                group=data["group"],
                connect_timeout=float(data["connect_timeout"]),
                command_timeout=float(data["command_timeout"]),
            )
        except (KeyError, TypeError, ValueError):
            raise SanInvalidValue(
                "The broker received an unreadable endpoint; upgrade both sides together."
            ) from None
