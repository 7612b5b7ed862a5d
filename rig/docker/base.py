"""The ``debian:bookworm-slim`` base image, with or without a registry.

Every rig image starts ``FROM debian:bookworm-slim``.  Where a registry answers, we pull
it.  Where none does (CI machines here reach only Debian's mirror and PyPI), we build an
equivalent ourselves: ``debootstrap --variant=minbase bookworm``, trimmed the way the
official slim image is (no docs, man pages or apt lists; dpkg told not to install them
again), tarred, and ``docker import``-ed under the same tag.

The rootfs tarball is kept in the cache directory, so a new ``dockerd`` (a fresh CI
engine, a wiped ``/var/lib/docker``) imports it in seconds instead of running
debootstrap again.  Its SHA-256 is stored as an image label: it is the base's identity
in the content hash of every image built on top (see :mod:`rig.docker.images`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import docker.models.images
import requests.exceptions

from rig.docker.cache import cache_dir
from rig.docker.errors import BaseImageError

__all__ = ["BASE_REPOSITORY", "BASE_TAG", "BaseImage", "ensure_base_image"]

log = logging.getLogger(__name__)

BASE_REPOSITORY = "debian"
BASE_TAG = "bookworm-slim"
ROOTFS_LABEL = "org.eqliscsi.rootfs-sha256"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# A pull with no registry reachable fails on DNS or connect in well under this; the
# bound only matters on a network that drops packets silently.
PULL_TIMEOUT = 30
DEBOOTSTRAP_TIMEOUT = 900

# What the official slim image leaves out, so later `apt-get install`s stay small too.
_DPKG_EXCLUDES = """\
# Written by eqliscsi's rig (rig/docker/base.py), as in the official slim image.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
"""
_APT_CLEAN = """\
# Written by eqliscsi's rig: images keep no .deb files or package lists.
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
APT::Install-Recommends "false";
Acquire::Languages "none";
"""


@dataclass(frozen=True, slots=True)
class BaseImage:
    """The base image present in the engine, and how it got there."""

    reference: str  # "debian:bookworm-slim"
    identity: str  # rootfs SHA-256 label, else the registry digest, else the image id
    how: str  # "present", "pulled", "imported" (cached tarball) or "debootstrapped"
    seconds: float


def _identity(image: docker.models.images.Image) -> str:
    labels = image.labels or {}
    if ROOTFS_LABEL in labels:
        return f"rootfs:{labels[ROOTFS_LABEL]}"
    digests = image.attrs.get("RepoDigests") or []
    return str(digests[0]) if digests else str(image.id)


def _mirror() -> str:
    return os.environ.get("EQLISCSI_DEBIAN_MIRROR") or DEFAULT_MIRROR


def _try_pull(url: str) -> bool:
    if os.environ.get("EQLISCSI_DOCKER_PULL", "1") == "0":
        return False
    client = docker.DockerClient(base_url=url, timeout=PULL_TIMEOUT)
    try:
        client.images.pull(BASE_REPOSITORY, tag=BASE_TAG)
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        log.info("docker pull %s:%s failed (%s); building it", BASE_REPOSITORY, BASE_TAG, exc)
        return False
    finally:
        client.close()
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def build_rootfs_tarball(dest: Path, mirror: str | None = None) -> Path:
    """Run debootstrap (minbase bookworm), trim it like the slim image, tar it into ``dest``.

    Raises:
        BaseImageError: debootstrap is missing or failed.
    """
    debootstrap = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin")
    if debootstrap is None:
        raise BaseImageError(
            "debootstrap is not installed and no registry answers; install the Debian "
            "package debootstrap (scripts/bootstrap.sh does)."
        )
    mirror = mirror or _mirror()
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=dest.parent))
    root = work / "root"
    try:
        started = time.monotonic()
        result = subprocess.run(
            [debootstrap, "--variant=minbase", "bookworm", str(root), mirror],
            capture_output=True,
            text=True,
            timeout=DEBOOTSTRAP_TIMEOUT,
            check=False,
        )
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
            raise BaseImageError(
                f"debootstrap of bookworm from {mirror} failed ({' '.join(tail)}); "
                "check that the mirror answers or set EQLISCSI_DEBIAN_MIRROR."
            )
        log.info("debootstrap took %.1f s", time.monotonic() - started)
        (root / "etc/dpkg/dpkg.cfg.d/docker-slim").write_text(_DPKG_EXCLUDES)
        (root / "etc/apt/apt.conf.d/docker-clean").write_text(_APT_CLEAN)
        for pattern in (
            "usr/share/doc/*",
            "usr/share/man/*",
            "usr/share/info/*",
            "usr/share/locale/*",
            "var/lib/apt/lists/*",
            "var/cache/apt/*.bin",
            "var/cache/apt/archives/*.deb",
            "var/log/*.log",
            "dev/*",  # the engine provides /dev; debootstrap's nodes would only shadow it
        ):
            for path in root.glob(pattern):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        partial = dest.with_suffix(".partial")
        subprocess.run(
            ["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."],
            check=True,
            timeout=300,
        )
        partial.replace(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def ensure_base_image(client: docker.DockerClient, *, url: str) -> BaseImage:
    """Make ``debian:bookworm-slim`` present in the engine: found, pulled, imported or built.

    Raises:
        BaseImageError: no registry answers and debootstrap failed.
    """
    reference = f"{BASE_REPOSITORY}:{BASE_TAG}"
    started = time.monotonic()
    try:
        image = client.images.get(reference)
    except docker.errors.ImageNotFound:
        pass
    else:
        return BaseImage(reference, _identity(image), "present", time.monotonic() - started)

    if _try_pull(url):
        image = client.images.get(reference)
        return BaseImage(reference, _identity(image), "pulled", time.monotonic() - started)

    tarball = cache_dir("base") / "bookworm-minbase.tar"
    how = "imported"
    if not tarball.exists():
        log.info("building %s with debootstrap into %s", reference, tarball)
        build_rootfs_tarball(tarball)
        how = "debootstrapped"
    rootfs_sha = _sha256(tarball)
    try:
        client.api.import_image_from_file(
            str(tarball),
            repository=BASE_REPOSITORY,
            tag=BASE_TAG,
            changes=[
                'CMD ["bash"]',
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                f"LABEL {ROOTFS_LABEL}={rootfs_sha}",
            ],
        )
        image = client.images.get(reference)
    except docker.errors.DockerException as exc:
        raise BaseImageError(
            f"docker import of {tarball} failed ({exc}); delete that file to rebuild it."
        ) from exc
    log.info("%s %s from %s", how, reference, tarball)
    return BaseImage(reference, _identity(image), how, time.monotonic() - started)
