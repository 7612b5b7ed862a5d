"""Wheels of eqliscsi and its dependencies, built on the host, for images to install offline.

Inside a container, HTTPS to PyPI fails certificate checks and nothing but Debian's
mirror is reachable, so images install with ``pip install --no-index --find-links``.
The wheels are built here, where pip works, by the same CPython minor version Debian
bookworm ships (3.11), so binary wheels (cryptography, crc32c) fit the images.

Two directories, cached separately because they change at very different rates:
``deps-<key>`` (the runtime dependencies of ``pyproject.toml`` plus the extras images
install, :data:`IMAGE_EXTRAS`; rebuilt only when that list changes) and
``project-<key>`` (eqliscsi's own wheel; its key is a hash of the package sources, so
editing a file rebuilds the wheel and, through :attr:`Wheelhouse.digest`, the images
that install it).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from rig.docker.cache import cache_dir
from rig.docker.errors import WheelhouseError

__all__ = ["PROJECT_ROOT", "Wheelhouse", "ensure_wheelhouse", "source_digest"]

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PIP_TIMEOUT = 900
_COMPLETE = ".complete"
# What ends up in the wheel: the packages setuptools finds, the remotes (data files)
# and the metadata.
_SOURCE_DIRS = ("eqliscsi", "rig", "remotes")
_SKIP_PARTS = {"__pycache__", ".mypy_cache", ".pytest_cache"}


@dataclass(frozen=True, slots=True)
class Wheelhouse:
    """Directories of ``.whl`` files; ``digest`` changes whenever any wheel would."""

    directories: tuple[Path, ...]
    digest: str
    built: bool  # False when every part came from the cache
    seconds: float

    def wheels(self) -> list[Path]:
        return sorted(p for d in self.directories for p in d.glob("*.whl"))


# Extras the images install: the san image installs eqliscsi[lio] (rtslib-fb), so it can
# drive LIO when the Docker host's kernel has it.
IMAGE_EXTRAS = ("lio",)


def _runtime_dependencies(root: Path) -> list[str]:
    with (root / "pyproject.toml").open("rb") as f:
        project = tomllib.load(f)["project"]
    deps = [str(d) for d in project.get("dependencies", [])]
    extras = project.get("optional-dependencies", {})
    for extra in IMAGE_EXTRAS:
        deps.extend(str(d) for d in extras.get(extra, []))
    return sorted(deps)


def source_digest(root: Path = PROJECT_ROOT) -> str:
    """SHA-256 over the package's source files (paths and bytes) and ``pyproject.toml``."""
    digest = hashlib.sha256()
    files = [root / "pyproject.toml"]
    for name in _SOURCE_DIRS:
        files.extend(
            p
            for p in (root / name).rglob("*")
            if p.is_file() and not _SKIP_PARTS.intersection(p.parts) and p.suffix != ".pyc"
        )
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _pip_wheel(dest: Path, args: list[str]) -> None:
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(partial), *args],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise WheelhouseError(
            f"pip wheel {' '.join(args[-1:])} failed ({last}); check that pip can reach its index."
        )
    (partial / _COMPLETE).touch()
    shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)


def ensure_wheelhouse(root: Path = PROJECT_ROOT) -> Wheelhouse:
    """Build (or reuse) the wheels of eqliscsi and its runtime dependencies.

    Raises:
        WheelhouseError: pip could not build a wheel.
    """
    started = time.monotonic()
    built = False
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    deps = _runtime_dependencies(root)
    deps_key = hashlib.sha256("\n".join([py, *deps]).encode()).hexdigest()[:16]
    deps_dir = cache_dir("wheels") / f"deps-{deps_key}"
    if not (deps_dir / _COMPLETE).exists():
        log.info("building dependency wheels into %s", deps_dir)
        _pip_wheel(deps_dir, deps)
        built = True
    src_key = source_digest(root)[:16]
    project_dir = cache_dir("wheels") / f"project-{src_key}"
    if not (project_dir / _COMPLETE).exists():
        log.info("building the eqliscsi wheel into %s", project_dir)
        _pip_wheel(project_dir, ["--no-deps", str(root)])
        built = True
    digest = hashlib.sha256()
    digest.update(src_key.encode())
    # Dependency wheels are named by version; their names pin what images install.
    for wheel in sorted(p.name for p in deps_dir.glob("*.whl")):
        digest.update(wheel.encode() + b"\0")
    return Wheelhouse(
        directories=(deps_dir, project_dir),
        digest=digest.hexdigest(),
        built=built,
        seconds=time.monotonic() - started,
    )
