"""``eqliscsi rig up --docker`` / ``rig down --docker``: the container topology for a person.

The commands live here so the container tier stays self-contained; ``rig.cli`` (the
rig's command group) delegates to :func:`up` and :func:`down` for ``--docker``.  They
also run as ``python -m rig.docker up|down``; ``python -m rig.docker build`` makes the
images ahead of the tests (a CI stage of its own, so its time is reported apart).

A topology brought up this way is labelled ``manual``: test sessions never sweep it,
and it stays up until ``down``.  The SSH material a person needs (oneadmin's key, the
hosts' keys, a config naming every node) is written to ``$EQLISCSI_CACHE/docker/manual``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from rig.docker.cache import cache_dir
from rig.docker.engine import ensure_engine
from rig.docker.images import ensure_images
from rig.docker.topology import OWNER_LABEL, DockerRig, Topology, forget_host_sessions

__all__ = ["describe", "docker_rig", "down", "up"]

MANUAL_RUN = "manual"


def down() -> int:
    """Remove the manual topology's containers, network and volume; how many objects went."""
    client = ensure_engine(start=False).client()
    removed = 0
    label: dict[str, str | list[str] | bool] = {"label": f"{OWNER_LABEL}=manual"}
    for container in client.containers.list(all=True, filters=label):
        forget_host_sessions(container)
        container.remove(force=True)
        removed += 1
    for network in client.networks.list(filters=label):
        network.remove()
        removed += 1
    for volume in client.volumes.list(filters=label):
        volume.remove(force=True)
        removed += 1
    return removed


def up(*, echo: bool = True) -> Topology:
    """Build what is missing, replace any manual topology, start one and write its files.

    Writes to ``$EQLISCSI_CACHE/docker/manual``: oneadmin's key, the group password
    (0600), ``known_hosts`` (san and hosts on their published ports, and ``san`` by
    name), ``ssh_config`` (every node with sshd, by name) and ``rig.json`` (a
    :class:`~rig.docker.topology.DockerRig`, for ``DockerRig.load``).  With ``echo``
    it prints how to reach each container.
    """
    engine = ensure_engine()
    client = engine.client()
    images = ensure_images(client, url=engine.url)
    down()
    topo = Topology(client, images, run_id=MANUAL_RUN, manual=True)
    try:
        topo.start()
        out = cache_dir(MANUAL_RUN)
        rig = topo.rig(out)  # key, password, known_hosts, ssh_config
    except BaseException:
        topo.close()
        raise
    rig.save(out / "rig.json")
    if echo:
        for line in describe(topo, rig, out):
            click.echo(line)
    return topo


def describe(topo: Topology, rig: DockerRig, out: Path) -> list[str]:
    """Lines telling a person how to reach each container of a running topology."""
    lines = [f"rig: docker topology up in {topo.started_seconds:.1f} s (files in {out})"]
    for node in topo.nodes.values():
        ports = ", ".join(f"{p} -> 127.0.0.1:{h}" for p, h in sorted(node.ports.items()))
        lines.append(
            f"  {node.name:<9} {node.container.name:<28} {ports or '(no published ports)'}"
        )
    lines += [
        f"rig: SAN CLI: ssh -F {out / 'ssh_config'} san   "
        f"(account {rig.account}, password in {rig.password_file})",
        f"rig: group portal from this machine: {rig.portal[0]}:{rig.portal[1]} "
        f"(logins redirect to 127.0.0.1:{rig.member_port}); "
        f"from the containers: {rig.private_portal[0]}:{rig.private_portal[1]}",
        f"rig: hosts: ssh -F {out / 'ssh_config'} host1   (or host2)",
        f"rig: frontend: docker exec -it -u oneadmin {topo.nodes['frontend'].container.name} bash",
        f"rig: description for tests: {out / 'rig.json'}; remove with: eqliscsi rig down --docker",
    ]
    return lines


@click.group("docker")
def docker_rig() -> None:
    """The containerized rig: san, host1, host2 and frontend on a private Docker network."""


@docker_rig.command("build")
def build_command() -> None:
    """Make the base image, wheelhouse and images present; print what each took (for CI)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    engine = ensure_engine()
    images = ensure_images(engine.client(), url=engine.url)
    for what, how in images.timings().items():
        click.echo(f"rig: {what}: {how}")


@docker_rig.command("up")
def up_command() -> None:
    """Build (or reuse) the images and start the topology; it stays up until `down`."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    up()


@docker_rig.command("down")
def down_command() -> None:
    """Remove the topology that `up` started."""
    click.echo(f"rig: removed {down()} containers, networks and volumes")
