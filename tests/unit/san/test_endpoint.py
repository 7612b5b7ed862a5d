"""SanEndpoint: validation, wire form for the broker, pooling key."""

from __future__ import annotations

import pytest

from eqliscsi.san.endpoint import HostKeyPolicy, SanEndpoint
from eqliscsi.san.errors import SanAuthError, SanHostKeyError, SanInvalidValue
from eqliscsi.secret import Secret


def ep(**kw: object) -> SanEndpoint:
    base: dict[str, object] = {
        "host": "10.1.2.3",
        "username": "grpadmin",
        "password": Secret(b"pw-123456789", origin="test"),
    }
    base.update(kw)
    return SanEndpoint(**base)  # type: ignore[arg-type]


def test_wire_roundtrip_keeps_everything() -> None:
    e = ep(
        port=2222,
        client_keys=("/k",),
        host_key_policy=HostKeyPolicy.PINNED,
        host_key_fingerprint="SHA256:abc",
        group="g",
        command_timeout=5.0,
    )
    back = SanEndpoint.from_wire(e.to_wire())
    assert back.to_wire() == e.to_wire()
    assert back.credential_key() == e.credential_key()
    assert back.password is not None and back.password.reveal() == b"pw-123456789"
    assert "pw-123456789" not in repr(e)


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        pytest.param({"host": ""}, SanInvalidValue, id="no-host"),
        pytest.param({"host": "a b"}, SanInvalidValue, id="host-space"),
        pytest.param({"port": 0}, SanInvalidValue, id="port-0"),
        pytest.param({"command_timeout": float("nan")}, SanInvalidValue, id="nan-timeout"),
        pytest.param({"password": None}, SanAuthError, id="no-credentials"),
        pytest.param({"host_key_policy": HostKeyPolicy.PINNED}, SanHostKeyError, id="pin-no-fp"),
        pytest.param(
            {"host_key_policy": HostKeyPolicy.TRUST_ON_FIRST_USE},
            SanHostKeyError,
            id="tofu-no-file",
        ),
    ],
)
def test_invalid_endpoints(kw: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        ep(**kw)


def test_bad_wire_is_rejected() -> None:
    with pytest.raises(SanInvalidValue):
        SanEndpoint.from_wire({"host": "x"})


def test_credential_key_separates_credentials_but_hides_them() -> None:
    a = ep().credential_key()
    assert a == ep().credential_key()
    assert a != ep(password=Secret(b"other-password", origin="t")).credential_key()
    assert a != ep(username="other").credential_key()
    assert "pw-123456789" not in a
    assert a.startswith("grpadmin@10.1.2.3:22/")
