"""LIO as a :class:`~rig.targets.base.TargetBackend` for code running *in* the guest.

The host drives LIO through the agent (:mod:`rig.targets.lio`); code that runs in the
kernel guest itself - the fake EqualLogic group started with ``--target-backend
lio`` - drives the same :class:`rig.guest.agent.LioState` in-process, so both paths
share one mapping of targets, ACLs and CHAP to rtslib-fb (see the agent's module
docstring):

- a volume is a target with one TPG, a fileio backstore on LUN 0 and the portal
  0.0.0.0:3260 (LIO's listener is per address and port, shared by every TPG);
- an initiator list becomes explicit NodeACLs (others get 0x0202 and do not see the
  target in SendTargets), ``None`` is demo mode;
- incoming/outgoing CHAP sit on each ACL (``authentication=1``);
- discovery CHAP is the fabric's ``discovery_auth``.

Needs root, configfs and python3-rtslib-fb, i.e. the guest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eqliscsi.errors import RigError
from eqliscsi.secret import redact
from rig.guest.agent import AgentError, LioState
from rig.targets._lio_common import LioRequests
from rig.targets.base import ChapAccount, Portal, ScsiIdentity

__all__ = ["LocalLioBackend"]

_LIO_PORT = 3260


class LocalLioError(RigError):
    reference = "lio-local-failed"


class LocalLioBackend(LioRequests):
    """LIO in this kernel, configured in-process through rtslib-fb."""

    def __init__(self, portal: Portal) -> None:
        if portal.port != _LIO_PORT:
            raise LocalLioError(
                f"LIO in the guest listens on port {_LIO_PORT}, not {portal.port}; "
                f"use --iscsi-portal HOST:{_LIO_PORT}."
            )
        # rtslib-fb refuses backstores unless its dbroot exists (the agent does the same).
        Path("/etc/rtslib-fb-target").mkdir(parents=True, exist_ok=True)
        self._portal = portal
        self._state = LioState()

    @property
    def kind(self) -> str:
        return "lio"

    @property
    def portal(self) -> Portal:
        return self._portal

    def _request(self, op: str, *, secrets: tuple[ChapAccount | None, ...] = (), **req: Any) -> Any:
        try:
            return getattr(self._state, "op_" + op)(req)
        except AgentError as exc:
            msg = redact(str(exc), [a.secret for a in secrets if a is not None])
            raise LocalLioError(msg) from None
        except Exception as exc:  # rtslib raises plain exceptions
            msg = redact(f"{type(exc).__name__}: {exc}", [a.secret for a in secrets if a])
            raise LocalLioError(f"LIO refused {op} ({msg}); read the guest's kernel log.") from None

    def create_target(
        self, iqn: str, backing_file: Path, identity: ScsiIdentity | None = None
    ) -> None:
        # ``identity`` is not applied, as in rig/targets/lio.py: rtslib-fb has no API
        # for the INQUIRY vendor/product, so LIO volumes answer "LIO-ORG".
        del identity
        self._request("create_target", iqn=iqn, path=str(backing_file))

    def delete_target(self, iqn: str) -> None:
        self._request("delete_target", iqn=iqn)

    def set_redirect(self, iqn: str, to: Portal | None) -> None:
        if to is not None:
            raise LocalLioError(
                "LIO cannot redirect logins (status 0x0101); run the fake group without "
                "a member when the backend is LIO."
            )

    def session_count(self, iqn: str) -> int:
        n = self._request("session_count", iqn=iqn)
        return int(n)

    def close(self) -> None:
        for iqn in sorted(self._state.targets):
            self.delete_target(iqn)
        self.set_discovery_chap(None, None)
