"""Access control records: ``volume select V access create|show|delete``.

Part of :mod:`eqliscsi.san.commands`, imported on first use of one of its names
(see that module's docstring: a remote pays only for the commands it sends).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from eqliscsi.san.commands import (
    Command,
    _invalid,
    validate_chap_user,
    validate_initiator,
    validate_ip_pattern,
    validate_volume_name,
)
from eqliscsi.san.errors import SanInvalidValue

__all__ = ["AccessCreate", "AccessDelete", "AccessRule", "AccessShow", "ApplyTo", "AuthMethod"]


class AuthMethod(enum.Enum):
    NONE = "none"
    CHAP = "chap"


class ApplyTo(enum.Enum):
    VOLUME = "volume"
    SNAPSHOT = "snapshot"
    BOTH = "both"


@dataclass(frozen=True)
class AccessRule:
    """One access control record; at least one of initiator, IP or CHAP user is required."""

    initiator: str | None = None
    ipaddress: str | None = None
    username: str | None = None
    apply_to: ApplyTo = ApplyTo.BOTH

    def __post_init__(self) -> None:
        if self.initiator is None and self.ipaddress is None and self.username is None:
            raise SanInvalidValue(
                "An access record needs an initiator, an IP address or a CHAP user; set one."
            )
        if self.initiator is not None:
            validate_initiator(self.initiator)
        if self.ipaddress is not None:
            validate_ip_pattern(self.ipaddress)
        if self.username is not None:
            validate_chap_user(self.username)

    @property
    def authmethod(self) -> AuthMethod:
        return AuthMethod.CHAP if self.username is not None else AuthMethod.NONE

    def words(self) -> tuple[str, ...]:
        # Separate tokens for keyword and value (Cinder bug 1280409).
        w: list[str] = []
        if self.initiator is not None:
            w += ["initiator", self.initiator]
        if self.ipaddress is not None:
            w += ["ipaddress", self.ipaddress]
        if self.username is not None:
            w += ["username", self.username]
        w += ["authmethod", self.authmethod.value, "apply-to", self.apply_to.value]
        return tuple(w)


@dataclass(frozen=True, eq=False, repr=False)
class AccessCreate(Command):
    """``volume select V access create <rule>``."""

    mutating = True
    volume: str
    rule: AccessRule

    def __post_init__(self) -> None:
        validate_volume_name(self.volume)

    def words(self) -> tuple[str, ...]:
        return ("volume", "select", self.volume, "access", "create", *self.rule.words())


@dataclass(frozen=True, eq=False, repr=False)
class AccessShow(Command):
    """``volume select V access show``."""

    volume: str

    def __post_init__(self) -> None:
        validate_volume_name(self.volume)

    def words(self) -> tuple[str, ...]:
        return ("volume", "select", self.volume, "access", "show")


@dataclass(frozen=True, eq=False, repr=False)
class AccessDelete(Command):
    """``volume select V access delete ID``."""

    mutating = True
    volume: str
    record_id: int

    def __post_init__(self) -> None:
        validate_volume_name(self.volume)
        if (
            not isinstance(self.record_id, int)
            or isinstance(self.record_id, bool)
            or not 1 <= self.record_id <= 999
        ):
            raise _invalid("access record id", self.record_id, "a number from 1 to 999")

    def words(self) -> tuple[str, ...]:
        return ("volume", "select", self.volume, "access", "delete", str(self.record_id))
