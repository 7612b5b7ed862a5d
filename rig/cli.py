"""``eqliscsi rig up|down|status``: the embedded rig for a person at a terminal.

Embedded (default): :class:`rig.embedded.EmbeddedRig` under ``--dir`` — the fake
EqualLogic group with tgtd, two namespaced hosts with sshd and the iscsiadm
stand-in, and a front-end directory with the remotes installed (OpenNebula 7.0
layout), ``eqliscsi.conf`` and an ssh config naming the hosts.  Everything it starts
keeps running after ``up`` returns; ``down`` stops every process and removes every
namespace, loop device and mount.  ``--docker`` runs the container topology of
:mod:`rig.docker.cli` instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from rig.embedded import EmbeddedRig

__all__ = ["rig"]

DEFAULT_DIR = Path("/var/tmp/eqliscsi-rig")
_dir_option = click.option(
    "--dir",
    "root",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_DIR,
    show_default=True,
    help="The rig directory: state, logs, front-end files.",
)


@click.group("rig")
def rig() -> None:
    """The test rig: a fake EqualLogic group, two hypervisor hosts and a front-end."""


@rig.command("up")
@_dir_option
@click.option("--docker", is_flag=True, help="Start the container topology instead.")
@click.option("--profile", default="7.0", show_default=True, help="OpenNebula layout of remotes.")
def up(root: Path, docker: bool, profile: str) -> None:
    """Start the rig and print where everything is."""
    if docker:
        from rig.docker import cli as docker_cli  # noqa: PLC0415 - needs the docker SDK

        topo = docker_cli.up()
        click.echo(f"docker rig up: {', '.join(sorted(topo.nodes))}")
        return
    if (root / "rig.json").exists():
        group = EmbeddedRig.load(root).status()["fake_group"]
        if isinstance(group, dict) and group.get("alive"):
            raise click.ClickException(f"A rig is already up in {root}; run `eqliscsi rig down`.")
    r = EmbeddedRig(root)
    r.up()
    sim = r.simulator(profile, name="frontend")
    click.echo(f"rig up in {root}")
    click.echo(f"  remotes:    {sim.remotes}")
    click.echo(f"  conf:       {r.fe / 'eqliscsi.conf'}")
    click.echo(f"  hosts:      ssh -F {r.ssh_config} h1|h2")
    click.echo(f"  group CLI:  ssh -p {r.san_ssh[1]} grpadmin@{r.san_ssh[0]}")
    click.echo(f"  iSCSI:      {r.portal[0]}:{r.portal[1]}")


@rig.command("down")
@_dir_option
@click.option("--docker", is_flag=True, help="Remove the container topology instead.")
def down(root: Path, docker: bool) -> None:
    """Stop every process of the rig and remove its namespaces, loop devices and mounts."""
    if docker:
        from rig.docker import cli as docker_cli  # noqa: PLC0415 - needs the docker SDK

        click.echo(f"removed {docker_cli.down()} docker objects")
        return
    if not (root / "rig.json").exists():
        click.echo(f"no rig in {root}")
        return
    EmbeddedRig.load(root).down()
    click.echo(f"rig in {root} is down")


@rig.command("status")
@_dir_option
def status(root: Path) -> None:
    """Print the rig's state as JSON."""
    if not (root / "rig.json").exists():
        raise click.ClickException(f"No rig in {root}; start one with `eqliscsi rig up`.")
    click.echo(json.dumps(EmbeddedRig.load(root).status(), indent=1))
