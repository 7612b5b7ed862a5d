"""``volume select V snapshot create-now|rename|select S clone|restore|delete``.

Part of :mod:`eqliscsi.san.commands`, imported on first use of one of its names
(see that module's docstring: a remote pays only for the commands it sends).
"""

from __future__ import annotations

from dataclasses import dataclass

from eqliscsi.san.commands import (
    Command,
    _quoted,
    validate_description,
    validate_snapshot_name,
    validate_volume_name,
)

__all__ = [
    "SnapshotClone",
    "SnapshotCreateNow",
    "SnapshotDelete",
    "SnapshotRename",
    "SnapshotRestore",
]


@dataclass(frozen=True, eq=False, repr=False)
class SnapshotCreateNow(Command):
    """``volume select V snapshot create-now [description D]``."""

    mutating = True
    volume: str
    description: str | None = None

    def __post_init__(self) -> None:
        validate_volume_name(self.volume)
        if self.description is not None:
            validate_description(self.description)

    def words(self) -> tuple[str, ...]:
        w = ["volume", "select", self.volume, "snapshot", "create-now"]
        if self.description is not None:
            w += ["description", _quoted(self.description)]
        return tuple(w)


@dataclass(frozen=True, eq=False, repr=False)
class SnapshotRename(Command):
    """``volume select V snapshot rename OLD NEW``."""

    mutating = True
    volume: str
    old: str
    new: str

    def __post_init__(self) -> None:
        validate_volume_name(self.volume)
        validate_snapshot_name(self.old)
        validate_snapshot_name(self.new)

    def words(self) -> tuple[str, ...]:
        return ("volume", "select", self.volume, "snapshot", "rename", self.old, self.new)


@dataclass(frozen=True, eq=False, repr=False)
class SnapshotClone(Command):
    """``volume select V snapshot select S clone NEW``."""

    mutating = True
    volume: str
    snapshot: str
    new: str

    def __post_init__(self) -> None:
        validate_volume_name(self.volume)
        validate_snapshot_name(self.snapshot)
        validate_volume_name(self.new)

    def words(self) -> tuple[str, ...]:
        return (
            "volume", "select", self.volume, "snapshot", "select", self.snapshot, "clone", self.new,
        )  # fmt: skip


@dataclass(frozen=True, eq=False, repr=False)
class SnapshotRestore(Command):
    """Restore needs the volume offline (PVE plugin)."""

    mutating = True
    volume: str
    snapshot: str

    def __post_init__(self) -> None:
        validate_volume_name(self.volume)
        validate_snapshot_name(self.snapshot)

    def words(self) -> tuple[str, ...]:
        return ("volume", "select", self.volume, "snapshot", "select", self.snapshot, "restore")


@dataclass(frozen=True, eq=False, repr=False)
class SnapshotDelete(Command):
    """``volume select V snapshot delete S``."""

    mutating = True
    volume: str
    snapshot: str

    def __post_init__(self) -> None:
        validate_volume_name(self.volume)
        validate_snapshot_name(self.snapshot)

    def words(self) -> tuple[str, ...]:
        return ("volume", "select", self.volume, "snapshot", "delete", self.snapshot)
