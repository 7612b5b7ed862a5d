"""Forget a host container's iSCSI sessions the way a reboot does; run inside the host.

The iscsiadm stand-in (rig.hosts.iscsiadm_standin) records each session under
``/run/eqliscsi-standin``: its qemu-storage-daemon and the loop device it attached to
the daemon's FUSE export.  Loop devices belong to the Docker host's kernel, so they
outlive the container; on a real host a reboot takes them (and ``/run``, a tmpfs) away.

* ``--boot`` (the entrypoint, at every start): the daemons died with the previous
  container; detach each recorded loop device still bound to its session's file (or
  to a file whose FUSE mount is gone, which ``losetup`` shows as ``/``), then remove
  the state.  Recorded pids mean nothing in a new pid namespace and are not touched.
* ``--live`` (:meth:`rig.docker.topology.Topology.close`, before removing the
  container): detach the loop devices, then stop the daemons, then remove the state.

The node database (``/etc/iscsi``) stays, like a real host's disk.

``--boot`` also makes the loop device nodes ``/dev/loop0`` … ``/dev/loop255``: a
container's ``/dev`` holds the nodes that existed on the Docker host when it was
created, but ``losetup -f`` takes whichever loop device the kernel has free, which on a
busy machine is often a newer one (the device cgroup rule ``b 7:*`` already allows it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "reset"]

STATE = Path("/run/eqliscsi-standin")
LOOP_MAJOR = 7
LOOP_NODES = 256


def ensure_loop_nodes(dev: Path = Path("/dev"), count: int = LOOP_NODES) -> int:
    """Make the missing ``loopN`` block nodes; how many were made."""
    made = 0
    for minor in range(count):
        node = dev / f"loop{minor}"
        if node.exists():
            continue
        try:
            os.mknod(node, 0o660 | stat.S_IFBLK, os.makedev(LOOP_MAJOR, minor))
        except OSError:
            break  # no CAP_MKNOD here: the nodes Docker passed are all there is
        made += 1
    return made


def _backing_file(loop: str) -> str | None:
    r = subprocess.run(
        ["losetup", "--noheadings", "--output", "BACK-FILE", loop],
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )
    return r.stdout.strip() if r.returncode == 0 else None


def reset(state: Path, *, live: bool) -> list[str]:
    """Detach the recorded loop devices (and stop the daemons if ``live``); what was done."""
    done: list[str] = []
    for record in sorted((state / "sessions").glob("*.json")):
        try:
            session = json.loads(record.read_text())
            loop, sid, pid = str(session["loop"]), int(session["sid"]), int(session["qsd_pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        back = _backing_file(loop)
        if back is not None and (back.startswith(f"{state}/session{sid}/") or back == "/"):
            subprocess.run(["losetup", "--detach", loop], check=False, timeout=10)
            done.append(f"detached {loop} of session {sid}")
        if live and pid > 1:  # never 0 or -1: kill() would signal groups, not a daemon
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                done.append(f"stopped qemu-storage-daemon {pid} of session {sid}")
    shutil.rmtree(state, ignore_errors=True)
    return done


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args not in (["--boot"], ["--live"]):
        print("usage: python -m rig.docker.host_reset --boot|--live", file=sys.stderr)
        return 2
    if args == ["--boot"] and (made := ensure_loop_nodes()):
        print(f"eqliscsi-host: made {made} loop device nodes")
    for line in reset(STATE, live=args == ["--live"]):
        print(f"eqliscsi-host: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
