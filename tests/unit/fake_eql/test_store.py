"""Persistence: JSON round trip, atomic save, restart loses nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from rig.fake_eql import store
from rig.fake_eql.model import ApplyTo, AuthMethod, San


def _populated() -> San:
    san = San(group_name="grp", group_ip="127.0.0.9")
    san.create_volume("v1", 1024, thin=True, description="two words")
    san.create_volume("v2", 100, online=False)
    san.add_access(
        "v1",
        initiator="iqn.x",
        username="bob",
        authmethod=AuthMethod.CHAP,
        apply_to=ApplyTo.VOLUME,
    )
    san.create_snapshot("v1", now=datetime(2026, 1, 1, tzinfo=UTC))
    san.create_chap_user("bob", "bob-secret-123")
    san.set_setting("grpadmin", "paging", False)
    san.info_messages = False
    return san


def test_round_trip(tmp_path: Path) -> None:
    san = _populated()
    store.save(san, tmp_path)
    loaded = store.load(tmp_path)
    assert loaded is not None
    assert store.dumps(loaded) == store.dumps(san)
    assert loaded.volumes == san.volumes
    assert loaded.chap_users == san.chap_users
    assert loaded.settings == san.settings
    # new objects continue the serial: no IQN or uid is ever handed out twice
    vol, _ = loaded.create_volume("v3", 10)
    assert vol.uid not in {v.uid for v in san.volumes.values()}
    assert [p.name for p in tmp_path.iterdir()] == [store.STATE_FILE]  # no temp file left


def test_missing_state_is_none(tmp_path: Path) -> None:
    assert store.load(tmp_path) is None


@pytest.mark.parametrize(
    "content", ["{", '{"format": 99}', '{"format": 1}'], ids=["json", "format", "keys"]
)
def test_unreadable_state_is_one_clear_error(tmp_path: Path, content: str) -> None:
    (tmp_path / store.STATE_FILE).write_text(content)
    with pytest.raises(store.StateFileError) as info:
        store.load(tmp_path)
    assert str(info.value).count(";") <= 1
