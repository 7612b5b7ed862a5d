"""Errors of the containerized rig tier, all in the :class:`~eqliscsi.errors.RigError` family."""

from __future__ import annotations

from eqliscsi.errors import RigError

__all__ = [
    "BaseImageError",
    "ContainerNotReadyError",
    "DockerUnavailableError",
    "FrontendCallError",
    "ImageBuildError",
    "WheelhouseError",
]


class DockerUnavailableError(RigError):
    """No Docker engine answers and none could be started."""

    reference = "docker-unavailable"


class BaseImageError(RigError):
    """The debian:bookworm-slim base image could neither be pulled nor built locally."""

    reference = "docker-base-image-failed"


class WheelhouseError(RigError):
    """``pip wheel`` could not build the wheels the images install."""

    reference = "docker-wheelhouse-failed"


class ImageBuildError(RigError):
    """``docker build`` of one of the rig's images failed."""

    reference = "docker-image-build-failed"


class ContainerNotReadyError(RigError):
    """A rig container did not become ready within its bound."""

    reference = "docker-container-not-ready"


class FrontendCallError(RigError):
    """The oned simulator in the frontend container gave no answer."""

    reference = "docker-frontend-call-failed"
