"""Errors of the native iSCSI client, all under :class:`eqliscsi.errors.IscsiError`.

Two axes, as in h11/wsproto: *protocol* errors (``LocalProtocolError`` when we would
break RFC 7143, ``RemoteProtocolError`` when the target did) and *outcome* errors an
admin acts on (login refused, CHAP failed, SCSI check condition, timeout).  Login
refusals carry the raw Status-Class/Status-Detail (RFC 7143 §11.13.5) next to a typed
subclass, built by :func:`login_error_for`.

Every message is one sentence naming the portal, target and user involved; never a
secret (secrets only exist as :class:`eqliscsi.secret.Secret`).
"""

from __future__ import annotations

from typing import ClassVar

from eqliscsi.errors import ExitCode, IscsiError

__all__ = [
    "AuthMethodRejected",
    "AuthenticationFailed",
    "AuthorizationFailed",
    "CannotIncludeInSession",
    "ChapAlgorithmMismatch",
    "ChapAlgorithmRefused",
    "ChapPolicyError",
    "InitiatorError",
    "InvalidDuringLogin",
    "InvalidIscsiName",
    "InvalidPortal",
    "IscsiConnectionError",
    "IscsiProtocolError",
    "IscsiTimeout",
    "LocalProtocolError",
    "LoginFailed",
    "MissingParameter",
    "MutualAuthFailed",
    "OutOfResources",
    "PduDecodeError",
    "PduRejected",
    "PduTooLarge",
    "RedirectLoop",
    "RemoteProtocolError",
    "ScsiCommandFailed",
    "SessionDoesNotExist",
    "SessionTypeNotSupported",
    "TargetError",
    "TargetNotFound",
    "TargetNotListed",
    "TargetRemoved",
    "TooManyConnections",
    "UnsupportedVersion",
    "login_error_for",
]


class IscsiProtocolError(IscsiError):
    """One side broke RFC 7143; the connection cannot be trusted any more (ERL 0)."""

    reference = "iscsi-protocol-error"


class LocalProtocolError(IscsiProtocolError):
    """We were asked to send something RFC 7143 (or a known target quirk) forbids."""

    reference = "iscsi-local-protocol-error"


class RemoteProtocolError(IscsiProtocolError):
    """The target sent something RFC 7143 forbids or that we cannot interpret."""

    reference = "iscsi-remote-protocol-error"


class PduDecodeError(RemoteProtocolError):
    """Bytes from the target do not form a valid PDU or text segment."""

    reference = "iscsi-pdu-decode-error"


class PduTooLarge(PduDecodeError):
    """A PDU announced a data segment over our MaxRecvDataSegmentLength (RFC 7143 §13.12)."""

    reference = "iscsi-pdu-too-large"

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(
            f"The target announced a {length}-byte data segment, over our "
            f"MaxRecvDataSegmentLength of {limit} bytes; the target ignores the negotiated limit."
        )
        self.length = length
        self.limit = limit


class PduRejected(RemoteProtocolError):
    """The target answered one of our PDUs with a Reject PDU (RFC 7143 §11.17)."""

    reference = "iscsi-pdu-rejected"

    def __init__(self, reason: int, portal: object, what: str = "a request") -> None:
        super().__init__(
            f"The target at portal {portal} rejected {what} with reason 0x{reason:02x}; "
            "check that the target supports this request."
        )
        self.reason = reason
        self.portal = str(portal)


class InvalidIscsiName(IscsiError):
    """An initiator or target name is not a usable iSCSI name (RFC 7143 §4.2.7)."""

    reference = "iscsi-invalid-name"
    exit_code = ExitCode.USAGE


class InvalidPortal(IscsiError):
    """A portal string is not ``host[:port][,tpgt]``."""

    reference = "iscsi-invalid-portal"
    exit_code = ExitCode.USAGE


class ChapPolicyError(IscsiError):
    """CHAP credentials break the secret policy (empty, too long, identical in/out)."""

    reference = "iscsi-chap-policy"
    exit_code = ExitCode.CONFIG


class ChapAlgorithmMismatch(RemoteProtocolError):
    """The target chose a CHAP_A value we did not offer (RFC 7143 §12.1.3)."""

    reference = "iscsi-chap-algorithm-mismatch"


