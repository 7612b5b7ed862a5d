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

import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path

import click

from eqliscsi.errors import UsageError
from eqliscsi.opennebula.migrate_hooks import install_hooks, restore_hooks

__all__ = ["ONED_CONF", "install", "install_remotes", "oned_conf", "uninstall_remotes"]


def _remotes_source() -> Path:
    """Where the remotes to install are: the source checkout, else the wheel's data.

    A wheel puts them under ``<prefix>/share/eqliscsi/remotes`` (pyproject's
    ``data-files``); the prefix is the environment's, or the one the package was
    installed into with ``pip install --prefix``/``--user`` (site-packages is
    ``<prefix>/lib/pythonX.Y/site-packages``).
    """
    here = Path(__file__).resolve()
    candidates = [here.parents[2] / "remotes", Path(sys.prefix) / "share/eqliscsi/remotes"]
    if len(here.parents) > 5:
        candidates.append(here.parents[5] / "share/eqliscsi/remotes")
    for candidate in candidates:
        if (candidate / "datastore" / "eqliscsi").is_dir():
            return candidate
    return candidates[0]


_SOURCE = _remotes_source()
_SHEBANG = b"#!/usr/bin/env python3"


def _version(text: str) -> tuple[int, int]:
    parts = text.strip().split(".")
    try:
        major, minor = int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise UsageError(
            f"The OpenNebula version {text[:20]!r} is not like 6.10; give MAJOR.MINOR."
        ) from None
    if not 4 <= major <= 7:
        raise UsageError(
            f"OpenNebula {text[:20]} is not supported; give a version from 4.4 to 7.x."
        )
    return major, minor


def oned_conf(version: str = "7.0") -> str:
    """The oned.conf blocks and the datastore template for OpenNebula ``version``.

    Reference §2.6: 4.4 knows only NAME/LN_TARGET/CLONE_TARGET/SHARED in TM_MAD_CONF and
    has no DS_MAD_CONF; 5.x adds DS_MAD_CONF, DS_MIGRATE and TM_MAD_SYSTEM with its
    ``*_SHARED`` targets (without them a shared system datastore refuses the image
    datastore, §6.2); 6.x adds DRIVER and ALLOW_ORPHANS, and decrypts
    DATASTORE_ENCRYPTED_ATTR for most actions (5.12 never does).
    """
    major, minor = _version(version)
    mads = (
        "# Append eqliscsi to the -d list (not -s) of both drivers' ARGUMENTS, e.g.\n"
        '#   TM_MAD = [ EXECUTABLE = "one_tm",\n'
        '#     ARGUMENTS = "-t 15 -d dummy,shared,ssh,ceph,eqliscsi" ]\n'
        '#   DATASTORE_MAD = [ EXECUTABLE = "one_datastore",\n'
        '#     ARGUMENTS = "-t 15 -d dummy,fs,ceph,eqliscsi" ]\n'
    )
    if major == 4:
        tm = (
            'TM_MAD_CONF = [ name = "eqliscsi", ln_target = "NONE", clone_target = "SELF",\n'
            '    shared = "yes" ]\n'
        )
        ds = "# OpenNebula 4.4 has no DS_MAD_CONF.\n"
        enc = "# OpenNebula 4.4 has no DATASTORE_ENCRYPTED_ATTR: use EQL_PASS_FILE.\n"
    else:
        extra = '    DRIVER = "raw", ALLOW_ORPHANS = "NO",\n' if major >= 6 else ""
        tm = (
            "TM_MAD_CONF = [\n"
            '    NAME = "eqliscsi", LN_TARGET = "NONE", CLONE_TARGET = "SELF", SHARED = "YES",\n'
            '    DS_MIGRATE = "NO", DISK_TYPE = "BLOCK",\n'
            f"{extra}"
            '    TM_MAD_SYSTEM = "shared", LN_TARGET_SHARED = "NONE",\n'
            '    CLONE_TARGET_SHARED = "SELF", DISK_TYPE_SHARED = "BLOCK" ]\n'
        )
        ds = (
            "DS_MAD_CONF = [\n"
            '    NAME = "eqliscsi", REQUIRED_ATTRS = "EQL_HOST,EQL_POOL",\n'
            '    PERSISTENT_ONLY = "NO" ]\n'
        )
        if major >= 6:
            enc = (
                "# Only if EQL_PASS is kept in the datastore template (clone and save-as still\n"
                "# get it encrypted, so keep EQL_PASS_FILE too; docs/configuration.md):\n"
                'DATASTORE_ENCRYPTED_ATTR = "EQL_PASS"\n'
            )
        else:
            enc = "# OpenNebula 5.x never decrypts datastore attributes: use EQL_PASS_FILE.\n"
    template = (
        f"\n# Datastore template (onedatastore create eql.ds), OpenNebula {major}.{minor}:\n"
        'NAME = "eql"\nTYPE = "IMAGE_DS"\nDS_MAD = "eqliscsi"\nTM_MAD = "eqliscsi"\n'
        'DISK_TYPE = "BLOCK"\nEQL_HOST = "<group management address>"\nEQL_POOL = "default"\n'
        "# EQL_USER and EQL_PASS_FILE go in remotes/datastore/eqliscsi/eqliscsi.conf.\n"
    )
    return f"# oned.conf for OpenNebula {major}.{minor}\n{mads}{tm}{ds}{enc}{template}"


