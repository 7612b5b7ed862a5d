"""Helpers for the preflight unit tests: options built from files in a tmp dir."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eqliscsi.cli.checks.base import CheckFn, Context, Finding
from eqliscsi.cli.checks.inputs import Options, load_config
from eqliscsi.san.errors import SanConnectionError

GOOD_CONF = """\
EQL_HOST=192.0.2.10
EQL_USER=grpadmin
EQL_POOL=default
EQL_PASS_FILE={pw}
EQL_CHAP_USER=oneadmin
EQL_CHAP_SECRET_FILE={chap}
EQL_IFACE=eql0
"""
PASSWORD = "group-password-0001"
CHAP_SECRET = "chap-secret-00042"


def make_options(
    tmp: Path,
    conf_text: str | None = None,
    template: Mapping[str, str] | None = None,
    **kw: Any,
) -> Options:
    pw = tmp / "password"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    chap = tmp / "chap"
    chap.write_text(CHAP_SECRET)
    chap.chmod(0o600)
    conf = tmp / "eqliscsi.conf"
    text = GOOD_CONF if conf_text is None else conf_text
    conf.write_text(text.format(pw=pw, chap=chap))
    conf.chmod(0o640)
    return Options(
        conf_path=conf, config=load_config(conf, template), datastore_template=template, **kw
    )


class NoSanInUnitTests(SanConnectionError):
    reference = "no-san-in-unit-tests"


async def run(fn: CheckFn, options: Options, subject: str = "", **seeds: object) -> Finding:
    """Run one check with shared facts seeded (``host__h1`` seeds ``host:h1``).

    The SAN session is always seeded, by default with a connection failure: a unit test
    must never reach for the (documentation-range) address in its configuration.
    """
    ctx = Context(options)
    seeds.setdefault("session", NoSanInUnitTests("unit tests have no SAN"))
    for key, value in seeds.items():
        ctx.seed(key.replace("__", ":"), value)
    try:
        return await fn(ctx, subject)
    finally:
        await ctx.close()
