"""The containerized tier of the rig: engine, base image, wheelhouse, images, topology.

Import the modules themselves (``rig.docker.engine``, ``.base``, ``.wheelhouse``,
``.images``, ``.topology``, ``.cli``): they need the Docker SDK, which the embedded
tiers do not, so this package re-exports nothing.
"""

__all__: list[str] = []
