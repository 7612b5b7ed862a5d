"""Hypervisor-host side of the TM driver: scripts for ``ssh <host> sh -s`` and their runner.

The iSCSI steps themselves (discovery, CHAP record, login, logout, record delete)
come from the builders in :mod:`eqliscsi.opennebula.iscsiadm`; this module adds what
a VM disk needs around them and runs the result on a host:

* **attach**: login script, then a bounded wait for ``<EQL_BASE_DEVICE>/<volume>``
  (the udev link) to be a block device, then ``ln -sf`` of ``disk.N`` — all while
  the host's iSCSI lock taken by the login script is still held, so a stale-session
  sweep on the same host never sees a login without its link.  The original slept
  a fixed time and could write into a regular file in /dev (reference §1.9 item 1).
* **detach**: optional removal of ``disk.N`` (only when it still points at our
  device), then the logout script, which treats "no session" as success.
* **inventory**: ``iscsiadm -m session`` plus the ``disk.N`` links under the
  system datastores, for the stale-session sweep.

Transport: OpenSSH as the user oned runs as (oneadmin), with the script on stdin,
the way OpenNebula's own ``ssh_exec_and_log`` reaches hosts.  Using the ``ssh``
client rather than a library keeps oneadmin's ``~/.ssh/config`` (per-host ports,
jump hosts, ``ControlMaster``), known_hosts and the ssh-agent that OpenNebula 5.12+
starts for oned in force: the hosts are already set up for exactly this.  Only
``EQLISCSI_SSH_CONFIG`` (an explicit ``-F`` file, used by the test rig) changes it.
``BatchMode=yes`` makes a missing key fail at once instead of prompting.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from eqliscsi.errors import DriverError
from eqliscsi.opennebula import iscsiadm as ia
from eqliscsi.opennebula.devname import volume_from_iqn

__all__ = [
    "SWEEP_KEPT",
    "DeviceTimeoutError",
    "HostCommandError",
    "HostRunner",
    "HostUnreachableError",
    "Inventory",
    "SshRunner",
    "attach_script",
    "detach_script",
    "inventory_script",
    "parse_inventory",
]

_MARK_DEVICE = "eqliscsi-tm: device-timeout"
_MARK_LINKS = "eqliscsi-tm: links"
_MARK_SESSIONS = "eqliscsi-tm: sessions-status"
_MARK_DEVICES = "eqliscsi-tm: devices"
# Printed by a sweep's logout script when its guard finds the session in use after all.
SWEEP_KEPT = "eqliscsi-tm: kept"
_MARK_KEPT = SWEEP_KEPT
_MARK_OPEN = "eqliscsi-tm: open-devices"
# ssh exits 255 for its own errors (connection refused, no route, auth).
_SSH_FAILED = 255
_SAFE_PATH_RE = re.compile(r"^/(?:[A-Za-z0-9_.+@-]+/)*[A-Za-z0-9_.+@-]+$")


class HostUnreachableError(DriverError):
    """ssh could not reach or log in to the hypervisor host."""

    reference = "tm-host-unreachable"


class HostCommandError(DriverError):
    """A host-side step outside iscsiadm (mkdir, ln, find) failed."""

    reference = "tm-host-command-failed"


class DeviceTimeoutError(DriverError):
    """The udev link of a logged-in volume did not appear in time."""

    reference = "tm-device-timeout"


@dataclass(frozen=True, slots=True)
class HostResult:
    """Exit status and output of a script run on a host."""

    status: int
    stdout: str
    stderr: str


class HostRunner:
    """Runs a script on a host; the interface the TM actions use (tests substitute it)."""

    def run(self, host: str, script: bytes, *, timeout: float) -> HostResult:
        raise NotImplementedError


class SshRunner(HostRunner):
    """``ssh [-F file] -o BatchMode=yes -- <host> sh -s`` with the script on stdin."""

    def __init__(self, environ: Mapping[str, str], *, connect_timeout: int = 10) -> None:
        self.config = environ.get("EQLISCSI_SSH_CONFIG") or None
        self.connect_timeout = connect_timeout

    def argv(self, host: str) -> list[str]:
        ia.validate_host(host)  # never an option: it cannot start with '-'
        argv = ["ssh"]
        if self.config:
            argv += ["-F", self.config]
        argv += [
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={self.connect_timeout}",
            "--",
            host,
            "sh",
            "-s",
        ]
        return argv

    def run(self, host: str, script: bytes, *, timeout: float) -> HostResult:
        try:
            proc = subprocess.run(
                self.argv(host),
                input=script,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise HostUnreachableError(
                f"Host {host} did not finish the eqliscsi step within {timeout:.0f} s; "
                "check the host and retry."
            ) from None
        except FileNotFoundError:
            raise HostUnreachableError(
                "The ssh client is not installed on the front-end; install openssh-client."
            ) from None
        err = proc.stderr.decode("utf-8", "replace")
        if proc.returncode == _SSH_FAILED and "eqliscsi-" not in err:
            why = err.strip().splitlines()[-1][:200] if err.strip() else "no message"
            raise HostUnreachableError(
                f"Cannot reach host {host} over ssh as the driver's user ({why}); check "
                "that the host is up and oneadmin's key is accepted there."
            )
        return HostResult(proc.returncode, proc.stdout.decode("utf-8", "replace"), err)


# iscsiadm and the CHAP helper need root.  OpenNebula reaches hosts as oneadmin, whose
# sudoers lists iscsiadm (ONE_ISCSI), so the scripts always say `sudo -n …`; when the
# ssh user is root already (some sites, the test rig) this function runs the command
# directly instead, since root needs no sudo and may not have it installed.
_SUDO_FN = """\
sudo() {
  if [ "$(id -u)" -eq 0 ] && [ "$1" = -n ]; then shift; "$@"; else command sudo "$@"; fi
}
"""


def _path(path: str, what: str) -> str:
    if not _SAFE_PATH_RE.fullmatch(path) or "/../" in path + "/" or "/./" in path + "/":
        raise HostCommandError(
            f"The {what} {path[:80]!r} is not a plain absolute path; fix the configuration."
        )
    return path


def device_path(base_device: str, volume: str) -> str:
    return _path(f"{base_device.rstrip('/')}/{volume}", "device path")


def attach_script(
    node: ia.Node,
    *,
    volume: str,
    base_device: str,
    wait_s: float,
    link: str | None,
    chap: ia.ChapCredentials | None = None,
    make_link_only_if_missing: bool = False,
    helper: str = ia.DEFAULT_AUTH_HELPER,
) -> tuple[bytes, str]:
    """Login, wait for the device, link ``disk.N``; returns (stdin bytes, loggable text)."""
    login = ia.login_script(node, chap=chap, helper=helper, sudo=True)
    dev = shlex.quote(device_path(base_device, volume))
    polls = max(1, int(wait_s * 5))
    tail = [
        # Bounded polling: 5 checks a second for EQL_WAIT_TIME seconds, then log out
        # again so a failed attach leaves no session behind.
        "_i=0\n",
        f"while [ ! -b {dev} ]; do\n",
        "  _i=$((_i + 1))\n",
        f'  if [ "$_i" -gt {polls} ]; then\n',
        f"    sudo -n {shlex.join(ia.logout_argv(node))} >/dev/null 2>&1 || :\n",
        f"    echo '{_MARK_DEVICE}' >&2; exit 90\n",
        "  fi\n",
        "  sleep 0.2\n",
        "done\n",
    ]
    if link is not None:
        lk = shlex.quote(_path(link, "disk path"))
        parent = shlex.quote(_path(link.rsplit("/", 1)[0], "VM directory"))
        tail.append(f"mkdir -p {parent} || {{ echo 'eqliscsi-tm: mkdir' >&2; exit 91; }}\n")
        if make_link_only_if_missing:
            tail.append(
                f"[ -L {lk} ] || ln -s {dev} {lk} || {{ echo 'eqliscsi-tm: ln' >&2; exit 92; }}\n"
            )
        else:
            tail.append(f"ln -sfn {dev} {lk} || {{ echo 'eqliscsi-tm: ln' >&2; exit 92; }}\n")
    extra = "".join(tail)
    head = _SUDO_FN.encode("ascii")
    return head + login.stdin_bytes() + extra.encode("ascii"), _SUDO_FN + str(login) + extra


def detach_script(
    node: ia.Node,
    *,
    volume: str,
    base_device: str,
    link: str | None,
    unless_linked_under: str | None = None,
    judged_links: Sequence[str] = (),
) -> tuple[bytes, str]:
    """Remove ``disk.N`` if it points at our device, then log out (idempotent).

    ``unless_linked_under``: the stale-session sweep's guard, re-checked under the
    host lock: skip everything when a process on the host holds the device open, or
    when some ``disk.N`` link under that directory points at the device, apart from
    ``judged_links`` (links whose VMs oned places on other hosts).
    """
    dev = device_path(base_device, volume)
    head = [_SUDO_FN]
    guard = ""
    if unless_linked_under is not None:
        base = shlex.quote(_path(unless_linked_under, "datastores directory"))
        qdev = shlex.quote(dev)
        skip = "".join(f" -e {shlex.quote(_path(p, 'disk path'))}" for p in judged_links)
        others = f" | grep -vxF{skip}" if skip else ""
        guard = (
            f"if [ -d {base} ] && find {base} -mindepth 3 -maxdepth 3 -type l -name 'disk.*' "
            f"-lname {qdev}{others} | grep -q .; then echo '{_MARK_KEPT}'; exit 0; fi\n"
            f"if [ -b {qdev} ] && ls -l /proc/[0-9]*/fd/ 2>/dev/null | sed -n "
            f"'s#^.* -> \\(/dev/[^ ]*\\)$#\\1#p' | grep -qxF -- \"$(readlink -f {qdev})\"; "
            f"then echo '{_MARK_KEPT}'; exit 0; fi\n"
        )
    if link is not None:
        lk = shlex.quote(_path(link, "disk path"))
        head.append(
            f'if [ -L {lk} ] && [ "$(readlink {lk})" = {shlex.quote(dev)} ]; then rm -f {lk}; fi\n'
        )
    logout = ia.logout_script(node, sudo=True)
    text = "".join(head)
    body, shown = logout.stdin_bytes().decode("ascii"), str(logout)
    if guard:
        # Under the host lock: an attach holds it until its disk.N link exists, so
        # the guard cannot miss a session that is being set up right now.
        body, shown = _after_lock(body, guard), _after_lock(shown, guard)
    return (text + body).encode("ascii"), text + shown


def _after_lock(script: str, insert: str) -> str:
    at = script.index("\nflock -w ")
    end = script.index("\n", at + 1) + 1
    return script[:end] + insert + script[end:]


def inventory_script(datastores: str, base_device: str = "/dev/iscsi") -> bytes:
    """What the stale-session sweep judges with, read on the host in one round trip.

    * the sessions (``iscsiadm -m session``) and its status;
    * every ``<datastores>/<sysds>/<vmid>/disk.N`` link as ``path target``;
    * every ``<base_device>/<volume>`` as ``link realpath``;
    * the device nodes some process on the host holds open (``/proc/*/fd``, as far
      as the driver's user may look: on OpenNebula KVM hosts QEMU runs as oneadmin).
    """
    base = shlex.quote(_path(datastores, "datastores directory"))
    devdir = shlex.quote(_path(base_device.rstrip("/") or "/", "device directory"))
    return (
        _SUDO_FN + f"_rc=0; sudo -n {shlex.join(ia.session_argv())} || _rc=$?\n"
        f"echo '{_MARK_SESSIONS}' $_rc\n"
        f"echo '{_MARK_LINKS}'\n"
        f"if [ -d {base} ]; then find {base} -mindepth 3 -maxdepth 3 -type l -name 'disk.*' "
        """-exec sh -c 'for l; do printf "%s %s\\n" "$l" "$(readlink "$l")"; done' sh {} + ; fi\n"""
        f"echo '{_MARK_DEVICES}'\n"
        f"for _d in {devdir}/*; do "
        """[ -b "$_d" ] && printf '%s %s\\n' "$_d" "$(readlink -f "$_d")"; done\n"""
        f"echo '{_MARK_OPEN}'\n"
        "ls -l /proc/[0-9]*/fd/ 2>/dev/null | sed -n 's#^.* -> \\(/dev/[^ ]*\\)$#\\1#p' "
        "| sort -u\n"
    ).encode("ascii")


