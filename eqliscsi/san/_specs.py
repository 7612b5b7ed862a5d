"""The volume classes of :mod:`eqliscsi.san.ops`, created on first use.

``monitor``, the action oned runs most often, makes no volume; each frozen dataclass costs
a remote ~0.3-0.7 ms to create at import (docs/performance.md, "Remote start-up"), so
``ops.VolumeRef`` and ``ops.VolumeSpec`` are loaded from here when first used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eqliscsi.san import commands as c

__all__ = ["VolumeRef", "VolumeSpec"]


@dataclass(frozen=True, slots=True)
class VolumeRef:
    """A volume the driver made or found: its name, IQN and whether it already existed."""

    name: str
    iqn: str
    # True when an earlier attempt's volume was adopted (oned retried): its blocks
    # may hold that attempt's data, so a writer must not assume it reads as zeros.
    reused: bool = field(default=False, compare=False)  # the same volume either way


@dataclass(frozen=True, slots=True)
class VolumeSpec:
    """A volume to create.  Access rules and multihost are applied right after creation."""

    name: str
    size_mb: int
    pool: str | None = None
    thin: bool = False
    thin_min_reserve_pct: int | None = None
    access: tuple[c.AccessRule, ...] = ()
    multihost: bool = True

    def __post_init__(self) -> None:
        c.validate_volume_name(self.name)
        c.validate_size_mb(self.size_mb)
        if self.pool is not None:
            c.validate_pool(self.pool)
