"""``eqliscsi install``: put the remotes into OpenNebula's remotes tree.

What it does, and nothing more:

* copies ``remotes/datastore/eqliscsi/*`` and ``remotes/tm/eqliscsi/*`` from this
  package's checkout into ``<remotes>/datastore/eqliscsi`` and ``<remotes>/tm/eqliscsi``;
* rewrites each remote's ``#!/usr/bin/env python3`` to this interpreter, the way pip
  writes console scripts, because oned runs remotes with a plain PATH in which
  ``python3`` need not see this package;
* installs ``eqliscsi.conf.sample``, and ``eqliscsi.conf`` from it only when no conf
  exists yet (an existing conf, even the original add-on's, is never touched);
* prints the ``oned.conf`` lines to add (it never edits ``oned.conf``).

After changing remotes on the front-end, ``onehost sync`` is not needed: DS and TM
actions of this driver run on the front-end only.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

from eqliscsi.errors import UsageError

__all__ = ["ONED_CONF", "install", "install_remotes"]

_SOURCE = Path(__file__).resolve().parents[2] / "remotes"
_SHEBANG = b"#!/usr/bin/env python3"

ONED_CONF = """\
# Append ",eqliscsi" to the -d list in the ARGUMENTS of both TM_MAD and
# DATASTORE_MAD (not to -s: eqliscsi is an image datastore only), e.g.
#   TM_MAD = [ ..., ARGUMENTS = "-t 15 -d dummy,lvm,shared,fs_lvm,qcow2,ssh,ceph,dev,eqliscsi" ]
TM_MAD_CONF = [
    NAME = "eqliscsi", LN_TARGET = "NONE", CLONE_TARGET = "SELF", SHARED = "YES",
    DS_MIGRATE = "NO", DRIVER = "raw", DISK_TYPE = "BLOCK", ALLOW_ORPHANS = "NO",
    TM_MAD_SYSTEM = "shared", LN_TARGET_SHARED = "NONE", CLONE_TARGET_SHARED = "SELF",
    DISK_TYPE_SHARED = "BLOCK" ]
DS_MAD_CONF = [
    NAME = "eqliscsi", REQUIRED_ATTRS = "EQL_HOST,EQL_POOL", PERSISTENT_ONLY = "NO" ]
# OpenNebula 6.x/7.x, if EQL_PASS is kept in the datastore template (see
# docs/configuration.md: clone and save-as still get it encrypted; prefer EQL_PASS_FILE):
# DATASTORE_ENCRYPTED_ATTR = "EQL_PASS"
"""


def install_remotes(
    target: Path, *, interpreter: str = sys.executable, source: Path = _SOURCE
) -> list[Path]:
    """Copy the remotes under ``target``; returns the files written.

    Raises:
        UsageError: ``target`` is not an OpenNebula remotes directory, or the source
            tree is missing (an installed wheel without the remotes).
    """
    if not (source / "datastore" / "eqliscsi").is_dir():
        raise UsageError(
            f"The remotes to install are not at {source}; run eqliscsi install from a "
            "source checkout."
        )
    if not target.is_dir():
        raise UsageError(f"{target} is not a directory; give OpenNebula's remotes directory.")
    if any(ch.isspace() for ch in interpreter) or not os.path.isabs(interpreter):
        raise UsageError(
            f"The interpreter path {interpreter!r} is not absolute or contains blanks, so it "
            "cannot be a #! line; use a virtual environment without blanks in its path."
        )
    written: list[Path] = []
    for kind in ("datastore", "tm"):
        src_dir = source / kind / "eqliscsi"
        if not src_dir.is_dir():
            continue
        dst_dir = target / kind / "eqliscsi"
        dst_dir.mkdir(parents=True, exist_ok=True)
        for src in sorted(src_dir.iterdir()):
            if not src.is_file() or src.name.endswith((".pyc", "~")):
                continue
            dst = dst_dir / src.name
            data = src.read_bytes()
            if data.startswith(_SHEBANG + b"\n"):
                data = b"#!" + interpreter.encode() + data[len(_SHEBANG) :]
            tmp = dst.with_name(f".{dst.name}.tmp")
            tmp.write_bytes(data)
            tmp.chmod(0o755 if os.access(src, os.X_OK) else 0o644)
            os.replace(tmp, dst)  # a running action keeps the old file
            written.append(dst)
    conf = target / "datastore" / "eqliscsi" / "eqliscsi.conf"
    sample = conf.with_name("eqliscsi.conf.sample")
    if not conf.exists() and not conf.with_name("eqlscsi.conf").exists() and sample.exists():
        shutil.copyfile(sample, conf)
        conf.chmod(0o640)
        written.append(conf)
    return written


@click.command()
@click.option(
    "--remotes",
    "remotes",
    type=click.Path(path_type=Path),
    default=Path("/var/lib/one/remotes"),
    show_default=True,
    help="OpenNebula's remotes directory on the front-end.",
)
@click.option("--print-oned-conf", is_flag=True, help="Only print the oned.conf lines to add.")
def install(remotes: Path, print_oned_conf: bool) -> None:
    """Install the eqliscsi DS/TM remotes and print the oned.conf lines to add."""
    if not print_oned_conf:
        for path in install_remotes(remotes):
            click.echo(f"installed {path}")
        click.echo("")
    click.echo(ONED_CONF, nl=False)
