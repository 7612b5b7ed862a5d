"""``eqliscsi preflight``: check a front-end, its SAN and its hosts before the driver runs.

Thin by design (pip/trezorctl style): gather inputs, select checks, run them with
:func:`eqliscsi.cli.checks.run_checks`, render.  The checks themselves live in
:mod:`eqliscsi.cli.checks` and call the same code as the driver.

Exit status (kubeadm-like, documented in docs/preflight.md): 0 when every check
passed or was skipped, 1 when there were warnings only, 2 when a check failed.
Bad arguments also exit 2 (click's usage status).
"""

# Lazy imports keep ``eqliscsi --help`` cheap; click passes options as parameters.
# ruff: noqa: PLC0415, PLR0917

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from eqliscsi import __version__

if TYPE_CHECKING:
    from eqliscsi.cli.checks import Check, CheckResult
    from eqliscsi.cli.checks.inputs import Options

__all__ = ["JSON_SCHEMA_ID", "default_conf", "preflight", "render_json", "render_table"]

JSON_SCHEMA_ID = "eqliscsi-preflight/1"
_DEFAULT_CONF = "/var/lib/one/remotes/datastore/eqliscsi/eqliscsi.conf"
_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def default_conf(environ: Mapping[str, str]) -> Path:
    """Where the driver finds its conf: ``$EQLISCSI_CONF``, else the first of the two
    spellings (``eqliscsi.conf``, ``eqlscsi.conf``) that exists in the remotes."""
    from eqliscsi.opennebula.config import DEFAULT_CONF_NAMES

    if environ.get("EQLISCSI_CONF"):
        return Path(environ["EQLISCSI_CONF"])
    directory = Path(_DEFAULT_CONF).parent
    for name in DEFAULT_CONF_NAMES:
        if (directory / name).exists():
            return directory / name
    return Path(_DEFAULT_CONF)


def render_json(results: Sequence[CheckResult], exit_code: int) -> dict[str, Any]:
    """The ``--json`` document; its schema is documented in docs/preflight.md."""
    summary = {s: 0 for s in ("pass", "warn", "fail", "skip")}
    for r in results:
        summary[r.status.value] += 1
    return {
        "schema": JSON_SCHEMA_ID,
        "eqliscsi_version": __version__,
        "exit_code": exit_code,
        "summary": summary,
        "results": [r.to_json() for r in results],
    }


def render_table(results: Sequence[CheckResult], console: Any) -> None:
    from rich.table import Table

    from eqliscsi.cli.checks import Section

    for section in Section:
        rows = [r for r in results if r.section is section]
        if not rows:
            continue
        if section is Section.HOSTS:
            rows.sort(key=lambda r: r.subject)  # stable: each host's checks in order
        table = Table(title=section.value, title_justify="left", expand=False)
        hosts = section is Section.HOSTS
        for name in ("status", "check", *(("host",) if hosts else ()), "found", "fix"):
            table.add_column(name)
        for r in rows:
            status = f"[{_STYLE[r.status.value]}]{r.status.value.upper()}[/]"
            subject = (r.subject,) if hosts else ()
            table.add_row(status, r.id, *subject, r.found, r.fix)
        console.print(table)


def _gather(
    conf: Path,
    datastore_template: Path | None,
    datastore: int | None,
    oned_conf: Path,
    remotes: Path,
    hosts: tuple[str, ...],
    host_user: str,
    ssh_config: Path | None,
    host_sudo: bool,
    min_free_pct: float,
    write_probe: bool,
) -> Options:
    from eqliscsi.cli.checks import inputs
    from eqliscsi.errors import UsageError

    template = None
    if datastore_template is not None:
        try:
            text = datastore_template.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(
                f"The datastore template {datastore_template} cannot be read ({exc.strerror}); "
                "fix the path."
            ) from None
        template = inputs.parse_template_text(text)
    elif datastore is not None:
        template = inputs.oned_datastore(datastore)
    ds_id = datastore
    if ds_id is None and template is not None and template.get("ID", "").isdigit():
        ds_id = int(template["ID"])
    if not hosts:
        hosts = inputs.oned_hosts() or ()
    image_sources = inputs.oned_image_sources() if ds_id is not None else None
    return inputs.Options(
        conf_path=conf,
        config=inputs.load_config(conf, template),
        datastore_id=ds_id,
        datastore_template=template,
        oned_conf=oned_conf,
        remotes_dir=remotes,
        reference_remotes=inputs.reference_remotes(),
        hosts=hosts,
        host_user=host_user,
        ssh_config=ssh_config,
        host_sudo=host_sudo,
        min_free_pct=min_free_pct,
        write_probe=write_probe,
        image_sources=image_sources,
    )


