"""The results of the actions other than ``monitor`` (see :mod:`eqliscsi.opennebula.output`).

They live here, loaded on first use, because each frozen dataclass costs a remote
~0.3-0.7 ms to create at import and ``monitor``, the action oned runs most often, returns
none of them (docs/performance.md, "Remote start-up").  ``output.SourceResult`` and
``from eqliscsi.opennebula.output import NoOutput`` work as before.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NoOutput", "SizeResult", "SourceResult"]


@dataclass(frozen=True, slots=True)
class SourceResult:
    """cp, mkfs and clone: the new image's SOURCE (and FORMAT for cp from 6.0)."""

    source: str
    format: str = "raw"


@dataclass(frozen=True, slots=True)
class SizeResult:
    """stat: the image size in MB."""

    size_mb: int


@dataclass(frozen=True, slots=True)
class NoOutput:
    """Actions whose success oned reads from the exit status alone."""