ONED_CONF = oned_conf()
MANIFEST = ".eqliscsi-installed.json"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _owner_of(directory: Path) -> tuple[int, int] | None:
    # As root, give every file the owner of the remotes tree (oneadmin on a
    # front-end), so oned can read the conf and the next install by oneadmin works.
    if os.geteuid() != 0:
        return None
    st = directory.stat()
    return st.st_uid, st.st_gid


def _put(dst: Path, data: bytes, mode: int, owner: tuple[int, int] | None) -> bool:
    """Write ``dst`` atomically; False when it already had this content and mode."""
    if dst.is_file() and dst.read_bytes() == data and dst.stat().st_mode & 0o777 == mode:
        if owner is not None and (dst.stat().st_uid, dst.stat().st_gid) != owner:
            os.chown(dst, *owner)
        return False
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    if owner is not None:
        os.chown(tmp, *owner)
    os.replace(tmp, dst)  # a running action keeps the old file
    return True


def install_remotes(
    target: Path, *, interpreter: str = sys.executable, source: Path = _SOURCE
) -> list[Path]:
    """Copy the remotes under ``target``; returns the files written or changed.

    Idempotent: a second run with the same sources writes nothing.  A manifest
    (``datastore/eqliscsi/.eqliscsi-installed.json``) records what was installed and
    its hash, for :func:`uninstall_remotes`.

    Raises:
        UsageError: ``target`` is not an OpenNebula remotes directory, or the source
            tree is missing (an installed wheel without the remotes).
    """
    if not (source / "datastore" / "eqliscsi").is_dir():
        raise UsageError(
            f"The remotes to install are not at {source}; reinstall the eqliscsi package "
            "(its wheel carries them under share/eqliscsi) or run it from a source checkout."
        )
    if not target.is_dir():
        raise UsageError(f"{target} is not a directory; give OpenNebula's remotes directory.")
    if any(ch.isspace() for ch in interpreter) or not os.path.isabs(interpreter):
        raise UsageError(
            f"The interpreter path {interpreter!r} is not absolute or contains blanks, so it "
            "cannot be a #! line; use a virtual environment without blanks in its path."
        )
    owner = _owner_of(target)
    manifest_path = target / "datastore" / "eqliscsi" / MANIFEST
    manifest = _read_manifest(manifest_path)
    written: list[Path] = []
    for kind in ("datastore", "tm"):
        src_dir = source / kind / "eqliscsi"
        if not src_dir.is_dir():
            continue
        dst_dir = target / kind / "eqliscsi"
        for directory in (dst_dir.parent, dst_dir):
            if not directory.is_dir():
                directory.mkdir(mode=0o755)
                if owner is not None:
                    os.chown(directory, *owner)
        for src in sorted(src_dir.iterdir()):
            if not src.is_file() or src.name.endswith((".pyc", "~")):
                continue
            dst = dst_dir / src.name
            data = src.read_bytes()
            if data.startswith(_SHEBANG + b"\n"):
                data = b"#!" + interpreter.encode() + data[len(_SHEBANG) :]
            # A wheel's data files may lose their x bit: a #! line decides as well.
            mode = 0o755 if os.access(src, os.X_OK) or data.startswith(b"#!") else 0o644
            if _put(dst, data, mode, owner):
                written.append(dst)
            manifest[str(dst.relative_to(target))] = _sha256(data)
    conf = target / "datastore" / "eqliscsi" / "eqliscsi.conf"
    sample = conf.with_name("eqliscsi.conf.sample")
    if not conf.exists() and not conf.with_name("eqlscsi.conf").exists() and sample.exists():
        data = sample.read_bytes()
        _put(conf, data, 0o640, owner)
        manifest[str(conf.relative_to(target))] = _sha256(data)
        written.append(conf)
    _put(
        manifest_path,
        (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode(),
        0o644,
        owner,
    )
    return written


def _read_manifest(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        raise UsageError(
            f"The install manifest {path} is unreadable; remove it and install again."
        ) from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise UsageError(f"The install manifest {path} is damaged; remove it and install again.")
    return data


def uninstall_remotes(target: Path) -> tuple[list[Path], list[Path]]:
    """Remove what :func:`install_remotes` installed; returns (removed, kept).

    A file changed since it was installed (an edited ``eqliscsi.conf``, above all) is
    kept and reported, never deleted.
    """
    manifest_path = target / "datastore" / "eqliscsi" / MANIFEST
    if not manifest_path.is_file():
        raise UsageError(
            f"No eqliscsi install manifest in {target}; nothing was installed there by "
            "eqliscsi install."
        )
    manifest = _read_manifest(manifest_path)
    removed: list[Path] = []
    kept: list[Path] = []
    for rel, digest in sorted(manifest.items()):
        path = target / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            continue  # never follow a tampered manifest out of the tree
        if not path.is_file():
            continue
        if _sha256(path.read_bytes()) == digest:
            path.unlink()
            removed.append(path)
        else:
            kept.append(path)
    manifest_path.unlink()
    for kind in ("datastore", "tm"):
        with contextlib.suppress(OSError):  # not empty: the admin's files stay
            (target / kind / "eqliscsi").rmdir()
    return removed, kept


@click.command()
@click.option(
    "--remotes",
    "remotes",
    type=click.Path(path_type=Path),
    default=Path("/var/lib/one/remotes"),
    show_default=True,
    help="OpenNebula's remotes directory on the front-end.",
)
@click.option(
    "--oned-version",
    default="7.0",
    show_default=True,
    help="OpenNebula version the printed oned.conf blocks are for (4.4 to 7.x).",
)
@click.option("--print-oned-conf", is_flag=True, help="Only print the oned.conf lines to add.")
@click.option("--uninstall", is_flag=True, help="Remove what a previous install put there.")
@click.option(
    "--migrate-hooks",
    is_flag=True,
    help="Also make the system TMs' failmigrate (4.x: pre/postmigrate too) call eqliscsi; "
    "the originals are kept beside them (docs/tm.md).",
)
@click.option(
    "--system-tm",
    "system_tms",
    multiple=True,
    default=("shared",),
    show_default=True,
    help="A system TM to hook with --migrate-hooks (repeatable).",
)
@click.option(
    "--restore-migrate-hooks", is_flag=True, help="Put the system TMs' original scripts back."
)
def install(  # noqa: PLR0917 - click passes each option positionally
    remotes: Path,
    oned_version: str,
    print_oned_conf: bool,
    uninstall: bool,
    migrate_hooks: bool,
    system_tms: tuple[str, ...],
    restore_migrate_hooks: bool,
) -> None:
    """Install the eqliscsi DS/TM remotes and print the oned.conf lines to add."""
    if restore_migrate_hooks:
        for path in restore_hooks(remotes):
            click.echo(f"restored {path}")
        return
    if uninstall:
        removed, kept = uninstall_remotes(remotes)
        for path in removed:
            click.echo(f"removed {path}")
        for path in kept:
            click.echo(f"kept {path} (changed since it was installed)")
        click.echo("Remove the eqliscsi lines from oned.conf and restart oned.")
        return
    text = oned_conf(oned_version)
    if not print_oned_conf:
        written = install_remotes(remotes)
        for path in written:
            click.echo(f"installed {path}")
        if not written:
            click.echo(f"{remotes}: already up to date")
        if migrate_hooks:  # after the remotes: a hook runs tm/eqliscsi/<action>
            for path in install_hooks(remotes, system_tms):
                click.echo(f"hooked {path}")
        click.echo("")
    click.echo(text, nl=False)
