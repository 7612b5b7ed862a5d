"""``python -m rig.docker up|down`` (what ``eqliscsi rig up --docker`` calls): the printed
directions and the written files really reach the containers, and down removes all."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from click.testing import CliRunner

from eqliscsi.san.ops import SanOps
from eqliscsi.san.session import SanEndpoint, open_session
from eqliscsi.secret import Secret
from rig.docker.cache import cache_dir
from rig.docker.cli import MANUAL_RUN, docker_rig
from rig.docker.engine import Engine
from rig.docker.images import RigImages
from rig.docker.topology import OWNER_LABEL, DockerRig
from rig.need import need_executable

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(600)]


def test_up_prints_directions_that_work_and_down_removes_everything(
    docker_engine: Engine, rig_images: RigImages
) -> None:
    ssh = need_executable("ssh", "openssh-client")
    client = docker_engine.client()
    label: dict[str, str | list[str] | bool] = {"label": f"{OWNER_LABEL}=manual"}
    if client.containers.list(all=True, filters=label):
        # Not a missing component: a person's topology is up, and up would replace it.
        pytest.skip("a manual docker topology is running; leave it alone")
    runner = CliRunner()
    try:
        result = runner.invoke(docker_rig, ["up"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        out = cache_dir(MANUAL_RUN)
        rig = DockerRig.load(out / "rig.json")
        text = result.output
        assert f"password in {rig.password_file}" in text
        assert f"{rig.portal[0]}:{rig.portal[1]}" in text
        assert f"127.0.0.1:{rig.member_port}" in text
        assert {"san", "host1", "host2", "frontend"} <= {
            line.split()[0] for line in text.splitlines() if line.startswith("  ")
        }
        assert (rig.password_file.stat().st_mode & 0o777) == 0o600

        # The SAN CLI through the written endpoint and known_hosts.
        async def group_ip() -> str:
            ep = SanEndpoint(
                host=rig.san_ssh[0],
                port=rig.san_ssh[1],
                username=rig.account,
                password=Secret.from_file(rig.password_file),
                known_hosts=str(rig.known_hosts),
            )
            async with open_session(ep) as s:
                return await SanOps(s, 100).group_ip()

        assert not asyncio.run(group_ip()).startswith("127.")
        # A host through the written ssh_config, with strict host key checking.
        done = subprocess.run(
            [ssh, "-F", str(out / "ssh_config"), "-o", "BatchMode=yes", "host2", "hostname"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (done.returncode, done.stdout.strip()) == (0, "host2"), done.stderr
    finally:
        down = runner.invoke(docker_rig, ["down"], catch_exceptions=False)
    # four containers, the network and the san's state volume
    assert down.output.strip() == "rig: removed 6 containers, networks and volumes"
    assert client.containers.list(all=True, filters=label) == []
    assert client.networks.list(filters=label) == []
    assert client.volumes.list(filters=label) == []
