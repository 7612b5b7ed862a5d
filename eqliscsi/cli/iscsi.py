"""``eqliscsi discover`` and ``eqliscsi probe``: the native iSCSI client from a shell.

Thin by design (pip/trezorctl style): parse options, build the library's values,
run one coroutine, render.  Errors are not handled here: :func:`eqliscsi.cli.main.main`
turns any :class:`~eqliscsi.errors.EqliscsiError` into one stderr line and an exit
code.

Secrets never come from argv (they would show in ``ps`` and shell history): CHAP
secrets are read from ``--chap-secret-file`` / ``--mutual-secret-file`` or from the
``EQLISCSI_CHAP_SECRET`` / ``EQLISCSI_MUTUAL_SECRET`` environment variables.

Imports of the protocol code and of rich happen inside the commands so that
``eqliscsi --help`` and the cold start stay cheap.
"""

# Lazy imports are the point (cold start); click passes options as parameters.
# ruff: noqa: PLC0415, PLR0917

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from eqliscsi.errors import UsageError

if TYPE_CHECKING:
    from eqliscsi.iscsi_discovery import Auth, DiscoveredTarget, ProbeResult

__all__ = ["discover", "probe"]

CHAP_SECRET_ENV = "EQLISCSI_CHAP_SECRET"  # noqa: S105 - a variable name, not a secret
MUTUAL_SECRET_ENV = "EQLISCSI_MUTUAL_SECRET"  # noqa: S105
_ALGORITHMS = {"md5": 5, "sha1": 6, "sha256": 7, "sha3-256": 8}

F = TypeVar("F", bound=Callable[..., Any])


