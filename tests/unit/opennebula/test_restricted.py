from __future__ import annotations

import os
from pathlib import Path

import pytest

from eqliscsi.opennebula.actions.ds import check_restricted
from eqliscsi.opennebula.errors import BadValueError, RestrictedPathError

ENV = {"HOME": "/var/lib/one"}


@pytest.mark.parametrize(
    ("path", "restricted", "safe", "allowed"),
    [
        pytest.param("/srv/images/a.qcow2", [], [], True, id="plain"),
        pytest.param("/var/lib/one/one_auth", [], [], False, id="oned-home"),
        pytest.param("/var/lib/one//datastores/../one_auth", [], [], False, id="dotdot-normalised"),
        pytest.param("/etc/one/oned.conf", [], [], False, id="etc-one"),
        pytest.param("/etc/oneother", [], [], True, id="prefix-is-not-parent"),
        pytest.param("/srv/private/x", ["/srv/private"], [], False, id="ds-restricted"),
        pytest.param(
            "/srv/private/public/x", ["/srv/private"], ["/srv/private/public"], True, id="safe-wins"
        ),
        pytest.param(
            "/var/lib/one/staging/x", [], ["/var/lib/one/staging"], True, id="safe-under-default"
        ),
    ],
)
def test_check_restricted(path: str, restricted: list[str], safe: list[str], allowed: bool) -> None:
    if allowed:
        assert check_restricted(path, restricted, safe, ENV) == os.path.normpath(path)
    else:
        with pytest.raises(RestrictedPathError, match="SAFE_DIRS") as info:
            check_restricted(path, restricted, safe, ENV)
        assert "\n" not in str(info.value)


def test_symlink_into_restricted_dir(tmp_path: Path) -> None:
    secret_dir = tmp_path / "restricted"
    secret_dir.mkdir()
    (secret_dir / "key").write_text("k")
    link = tmp_path / "innocent.img"
    link.symlink_to(secret_dir / "key")
    with pytest.raises(RestrictedPathError):
        check_restricted(str(link), [str(secret_dir)], [], ENV)


@pytest.mark.parametrize("path", ["relative/x.img", "", "/srv/a\nb", "/srv/\x00x"])
def test_check_restricted_rejects_odd_paths(path: str) -> None:
    with pytest.raises(BadValueError):
        check_restricted(path, [], [], ENV)
