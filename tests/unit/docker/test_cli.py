"""The `up`/`down` commands' surface, without an engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from rig.docker.cli import docker_rig, down
from rig.docker.errors import DockerUnavailableError


def test_group_offers_build_up_and_down() -> None:
    result = CliRunner().invoke(docker_rig, ["--help"])
    assert result.exit_code == 0
    assert {"build", "up", "down"} <= set(result.output.split())


def test_down_never_starts_an_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    with pytest.raises(DockerUnavailableError, match="No Docker engine answers"):
        down()
