"""``show pool`` and ``grpparams show``.

Part of :mod:`eqliscsi.san.commands`, imported on first use of one of its names
(see that module's docstring: a remote pays only for the commands it sends).
"""

from __future__ import annotations

from dataclasses import dataclass

from eqliscsi.san.commands import Command

__all__ = ["GrpparamsShow", "ShowPool"]


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
