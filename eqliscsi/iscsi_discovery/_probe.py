"""Sans-IO capacity probe: login, TEST UNIT READY + READ CAPACITY(16), Logout.

``validate_many`` asks one thing per target: can we log in, and how big is the LUN.
:class:`CapacityProbe` is that whole conversation as one state machine over one
connection, built from the two machines every session uses (:class:`._login.LoginMachine`,
then :class:`._session.Session`), so the adapter runs it as a *single* exchange: each
answer is read, the next request written, all inside the reader callback, and the
waiting task wakes once per target instead of once per phase (login, commands,
Logout), with one future and one timer.  Per target that is what was left of the
client's CPU beside the protocol work itself (docs/performance.md, session 5).

What goes on the wire is exactly what :meth:`IscsiSession.lun_capacity` inside
``login()`` sends: TEST UNIT READY and READ CAPACITY(16) together (they fit tgt's
opening CmdSN window of two, one round trip), TEST UNIT READY first so that it takes
the unit attention a target queues after login (tgt: 06/29/00, reference §8); a
READ CAPACITY(16) hit by one anyway is re-run alone, up to :data:`UA_RETRIES` times
(SAM-5 §5.14: a unit attention reports one event and is then cleared); then an
immediate Logout, reason 0 (RFC 7143 §11.14).

The probe only gathers answers: what they mean (an absent LUN, a failed command) is
decided by the caller once the session is logged out, as ``lun_capacity`` does.
Redirects (Status-Class 1) and the MD5 retry end the probe with the login's own
event; the caller reconnects, as for any login.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from eqliscsi.iscsi_discovery._login import (
    LoginConfig,
    LoginMachine,
    LoginRedirected,
    LoginSucceeded,
    LoginWarning,
    RetryWithMd5,
)
from eqliscsi.iscsi_discovery._scsi import cdb_read_capacity16, cdb_test_unit_ready
from eqliscsi.iscsi_discovery._session import (
    AsyncEvent,
    LogoutCompleted,
    ScsiCompleted,
    Session,
    TaskRejected,
)
from eqliscsi.iscsi_discovery.errors import LocalProtocolError, PduRejected

__all__ = [
    "UA_RETRIES",
    "CapacityAnswers",
    "CapacityProbe",
    "ProbeEvent",
    "ProbePhase",
    "absent",
]

# READ CAPACITY(16) is sent at most 1 + UA_RETRIES times; the same budget as
# IscsiSession.lun_capacity (its batch, then ``scsi()``'s retries).
UA_RETRIES = 4
CAPACITY_COMMANDS = "SCSI TEST UNIT READY, READ CAPACITY(16)"
_CAPACITY_LENGTH = 32


def absent(event: ScsiCompleted) -> bool:
    """The command was answered 05/25/00: there is no LUN at that number."""
    return event.sense is not None and event.sense.lun_not_supported


class _Command(enum.Enum):
    READY = "TEST UNIT READY"
    CAPACITY = "READ CAPACITY(16)"


class ProbePhase(enum.Enum):
    LOGIN = "during login"
    COMMANDS = "while waiting for " + CAPACITY_COMMANDS
    LOGOUT = "during logout"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class CapacityAnswers:
    """The probe's result: both commands' last answers, and how Logout went.

    ``logout`` is None until the target answers the Logout; the caller may give up
    waiting for that (the answers are in before the Logout is sent).
    """

    ready: ScsiCompleted
    capacity: ScsiCompleted
    logout: LogoutCompleted | None = None


ProbeEvent = LoginWarning | LoginRedirected | RetryWithMd5 | AsyncEvent | CapacityAnswers


class CapacityProbe:
    """One capacity probe of one LUN on one connection (sans-IO).

    ``start()`` queues the first Login Request; feed the target's bytes to
    :meth:`receive_data` and write :meth:`data_to_send` after each call, until
    :attr:`outcome` is set: :class:`CapacityAnswers` once Logout is answered,
    or the login's :class:`LoginRedirected` / :class:`RetryWithMd5`.
    Protocol failures are raised as :mod:`.errors` exceptions (close the connection).
    """

    def __init__(self, config: LoginConfig, lun: int) -> None:
        self.config = config
        self.lun = lun
        self.phase = ProbePhase.LOGIN
        self.outcome: CapacityAnswers | LoginRedirected | RetryWithMd5 | None = None
        self.answers: CapacityAnswers | None = None  # set when the commands are done
        self._login = LoginMachine(config)
        self._session: Session | None = None
        self._ready: ScsiCompleted | None = None
        self._capacity: ScsiCompleted | None = None
        self._wanted: dict[int, _Command] = {}  # ITT -> the command in flight
        self._retries = 0

    def start(self) -> list[LoginWarning]:
        """Queue the first Login Request; returns warnings (short secrets)."""
        return [e for e in self._login.start() if isinstance(e, LoginWarning)]

    def data_to_send(self) -> bytes:
        if self._session is None:
            return self._login.data_to_send()
        return self._session.data_to_send()

    def receive_data(self, data: bytes) -> list[ProbeEvent]:
        if self.phase is ProbePhase.DONE:
            raise LocalProtocolError("The probe is finished; it takes no more data.")
        session = self._session
        if session is None:
            return self._on_login(data)
        events: list[ProbeEvent] = []
        for event in session.receive_data(data):
            if isinstance(event, ScsiCompleted) and event.itt in self._wanted:
                self._on_command(self._wanted.pop(event.itt), event)
            elif isinstance(event, LogoutCompleted):
                assert self.answers is not None
                self.outcome = CapacityAnswers(self.answers.ready, self.answers.capacity, event)
                self.phase = ProbePhase.DONE
                events.append(self.outcome)
            elif isinstance(event, TaskRejected) and event.itt in self._wanted:
                raise PduRejected(event.reason, self.config.portal, CAPACITY_COMMANDS)
            elif isinstance(event, AsyncEvent):
                events.append(event)
        return events

    # -- internals ---------------------------------------------------------------

    def _on_login(self, data: bytes) -> list[ProbeEvent]:
        events: list[ProbeEvent] = []
        for event in self._login.receive_data(data):
            if isinstance(event, LoginSucceeded):
                self._session = Session(self.config, event, self._login.take_remaining())
                self.phase = ProbePhase.COMMANDS
                self._command(_Command.READY)
                self._command(_Command.CAPACITY)
                # PDUs that came with the final Login Response (none, on tgt or LIO).
                events += self.receive_data(b"")
            elif isinstance(event, LoginRedirected | RetryWithMd5):
                self.outcome = event
                self.phase = ProbePhase.DONE
            else:
                events.append(event)
        return events

    def _command(self, which: _Command) -> None:
        assert self._session is not None
        if which is _Command.READY:
            itt = self._session.scsi_command(self.lun, cdb_test_unit_ready(), read_length=0)
        else:
            itt = self._session.scsi_command(
                self.lun, cdb_read_capacity16(), read_length=_CAPACITY_LENGTH
            )
        self._wanted[itt] = which

    def _on_command(self, which: _Command, event: ScsiCompleted) -> None:
        if which is _Command.READY:
            self._ready = event
        else:
            self._capacity = event
        if self._wanted:
            return
        assert self._ready is not None and self._capacity is not None
        if self._capacity.unit_attention and self._retries < UA_RETRIES and not absent(self._ready):
            self._retries += 1
            self._command(_Command.CAPACITY)
            return
        self.answers = CapacityAnswers(self._ready, self._capacity)
        self.phase = ProbePhase.LOGOUT
        assert self._session is not None
        self._session.logout()
