"""The containerized rig: san, host1, host2 and frontend on a private Docker network.

:class:`Topology` is a context manager.  Entering it creates a bridge network and the
containers, copies SSH material in (oneadmin's key pair on the frontend, its public key
in each host's ``authorized_keys``), starts everything and waits for *real* readiness:
an ``SSH-2.0-`` banner read through the published port for sshd, the entrypoint's
"ready" line (printed only after tgtadm configured the target) for the SAN.  Then it
writes the frontend's ``known_hosts`` from each host's actual host key, so the frontend
reaches ``host1`` by name with strict host key checking.  Leaving it removes every
container and the network, also after a failure, and keeps each container's log in the
cache directory.

Everything the rig creates carries labels: ``org.eqliscsi.rig`` (the run id) and
``org.eqliscsi.owner`` (the pid of the process that made it, or ``manual`` for
``eqliscsi rig up --docker``).  :func:`sweep_stale` removes what a killed test session
left behind, and never touches a topology a person brought up.

Ports are published on 127.0.0.1 only: on ports the engine picks, or, for a node with
``pinned_ports`` (the san), on free ports chosen once at creation so that they survive
a restart of the container.  The san's member iSCSI port is published 1:1 (the same
number inside and out), because the group portal's login redirect names it.

The san keeps its state (``san.json``, SSH host key, backing files) on a Docker volume
of its own, and its CLI password arrives as a file copied in before it starts (never
in its environment or command line).  :meth:`Topology.rig` describes how to reach it
all, for the e2e suites.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import socket
import tarfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import asyncssh
import docker
import docker.errors
import docker.models.containers
import docker.models.networks

from eqliscsi.san.endpoint import SanEndpoint
from eqliscsi.secret import Secret
from rig.docker.cache import cache_dir
from rig.docker.errors import ContainerNotReadyError
from rig.docker.images import RigImages
from rig.targets.tgt import free_port

__all__ = [
    "DEFAULT_NODES",
    "FRONTEND_REMOTES",
    "SAN_ACCOUNT",
    "SAN_GROUP",
    "DockerRig",
    "LogLine",
    "Node",
    "NodeSpec",
    "SshBanner",
    "Topology",
    "forget_host_sessions",
    "sweep_stale",
]

log = logging.getLogger(__name__)

RUN_LABEL = "org.eqliscsi.rig"
OWNER_LABEL = "org.eqliscsi.owner"
ONEADMIN_UID = 9869  # as in OpenNebula's packages; the images create it so
ONEADMIN_HOME = "/var/lib/one"
READY_TIMEOUT = 90.0
_POLL = 0.2
REMOTES = Path(__file__).resolve().parents[2] / "remotes"
REMOTES_TM = REMOTES / "tm" / "eqliscsi"
HOST_REMOTES = "/var/tmp/one/tm/eqliscsi"  # oned's remotes dir on a host
FRONTEND_REMOTES = f"{ONEADMIN_HOME}/remotes"  # oned's remotes dir on the front-end
SAN_GROUP = "rig-group"
SAN_ACCOUNT = "grpadmin"
SAN_STATE = "/var/lib/eqliscsi/san"
SAN_PASSWORD_FILE = "/etc/eqliscsi/san-password"  # noqa: S105 - a path, not a password
SAN_HOST_PORTAL = 3262  # the group portal for initiators on the Docker host
MEMBER_PORT_ENV = "EQLISCSI_SAN_MEMBER_PORT"


@dataclass(frozen=True, slots=True)
class LogLine:
    """Ready once the container's output contains ``text``."""

    text: str


@dataclass(frozen=True, slots=True)
class SshBanner:
    """Ready once an SSH server's identification line arrives through the published port.

    The engine's port proxy accepts connections before anything listens inside the
    container and then closes them, so a TCP connect proves nothing; the banner
    (RFC 4253 section 4.2) proves sshd itself answered.
    """

    port: int = 22


Readiness = LogLine | SshBanner


