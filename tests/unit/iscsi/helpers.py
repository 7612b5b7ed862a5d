"""Drive the sans-IO client against :class:`FakeTarget` peers, the way the adapter will."""

from __future__ import annotations

import dataclasses

from eqliscsi.iscsi_discovery._login import (
    LoginConfig,
    LoginEvent,
    LoginMachine,
    LoginRedirected,
    LoginState,
    LoginSucceeded,
    RetryWithMd5,
)
from eqliscsi.iscsi_discovery._session import Session, SessionEvent

from .fake_target import FakeTarget, TargetConfig

MAX_ROUNDS = 40
INITIATOR = "iqn.2026-01.test:initiator"


def run_login(
    config: LoginConfig, target: FakeTarget
) -> tuple[LoginMachine, list[LoginEvent], int]:
    """One login attempt on one fake connection; returns machine, events, round trips."""
    machine = LoginMachine(config)
    events = machine.start()
    rounds = 0
    while rounds < MAX_ROUNDS and machine.state not in (
        LoginState.FULL_FEATURE,
        LoginState.REDIRECTED,
        LoginState.RETRY_MD5,
        LoginState.FAILED,
    ):
        out = machine.data_to_send()
        assert out, f"client has nothing to send in state {machine.state}"
        rounds += 1
        target.receive_data(out)
        reply = target.data_to_send()
        assert reply, "target went silent"
        events += machine.receive_data(reply)
    assert rounds < MAX_ROUNDS
    return machine, events, rounds


@dataclasses.dataclass
class Connected:
    session: Session
    target: FakeTarget
    config: LoginConfig
    history: list[LoginEvent]
    targets_used: list[FakeTarget]


def connect(config: LoginConfig, portals: dict[str, TargetConfig]) -> Connected:
    """Log in following redirects and the MD5 retry, each on a fresh fake connection."""
    history: list[LoginEvent] = []
    used: list[FakeTarget] = []
    for _ in range(10):
        target = FakeTarget(portals[str(config.portal.without_tpgt())])
        used.append(target)
        machine, events, _ = run_login(config, target)
        history += events
        last = events[-1] if events else None
        if isinstance(last, LoginSucceeded):
            session = Session(config, last, machine.take_remaining())
            return Connected(session, target, config, history, used)
        if isinstance(last, LoginRedirected):
            config = config.redirected(last.portal)
        elif isinstance(last, RetryWithMd5):
            config = config.md5_only()
        else:
            raise AssertionError(f"login ended without a terminal event: {events}")
    raise AssertionError("too many login attempts")


def exchange(conn: Connected, rounds: int = 20) -> list[SessionEvent]:
    """Move bytes both ways until both sides are quiet; return the client's events."""
    events: list[SessionEvent] = []
    for _ in range(rounds):
        out = conn.session.data_to_send()
        if out:
            conn.target.receive_data(out)
        reply = conn.target.data_to_send()
        if not out and not reply:
            return events
        events += conn.session.receive_data(reply)
    raise AssertionError("no quiescence")