class MutualAuthFailed(IscsiError):
    """The target failed to prove its identity in mutual CHAP, or skipped it."""

    reference = "iscsi-mutual-auth-failed"

    def __init__(self, portal: object, user: str | None, why: str) -> None:
        super().__init__(
            f"The target at portal {portal} failed mutual CHAP authentication "
            f"for target user {user or '(none)'} ({why}); check the target CHAP user and secret."
        )
        self.portal = str(portal)
        self.user = user


class RedirectLoop(IscsiError):
    """Login redirects (Status-Class 1) exceeded the hop limit."""

    reference = "iscsi-redirect-loop"

    def __init__(self, portal: object, hops: int) -> None:
        super().__init__(
            f"The login to portal {portal} was redirected more than {hops} times; "
            "check the redirect configuration of the target."
        )
        self.portal = str(portal)
        self.hops = hops


class TargetNotListed(IscsiError):
    """A Discovery session's SendTargets did not list the target asked for."""

    reference = "iscsi-target-not-listed"

    def __init__(self, portal: object, target: str) -> None:
        super().__init__(
            f"The discovery portal {portal} does not list target {target} to this "
            "initiator; check the target name and the volume's access list."
        )
        self.portal = str(portal)
        self.target = target


class IscsiTimeout(IscsiError):
    """The target did not answer in time."""

    reference = "iscsi-timeout"
    exit_code = ExitCode.TIMEOUT


class IscsiConnectionError(IscsiError):
    """The TCP connection was refused, reset, or closed by the target."""

    reference = "iscsi-connection-error"


class ScsiCommandFailed(IscsiError):
    """A SCSI command ended in CHECK CONDITION (or another non-GOOD status)."""

    reference = "iscsi-scsi-command-failed"

    def __init__(
        self,
        command: str,
        *,
        status: int,
        sense_key: int | None,
        asc: int | None,
        ascq: int | None,
        target: str = "",
        lun: int | None = None,
    ) -> None:
        where = f" on {target} LUN {lun}" if target and lun is not None else ""
        sense = (
            f"sense {sense_key:x}/{asc:02x}/{ascq:02x}"
            if sense_key is not None and asc is not None and ascq is not None
            else f"status 0x{status:02x}"
        )
        super().__init__(
            f"SCSI {command}{where} failed with {sense}; check that the volume is online."
        )
        self.command = command
        self.status = status
        self.sense_key = sense_key
        self.asc = asc
        self.ascq = ascq
        self.target = target
        self.lun = lun


class LoginFailed(IscsiError):
    """The target refused the login with a Status-Class of 2 or 3 (RFC 7143 §11.13.5).

    Subclasses name the meaning; the raw ``status_class``/``status_detail`` are kept
    so reports can show the code, too.
    """

    reference = "iscsi-login-failed"
    what: ClassVar[str] = "refused the login"
    advice: ClassVar[str] = "check the target configuration"

    def __init__(
        self,
        status_class: int,
        status_detail: int,
        portal: object,
        user: str | None = None,
        target: str | None = None,
    ) -> None:
        self.status_class = status_class
        self.status_detail = status_detail
        self.portal = str(portal)
        self.user = user
        self.target = target
        super().__init__(self._sentence())

    @property
    def status(self) -> int:
        return (self.status_class << 8) | self.status_detail

    def _sentence(self) -> str:
        tgt = f" to {self.target}" if self.target else ""
        return (
            f"The target at portal {self.portal} {self.what}{tgt} "
            f"(status 0x{self.status:04x}); {self.advice}."
        )


class ChapAlgorithmRefused(LoginFailed):
    """The target failed the login after choosing a CHAP_A stronger than MD5.

    tgt numbers SHA-1 as 7 and then fails a SHA-256 answer with 0x0200
    (open-iscsi#192); old LIO refuses any list with more than MD5 (open-iscsi#180).
    """

    reference = "iscsi-chap-algorithm-refused"
    what = "failed CHAP with a stronger algorithm than MD5"
    advice = "offer MD5 (CHAP_A 5) to this target"


class InitiatorError(LoginFailed):
    reference = "iscsi-login-initiator-error"
    what = "refused the login as malformed"
    advice = "report this as a bug in eqliscsi with the target model"


class AuthenticationFailed(LoginFailed):
    reference = "iscsi-authentication-failed"

    def _sentence(self) -> str:
        who = f"user {self.user}" if self.user else "no CHAP user (AuthMethod=None)"
        return (
            f"CHAP authentication failed for {who} at portal {self.portal} "
            f"(status 0x{self.status:04x}); check the CHAP user and secret."
        )


