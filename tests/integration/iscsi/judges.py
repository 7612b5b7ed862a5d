"""Independent judges: third-party tools that tell what a target really serves."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from urllib.parse import quote

from rig.need import need_executable
from rig.targets.base import Portal

_TARGET_RE = re.compile(r"^Target:(\S+) Portal:(\S+)$")


@dataclass(frozen=True)
class JudgeRun:
    returncode: int
    stdout: str
    stderr: str


def _url(portal: Portal, user: str | None, secret: str | None, path: str = "") -> str:
    cred = f"{quote(user, safe='')}%{quote(secret, safe='')}@" if user and secret else ""
    return f"iscsi://{cred}{portal}{path}"


def iscsi_ls(portal: Portal, user: str | None = None, secret: str | None = None) -> JudgeRun:
    """``iscsi-ls -s`` (libiscsi).  The URL carries a throwaway test secret only."""
    exe = need_executable("iscsi-ls", "libiscsi-bin")
    done = subprocess.run(
        [exe, "-s", _url(portal, user, secret)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return JudgeRun(done.returncode, done.stdout, done.stderr)


def iscsi_ls_targets(out: str) -> dict[str, list[str]]:
    """Target name -> portals ("host:port,tpgt") from ``iscsi-ls`` output."""
    found: dict[str, list[str]] = {}
    for line in out.splitlines():
        m = _TARGET_RE.match(line)
        if m:
            found.setdefault(m.group(1), []).append(m.group(2))
    return found


def iscsi_readcapacity16(portal: Portal, iqn: str, lun: int) -> int:
    """Capacity in bytes reported by ``iscsi-readcapacity16``."""
    exe = need_executable("iscsi-readcapacity16", "libiscsi-bin")
    done = subprocess.run(
        [exe, "-s", _url(portal, None, None, f"/{iqn}/{lun}")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout.strip())
