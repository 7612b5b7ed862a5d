"""Datastore actions that need no SAN: ``stat`` (more join when ``san/ops.py`` lands).

``stat`` runs synchronously at ``oneimage create`` with a PATH and prints the size in
MB (reference §2.3, §6.1: the document holds only ``IMAGE/PATH`` and the datastore;
the id is oned's request counter).  Unlike ``fs_size`` of libfs.sh it reports the
*virtual* size of qcow2/vmdk images, because cp converts to raw on the volume, and
the volume must be that large.
"""

from __future__ import annotations

import math
import os
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from eqliscsi.opennebula.errors import BadValueError, RestrictedPathError, SizeUnknownError
from eqliscsi.opennebula.output import SizeResult
from eqliscsi.opennebula.runner import ActionContext

__all__ = ["ImageInfo", "check_restricted", "http_size", "qemu_img_info", "stat"]

_MB = 1024 * 1024
# libfs.sh's set_up_datastore always adds these to RESTRICTED_DIRS: oned's own state
# and configuration must never be registered as an image (they hold one_auth, keys).
DEFAULT_RESTRICTED = ("/var/lib/one", "/etc/one")
_QEMU_IMG_TIMEOUT = 60.0
_HTTP_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What ``qemu-img info`` says of an image ``cp`` is given."""

    format: str
    virtual_size: int  # bytes
    backing: bool = False  # a qcow2/vmdk with a backing file (cp refuses it)


def _under(path: str, directory: str) -> bool:
    directory = os.path.normpath(directory)
    try:
        return os.path.commonpath([path, directory]) == directory
    except ValueError:
        return False


def check_restricted(
    path: str,
    restricted: Iterable[str],
    safe: Iterable[str],
    environ: Mapping[str, str],
) -> str:
    """The normalised absolute ``path`` if reading it is allowed, else raise.

    Mirrors libfs.sh's ``check_restricted``: a path under a RESTRICTED_DIRS entry is
    refused unless it is also under a SAFE_DIRS entry.  Both the path as given and
    its symlink-resolved form are checked, so a link from /tmp into /var/lib/one
    does not slip through (the shell version compares strings only).

    Raises:
        BadValueError: not an absolute path, or it contains control characters.
        RestrictedPathError: the path is in a restricted directory.
    """
    if not path.startswith("/") or any(not ch.isprintable() for ch in path):
        raise BadValueError(
            "The image PATH is not an absolute path on the front-end; give a full path "
            "or an http(s) URL."
        )
    home = environ.get("HOME", "")
    restricted_all = [*DEFAULT_RESTRICTED, *([home] if home.startswith("/") else []), *restricted]
    restricted_all = [d for d in restricted_all if d.startswith("/") and d != "/"]
    safe_all = [d for d in safe if d.startswith("/")]
    normal = os.path.normpath(path)
    for candidate in {normal, os.path.realpath(normal)}:
        for directory in restricted_all:
            if _under(candidate, directory) and not any(_under(candidate, s) for s in safe_all):
                raise RestrictedPathError(
                    f"Not allowed to copy image file {normal[:200]}: it is under "
                    f"{os.path.normpath(directory)}; add its directory to SAFE_DIRS "
                    "or move the file."
                )
    return normal


def qemu_img_info(path: str) -> ImageInfo:
    """Format and virtual size from ``qemu-img info --output=json`` (read-only, shared)."""
    # Imported here: stat and cp need them, and monitor/rm/clone, which import this
    # module too, would otherwise pay ~4 ms of start-up on every oned call.
    import json  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    try:
        proc = subprocess.run(
            ["qemu-img", "info", "--output=json", "--force-share", path],
            capture_output=True,
            timeout=_QEMU_IMG_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise SizeUnknownError(
            "qemu-img is not installed on the front-end; install the qemu-utils package."
        ) from None
    except subprocess.TimeoutExpired:
        raise SizeUnknownError(
            f"qemu-img did not read {path[:200]} within {_QEMU_IMG_TIMEOUT:.0f} s; "
            "check the file system it is on."
        ) from None
    if proc.returncode != 0:
        first = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        why = first[0] if first else f"exit status {proc.returncode}"
        raise SizeUnknownError(
            f"Cannot determine size for {path[:200]} ({why[:200]}); check that the file "
            "exists and is a disk image."
        )
    try:
        info = json.loads(proc.stdout)
        return ImageInfo(
            format=str(info["format"]),
            virtual_size=int(info["virtual-size"]),
            backing=bool(info.get("backing-filename") or info.get("full-backing-filename")),
        )
    except (ValueError, KeyError, TypeError):
        raise SizeUnknownError(
            f"qemu-img printed no size for {path[:200]}; check the qemu-utils installation."
        ) from None


def http_size(url: str) -> int:
    """Content-Length of a HEAD request: the size libfs.sh's fs_size reports for URLs."""
    import urllib.error  # noqa: PLC0415 - http.client and ssl only when needed
    import urllib.request  # noqa: PLC0415

    request = urllib.request.Request(url, method="HEAD")  # noqa: S310 - scheme checked by caller
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT) as response:  # noqa: S310
            length = response.headers.get("Content-Length")
    except urllib.error.HTTPError as exc:
        raise SizeUnknownError(
            f"Cannot determine size for {_safe_url(url)}: the server answered HTTP {exc.code}; "
            "check the URL."
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SizeUnknownError(
            f"Cannot determine size for {_safe_url(url)} ({str(reason)[:120]}); check that "
            "the front-end can reach it."
        ) from None
    if length is None or not length.isdigit():
        raise SizeUnknownError(
            f"Cannot determine size for {_safe_url(url)}: the server sent no Content-Length; "
            "download the image and register the file."
        )
    return int(length)


def _safe_url(url: str) -> str:
    # Never echo user:password@ from a URL into oned's log.
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))[:200]


def stat(ctx: ActionContext) -> SizeResult:
    """Size in MB (rounded up) of IMAGE/PATH: local file or http(s) URL."""
    image = ctx.image()
    path = image.path
    if not path:
        raise BadValueError("The image has no PATH to measure; give PATH when registering it.")
    if path != path.strip() or "\n" in path:
        raise BadValueError("The image PATH has leading/trailing blanks or a newline; fix it.")
    scheme = urllib.parse.urlsplit(path).scheme.lower() if "://" in path else ""
    if scheme in {"http", "https"}:
        size = http_size(path)
    elif scheme:
        raise SizeUnknownError(
            f"Image PATH scheme {scheme[:20]}:// is not supported by eqliscsi; use a local "
            "path or an http(s) URL."
        )
    else:
        assert ctx.driver_action is not None
        ds = ctx.driver_action.datastore
        local = check_restricted(path, ds.restricted_dirs, ds.safe_dirs, ctx.environ)
        info = qemu_img_info(local)
        ctx.debug(f"{local}: format {info.format}, virtual size {info.virtual_size} bytes")
        size = info.virtual_size
    size_mb = math.ceil(size / _MB)
    if size_mb <= 0:
        raise SizeUnknownError(
            f"Cannot determine size for {path[:200]}: it is empty; register a non-empty image."
        )
    return SizeResult(size_mb)
