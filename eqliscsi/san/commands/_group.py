"""``pool select P show``, ``show pool`` and ``grpparams show``.

Part of :mod:`eqliscsi.san.commands`, imported on first use of one of its names
(see that module's docstring: a remote pays only for the commands it sends).
"""

from __future__ import annotations

from dataclasses import dataclass

from eqliscsi.san.commands import Command, validate_pool

__all__ = ["GrpparamsShow", "PoolShow", "ShowPool"]


@dataclass(frozen=True, eq=False, repr=False)
class PoolShow(Command):
    """``pool select P show``: one pool's capacity."""

    pool: str

    def __post_init__(self) -> None:
        validate_pool(self.pool)

    def words(self) -> tuple[str, ...]:
        return ("pool", "select", self.pool, "show")


@dataclass(frozen=True, eq=False, repr=False)
class ShowPool(Command):
    """``show pool``: every pool of the group."""

    def words(self) -> tuple[str, ...]:
        return ("show", "pool")


@dataclass(frozen=True, eq=False, repr=False)
class GrpparamsShow(Command):
    """``grpparams show``: the group's name and management address."""

    def words(self) -> tuple[str, ...]:
        return ("grpparams", "show")