@dataclass(frozen=True, slots=True)
class Inventory:
    """A host's iSCSI sessions, disk links and open device nodes, as one script reported them."""

    sessions: tuple[ia.SessionInfo, ...]
    links: tuple[tuple[str, str], ...]  # (disk.N path, link target)
    # /dev/iscsi/<volume> -> the device node it resolves to; None: not reported.
    devices: Mapping[str, str] | None = None
    # Device nodes a process on the host holds open; None: not reported.
    open_nodes: frozenset[str] | None = None

    @property
    def link_targets(self) -> frozenset[str]:
        return frozenset(target for _, target in self.links)

    def linked_from(self, device: str) -> tuple[str, ...]:
        """The ``disk.N`` paths whose link points at ``device``."""
        return tuple(path for path, target in self.links if target == device)

    def is_open(self, device: str) -> bool:
        """Whether a process on the host holds ``device`` open (False when unknown)."""
        if self.devices is None or self.open_nodes is None:
            return False
        node = self.devices.get(device)
        return node is not None and node in self.open_nodes

    def ours(self, is_ours: re.Pattern[str]) -> list[tuple[str, str]]:
        """(volume, IQN) of the sessions to eqliscsi-named EqualLogic volumes."""
        found = []
        for s in self.sessions:
            vol = volume_from_iqn(s.iqn)
            if vol is not None and is_ours.fullmatch(vol):
                found.append((str(vol), s.iqn))
        return found

    def stale(self, base_device: str, is_ours: re.Pattern[str]) -> list[tuple[str, str]]:
        """(volume, IQN) of our sessions whose device no ``disk.N`` links to."""
        return [
            (vol, iqn)
            for vol, iqn in self.ours(is_ours)
            if device_path(base_device, vol) not in self.link_targets
        ]


