"""Entry point of the ``eqliscsi`` command.

Subcommands are registered by import path and loaded lazily, so ``eqliscsi --help``
and the cold start of one subcommand import nothing the others need.

Exceptions become exit codes in exactly one place, :func:`main`: a library error
prints its one-sentence message on stderr; anything else is a bug, printed as one
line too, with the traceback only when ``EQLISCSI_DEBUG=1``.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

import click

from eqliscsi import __version__
from eqliscsi.errors import EqliscsiError, ExitCode, exit_code_for

__all__ = ["cli", "main"]

# name -> "module:attribute"; each attribute is a click.Command.
_COMMANDS: dict[str, tuple[str, str]] = {
    "discover": ("eqliscsi.cli.iscsi", "discover"),
    "probe": ("eqliscsi.cli.iscsi", "probe"),
    "preflight": ("eqliscsi.cli.preflight", "preflight"),
    "install": ("eqliscsi.cli.install", "install"),
    "rig": ("rig.cli", "rig"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                return None  # not built yet in this checkout
            raise
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="eqliscsi")
def cli() -> None:
    """EqualLogic iSCSI storage for OpenNebula: discovery, probes, preflight, install, rig."""


def _debug() -> bool:
    return os.environ.get("EQLISCSI_DEBUG", "") not in ("", "0")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit with a status from :func:`eqliscsi.errors.exit_code_for`."""
    try:
        rv: Any = cli.main(args=argv, prog_name="eqliscsi", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("eqliscsi: aborted.", err=True)
        sys.exit(ExitCode.ERROR)
    except click.ClickException as exc:
        exc.show()
        sys.exit(ExitCode.USAGE)
    except EqliscsiError as exc:
        if _debug():
            traceback.print_exc()
        click.echo(f"eqliscsi: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("eqliscsi: interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:
        if _debug():
            traceback.print_exc()
        click.echo(
            f"eqliscsi: internal error ({type(exc).__name__}); "
            "rerun with EQLISCSI_DEBUG=1 and report the traceback.",
            err=True,
        )
        sys.exit(exit_code_for(exc))
    sys.exit(rv if isinstance(rv, int) else ExitCode.OK)
