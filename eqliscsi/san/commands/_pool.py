"""``pool select P show``: the one command ``monitor`` sends.

Part of :mod:`eqliscsi.san.commands`, imported on first use of one of its names (see that
module's docstring: a remote pays only for the commands it sends).  It has a family of its
own because ``monitor`` is the action oned runs most often (every datastore, every
monitoring interval), and the group commands beside it are preflight's.
"""

from __future__ import annotations

from dataclasses import dataclass

from eqliscsi.san.commands import Command, validate_pool

__all__ = ["PoolShow"]


@dataclass(frozen=True, eq=False, repr=False)
class PoolShow(Command):
    """``pool select P show``: one pool's capacity."""

    pool: str

    def __post_init__(self) -> None:
        validate_pool(self.pool)

    def words(self) -> tuple[str, ...]:
        return ("pool", "select", self.pool, "show")
