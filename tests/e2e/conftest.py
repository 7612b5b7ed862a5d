"""Session fixtures of the container tier: engine, images, and the running topology.

The kernel guest's fixtures are registered here too (rig.guest.pytest_plugin, one
plugin for the whole session, also registered by tests/integration/conftest.py): the
TM lifecycle suite's ``rig=guest`` shares the guest tier's one booted guest.

They live here, above tests/e2e/docker and tests/e2e/tm, so that every suite using the
container rig (the docker tier itself, and the TM lifecycle on ``rig=docker``) shares
one topology per test session.

Order matters for the timings reported at the end of the run: the engine first
(found, or dockerd started here and stopped at the end), then the images (base,
wheelhouse, san/host/frontend: built, loaded or already present), then the topology
(started once per session, removed at the end even when tests failed).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest

from rig.docker.engine import Engine, ensure_engine, find_engine
from rig.docker.errors import DockerUnavailableError
from rig.docker.images import RigImages, ensure_images
from rig.docker.lifecycle import DockerLifecycle
from rig.docker.topology import DockerRig, Topology
from rig.guest.pytest_plugin import register
from rig.need import need

# "what: how long" lines, printed after the test summary so CI logs carry them.
TIMINGS: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    register(config)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("docker tier timings")
        for line in TIMINGS:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Engine]:
    installed = find_engine() is not None or bool(
        shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin")
    )
    need(installed, "Docker is not installed (Debian package docker.io)")
    started = time.monotonic()
    try:
        engine = ensure_engine()
    except DockerUnavailableError as exc:
        need(False, str(exc))
        raise  # unreachable: need() skipped or failed
    TIMINGS.append(
        f"engine: {'started' if engine.started_here else 'found'} {engine.version} "
        f"in {time.monotonic() - started:.1f} s"
    )
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def rig_images(docker_engine: Engine) -> RigImages:
    need_executable_debootstrap()
    started = time.monotonic()
    images = ensure_images(docker_engine.client(), url=docker_engine.url)
    TIMINGS.extend(f"{what}: {how}" for what, how in images.timings().items())
    TIMINGS.append(f"images total: {time.monotonic() - started:.1f} s")
    return images


def need_executable_debootstrap() -> None:
    # Only needed when the base image is not cached yet, but CI must be able to do it.
    need(
        bool(shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin")),
        "debootstrap is not installed (Debian package debootstrap)",
    )


@pytest.fixture(scope="session")
def topology(docker_engine: Engine, rig_images: RigImages) -> Iterator[Topology]:
    with Topology(docker_engine.client(), rig_images) as topo:
        TIMINGS.append(
            f"topology start-to-ready: {topo.started_seconds:.1f} s ("
            + ", ".join(f"{n.name} {n.ready_seconds:.1f} s" for n in topo.nodes.values())
            + ")"
        )
        yield topo


@pytest.fixture(scope="session")
def docker_rig(topology: Topology, tmp_path_factory: pytest.TempPathFactory) -> DockerRig:
    """The topology as the e2e suites see it (SAN endpoint, portals, host sshd, key files)."""
    return topology.rig(tmp_path_factory.mktemp("docker-rig"))


@pytest.fixture(scope="session")
def docker_lifecycle(
    topology: Topology, docker_rig: DockerRig, tmp_path_factory: pytest.TempPathFactory
) -> DockerLifecycle:
    """The topology as a rig.lifecycle.LifecycleRig: h1/h2 and the frontend's simulator."""
    started = time.monotonic()
    lifecycle = DockerLifecycle(
        topology, docker_rig, tmp_path_factory.mktemp("docker-lifecycle")
    ).setup()
    TIMINGS.append(
        f"lifecycle rig setup (CHAP account, frontend files): {time.monotonic() - started:.1f} s"
    )
    return lifecycle
