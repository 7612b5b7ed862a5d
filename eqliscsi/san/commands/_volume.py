"""``volume create|clone|delete|rename`` and ``volume select V …``.

Part of :mod:`eqliscsi.san.commands`, imported on first use of one of its names
(see that module's docstring: a remote pays only for the commands it sends).
"""

from __future__ import annotations

from dataclasses import dataclass

from eqliscsi.san.commands import (
    Command,
    _invalid,
    _quoted,
    _size_word,
    validate_description,
    validate_pool,
    validate_size_mb,
    validate_volume_name,
)

__all__ = [
    "VolumeClone",
    "VolumeCreate",
    "VolumeDelete",
    "VolumeMultihost",
    "VolumeRename",
    "VolumeResize",
    "VolumeSetDescription",
    "VolumeSetStatus",
    "VolumeShow",
]


@dataclass(frozen=True, eq=False, repr=False)
class VolumeCreate(Command):
    """``volume create NAME SIZE [description D] online|offline [pool P] [thin-provision ...]``."""

    mutating = True
    name: str
    size_mb: int
    pool: str | None = None
    description: str | None = None
    thin: bool = False
    thin_min_reserve_pct: int | None = None
    online: bool = True

    def __post_init__(self) -> None:
        validate_volume_name(self.name)
        validate_size_mb(self.size_mb)
        if self.pool is not None:
            validate_pool(self.pool)
        if self.description is not None:
            validate_description(self.description)
        if self.thin_min_reserve_pct is not None and (
            not self.thin
            or not isinstance(self.thin_min_reserve_pct, int)
            or not 0 <= self.thin_min_reserve_pct <= 100
        ):
            raise _invalid(
                "thin minimum reserve", self.thin_min_reserve_pct, "0 to 100 with thin provisioning"
            )

    def words(self) -> tuple[str, ...]:
        w = ["volume", "create", self.name, _size_word(self.size_mb)]
        if self.description is not None:
            w += ["description", _quoted(self.description)]
        w.append("online" if self.online else "offline")
        if self.pool is not None:
            w += ["pool", self.pool]
        if self.thin:
            w.append("thin-provision")
            if self.thin_min_reserve_pct is not None:
                w += ["thin-min-reserve", f"{self.thin_min_reserve_pct}%"]
        return tuple(w)


@dataclass(frozen=True, eq=False, repr=False)
class VolumeClone(Command):
    """``volume select SRC clone NEW``; the clone inherits the source size (Cinder 1598148)."""

    mutating = True
    source: str
    name: str
    description: str | None = None

    def __post_init__(self) -> None:
        validate_volume_name(self.source)
        validate_volume_name(self.name)
        if self.description is not None:
            validate_description(self.description)

    def words(self) -> tuple[str, ...]:
        w = ["volume", "select", self.source, "clone", self.name]
        if self.description is not None:
            w += ["description", _quoted(self.description)]
        return tuple(w)


@dataclass(frozen=True, eq=False, repr=False)
class VolumeDelete(Command):
    """``volume delete NAME``."""

    mutating = True
    name: str

    def __post_init__(self) -> None:
        validate_volume_name(self.name)

    def words(self) -> tuple[str, ...]:
        return ("volume", "delete", self.name)


@dataclass(frozen=True, eq=False, repr=False)
class VolumeRename(Command):
    """``volume rename OLD NEW``."""

    mutating = True
    old: str
    new: str

    def __post_init__(self) -> None:
        validate_volume_name(self.old)
        validate_volume_name(self.new)

    def words(self) -> tuple[str, ...]:
        return ("volume", "rename", self.old, self.new)


@dataclass(frozen=True, eq=False, repr=False)
class VolumeSetStatus(Command):
    """``volume select V online|offline`` (success prints nothing)."""

    mutating = True
    name: str
    online: bool

    def __post_init__(self) -> None:
        validate_volume_name(self.name)

    def words(self) -> tuple[str, ...]:
        return ("volume", "select", self.name, "online" if self.online else "offline")


@dataclass(frozen=True, eq=False, repr=False)
class VolumeShow(Command):
    """``volume select NAME show``."""

    name: str

    def __post_init__(self) -> None:
        validate_volume_name(self.name)

    def words(self) -> tuple[str, ...]:
        return ("volume", "select", self.name, "show")


@dataclass(frozen=True, eq=False, repr=False)
class VolumeSetDescription(Command):
    """``volume select V description "<text>"`` (Cinder sets its tag this way)."""

    mutating = True
    name: str
    description: str

    def __post_init__(self) -> None:
        validate_volume_name(self.name)
        validate_description(self.description)

    def words(self) -> tuple[str, ...]:
        return ("volume", "select", self.name, "description", _quoted(self.description))


@dataclass(frozen=True, eq=False, repr=False)
class VolumeResize(Command):
    """Always ``no-snap``: without it the array silently snapshots first (Cinder 1720454)."""

    mutating = True
    name: str
    size_mb: int

    def __post_init__(self) -> None:
        validate_volume_name(self.name)
        validate_size_mb(self.size_mb)

    def words(self) -> tuple[str, ...]:
        return ("volume", "select", self.name, "size", _size_word(self.size_mb), "no-snap")


@dataclass(frozen=True, eq=False, repr=False)
class VolumeMultihost(Command):
    """``volume select NAME multihost-access enable|disable``."""

    mutating = True
    name: str
    enable: bool

    def __post_init__(self) -> None:
        validate_volume_name(self.name)

    def words(self) -> tuple[str, ...]:
        return (
            "volume",
            "select",
            self.name,
            "multihost-access",
            "enable" if self.enable else "disable",
        )
