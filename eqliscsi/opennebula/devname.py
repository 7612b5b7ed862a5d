"""``/dev/iscsi/<volume>`` names: the pure rules the shipped udev helper follows.

A host sees an EqualLogic volume as a SCSI disk of an iSCSI session.  The link name
is derived from that session's *target IQN*, which EqualLogic builds as
``iqn.2001-05.com.equallogic:0-8a0906-<9 hex>-<16 hex>-<volume>`` (the fixed part
after the colon is 36 characters; see the research notes §1.4/§1.7).  The old
add-on cut ``ID_PATH`` at the first ``-lun`` and after the last ``:``, which broke
for volume names containing ``-lun``, ``iscsi-`` or ``:``.  We instead read the
target name of the session the device belongs to (sysfs
``/sys/class/iscsi_session/session<N>/targetname``, N taken from the device path)
and match the whole IQN, so any volume name EqualLogic can put in an IQN
round-trips.

``remotes/tm/eqliscsi/eqliscsi-udev-name`` implements the same rules in POSIX sh
(udev runs it on hosts, which need not have Python); the tests run both against
one table.
"""

from __future__ import annotations

import re

__all__ = ["EQL_IQN_PREFIX", "session_from_devpath", "volume_from_iqn"]

EQL_IQN_PREFIX = "iqn.2001-05.com.equallogic:"
_EQL_IQN_RE = re.compile(
    r"^iqn\.2001-05\.com\.equallogic:[0-9a-f]-[0-9a-f]{6}-[0-9a-f]{9}-[0-9a-f]{16}-"
    r"(?P<volume>[a-z0-9][a-z0-9.-]{0,63})$"
)
# A kernel device path below an iSCSI session: .../session<N>/target<H>:<C>:<T>/...
_SESSION_RE = re.compile(r"/session([0-9]{1,9})/")


def volume_from_iqn(iqn: str) -> str | None:
    """The EqualLogic volume name at the end of ``iqn``, or None if it is not one.

    The name must be a safe single path component: EqualLogic volume names are
    1-64 characters of letters, digits, '.', '-' (':' is allowed by the SAN but then
    cannot be told apart from IQN syntax, so such volumes get no link), and IQNs are
    lower case (RFC 3722 stringprep).  '.' and '..' are refused outright.
    """
    m = _EQL_IQN_RE.fullmatch(iqn)
    if m is None:
        return None
    volume = m["volume"]
    if volume in (".", ".."):
        return None
    return volume


def session_from_devpath(devpath: str) -> int | None:
    """The iSCSI session number in a udev ``%p`` device path, or None."""
    found = _SESSION_RE.findall(devpath)
    if len(found) != 1:
        return None
    return int(found[0])