def _pairs(lines: list[str]) -> list[tuple[str, str]]:
    out = []
    for line in lines:
        first, _, rest = line.strip().partition(" ")
        if first:
            # Old single-column form (target only) has no path.
            out.append((first, rest) if rest else ("", first))
    return out


def parse_inventory(stdout: str) -> Inventory:
    before, sep, after = stdout.partition(_MARK_LINKS + "\n")
    if not sep:
        raise HostCommandError("The host's session inventory was cut short; retry the action.")
    lines = before.splitlines()
    status = 0
    kept = []
    for line in lines:
        if line.startswith(_MARK_SESSIONS):
            status = int(line.split()[-1])
        else:
            kept.append(line)
    sessions = ia.parse_sessions("\n".join(kept), status=status)
    links_part, dsep, rest = after.partition(_MARK_DEVICES + "\n")
    devices: dict[str, str] | None = None
    open_nodes: frozenset[str] | None = None
    if dsep:
        dev_part, osep, open_part = rest.partition(_MARK_OPEN + "\n")
        devices = {a: b for a, b in _pairs(dev_part.splitlines()) if a}
        if osep:
            open_nodes = frozenset(x.strip() for x in open_part.splitlines() if x.strip())
    links = tuple(_pairs(links_part.splitlines()))
    return Inventory(tuple(sessions), links, devices, open_nodes)


