"""What a preflight run looks at: files, the resolved driver configuration, oned's view.

Configuration is resolved exactly as the driver resolves it
(:func:`eqliscsi.opennebula.config.load_conf` then :func:`~eqliscsi.opennebula.config.resolve`),
so a preflight pass means the driver's actions would read the same settings.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from eqliscsi.errors import ConfigError, EqliscsiError, UsageError
from eqliscsi.opennebula.config import ConfFile, Resolved, load_conf, resolve
from eqliscsi.opennebula.driver_action import parse_driver_action

__all__ = [
    "ConfigState",
    "Options",
    "load_config",
    "oned_datastore",
    "oned_hosts",
    "oned_image_sources",
    "parse_template_text",
    "reference_remotes",
]

DEFAULT_REMOTES = Path("/var/lib/one/remotes")
DEFAULT_ONED_CONF = Path("/etc/one/oned.conf")


@dataclass(frozen=True, slots=True)
class ConfigState:
    """The driver configuration as the driver would see it, or why it cannot."""

    conf: ConfFile | None
    resolved: Resolved | None
    error: str | None = None


@dataclass(frozen=True)
class Options:
    """Everything the checks read; built by the CLI (or by tests) once per run."""

    conf_path: Path
    config: ConfigState
    datastore_id: int | None = None
    datastore_template: Mapping[str, str] | None = None
    oned_conf: Path = DEFAULT_ONED_CONF
    remotes_dir: Path = DEFAULT_REMOTES
    reference_remotes: Path | None = None  # the package's own copy of remotes/
    hosts: tuple[str, ...] = ()
    host_user: str = "oneadmin"
    ssh_config: Path | None = None
    host_sudo: bool = False
    min_free_pct: float = 10.0
    write_probe: bool = False
    image_sources: tuple[str, ...] | None = None  # SOURCE of every image; None: no oned
    san_timeout: float = 20.0
    host_timeout: float = 20.0


def load_config(conf_path: Path, ds_template: Mapping[str, str] | None) -> ConfigState:
    """Load and resolve the configuration, keeping the error instead of raising it."""
    try:
        conf = load_conf(conf_path)
    except EqliscsiError as exc:
        return ConfigState(None, None, str(exc))
    try:
        resolved = resolve(conf, ds_template)
    except EqliscsiError as exc:
        return ConfigState(conf, None, str(exc))
    return ConfigState(conf, resolved)


# --- datastore templates --------------------------------------------------------------

_TPL_LINE_RE = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|(\S*))\s*$')


def parse_template_text(text: str) -> dict[str, str]:
    """A datastore template, as ``onedatastore update`` takes it or as ``show -x`` prints it.

    Only single-valued attributes matter to the driver; vector attributes
    (``NAME = [ ... ]``) are skipped, as the driver's own parser skips them.

    Raises:
        UsageError: XML that is not a DATASTORE document.
    """
    stripped = text.lstrip()
    if stripped.startswith("<"):
        body = re.sub(r"^<\?xml[^>]*\?>", "", stripped).strip()
        if not body.startswith("<DATASTORE"):
            raise UsageError(
                "The datastore file is XML but not a DATASTORE document; pass the output "
                "of 'onedatastore show -x ID'."
            )
        action = parse_driver_action(
            b"<DS_DRIVER_ACTION_DATA>" + body.encode() + b"</DS_DRIVER_ACTION_DATA>"
        )
        ds = action.datastore
        out = dict(ds.template)
        out.setdefault("DS_MAD", ds.ds_mad)
        out.setdefault("TM_MAD", ds.tm_mad)
        out["ID"] = str(ds.id)
        return out
    values: dict[str, str] = {}
    depth = 0
    for raw in text.splitlines():
        line = raw.split("#", 1)[0] if not raw.lstrip().startswith('"') else raw
        if "[" in line:
            depth += 1
        if depth:
            if "]" in line:
                depth -= 1
            continue
        m = _TPL_LINE_RE.match(line)
        if m:
            values[m[1].upper()] = (m[2] if m[2] is not None else m[3]).replace('\\"', '"')
    return values


# --- oned, when this machine can reach it ---------------------------------------------


def _one_cli(argv: list[str], timeout: float) -> bytes | None:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except (FileNotFoundError, subprocess.TimeoutExpired, PermissionError):
        return None
    return done.stdout if done.returncode == 0 else None


def oned_datastore(datastore_id: int, timeout: float = 15.0) -> dict[str, str]:
    """``onedatastore show -x ID`` as a template mapping.

    Raises:
        ConfigError: oned could not be asked.
    """
    out = _one_cli(["onedatastore", "show", "-x", str(datastore_id)], timeout)
    if out is None:
        raise ConfigError(
            f"'onedatastore show -x {datastore_id}' failed; run preflight as oneadmin on the "
            "front-end or pass --datastore-template FILE."
        )
    return parse_template_text(out.decode("utf-8", "replace"))


def oned_hosts(timeout: float = 15.0) -> tuple[str, ...] | None:
    """Host names from ``onehost list -x``, or None when oned cannot be asked."""
    out = _one_cli(["onehost", "list", "-x"], timeout)
    if out is None:
        return None
    return tuple(re.findall(r"<HOST>.*?<NAME>(?:<!\[CDATA\[)?([^<\]]+)", out.decode(), re.S))


def oned_image_sources(timeout: float = 15.0) -> tuple[str, ...] | None:
    """The SOURCE of every image (``oneimage list -x``), or None when oned cannot be asked."""
    out = _one_cli(["oneimage", "list", "-x"], timeout)
    if out is None:
        return None
    return tuple(re.findall(r"<SOURCE>(?:<!\[CDATA\[)?([^<\]]*)", out.decode()))


def reference_remotes() -> Path | None:
    """The package's own ``remotes/`` (a source checkout's), if present."""
    here = Path(__file__).resolve().parents[3] / "remotes"
    return here if here.is_dir() else None
