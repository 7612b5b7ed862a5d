"""Where the containerized rig keeps what is slow to make (base rootfs, wheels, image tarballs).

The directory survives a new ``dockerd`` (or a new CI machine that restores it), so a cold
engine can ``docker load`` instead of running debootstrap and apt again.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]

DEFAULT_CACHE = Path("/var/cache/eqliscsi")


def cache_dir(*parts: str) -> Path:
    """``$EQLISCSI_CACHE/docker/<parts>`` (default ``/var/cache/eqliscsi``), created on demand."""
    root = Path(os.environ.get("EQLISCSI_CACHE") or DEFAULT_CACHE)
    path = root.joinpath("docker", *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