async def run_preflight(
    options: Options,
    checks: Sequence[Check],
    *,
    progress: Any = None,
) -> list[CheckResult]:
    """Run ``checks`` against ``options``; ``progress`` is an optional rich Progress."""
    from eqliscsi.cli.checks import Context, run_checks

    ctx = Context(options)
    resolved = options.config.resolved
    if resolved is not None:
        for secret in resolved.config.secrets():
            if secret is not None:
                ctx.secrets.append(secret)
    task_ids: dict[tuple[str, str], Any] = {}

    def on_start(check: Check, subject: str) -> None:
        if progress is not None:
            label = f"{check.id} {subject}".strip()
            task_ids[(check.id, subject)] = progress.add_task(label, total=1)

    def on_done(result: CheckResult) -> None:
        if progress is not None:
            tid = task_ids.get((result.id, result.subject))
            if tid is not None:
                progress.update(tid, completed=1, visible=False)

    return await run_checks(checks, ctx, options.hosts, on_start=on_start, on_done=on_done)


@click.command("preflight")
@click.option(
    "--conf",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    show_default=f"$EQLISCSI_CONF, else {_DEFAULT_CONF} (or eqlscsi.conf)",
    help="The driver's eqliscsi.conf (or eqlscsi.conf).",
)
@click.option(
    "--datastore-template",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Datastore template file (onedatastore update syntax, or 'show -x' XML).",
)
@click.option("--datastore", type=click.IntRange(0), help="Datastore ID, read from oned.")
@click.option(
    "--oned-conf",
    type=click.Path(dir_okay=False, path_type=Path),
    default="/etc/one/oned.conf",
    show_default=True,
)
@click.option(
    "--remotes",
    type=click.Path(file_okay=False, path_type=Path),
    default="/var/lib/one/remotes",
    show_default=True,
    help="oned's remotes directory.",
)
@click.option("--host", "hosts", multiple=True, help="Hypervisor host (repeatable).")
@click.option("--host-user", default="oneadmin", show_default=True, help="SSH user on hosts.")
@click.option(
    "--ssh-config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="ssh_config file for the hosts (ssh -F).",
)
@click.option("--host-sudo", is_flag=True, help="Run iscsiadm on hosts through 'sudo -n'.")
@click.option("--skip", "skip", multiple=True, help="Check id or section to skip (repeatable).")
@click.option(
    "--min-free-pct",
    type=click.FloatRange(0, 100),
    default=10.0,
    show_default=True,
    help="Warn when the pool has less free space than this.",
)
@click.option(
    "--write-probe", is_flag=True, help="Create and delete a 15 MB volume to test rights."
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report.")
@click.option("--list", "list_only", is_flag=True, help="List the checks and exit.")
def preflight(
    conf: Path | None,
    datastore_template: Path | None,
    datastore: int | None,
    oned_conf: Path,
    remotes: Path,
    hosts: tuple[str, ...],
    host_user: str,
    ssh_config: Path | None,
    host_sudo: bool,
    skip: tuple[str, ...],
    min_free_pct: float,
    write_probe: bool,
    as_json: bool,
    list_only: bool,
) -> int:
    """Check the front-end, the SAN, iSCSI and the hosts; exit 0 ok, 1 warnings, 2 failures."""
    from rich.console import Console

    from eqliscsi.cli.checks import ALL_CHECKS, exit_status, select_checks

    console = Console(soft_wrap=False)
    if list_only:
        for c in ALL_CHECKS:
            click.echo(f"{c.id:24} {c.section.value:10} {c.severity.value:8} {c.title}")
        return 0
    if conf is None:
        conf = default_conf(os.environ)
    names = tuple(n.strip() for item in skip for n in item.split(",") if n.strip())
    checks = select_checks(ALL_CHECKS, names)
    options = _gather(
        conf, datastore_template, datastore, oned_conf, remotes, hosts, host_user,
        ssh_config, host_sudo, min_free_pct, write_probe,
    )  # fmt: skip
    live = not as_json and sys.stdout.isatty()
    if live:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
            console=console, transient=True,
        ) as progress:  # fmt: skip
            results = asyncio.run(run_preflight(options, checks, progress=progress))
    else:
        results = asyncio.run(run_preflight(options, checks))
    code = int(exit_status(results))
    if as_json:
        click.echo(json.dumps(render_json(results, code), indent=2))
    else:
        render_table(results, console)
        if not options.hosts:
            console.print("[dim]No hosts checked: pass --host or run where 'onehost' works.[/]")
    return code
