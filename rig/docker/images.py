"""The rig's images (san, host, frontend), tagged by a hash of everything that goes in.

An image's tag is ``eqliscsi/<name>:<hash>``, where the hash covers the base image's
identity, the image's build context (its directory under ``rig/docker/``: Dockerfile,
entrypoint, configuration; paths, bytes and executable bits) and the wheelhouse
digest.  So "is it built?" is one ``images.get``: a second run with nothing changed
builds nothing, and any change to an input builds a new tag instead of silently reusing
a stale image.

With ``EQLISCSI_DOCKER_SAVE=1`` each built image is also saved (``docker save``) into
the cache directory; an engine that lost its images (a new CI machine restoring the
cache, a wiped ``/var/lib/docker``) then loads that tarball instead of building.  It is
off by default: saving costs 5-15 s per image here, and an engine that keeps its
storage (the usual case) never needs the tarballs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import docker
import docker.errors

from rig.docker.base import BaseImage, ensure_base_image
from rig.docker.cache import cache_dir
from rig.docker.errors import ImageBuildError
from rig.docker.wheelhouse import Wheelhouse, ensure_wheelhouse

__all__ = [
    "IMAGES",
    "BuiltImage",
    "ImageSpec",
    "RigImages",
    "content_hash",
    "ensure_image",
    "ensure_images",
]

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
REPOSITORY = "eqliscsi"
# Bump when the meaning of the hash changes, so old tags are not mistaken for new ones.
_HASH_VERSION = b"eqliscsi-image-v1"


@dataclass(frozen=True, slots=True)
class ImageSpec:
    name: str
    context: Path

    def files(self) -> list[Path]:
        return sorted(p for p in self.context.rglob("*") if p.is_file())


IMAGES: dict[str, ImageSpec] = {
    name: ImageSpec(name, HERE / name) for name in ("san", "host", "frontend")
}


@dataclass(frozen=True, slots=True)
class BuiltImage:
    name: str
    tag: str
    how: str  # "present", "loaded" (cached tarball) or "built"
    seconds: float
    saved_seconds: float = 0.0  # docker save into the cache, after a build

    def describe(self) -> str:
        saved = f" (+{self.saved_seconds:.1f} s docker save)" if self.saved_seconds else ""
        return f"{self.how} in {self.seconds:.1f} s{saved}"


@dataclass(frozen=True, slots=True)
class RigImages:
    base: BaseImage
    wheelhouse: Wheelhouse
    images: dict[str, BuiltImage]

    def tag(self, name: str) -> str:
        return self.images[name].tag

    def timings(self) -> dict[str, str]:
        """``{"base": "debootstrapped in 47.1 s", ...}``: for logs and the CI report."""
        rows = {
            "base": f"{self.base.how} in {self.base.seconds:.1f} s",
            "wheelhouse": (
                f"{'built' if self.wheelhouse.built else 'cached'} "
                f"in {self.wheelhouse.seconds:.1f} s"
            ),
        }
        rows.update({n: i.describe() for n, i in self.images.items()})
        return rows


def content_hash(spec: ImageSpec, base_identity: str, wheel_digest: str) -> str:
    """SHA-256 over every input of ``spec``'s image; equal hashes mean equal images."""
    digest = hashlib.sha256(_HASH_VERSION)
    for part in (spec.name, base_identity, wheel_digest):
        digest.update(part.encode() + b"\0")
    for path in spec.files():
        rel = path.relative_to(spec.context).as_posix()
        executable = b"x" if os.access(path, os.X_OK) else b"-"
        digest.update(rel.encode() + b"\0" + executable)
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _save(client: docker.DockerClient, tag: str, tarball: Path) -> None:
    partial = tarball.with_suffix(".partial")
    with partial.open("wb") as out:
        for chunk in client.images.get(tag).save(named=True):
            out.write(chunk)
    partial.replace(tarball)
    # Keep one tarball per image: older hashes are dead weight.
    for old in tarball.parent.glob(f"{tarball.name.split('-')[0]}-*.tar"):
        if old != tarball:
            old.unlink()


# Tags younger than this stay: worktrees or CI jobs sharing one engine each build their
# own tag, and removing a sibling's fresh image makes its next container create fail.
KEEP_RECENT_SECONDS = 3 * 3600


