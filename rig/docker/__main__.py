"""``python -m rig.docker up|down``."""

from rig.docker.cli import docker_rig

docker_rig(prog_name="python -m rig.docker")