class AuthMethodRejected(AuthenticationFailed):
    """0x0201 in answer to our AuthMethod: the target uses another method for us."""

    reference = "iscsi-auth-method-rejected"

    def _sentence(self) -> str:
        if self.user:
            return (
                f"The target at portal {self.portal} does not use CHAP for this initiator "
                f"(status 0x{self.status:04x}); configure CHAP user {self.user} on the target "
                "or drop the CHAP credentials."
            )
        return (
            f"The target at portal {self.portal} requires authentication for this initiator "
            f"(status 0x{self.status:04x}); give the CHAP user and secret."
        )


class AuthorizationFailed(LoginFailed):
    reference = "iscsi-authorization-failed"
    what = "did not authorise this initiator"
    advice = "add the initiator name to the access list of the target"


class TargetNotFound(LoginFailed):
    reference = "iscsi-target-not-found"
    what = "does not serve"
    advice = "check the target name, or that this initiator may see it"

    def _sentence(self) -> str:
        return (
            f"The target at portal {self.portal} does not serve {self.target or 'the target'} "
            f"to this initiator (status 0x{self.status:04x}); "
            "check the target name and access list."
        )


class TargetRemoved(LoginFailed):
    reference = "iscsi-target-removed"
    what = "reported the target removed"
    advice = "check that the volume still exists"


class UnsupportedVersion(LoginFailed):
    reference = "iscsi-unsupported-version"
    what = "does not support iSCSI version 0"
    advice = "use a target that implements RFC 7143"


class TooManyConnections(LoginFailed):
    reference = "iscsi-too-many-connections"
    what = "has no room for another connection"
    advice = "close other sessions or raise the connection limit of the target"


class MissingParameter(LoginFailed):
    reference = "iscsi-missing-parameter"
    what = "found a login parameter missing"
    advice = "report this as a bug in eqliscsi with the target model"


class CannotIncludeInSession(LoginFailed):
    reference = "iscsi-cannot-include-in-session"
    what = "cannot add this connection to the session"
    advice = "retry the login as a new session"


class SessionTypeNotSupported(LoginFailed):
    reference = "iscsi-session-type-not-supported"
    what = "does not support this session type"
    advice = "use a Normal session for this target"


class SessionDoesNotExist(LoginFailed):
    reference = "iscsi-session-does-not-exist"
    what = "does not know the session"
    advice = "retry the login as a new session"


class InvalidDuringLogin(LoginFailed):
    reference = "iscsi-invalid-during-login"
    what = "found a request invalid during login"
    advice = "report this as a bug in eqliscsi with the target model"


class TargetError(LoginFailed):
    reference = "iscsi-target-error"
    what = "failed with an internal error"
    advice = "retry later or check the target logs"
    exit_code = ExitCode.ISCSI


class OutOfResources(TargetError):
    reference = "iscsi-target-out-of-resources"
    what = "ran out of resources"
    advice = "retry later or free resources on the target"


# RFC 7143 §11.13.5 status table.  0x0301 ("service unavailable") is what LIO answers
# for an unknown TargetName, while tgt answers 0x0203: both mean "wrong target" to
# an admin, so both map to TargetNotFound.
_BY_STATUS: dict[int, type[LoginFailed]] = {
    0x0200: InitiatorError,
    0x0201: AuthenticationFailed,
    0x0202: AuthorizationFailed,
    0x0203: TargetNotFound,
    0x0204: TargetRemoved,
    0x0205: UnsupportedVersion,
    0x0206: TooManyConnections,
    0x0207: MissingParameter,
    0x0208: CannotIncludeInSession,
    0x0209: SessionTypeNotSupported,
    0x020A: SessionDoesNotExist,
    0x020B: InvalidDuringLogin,
    0x0300: TargetError,
    0x0301: TargetNotFound,
    0x0302: OutOfResources,
}


def login_error_for(
    status_class: int,
    status_detail: int,
    portal: object,
    user: str | None = None,
    target: str | None = None,
) -> LoginFailed:
    """The typed error for a failed login status (class 2 or 3, or an unknown class)."""
    code = (status_class << 8) | status_detail
    cls = _BY_STATUS.get(code)
    if cls is None:
        cls = {2: InitiatorError, 3: TargetError}.get(status_class, LoginFailed)
    return cls(status_class, status_detail, portal, user, target)