def check_attach(result: HostResult, script_ops: tuple[ia.Op, ...], *, host: str, volume: str,
                 wait_s: float, base_device: str) -> None:  # fmt: skip
    """Raise the typed error for a failed attach script."""
    if result.status == 0:
        return
    if _MARK_DEVICE in result.stderr:
        raise DeviceTimeoutError(
            f"The device {device_path(base_device, volume)} did not appear on host {host} "
            f"within {wait_s:g} s after login; check the eqliscsi udev rule there "
            "(docs/host-iscsi.md) or raise EQL_WAIT_TIME."
        )
    for tag in ("mkdir", "ln"):
        if f"eqliscsi-tm: {tag}" in result.stderr:
            raise HostCommandError(
                f"Creating the disk link for volume {volume} on host {host} failed at {tag}; "
                "check the system datastore directory there."
            )
    ia.check_script_result(
        ia.RemoteScript(script_ops, ""),
        result.status,
        result.stderr,
        host=host,
        what=f"volume {volume}",
    )


def check_detach(result: HostResult, *, host: str, volume: str) -> None:
    if result.status == 0:
        return
    ia.check_script_result(
        ia.RemoteScript((ia.Op.LOCK, ia.Op.LOGOUT, ia.Op.DELETE), ""),
        result.status,
        result.stderr,
        host=host,
        what=f"volume {volume}",
    )
