"""rig.targets.lio_local outside the guest: what it checks before touching LIO."""

from __future__ import annotations

import pytest

from rig.fake_eql.__main__ import make_backends
from rig.targets.base import Portal
from rig.targets.lio_local import LocalLioBackend, LocalLioError


@pytest.mark.parametrize("port", [3261, 22, 65535])
def test_only_lio_port_3260_is_accepted(port: int) -> None:
    # LIO's listener in the guest is 0.0.0.0:3260 (the agent's portal); another
    # port would be a portal nobody listens on.
    with pytest.raises(LocalLioError, match="port 3260"):
        LocalLioBackend(Portal("127.0.0.1", port))


def test_fake_group_with_lio_refuses_a_wrong_portal(tmp_path: object) -> None:
    with pytest.raises(LocalLioError, match="--iscsi-portal HOST:3260"):
        make_backends("lio", Portal("127.0.0.1", 4000), tmp_path)  # type: ignore[arg-type]


def test_redirect_is_refused_without_touching_lio() -> None:
    backend = LocalLioBackend.__new__(LocalLioBackend)
    backend.set_redirect("iqn.2001-05.com.equallogic:0-x", None)  # no redirect: fine
    with pytest.raises(LocalLioError, match="cannot redirect"):
        backend.set_redirect("iqn.2001-05.com.equallogic:0-x", Portal("127.0.0.1", 3260))
