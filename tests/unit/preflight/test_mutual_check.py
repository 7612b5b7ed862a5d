"""iscsi.mutual-chap when it cannot or need not log in (the logins run in integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eqliscsi.cli.checks import iscsi
from eqliscsi.cli.checks.base import Status
from eqliscsi.cli.checks.san import VolumeFacts
from tests.unit.preflight.conftest import GOOD_CONF, make_options, run


@pytest.mark.parametrize(
    ("extra", "seed_volumes", "needle"),
    [
        pytest.param("", True, "not configured (no EQL_CHAP_TARGET_USER)", id="not-configured"),
        pytest.param("EQL_CHAP_TARGET_USER=eqltarget\nEQL_CHAP_TARGET_SECRET_FILE={tgt}\n", True,
                     "no online eqliscsi volume", id="no-volume-yet"),
        pytest.param("EQL_CHAP_TARGET_USER=eqltarget\nEQL_CHAP_TARGET_SECRET_FILE={tgt}\n", False,
                     "see san.login", id="no-san-session"),
    ],
)  # fmt: skip
async def test_mutual_chap_skips(
    tmp_path: Path, extra: str, seed_volumes: bool, needle: str
) -> None:
    tgt = tmp_path / "chap-target"
    tgt.write_text("target-secret-0042")
    opts = make_options(tmp_path, GOOD_CONF + extra.replace("{tgt}", str(tgt)))
    assert opts.config.resolved is not None, opts.config.error
    seeds: dict[str, object] = {"volumes": VolumeFacts((), 0)} if seed_volumes else {}
    f = await run(iscsi.check_mutual_chap, opts, "", **seeds)
    assert f.status is Status.SKIP, f
    assert needle in f.found
