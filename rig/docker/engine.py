"""Find a running Docker engine, or start ``dockerd`` and wait for it with a bound.

The rig talks to the engine through the Docker SDK.  CI machines and most developer
machines have the ``docker.io`` package but no engine running (there is no init
system in a CI VM), so :func:`ensure_engine` starts ``dockerd`` itself, logs where its
log goes, and waits until the API answers.  An engine this module started is the
caller's to stop (:meth:`Engine.stop`); one that was already running is left alone.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests.exceptions

from rig.docker.cache import cache_dir
from rig.docker.errors import DockerUnavailableError

__all__ = ["DEFAULT_URL", "Engine", "engine_url", "ensure_engine", "find_engine", "probe"]

log = logging.getLogger(__name__)

DEFAULT_SOCKET = Path("/var/run/docker.sock")
DEFAULT_URL = f"unix://{DEFAULT_SOCKET}"
# dockerd comes up in about 5 s here (overlay2 + cgroupfs); a cold disk or a busy
# 2-core CI machine can triple that, and anything past a minute is a broken engine.
START_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Engine:
    """A Docker engine that answered ``/version``."""

    url: str
    version: str
    process: subprocess.Popen[bytes] | None = None  # set when we started dockerd
    log_path: Path | None = None

    @property
    def started_here(self) -> bool:
        return self.process is not None

    def client(self, timeout: int = 600) -> docker.DockerClient:
        # Builds stream for minutes; the SDK's timeout is per socket read.
        return docker.DockerClient(base_url=self.url, timeout=timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop dockerd if this process started it (SIGTERM, then SIGKILL after ``timeout``)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        log.info("stopped dockerd pid %d", self.process.pid)


def engine_url() -> str:
    """The engine address the Docker CLI would use: ``$DOCKER_HOST`` or the default socket."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_URL


def probe(url: str, timeout: float = 3.0) -> str | None:
    """The engine version at ``url``, or ``None`` when nothing answers there."""
    try:
        client = docker.DockerClient(base_url=url, timeout=max(1, round(timeout)))
    except docker.errors.DockerException:
        return None
    try:
        version = client.version().get("Version")
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
        return None
    finally:
        client.close()
    return str(version) if version else None


def find_engine() -> Engine | None:
    """The engine at :func:`engine_url` if it answers, else ``None``."""
    url = engine_url()
    version = probe(url)
    return Engine(url=url, version=version) if version else None


def _dockerd() -> str | None:
    return shutil.which("dockerd") or shutil.which("dockerd", path="/usr/sbin:/sbin")


def ensure_engine(*, start: bool = True, timeout: float = START_TIMEOUT) -> Engine:
    """A running engine: the one at :func:`engine_url`, or a ``dockerd`` started now.

    Raises:
        DockerUnavailableError: no engine answers and ``start`` is false, dockerd is
            missing, we are not root, or dockerd did not answer within ``timeout``.
    """
    found = find_engine()
    if found is not None:
        log.info("using the Docker engine %s at %s", found.version, found.url)
        return found
    url = engine_url()
    if not start:
        raise DockerUnavailableError(
            f"No Docker engine answers at {url}; start dockerd (rig/docker/ensure-dockerd.sh does)."
        )
    if url != DEFAULT_URL:
        raise DockerUnavailableError(
            f"No Docker engine answers at DOCKER_HOST={url}; start it or unset DOCKER_HOST."
        )
    dockerd = _dockerd()
    if dockerd is None:
        raise DockerUnavailableError(
            "dockerd is not installed; install the Debian package docker.io "
            "(scripts/bootstrap.sh does)."
        )
    if os.geteuid() != 0:
        raise DockerUnavailableError(
            f"No Docker engine answers at {url} and only root can start dockerd; "
            "start it as root (rig/docker/ensure-dockerd.sh)."
        )
    log_path = cache_dir() / "dockerd.log"
    with log_path.open("ab") as sink:
        # A session of its own: Ctrl-C in the terminal that ran `eqliscsi rig up` must
        # not take the engine (and the topology it runs) down with it.
        process = subprocess.Popen(
            [dockerd, "--host", url],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    log.info("started dockerd pid %d, logging to %s", process.pid, log_path)
    began = time.monotonic()
    deadline = began + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DockerUnavailableError(
                f"dockerd exited with status {process.returncode} while starting; "
                f"read {log_path} for the reason."
            )
        version = probe(url, timeout=2.0)
        if version:
            log.info("dockerd %s answered after %.1f s", version, time.monotonic() - began)
            return Engine(url=url, version=version, process=process, log_path=log_path)
        time.sleep(0.25)
    engine = Engine(url=url, version="", process=process, log_path=log_path)
    engine.stop()
    raise DockerUnavailableError(
        f"dockerd did not answer at {url} within {timeout:.0f} s; read {log_path} for the reason."
    )
