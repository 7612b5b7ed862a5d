"""Persistence of the SAN model as JSON in the state directory.

``save`` writes a temporary file, fsyncs it and renames it over ``san.json``, so a
crash leaves either the old or the new state, never half of one; a restarted fake
loads it and loses nothing that a client saw acknowledged (the adapter saves before
it sends the reply).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from eqliscsi.errors import RigError
from rig.fake_eql.model import (
    AccessRecord,
    AccountType,
    AdminAccount,
    ApplyTo,
    AuthMethod,
    ChapUser,
    CliSettings,
    Pool,
    San,
    Snapshot,
    Volume,
)

__all__ = ["STATE_FILE", "StateFileError", "dumps", "load", "loads", "save"]

STATE_FILE = "san.json"
_FORMAT = 1


class StateFileError(RigError):
    reference = "fake-eql-state-unreadable"


def _plain(value: Any) -> Any:
    if isinstance(value, AuthMethod | ApplyTo | AccountType):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def dumps(san: San) -> str:
    data = {
        "format": _FORMAT,
        "group_name": san.group_name,
        "group_ip": san.group_ip,
        "group_id": san.group_id,
        "info_messages": san.info_messages,
        "serial": san.serial,
        "pools": [asdict(p) for p in san.pools.values()],
        "volumes": [_plain(asdict(v)) for v in san.volumes.values()],
        "chap_users": [asdict(u) for u in san.chap_users.values()],
        "settings": {k: asdict(v) for k, v in san.settings.items()},
        "accounts": [_plain(asdict(a)) for a in san.accounts.values()],
        "target_auth": {"user": san.target_auth_user, "password": san.target_auth_password},
    }
    return json.dumps(data, indent=1, sort_keys=True)


def loads(text: str) -> San:
    data = json.loads(text)
    if data.get("format") != _FORMAT:
        raise StateFileError(
            f"The state file has format {data.get('format')!r}, not {_FORMAT}; "
            "start with an empty state directory."
        )
    san = San(
        group_name=data["group_name"],
        group_ip=data["group_ip"],
        group_id=data["group_id"],
        pools={p["name"]: Pool(**p) for p in data["pools"]},
        info_messages=data["info_messages"],
        serial=data["serial"],
    )
    for v in data["volumes"]:
        access = tuple(
            AccessRecord(
                **{
                    **r,
                    "authmethod": AuthMethod(r["authmethod"]),
                    "apply_to": ApplyTo(r["apply_to"]),
                }
            )
            for r in v["access"]
        )
        snaps = tuple(Snapshot(**s) for s in v["snapshots"])
        san.volumes[v["name"]] = Volume(**{**v, "access": access, "snapshots": snaps})
    for u in data["chap_users"]:
        san.chap_users[u["name"]] = ChapUser(**u)
    known = {f.name for f in fields(CliSettings)}
    for account, values in data["settings"].items():
        san.settings[account] = CliSettings(**{k: v for k, v in values.items() if k in known})
    # Added later in format 1: absent in older state files.
    for a in data.get("accounts", []):
        san.accounts[a["name"]] = AdminAccount(
            **{**a, "type": AccountType(a["type"]), "pools": tuple(a["pools"])}
        )
    auth = data.get("target_auth", {})
    san.target_auth_user = auth.get("user", "")
    san.target_auth_password = auth.get("password", "")
    return san


def save(san: San, state_dir: Path) -> None:
    path = state_dir / STATE_FILE
    tmp = state_dir / f".{STATE_FILE}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(dumps(san))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    # The rename is durable only once the directory entry is.
    fd = os.open(state_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load(state_dir: Path) -> San | None:
    path = state_dir / STATE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return loads(text)
    except (ValueError, KeyError, TypeError) as e:
        raise StateFileError(
            f"State file {path} cannot be read ({type(e).__name__}); "
            "fix or remove it and restart the fake array."
        ) from None
