"""Shared pieces of the OpenNebula e2e tests: the fake group handle and the datastore."""

from __future__ import annotations

from dataclasses import dataclass

from rig.fake_eql.server import FakeEql
from rig.oned import DatastoreSpec

PASSWORD = b"fake-group-password-1"


@dataclass
class Group:
    fake: FakeEql
    conf: str
    env: dict[str, str]


DS = DatastoreSpec(template={"DS_MAD": "eqliscsi", "TM_MAD": "eqliscsi", "EQL_POOL": "default"})