def _remove_older(client: docker.DockerClient, name: str, keep: str) -> None:
    # Each source edit makes a new tag; without this, /var/lib/docker grows by an
    # image per edit.  An image a container still uses stays (the engine refuses).
    now = time.time()
    for image in client.images.list(name=f"{REPOSITORY}/{name}"):
        if keep in image.tags or image.id is None:
            continue
        created = str(image.attrs.get("Created", ""))
        try:
            age = (
                now
                - datetime.fromisoformat(created[:26].rstrip("Z")).replace(tzinfo=UTC).timestamp()
            )
        except ValueError:
            age = 0.0  # unknown age: keep it
        if age < KEEP_RECENT_SECONDS:
            continue
        try:
            client.images.remove(image.id)
        except docker.errors.APIError as exc:
            log.debug("kept %s: %s", image.tags, exc)


def _build(
    client: docker.DockerClient, spec: ImageSpec, tag: str, base: BaseImage, wheels: Wheelhouse
) -> None:
    build_log = cache_dir("logs") / f"{spec.name}.log"
    with tempfile.TemporaryDirectory(prefix=f"eqliscsi-{spec.name}-") as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(spec.context, context)
        (context / "wheels").mkdir()
        for wheel in wheels.wheels():
            shutil.copy2(wheel, context / "wheels" / wheel.name)
        lines: list[str] = []
        error: str | None = None
        with build_log.open("w") as sink:
            for chunk in client.api.build(
                path=str(context),
                tag=tag,
                buildargs={"BASE": base.reference},
                labels={"org.eqliscsi.image": spec.name},
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
            ):
                text = chunk.get("stream") or chunk.get("status") or ""
                if text:
                    sink.write(text)
                    lines.append(text)
                if "error" in chunk:
                    error = str(chunk["error"]).strip()
                    sink.write(f"ERROR: {error}\n")
    if error is not None:
        raise ImageBuildError(
            f"docker build of the {spec.name} image failed ({error}); "
            f"the full build log is {build_log}."
        )
    log.debug("built %s; log in %s", tag, build_log)


def ensure_image(
    client: docker.DockerClient,
    spec: ImageSpec,
    base: BaseImage,
    wheels: Wheelhouse,
    *,
    save: bool | None = None,
) -> BuiltImage:
    """``spec``'s image in the engine: already there, loaded from the cache, or built.

    Raises:
        ImageBuildError: the build failed (the message names the build log).
    """
    if save is None:
        save = os.environ.get("EQLISCSI_DOCKER_SAVE", "0") == "1"
    started = time.monotonic()
    short = content_hash(spec, base.identity, wheels.digest)[:16]
    tag = f"{REPOSITORY}/{spec.name}:{short}"
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        pass
    else:
        return BuiltImage(spec.name, tag, "present", time.monotonic() - started)

    tarball = cache_dir("images") / f"{spec.name}-{short}.tar"
    if tarball.exists():
        try:
            with tarball.open("rb") as f:
                client.images.load(f.read())
            client.images.get(tag)
        except docker.errors.DockerException as exc:
            log.warning("could not load %s (%s); building instead", tarball, exc)
        else:
            return BuiltImage(spec.name, tag, "loaded", time.monotonic() - started)

    log.info("building %s", tag)
    _build(client, spec, tag, base, wheels)
    seconds = time.monotonic() - started
    _remove_older(client, spec.name, tag)
    if not save:
        return BuiltImage(spec.name, tag, "built", seconds)
    _save(client, tag, tarball)
    return BuiltImage(spec.name, tag, "built", seconds, time.monotonic() - started - seconds)


def ensure_images(
    client: docker.DockerClient, *, url: str, names: Iterable[str] | None = None
) -> RigImages:
    """Base image, wheelhouse and the named rig images (all of them by default)."""
    base = ensure_base_image(client, url=url)
    wheels = ensure_wheelhouse()
    images = {name: ensure_image(client, IMAGES[name], base, wheels) for name in (names or IMAGES)}
    result = RigImages(base, wheels, images)
    for what, how in result.timings().items():
        log.info("image %s: %s", what, how)
    return result