def _common_options(func: F) -> F:
    options = [
        click.option("--chap-user", metavar="USER", help="CHAP user name of this initiator."),
        click.option(
            "--chap-secret-file",
            type=click.Path(dir_okay=False, path_type=Path),
            metavar="FILE",
            help=f"File holding the CHAP secret (or set {CHAP_SECRET_ENV}).",
        ),
        click.option(
            "--mutual-user", metavar="USER", help="Target's CHAP user name for mutual CHAP."
        ),
        click.option(
            "--mutual-secret-file",
            type=click.Path(dir_okay=False, path_type=Path),
            metavar="FILE",
            help=f"File holding the target's CHAP secret (or set {MUTUAL_SECRET_ENV}).",
        ),
        click.option(
            "--chap-algorithm",
            "algorithms",
            type=click.Choice(sorted(_ALGORITHMS)),
            multiple=True,
            help="CHAP_A to offer, in preference order (repeatable; default md5).",
        ),
        click.option("--initiator-name", metavar="IQN", help="Initiator IQN to log in as."),
        click.option(
            "--timeout",
            type=click.FloatRange(0.1, 300.0),
            default=10.0,
            show_default=True,
            help="Seconds to wait for the target at each step.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table."),
        click.option("-v", "--verbose", is_flag=True, help="Log protocol progress to stderr."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _secret(path: Path | None, env: str, what: str) -> Any:
    from eqliscsi.secret import Secret

    if path is not None:
        return Secret.from_file(path)
    if env in os.environ:
        return Secret.from_env(env)
    raise UsageError(f"The {what} needs a secret; pass its file with the option or set {env}.")


def _auth(
    chap_user: str | None,
    chap_secret_file: Path | None,
    mutual_user: str | None,
    mutual_secret_file: Path | None,
    algorithms: tuple[str, ...],
) -> Auth:
    from eqliscsi.iscsi_discovery import Auth, ChapAlgorithm, ChapCredentials

    if chap_user is None and (chap_secret_file is not None or mutual_user is not None):
        raise UsageError("A CHAP secret or mutual user was given without --chap-user; add it.")
    if mutual_user is None and mutual_secret_file is not None:
        raise UsageError("--mutual-secret-file was given without --mutual-user; add it.")
    chap = mutual = None
    if chap_user is not None:
        chap = ChapCredentials(
            chap_user, _secret(chap_secret_file, CHAP_SECRET_ENV, f"CHAP user {chap_user}")
        )
    if mutual_user is not None:
        mutual = ChapCredentials(
            mutual_user,
            _secret(mutual_secret_file, MUTUAL_SECRET_ENV, f"mutual CHAP user {mutual_user}"),
        )
    algs = tuple(ChapAlgorithm(_ALGORITHMS[a]) for a in algorithms) or (ChapAlgorithm.MD5,)
    return Auth(chap=chap, mutual=mutual, algorithms=algs)


def _logging(verbose: bool) -> None:
    # Library warnings (short secret, MD5 fallback) would add stderr lines; the
    # one-line failure contract keeps them behind --verbose.
    logger = logging.getLogger("eqliscsi")
    logger.propagate = False
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("eqliscsi: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    else:
        logger.addHandler(logging.NullHandler())


def discover_json(targets: list[DiscoveredTarget]) -> list[dict[str, Any]]:
    return [
        {
            "name": t.name,
            "portals": [{"address": p.address, "port": p.port, "tpgt": p.tpgt} for p in t.portals],
        }
        for t in targets
    ]


def probe_json(result: ProbeResult) -> dict[str, Any]:
    return {
        "target": result.target,
        "luns": [
            {
                "lun": lun.lun,
                "size_bytes": lun.size_bytes,
                "block_size": lun.block_size,
                "vendor": lun.vendor,
                "product": lun.product,
                "serial": lun.serial,
            }
            for lun in result.luns
        ],
    }


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError  # pragma: no cover


def _print_table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console(soft_wrap=True).print(table)


@click.command()
@click.argument("portal")
@_common_options
def discover(
    portal: str,
    chap_user: str | None,
    chap_secret_file: Path | None,
    mutual_user: str | None,
    mutual_secret_file: Path | None,
    algorithms: tuple[str, ...],
    initiator_name: str | None,
    timeout: float,
    as_json: bool,
    verbose: bool,
) -> None:
    """List the targets PORTAL (host[:port]) offers, through a SendTargets discovery."""
    from eqliscsi.iscsi_discovery import discover as run

    _logging(verbose)
    auth = _auth(chap_user, chap_secret_file, mutual_user, mutual_secret_file, algorithms)
    targets = asyncio.run(run(portal, auth=auth, initiator_name=initiator_name, timeout=timeout))
    if as_json:
        click.echo(json.dumps(discover_json(targets), indent=2))
        return
    if not targets:
        click.echo(f"No targets at {portal} for this initiator.")
        return
    rows = [[t.name, ", ".join(str(p) for p in t.portals)] for t in targets]
    _print_table(f"{len(targets)} target(s) at {portal}", ["Target", "Portals"], rows)


@click.command()
@click.argument("portal")
@click.argument("iqn")
@click.option("--lun", type=click.IntRange(0, 16383), help="Probe only this LUN.")
@_common_options
def probe(
    portal: str,
    iqn: str,
    lun: int | None,
    chap_user: str | None,
    chap_secret_file: Path | None,
    mutual_user: str | None,
    mutual_secret_file: Path | None,
    algorithms: tuple[str, ...],
    initiator_name: str | None,
    timeout: float,
    as_json: bool,
    verbose: bool,
) -> None:
    """Log in to target IQN at PORTAL and describe its disk LUNs, then log out."""
    from eqliscsi.iscsi_discovery import probe as run

    _logging(verbose)
    auth = _auth(chap_user, chap_secret_file, mutual_user, mutual_secret_file, algorithms)
    result = asyncio.run(
        run(portal, iqn, lun=lun, auth=auth, initiator_name=initiator_name, timeout=timeout)
    )
    if as_json:
        click.echo(json.dumps(probe_json(result), indent=2))
        return
    via = f" (redirected to {result.redirected_to})" if result.redirected_to else ""
    rows = [
        [str(x.lun), _size(x.size_bytes), str(x.block_size), x.vendor, x.product, x.serial]
        for x in result.luns
    ]
    _print_table(
        f"{result.target} at {result.portal}{via}",
        ["LUN", "Size", "Block", "Vendor", "Product", "Serial"],
        rows,
    )
