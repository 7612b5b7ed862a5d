"""LIO (the Linux kernel target) as a rig :class:`~rig.targets.base.TargetBackend`.

This host's kernel has no LIO, so the target lives in the kernel guest
(:mod:`rig.guest`): every call becomes one request to the in-guest agent, which
drives configfs through rtslib-fb.  The mapping to LIO:

- a volume is a target with one TPG (tag 1), one fileio backstore on LUN 0 and the
  guest portal 0.0.0.0:3260, reached from the host at :attr:`portal`;
- ``set_initiators(None)`` is LIO demo mode (``generate_node_acls=1``), a list is
  one explicit NodeACL per initiator; a login from any other initiator gets
  status 0x0202 (RFC 7143 §11.13.5, "Authorization failure");
- per-target CHAP sits on each ACL (or the TPG's ``auth/`` in demo mode), with
  ``authentication=1`` on the TPG; ``outgoing`` is the mutual pair;
- discovery CHAP is the fabric's ``discovery_auth`` with
  ``enforce_discovery_auth``.

Backing files must be inside the guest's shared directory (``vm.share_dir``): LIO
opens them over virtio-9p, so the bytes the host reads are the bytes LIO served.
LIO has no login redirect, so :meth:`LioBackend.set_redirect` refuses.
"""

from __future__ import annotations

from pathlib import Path

from eqliscsi.errors import RigError
from eqliscsi.secret import redact
from rig.guest.vm import GuestAgentError, GuestVM
from rig.targets._lio_common import LioRequests
from rig.targets.base import ChapAccount, Portal, ScsiIdentity

__all__ = ["LioBackend", "LioError"]


class LioError(RigError):
    reference = "lio-backend-failed"


class LioBackend(LioRequests):
    """A LIO target in a running :class:`GuestVM` (which the caller owns)."""

    def __init__(self, vm: GuestVM) -> None:
        self._vm = vm
        self._iqns: set[str] = set()

    @property
    def kind(self) -> str:
        return "lio"

    @property
    def portal(self) -> Portal:
        return Portal("127.0.0.1", self._vm.ports.iscsi)

    @property
    def vm(self) -> GuestVM:
        return self._vm

    def _request(
        self, op: str, *, secrets: tuple[ChapAccount | None, ...] = (), **fields: object
    ) -> object:
        try:
            return self._vm.agent(op, **fields)
        except GuestAgentError as exc:
            # rtslib's messages name paths, not values; redact anyway, as the last
            # line of defence for the CHAP secrets this request carried.
            msg = redact(str(exc), [a.secret for a in secrets if a is not None])
            raise LioError(msg) from None

    def create_target(
        self, iqn: str, backing_file: Path, identity: ScsiIdentity | None = None
    ) -> None:
        # ``identity`` is not applied: LIO reports "LIO-ORG" and the backstore's name.
        # Kernels from 4.19 expose wwn/vendor_id (and later product_id) in configfs, but
        # rtslib-fb has no API for them and the guest tier has not been checked with them;
        # INQUIRY-identity tests run against tgt (docs/fake-eql.md).
        del identity
        self._request("create_target", iqn=iqn, path=str(self._vm.guest_path(backing_file)))
        self._iqns.add(iqn)

    def delete_target(self, iqn: str) -> None:
        self._request("delete_target", iqn=iqn)
        self._iqns.discard(iqn)

    def add_portal(self, iqn: str, address: str, port: int = 3260) -> None:
        """Also serve ``iqn`` on ``address:port`` in the guest (LIO's default portal,
        0.0.0.0:3260, takes no IPv6 connection); the portal goes with the target."""
        self._request("add_portal", iqn=iqn, address=address, port=port)

    def set_redirect(self, iqn: str, to: Portal | None) -> None:
        if to is None:
            return
        raise LioError(
            "LIO cannot redirect logins (status 0x0101); run redirect tests against tgt."
        )

    def set_tpg_attribute(self, iqn: str, name: str, value: str) -> None:
        """A TPG attribute, e.g. ``demo_mode_discovery`` (LIO-only quirk tests)."""
        self._request("set_attribute", iqn=iqn, kind="attribute", name=name, value=value)

    def set_tpg_parameter(self, iqn: str, name: str, value: str) -> None:
        """A TPG login parameter, e.g. ``HeaderDigest`` (LIO-only quirk tests)."""
        self._request("set_attribute", iqn=iqn, kind="parameter", name=name, value=value)

    def session_count(self, iqn: str) -> int:
        n = self._request("session_count", iqn=iqn)
        if not isinstance(n, int):
            raise LioError(f"The guest agent answered {n!r} for a session count; fix the agent.")
        return n

    def close(self) -> None:
        """Delete the targets this backend created (the VM stays up for the next user)."""
        for iqn in sorted(self._iqns):
            self.delete_target(iqn)
        self._request("set_discovery_chap", incoming=None, outgoing=None)
