"""Hostile input through the oned simulator: clear one-line errors, nothing at the SAN.

Two kinds of input:

* **refused**: a SOURCE/PATH/SIZE/document that can only be an attack or corruption.
  The action fails with one line, no traceback, and the fake group never sees a CLI
  session (``max_sessions_seen == 0``).
* **cleaned**: an image NAME is free text in OpenNebula (quotes, ``;``, ``$(…)``,
  newlines, 200 characters, Unicode).  The driver never sends it: the volume name is
  built from ``[a-z0-9-]`` (naming.py), so the action succeeds and the bytes typed
  into the fake shell (recorded) contain none of the hostile characters.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rig.fake_eql import server as fake_server
from rig.fake_eql.shell import EqlShell
from rig.oned import DatastoreSpec, ImageSpec, OnedSimulator
from tests.e2e.ds.helpers import DS, DataGroup, SecretWatch, make_qcow2

pytestmark = [pytest.mark.tgt]

BOMB = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    "<DS_DRIVER_ACTION_DATA><IMAGE><ID>1</ID><NAME>&lol3;</NAME><SOURCE>a.1</SOURCE>"
    "</IMAGE><DATASTORE><ID>100</ID></DATASTORE></DS_DRIVER_ACTION_DATA>"
)


@dataclass(frozen=True)
class Refused:
    action: str
    profile: str
    reason: str  # a fragment of the one-line reason oned records
    image: ImageSpec | None = None
    document: str | None = None  # raw XML instead of sim.ds_document(image)
    raw_args: tuple[str, ...] | None = None  # argv as given, stdin empty
    ds: DatastoreSpec = DS


REFUSED = {
    "source-quote-semicolon": Refused(
        "rm", "6.10", "not 1-63 characters", ImageSpec(id=1, source="vol'; volume delete x")
    ),
    "source-command-substitution": Refused(
        "rm", "4.4", "not 1-63 characters", ImageSpec(id=1, source="$(reboot)")
    ),
    "source-200-chars": Refused(
        "rm", "7.0", "not 1-63 characters", ImageSpec(id=1, source="a" * 200)
    ),
    "source-unicode": Refused("rm", "5.12", "not 1-63 characters", ImageSpec(id=1, source="vól.1")),
    "clone-path-newline": Refused(
        "clone",
        "6.6",
        "not 1-63 characters",
        ImageSpec(id=2, name="c", path="a.1\nvolume delete b", size_mb=10, cloning_id=1),
    ),
    "bad-base64": Refused("rm", "5.12", "base64", raw_args=("!!not*base64!!", "1")),
    "hostile-id": Refused("rm", "5.12", "id", raw_args=("PERhdGE+", "1;reboot")),
    "xml-bomb": Refused("rm", "6.10", "DTD", document=BOMB),
    "not-xml": Refused("rm", "7.0", "not well-formed", document="<DS_DRIVER_ACTION_DATA><IMAGE>"),
    "mkfs-missing-size": Refused(
        "mkfs", "6.10", "SIZE", ImageSpec(id=3, name="d", type=2, size_mb="")
    ),
    "mkfs-negative-size": Refused(
        "mkfs", "5.12", "negative", ImageSpec(id=3, name="d", type=2, size_mb=-5)
    ),
    "cp-restricted-path": Refused(
        "cp", "6.6-stdin", "SAFE_DIRS", ImageSpec(id=4, name="e", path="/var/lib/one/.one/one_auth")
    ),
    "cp-relative-path": Refused(
        "cp", "6.10", "absolute path", ImageSpec(id=4, name="e", path="img;reboot")
    ),
    "cp-unknown-scheme": Refused(
        "cp", "7.0", "not supported", ImageSpec(id=4, name="e", path="file:///etc/shadow")
    ),
    "cp-url-with-blank": Refused(
        "cp", "7.0", "blanks", ImageSpec(id=4, name="e", path="http://127.0.0.1:1/a b")
    ),
    "pool-injection": Refused(
        "mkfs",
        "6.10",
        "EQL_POOL",
        ImageSpec(id=5, name="f", type=2, size_mb=10),
        ds=DatastoreSpec(template={**DS.template, "EQL_POOL": "default; volume delete x"}),
    ),
    "thin-words-injection": Refused(
        "mkfs",
        "4.4",
        "EQL_THINPROVISION",
        ImageSpec(id=5, name="f", type=2, size_mb=10),
        ds=DatastoreSpec(template={**DS.template, "EQL_THINPROVISION": "thin-provision $(id)"}),
    ),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
async def test_refused_before_the_san(
    tmp_path: Path, data_group: DataGroup, secret_watch: SecretWatch, case: Refused
) -> None:
    sim = OnedSimulator.create(
        case.profile, tmp_path / "sim", conf=data_group.conf, extra_env=data_group.env
    )
    if case.raw_args is not None:
        out = await asyncio.to_thread(sim.run_ds_raw, case.action, list(case.raw_args), b"")
    else:
        doc = case.document if case.document is not None else sim.ds_document(case.image, case.ds)
        object_id = case.image.id if case.image is not None else 1
        out = await asyncio.to_thread(sim.run_ds, case.action, doc, object_id)
    assert not out.ok
    assert out.reason is not None and case.reason in out.reason, out.stderr
    assert len(out.reason.strip().splitlines()) == 1, out.reason
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout
    assert data_group.fake.max_sessions_seen == 0  # no CLI session was ever opened
    assert data_group.fake.san.volumes == {}
    assert secret_watch.hits == []


@dataclass
class Typed:
    data: list[bytes] = field(default_factory=list)

    @property
    def text(self) -> bytes:
        return b"".join(self.data)


@pytest.fixture
def typed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Typed]:
    """Records every byte the driver types into the fake Group Manager shell."""
    record = Typed()

    class Recording(EqlShell):
        def feed(self, data: bytes):  # type: ignore[no-untyped-def]
            record.data.append(data)
            return super().feed(data)

    monkeypatch.setattr(fake_server, "EqlShell", Recording)
    yield record


NAMES = {
    "quotes": 'it\'s a "disk"',
    "semicolon": "disk; volume delete all",
    "command-substitution": "$(reboot) `id`",
    "newline": "disk\nvolume delete x",
    "200-chars": "n" * 200,
    "unicode": "Débian ☃ 磁盘",
    "all-symbols": "';$()`\n",
}


@pytest.mark.parametrize("name", NAMES.values(), ids=NAMES.keys())
async def test_hostile_names_never_reach_the_cli(
    tmp_path: Path, data_group: DataGroup, typed: Typed, name: str
) -> None:
    sim = OnedSimulator.create(
        "6.10", tmp_path / "sim", conf=data_group.conf, extra_env=data_group.env
    )
    src = make_qcow2(tmp_path / "n.qcow2", size="4M", pattern=((0x42, 1, 64),))
    out = await asyncio.to_thread(
        sim.run_ds, "cp", sim.ds_document(ImageSpec(id=7, name=name, path=str(src)), DS), 7
    )
    assert out.ok, out.stderr
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,60}\.7", out.info), out.info
    assert list(data_group.fake.san.volumes) == [out.info]
    assert typed.data, "the driver typed nothing: the recorder is not wired in"
    # The one quoted value the driver types is its own ownership tag.
    text = typed.text.replace(b'"eqliscsi ds=100"', b"")
    for bad in (b"'", b'"', b";", b"$(", b"`", b"\n", b"delete all", "☃".encode()):
        assert bad not in text, bad


def test_bad_base64_sample_is_really_bad() -> None:
    # The hostile-id case sends valid base64 of "<data" so only the id is at fault.
    assert base64.b64decode("PERhdGE+") == b"<Data>"
    with pytest.raises(ValueError):
        base64.b64decode("!!not*base64!!", validate=True)