@dataclass(frozen=True, slots=True)
class NodeSpec:
    name: str  # the hostname, and its name on the private network
    image: str  # a key of rig.docker.images.IMAGES
    ports: tuple[int, ...] = ()
    privileged: bool = False
    ready: tuple[Readiness, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    # Host ports chosen at creation (kept across restarts) instead of by the engine.
    pinned_ports: bool = False
    # An environment variable that receives a port free on the Docker host's loopback;
    # that port is published 1:1 (for the san's member portal, named in redirects).
    same_port_env: str | None = None
    # (volume name suffix, mount point): a Docker volume owned by the topology.
    volumes: tuple[tuple[str, str], ...] = ()
    san_password: bool = False  # copy the group password file in before start


DEFAULT_NODES: tuple[NodeSpec, ...] = (
    NodeSpec(
        "san",
        "san",
        # 22: the Group Manager CLI; 3262: the group portal for initiators on the
        # Docker host.  3260 (the group portal of the private network) is not
        # published: its redirects name an address only the containers reach.
        ports=(22, SAN_HOST_PORTAL),
        # rig.fake_eql prints exactly this once its CLI accepts SSH connections, and it
        # starts the tgtds (and restores the volumes' targets) before that.
        ready=(LogLine("ready 0.0.0.0:22"),),
        environment=(
            ("EQLISCSI_TARGET_BACKEND", "auto"),
            ("EQLISCSI_SAN_GROUP", SAN_GROUP),
            ("EQLISCSI_SAN_ACCOUNT", SAN_ACCOUNT),
            ("EQLISCSI_SAN_PASSWORD_FILE", SAN_PASSWORD_FILE),
            ("EQLISCSI_SAN_HOST_PORTAL_PORT", str(SAN_HOST_PORTAL)),
        ),
        pinned_ports=True,
        same_port_env=MEMBER_PORT_ENV,
        volumes=(("san-state", SAN_STATE),),
        san_password=True,
    ),
    # FUSE and loop devices for the iscsiadm stand-in need a privileged container.
    # Pinned ports: a host that restarts (or "loses power", Topology.kill) keeps its
    # sshd address, so ssh configs handed out before stay valid.
    NodeSpec(
        "host1", "host", ports=(22,), privileged=True, ready=(SshBanner(22),), pinned_ports=True
    ),
    NodeSpec(
        "host2", "host", ports=(22,), privileged=True, ready=(SshBanner(22),), pinned_ports=True
    ),
    NodeSpec("frontend", "frontend", ready=(LogLine("eqliscsi-frontend: ready"),)),
)


@dataclass(slots=True)
class Node:
    """One running container of the topology."""

    spec: NodeSpec
    container: docker.models.containers.Container
    ports: dict[int, int] = field(default_factory=dict)  # container port -> 127.0.0.1 port
    ready_seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.spec.name

    def address(self, port: int) -> tuple[str, int]:
        """Where the host reaches container ``port``: always on 127.0.0.1."""
        return ("127.0.0.1", self.ports[port])

    def exec(self, argv: Sequence[str], *, user: str = "root") -> tuple[int, str]:
        """Run ``argv`` in the container (no shell); exit status and combined output."""
        result = self.container.exec_run(list(argv), user=user, demux=False)
        output = result.output
        text = output.decode(errors="replace") if isinstance(output, bytes) else ""
        return int(result.exit_code or 0), text

    def put_file(self, path: str, content: bytes, *, mode: int = 0o600, owner: int = 0) -> None:
        """Copy ``content`` into the container as ``path`` (never through argv or env)."""
        parent, _, name = path.rpartition("/")
        self.container.put_archive(
            parent or "/", _tar([(name, content, mode)], uid=owner, gid=owner)
        )

    def logs(self, since: int | None = None) -> str:
        """The container's output (only what came after ``since``, a Unix time, if given)."""
        kwargs: dict[str, Any] = {} if since is None else {"since": since}
        raw: bytes = self.container.logs(stdout=True, stderr=True, **kwargs)
        return raw.decode(errors="replace")


@dataclass(frozen=True, slots=True)
class DockerRig:
    """How the e2e suites reach the container topology (like ``rig.embedded.EmbeddedRig``).

    Addresses ending in ``_from_host`` are on the Docker host's 127.0.0.1; the others
    are names/addresses on the private network, for code running in the containers.
    """

    san_ssh: tuple[str, int]  # the Group Manager CLI, from the host
    account: str
    group: str
    password_file: Path  # 0600, on the host
    known_hosts: Path  # the san's key for "[127.0.0.1]:port" (and "san" for containers)
    portal: tuple[str, int]  # group portal from the host; logins redirect to 127.0.0.1
    private_portal: tuple[str, int]  # group portal from the containers ("san", 3260)
    member_port: int  # the member portal's port, the same inside and outside
    hosts_ssh: dict[str, tuple[str, int]]  # host name -> sshd, from the host
    ssh_key: Path  # oneadmin's private key, accepted by every host
    ssh_config: Path  # OpenSSH config naming each host (and "san") on 127.0.0.1
    state_dir: str = SAN_STATE  # inside the san container

    def lun_path(self, uid: str) -> str:
        """The backing file of a volume (by its model uid) inside the san container."""
        return f"{self.state_dir}/luns/{uid}.img"

    def san_endpoint(self, *, command_timeout: float = 30.0) -> SanEndpoint:
        """The group's CLI as the SAN client reaches it from the Docker host."""
        return SanEndpoint(
            host=self.san_ssh[0],
            port=self.san_ssh[1],
            username=self.account,
            password=Secret.from_file(self.password_file),
            known_hosts=str(self.known_hosts),
            group=self.group,
            command_timeout=command_timeout,
        )

    def save(self, path: Path) -> None:
        """Write this description as JSON (no secrets: the password stays in its file)."""
        data = {
            "san_ssh": list(self.san_ssh),
            "account": self.account,
            "group": self.group,
            "password_file": str(self.password_file),
            "known_hosts": str(self.known_hosts),
            "portal": list(self.portal),
            "private_portal": list(self.private_portal),
            "member_port": self.member_port,
            "hosts_ssh": {k: list(v) for k, v in self.hosts_ssh.items()},
            "ssh_key": str(self.ssh_key),
            "ssh_config": str(self.ssh_config),
            "state_dir": self.state_dir,
        }
        path.write_text(json.dumps(data, indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> DockerRig:
        """Read what :meth:`save` wrote (``eqliscsi rig up --docker`` writes ``rig.json``)."""
        d = json.loads(path.read_text())
        return cls(
            san_ssh=(str(d["san_ssh"][0]), int(d["san_ssh"][1])),
            account=str(d["account"]),
            group=str(d["group"]),
            password_file=Path(d["password_file"]),
            known_hosts=Path(d["known_hosts"]),
            portal=(str(d["portal"][0]), int(d["portal"][1])),
            private_portal=(str(d["private_portal"][0]), int(d["private_portal"][1])),
            member_port=int(d["member_port"]),
            hosts_ssh={str(k): (str(v[0]), int(v[1])) for k, v in d["hosts_ssh"].items()},
            ssh_key=Path(d["ssh_key"]),
            ssh_config=Path(d["ssh_config"]),
            state_dir=str(d["state_dir"]),
        )


def _tar(files: Sequence[tuple[str, bytes, int]], *, uid: int, gid: int) -> bytes:
    """A tar of ``(name, content, mode)`` entries owned by ``uid:gid``, for put_archive."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, content, mode in files:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = mode
            info.uid, info.gid = uid, gid
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


# Linux capability numbers 0..40 (linux/capability.h), as Docker names them.
CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN",
    "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE",
    "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
    "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)  # fmt: skip
# FUSE (/dev/fuse, char 10:229) and loop devices (loop-control 10:237, block major 7):
# what the iscsiadm stand-in (qemu-storage-daemon FUSE export + losetup) opens.
# Docker 20.10 (Debian bookworm's docker.io) rejects names it does not know, and it
# knows none past AUDIT_READ (37); FUSE and loop devices need none of the newer ones.
_ENGINE_KNOWN_CAPS = 38
_DEVICE_RULES = ("c 10:229 rwm", "c 10:237 rwm", "b 7:* rwm")


def bounding_set() -> int:
    """This process's capability bounding set (``CapBnd`` in /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    return 0


def privileged_options(bounding: int, devices: Sequence[str]) -> dict[str, Any]:
    """Docker create options for a container that needs FUSE and loop devices.

    ``privileged=True`` asks runc for *every* capability; in a sandbox whose bounding
    set lacks one (this machine's VM drops CAP_SYS_RESOURCE), runc then fails with
    "unable to apply caps".  There we grant every capability we do have, lift the
    seccomp and AppArmor confinement, and pass the FUSE and loop devices with
    cgroup rules that also cover loop devices created later.
    """
    if bounding | ~((1 << len(CAPABILITIES)) - 1) == -1:
        return {"privileged": True}
    known = CAPABILITIES[:_ENGINE_KNOWN_CAPS]
    have = [name for bit, name in enumerate(known) if bounding >> bit & 1]
    return {
        "cap_add": have,
        "security_opt": ["apparmor=unconfined", "seccomp=unconfined"],
        "devices": [f"{d}:{d}:rwm" for d in devices],
        "device_cgroup_rules": list(_DEVICE_RULES),
    }


def _remotes_tar() -> bytes:
    """``datastore/eqliscsi`` and ``tm/eqliscsi`` of the checkout, owned by oneadmin."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for kind in ("datastore", "tm"):
            for directory in (kind, f"{kind}/eqliscsi"):
                info = tarfile.TarInfo(directory)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                info.uid = info.gid = ONEADMIN_UID
                tar.addfile(info)
            for f in sorted((REMOTES / kind / "eqliscsi").iterdir()):
                if not f.is_file():
                    continue
                content = f.read_bytes()
                info = tarfile.TarInfo(f"{kind}/eqliscsi/{f.name}")
                info.size, info.mode = len(content), f.stat().st_mode & 0o777
                info.uid = info.gid = ONEADMIN_UID
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _host_devices() -> list[str]:
    fixed = [p for p in (Path("/dev/fuse"), Path("/dev/loop-control")) if p.exists()]
    loops = sorted(Path("/dev").glob("loop[0-9]*"), key=lambda p: int(p.name[4:]))
    return [str(p) for p in (*fixed, *loops)]


def _loopback_ports(ports: Sequence[int], pinned: dict[int, int] | None = None) -> dict[str, Any]:
    # (address, None): the engine picks a free port, bound on loopback only.  (The
    # SDK accepts None here; its stubs do not say so, hence Any.)  A pinned port keeps
    # its number when the container restarts; an engine-picked one would not.
    pinned = pinned or {}
    return {f"{p}/tcp": ("127.0.0.1", pinned.get(p)) for p in (*ports, *pinned)}


def _ssh_banner(address: tuple[str, int], timeout: float = 2.0) -> str | None:
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.settimeout(timeout)
            data = sock.recv(256)
    except OSError:
        return None
    line = data.split(b"\r\n", 1)[0].decode(errors="replace")
    return line if line.startswith("SSH-2.0-") else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forget_host_sessions(container: docker.models.containers.Container) -> None:
    """Detach a running host container's loop devices before it goes (they are the
    Docker host's and would outlive it); other containers are left alone."""
    try:
        container.reload()
        tags = container.image.tags if container.image is not None else []
        if container.status != "running" or not any(t.startswith("eqliscsi/host:") for t in tags):
            return
        result = container.exec_run(
            ["/opt/eqliscsi/bin/python", "-m", "rig.docker.host_reset", "--live"]
        )
    except docker.errors.DockerException as exc:
        log.warning("could not forget the sessions of %s: %s", container.name, exc)
        return
    if result.exit_code != 0:
        log.warning("could not forget the sessions of %s: %r", container.name, result.output)


def sweep_stale(client: docker.DockerClient) -> int:
    """Remove containers and networks of test sessions whose process is gone; how many."""
    removed = 0
    for container in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
        owner = (container.labels or {}).get(OWNER_LABEL, "")
        if owner.isdigit() and not _pid_alive(int(owner)):
            forget_host_sessions(container)
            container.remove(force=True)
            removed += 1
    for network in client.networks.list(filters={"label": OWNER_LABEL}):
        owner = (network.attrs.get("Labels") or {}).get(OWNER_LABEL, "")
        if owner.isdigit() and not _pid_alive(int(owner)):
            network.remove()
            removed += 1
    for volume in client.volumes.list(filters={"label": OWNER_LABEL}):
        owner = (volume.attrs.get("Labels") or {}).get(OWNER_LABEL, "")
        if owner.isdigit() and not _pid_alive(int(owner)):
            volume.remove(force=True)
            removed += 1
    if removed:
        log.info("removed %d containers/networks left by dead test sessions", removed)
    return removed


class Topology:
    """The rig's containers on one private network (see the module docstring)."""

    def __init__(
        self,
        client: docker.DockerClient,
        images: RigImages,
        *,
        nodes: Sequence[NodeSpec] = DEFAULT_NODES,
        run_id: str | None = None,
        manual: bool = False,
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        self.client = client
        self.images = images
        self.specs = tuple(nodes)
        self.run_id = run_id or uuid.uuid4().hex[:8]
        self.owner = "manual" if manual else str(os.getpid())
        self.ready_timeout = ready_timeout
        self.nodes: dict[str, Node] = {}
        self.network: docker.models.networks.Network | None = None
        self.volumes: list[Any] = []
        # The group's CLI password: made per topology, copied into the san as a file.
        self.san_password: bytes = secrets.token_urlsafe(18).encode()
        self.started_seconds = 0.0
        # oneadmin's key pair, made per topology: a leaked key from a throwaway rig
        # opens nothing else.  key_file() writes it out for host-side ssh.
        key = asyncssh.generate_private_key("ssh-ed25519", comment="oneadmin@eqliscsi-rig")
        self.private_key: bytes = key.export_private_key("openssh")
        self.public_key: bytes = key.export_public_key("openssh")

    @property
    def labels(self) -> dict[str, str]:
        return {RUN_LABEL: self.run_id, OWNER_LABEL: self.owner}

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _name(self, node: str) -> str:
        return f"eqliscsi-{self.run_id}-{node}"

    def start(self) -> None:
        """Create and start every node, then wait for each to be ready.

        Raises:
            ContainerNotReadyError: a node exited or did not get ready in time.
        """
        began = time.monotonic()
        sweep_stale(self.client)
        privileged = privileged_options(bounding_set(), _host_devices())
        if "privileged" not in privileged:
            log.info(
                "this sandbox cannot grant every capability; privileged nodes get %d "
                "capabilities and the FUSE/loop devices instead",
                len(privileged["cap_add"]),
            )
        net_name = self._name("net")
        self.network = self.client.networks.create(net_name, driver="bridge", labels=self.labels)
        for spec in self.specs:
            endpoint = self.client.api.create_endpoint_config(aliases=[spec.name])
            environment = dict(spec.environment)
            pinned: dict[int, int] = {}
            if spec.pinned_ports:
                pinned = {p: free_port("127.0.0.1") for p in spec.ports}
            if spec.same_port_env:
                same = free_port("127.0.0.1")
                environment[spec.same_port_env] = str(same)
                pinned[same] = same
            mounts = {}
            for suffix, path in spec.volumes:
                volume = self.client.volumes.create(self._name(suffix), labels=self.labels)
                self.volumes.append(volume)
                mounts[volume.name] = {"bind": path, "mode": "rw"}
            container = self.client.containers.create(
                self.images.tag(spec.image),
                name=self._name(spec.name),
                hostname=spec.name,
                network=net_name,
                networking_config={net_name: endpoint},
                ports=_loopback_ports([] if pinned else spec.ports, pinned),
                **(privileged if spec.privileged else {}),
                environment=environment,
                volumes=mounts,
                labels=self.labels,
                init=True,  # docker-init reaps what the entrypoints leave behind
                detach=True,
            )
            self.nodes[spec.name] = Node(spec, container)
            self._install_ssh_material(spec, container)
            if spec.san_password:
                container.put_archive(
                    str(Path(SAN_PASSWORD_FILE).parent),
                    _tar([(Path(SAN_PASSWORD_FILE).name, self.san_password, 0o600)], uid=0, gid=0),
                )
        for node in self.nodes.values():
            node.container.start()
        for node in self.nodes.values():
            self._wait_ready(node, began)
        self._write_known_hosts()
        self.started_seconds = time.monotonic() - began
        log.info(
            "topology %s ready in %.1f s (%s)",
            self.run_id,
            self.started_seconds,
            ", ".join(f"{n.name} {n.ready_seconds:.1f} s" for n in self.nodes.values()),
        )

    def _install_ssh_material(
        self, spec: NodeSpec, container: docker.models.containers.Container
    ) -> None:
        if spec.image == "host":
            # What `onehost sync` does: the driver's remotes (CHAP helper, udev helper
            # that the iscsiadm stand-in runs) where the driver expects them.
            remotes = [
                (f.name, f.read_bytes(), 0o755) for f in sorted(REMOTES_TM.iterdir()) if f.is_file()
            ]
            if remotes:
                container.put_archive(HOST_REMOTES, _tar(remotes, uid=0, gid=0))
            files = [("authorized_keys", self.public_key, 0o600)]
        elif spec.image == "frontend":
            # What `eqliscsi install` puts into oned's remotes tree: the DS and TM
            # drivers (the package they import is installed in the image).
            container.put_archive(FRONTEND_REMOTES, _remotes_tar())
            files = [
                ("id_ed25519", self.private_key, 0o600),
                ("id_ed25519.pub", self.public_key, 0o644),
            ]
        else:
            return
        container.put_archive(
            f"{ONEADMIN_HOME}/.ssh", _tar(files, uid=ONEADMIN_UID, gid=ONEADMIN_UID)
        )

    def restart(self, name: str, *, timeout: int = 20) -> float:
        """Restart one node (SIGTERM, then start) and wait until it is ready again; seconds.

        Published ports of a pinned node keep their numbers, so addresses handed out
        before stay valid.
        """
        node = self.nodes[name]
        began = time.monotonic()
        since = int(time.time())
        node.container.restart(timeout=timeout)
        node.ports = {}
        self._wait_ready(node, began, since=since)
        return time.monotonic() - began

    def kill(self, name: str) -> None:
        """Cut one node's power: SIGKILL to every process in it, nothing shuts down cleanly.

        The container stays (its disk is the node's disk); :meth:`boot` starts it again.
        """
        node = self.nodes[name]
        node.container.kill()
        node.container.wait(timeout=30)
        node.container.reload()

    def boot(self, name: str) -> float:
        """Boot a node :meth:`kill` stopped and wait until it is ready again; seconds."""
        node = self.nodes[name]
        began = time.monotonic()
        since = int(time.time())
        node.container.start()
        node.ports = {}
        self._wait_ready(node, began, since=since)
        return time.monotonic() - began

    def _wait_ready(self, node: Node, began: float, since: int | None = None) -> None:
        deadline = time.monotonic() + self.ready_timeout
        pending = list(node.spec.ready)
        while True:
            node.container.reload()
            if node.container.status in ("exited", "dead"):
                tail = " | ".join(node.logs().strip().splitlines()[-3:])
                raise ContainerNotReadyError(
                    f"The {node.name} container exited while starting ({tail}); "
                    "fix its entrypoint or image."
                )
            if not node.ports and node.spec.ports:
                node.ports = self._published(node)
            pending = [check for check in pending if not self._check(node, check, since)]
            if not pending:
                node.ready_seconds = time.monotonic() - began
                return
            if time.monotonic() > deadline:
                raise ContainerNotReadyError(
                    f"The {node.name} container was not ready within {self.ready_timeout:.0f} s "
                    f"(still waiting for {pending[0]}); read its log in {cache_dir('logs')}."
                )
            time.sleep(_POLL)

    def _published(self, node: Node) -> dict[int, int]:
        ports: dict[int, int] = {}
        for key, bindings in (node.container.ports or {}).items():
            port, _, proto = key.partition("/")
            if proto == "tcp" and bindings:
                ports[int(port)] = int(bindings[0]["HostPort"])
        return ports

    def _check(self, node: Node, check: Readiness, since: int | None = None) -> bool:
        if isinstance(check, LogLine):
            return check.text in node.logs(since)
        if check.port not in node.ports:
            return False
        return _ssh_banner(node.address(check.port)) is not None

    def _write_known_hosts(self) -> None:
        frontend = next((n for n in self.nodes.values() if n.spec.image == "frontend"), None)
        if frontend is None:
            return
        lines = []
        for node in self.nodes.values():
            if node.spec.image != "host":
                continue
            status, key = node.exec(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
            if status != 0:
                raise ContainerNotReadyError(
                    f"Could not read {node.name}'s SSH host key ({key.strip()}); "
                    "check the host image's entrypoint."
                )
            algorithm, blob = key.split()[:2]
            lines.append(f"{node.name} {algorithm} {blob}\n")
        frontend.container.put_archive(
            f"{ONEADMIN_HOME}/.ssh",
            _tar(
                [("known_hosts", "".join(lines).encode(), 0o644)],
                uid=ONEADMIN_UID,
                gid=ONEADMIN_UID,
            ),
        )

    def close(self) -> None:
        """Remove every container (keeping its log) and the network; never raises."""
        logs = cache_dir("logs")
        for node in self.nodes.values():
            forget_host_sessions(node.container)
            try:
                (logs / f"{self.run_id}-{node.name}.log").write_text(node.logs())
            except (docker.errors.DockerException, OSError) as exc:
                log.warning("could not keep the log of %s: %s", node.name, exc)
            try:
                node.container.remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.DockerException as exc:
                log.warning("could not remove %s: %s", node.name, exc)
        self.nodes.clear()
        if self.network is not None:
            try:
                self.network.remove()
            except docker.errors.NotFound:
                pass
            except docker.errors.DockerException as exc:
                log.warning("could not remove network %s: %s", self.network.name, exc)
            self.network = None
        for volume in self.volumes:
            try:
                volume.remove(force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.DockerException as exc:
                log.warning("could not remove volume %s: %s", volume.name, exc)
        self.volumes.clear()

    def rig(self, directory: Path) -> DockerRig:
        """Write the host-side files (key, password, known_hosts, ssh_config) into ``directory``."""
        san = self.nodes["san"]
        password = directory / "san-password"
        password.touch(mode=0o600)
        password.write_bytes(self.san_password)
        status, pub = san.exec(["cat", f"{SAN_STATE}/ssh_host_ed25519_key.pub"])
        if status != 0:
            raise ContainerNotReadyError(
                f"Could not read the san's SSH host key ({pub.strip()}); check its state volume."
            )
        lines = [f"[{san.address(22)[0]}]:{san.address(22)[1]} {' '.join(pub.split()[:2])}\n"]
        lines.append(f"san {' '.join(pub.split()[:2])}\n")
        key = self.key_file(directory)
        known = directory / "known_hosts"
        config = []
        hosts = [n for n in self.nodes.values() if n.spec.image == "host"]
        for node in hosts:
            status, host_pub = node.exec(["cat", "/etc/ssh/ssh_host_ed25519_key.pub"])
            if status != 0:
                raise ContainerNotReadyError(
                    f"Could not read {node.name}'s SSH host key ({host_pub.strip()}); "
                    "check the host image's entrypoint."
                )
            address, port = node.address(22)
            lines.append(f"[{address}]:{port} {' '.join(host_pub.split()[:2])}\n")
            config.append(
                f"Host {node.name}\n  HostName {address}\n  Port {port}\n"
                f"  User oneadmin\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
                f"  UserKnownHostsFile {known}\n  StrictHostKeyChecking yes\n"
                "  BatchMode yes\n"
            )
        address, port = san.address(22)
        config.append(
            f"Host san\n  HostName {address}\n  Port {port}\n  User {SAN_ACCOUNT}\n"
            f"  UserKnownHostsFile {known}\n  StrictHostKeyChecking yes\n"
            "  PreferredAuthentications password,keyboard-interactive\n"
        )
        known.write_text("".join(lines))
        ssh_config = directory / "ssh_config"
        ssh_config.write_text("".join(config))
        return DockerRig(
            san_ssh=(address, port),
            account=SAN_ACCOUNT,
            group=SAN_GROUP,
            password_file=password,
            known_hosts=known,
            portal=san.address(SAN_HOST_PORTAL),
            private_portal=("san", 3260),
            member_port=self._member_port(san),
            hosts_ssh={n.name: n.address(22) for n in hosts},
            ssh_key=key,
            ssh_config=ssh_config,
        )

    def _member_port(self, san: Node) -> int:
        env = san.container.attrs["Config"]["Env"] or []
        for item in env:
            name, _, value = item.partition("=")
            if name == MEMBER_PORT_ENV:
                return int(value)
        raise ContainerNotReadyError("The san container has no member port; recreate it.")

    def key_file(self, directory: Path) -> Path:
        """Write oneadmin's private key into ``directory`` (mode 0600) for host-side ssh."""
        path = directory / "id_ed25519"
        path.touch(mode=0o600)
        path.write_bytes(self.private_key)
        return path
