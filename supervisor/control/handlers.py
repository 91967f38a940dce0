"""The control verbs (status, control, log, forensics, audit, ping), apart from socket handling.

They talk to a small interface, ControlTarget, which the service table implements
(core/services.ServiceTable): look up services, read a service's record, say why an order
would do nothing, apply an order through the one path every command takes (the s6 FIFOs'
too), wait for a state. server.py reads requests and writes answers.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

import anyio
import anyio.lowlevel

from ..base.terms import signal_name
from ..core import policy
from ..core.model import Phase, ServiceSpec, ServiceState, ServiceView, Verb, Want
from ..core.services import Order
from ..logs.events import Logger
from ..logs.lines import RecentLines
from . import protocol
from . import records as control
from .protocol import ProtocolError, Request, WireAction

TYPE_CHECKING = False
if TYPE_CHECKING:  # mypy reads dataclasses; base/record builds them without importing dataclasses
    from dataclasses import dataclass as record
else:
    from ..base.record import record

# The head, and the items that follow it (a LogFollow: those, then more as they come).
Answer = tuple[dict[str, Any], "Iterable[dict[str, Any]] | LogFollow"]


@record(frozen=True)
class Peer:
    """Who sent the request, from SO_PEERCRED; `hangup` returns when the client closes its end."""

    pid: int
    uid: int
    gid: int
    hangup: Callable[[], Awaitable[None]]


__all__ = ["S6_WAIT_PREDICATES", "WAIT_PREDICATES", "Answer", "ControlTarget", "Handlers", "LogFollow", "Peer",
           "ServiceView", "chunks_of", "wait_predicate"]

FOLLOW_BUFFER = 128 * 1024  # bytes of lines one follower may have waiting for its client to read them
MAX_FOLLOWERS = 32  # open `pysvstat --log -f` at once: each holds a connection and up to FOLLOW_BUFFER


class LogFollow:
    """An open log answer (pysvstat --log -f): the backlog, then the service's lines as they come.

    The ring tells us of each block as it is kept (RecentLines.follow), from the pipe's reader:
    no polling. What the client has not read yet waits here, at most FOLLOW_BUFFER bytes; past
    that, new lines are dropped and counted, and the client is told how many (a {"dropped": N}
    item) once it reads again: a client that never reads costs PID 1 a bounded buffer, never a
    stall of the log (the pipe's reader only appends here, it never waits for the client)."""

    def __init__(self, recent: RecentLines, backlog: list[dict[str, object]], timestamps: bool,
                 closed: Callable[[], None]) -> None:
        self.backlog = backlog
        self._recent = recent
        self._timestamps = timestamps
        self._pending: deque[tuple[str, bytes, float]] = deque()
        self._pending_bytes = 0
        self._dropped = 0
        self._wake = anyio.Event()
        self._closed = closed
        recent.follow(self._take)  # in the same step as the backlog was read: no line is missed or twice

    def _take(self, stream: str, block: bytes, count: int, when: float) -> None:
        if self._pending and self._pending_bytes + len(block) > FOLLOW_BUFFER:
            self._dropped += count
        else:
            self._pending.append((stream, block, when))
            self._pending_bytes += len(block)
        self._wake.set()

    async def batches(self) -> AsyncIterator[list[dict[str, object]]]:
        """The items that came since the last batch, each time some did (for ever: the caller
        ends it when the client leaves)."""
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            batch: list[dict[str, object]] = []
            taken = 0
            while self._pending:
                stream, block, when = self._pending.popleft()
                taken += len(block)
                arrived = when if self._timestamps else None
                batch += [control.log_item(stream, line, arrived) for line in block[:-1].split(b"\n")]
            if self._dropped:  # they came after every line kept here: the notice goes last
                batch.append({"dropped": self._dropped})
                self._dropped = 0
            yield batch
            # counted until the caller has written it: a reader that never reads holds this batch
            # and what came meanwhile, FOLLOW_BUFFER in all, not a buffer more for each batch
            self._pending_bytes -= taken

    def close(self) -> None:
        self._recent.unfollow(self._take)
        self._closed()



class ControlTarget(Protocol):
    """What the verbs need of the supervisor."""

    log: Logger

    @property
    def stage(self) -> str: ...  # starting, running or stopping

    def service_names(self) -> list[str]: ...

    def view(self, name: str) -> ServiceView: ...

    async def command(self, name: str, verb: Verb) -> list[str]: ...  # the problems met (a failed kill)

    def send_signal(self, name: str, signum: int, group: bool) -> str | None: ...  # a problem, or None

    def set_normally_up(self, name: str, up: bool) -> None: ...  # the down file; OSError if it cannot

    async def wait_until(self, name: str, predicate: Callable[[ServiceState], bool]) -> None: ...

    def refusal(self, name: str, order: Order) -> str | None: ...  # why it would do nothing now

    async def apply(self, name: str, order: Order, event: str, fields: Mapping[str, object],
                    snapshots: set[tuple[str, int | None]], timeout: float) -> list[str]: ...  # core/services.apply_order


def plain(head: dict[str, Any]) -> Answer:
    return head, ()


METRICS_CHUNK = 256 * 1024  # characters of the page per item, well inside an answer line


def chunks_of(text: str, size: int = METRICS_CHUNK) -> list[str]:
    """`text` in pieces of at most about `size`, cut after a newline where one is near."""
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            newline = text.rfind("\n", start, end)
            end = newline + 1 if newline >= start else end
        pieces.append(text[start:end])
        start = end
    return pieces


class Handlers:
    def __init__(self, target: ControlTarget, command_timeout: float,
                 metrics_text: Callable[[], str] | None = None) -> None:
        self.target = target
        self.log = target.log
        self.command_timeout = command_timeout
        self.metrics_text = metrics_text
        self.following = 0  # open LogFollow answers
        self.verbs: dict[str, Callable[[Request, Peer], Awaitable[Answer]]] = {
            "ping": self.ping, "status": self.status, "control": self.control, "log": self.log_tail,
            "forensics": self.forensics, "audit": self.audit, "metrics": self.metrics,
        }

    async def handle(self, request: Request, peer: Peer) -> Answer:
        try:
            return await self.verbs[request.verb](request, peer)
        except ProtocolError as exc:
            return plain(protocol.error(str(exc), exc.code))

    def _names(self, names: tuple[str, ...]) -> list[str]:
        known = self.target.service_names()
        unknown = [n for n in names if n not in known]
        if unknown:
            shown = ", ".join(sorted(known)[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
            raise ProtocolError(f"unknown service: {', '.join(n[:100] for n in unknown[:10])} "
                                f"(known: {shown or 'none'})")
        return list(names) if names else known

    async def ping(self, request: Request, peer: Peer) -> Answer:
        return plain({"ok": True, "pid": os.getpid()})

    async def status(self, request: Request, peer: Peer) -> Answer:
        now = anyio.current_time()
        views = [self.target.view(name) for name in self._names(request.services)]
        records = [control.status_record(view.spec, view.state, now, view.health) for view in views]
        return {"ok": True, "stage": self.target.stage, "items": len(records)}, records

    async def log_tail(self, request: Request, peer: Peer) -> Answer:
        (name,) = self._names(request.services)
        recent = self.target.view(name).recent
        lines = control.log_tail(recent, request.lines, request.timestamps) if request.lines else []
        if not request.follow:
            return {"ok": True, "service": name, "items": len(lines)}, lines
        if self.following >= MAX_FOLLOWERS:
            raise ProtocolError(f"too many clients follow logs already ({MAX_FOLLOWERS}): try again later",
                                protocol.EXIT_SYSTEM)
        self.following += 1
        follow = LogFollow(recent, lines, request.timestamps, self._follow_closed)
        return {"ok": True, "service": name, "items": len(lines), "follow": True}, follow

    def _follow_closed(self) -> None:
        self.following -= 1

    async def forensics(self, request: Request, peer: Peer) -> Answer:
        from ..core import forensics  # only when a snapshot is asked for

        (name,) = self._names(request.services)
        view = self.target.view(name)
        record = await forensics.snapshot(view.spec, view.state, view.recent, anyio.current_time(), "asked",
                                          health=view.health)
        processes = record.pop("processes")
        return {"ok": True, "forensics": record, "items": len(processes)}, processes

    async def metrics(self, request: Request, peer: Peer) -> Answer:
        if self.metrics_text is None:
            raise ProtocolError("metrics are not available in this pyinit", protocol.EXIT_SYSTEM)
        pieces = chunks_of(self.metrics_text())
        return {"ok": True, "items": len(pieces)}, ({"text": piece} for piece in pieces)

    async def audit(self, request: Request, peer: Peer) -> Answer:
        self.log.warning("client refused a command", peer_pid=peer.pid, peer_uid=peer.uid, message=request.message)
        return plain({"ok": True})

    async def control(self, request: Request, peer: Peer) -> Answer:
        """Every action to every service, then the wait; all of it ends when the client leaves.

        The request's size is bounded where it is decoded (protocol.MAX_APPLICATIONS); here each
        application is followed by a checkpoint, so that reaping, probes and signals to PID 1 are
        served between two of them however long the request."""
        names = self._names(request.services)
        if self.target.stage == "stopping" and any(a.do != "signal" for a in request.actions):
            raise ProtocolError("the container is shutting down", protocol.EXIT_FORBIDDEN)
        for action in request.actions:  # check everything before changing anything
            for name in names:
                self._check_allowed(name, action)
        answer: Answer = plain(protocol.error("the client left", protocol.EXIT_SYSTEM))  # nobody reads it
        refused: ProtocolError | None = None
        async with anyio.create_task_group() as group:

            async def client_left() -> None:
                await peer.hangup()
                group.cancel_scope.cancel()

            group.start_soon(client_left)
            try:  # raised out of the group it would arrive as an ExceptionGroup, not as the refusal it is
                answer = await self._carry_out(request, names, peer)
            except ProtocolError as exc:
                refused = exc
            group.cancel_scope.cancel()
        if refused is not None:
            raise refused
        return answer

    async def _carry_out(self, request: Request, names: list[str], peer: Peer) -> Answer:
        started = anyio.current_time()
        problems: list[str] = []
        snapshots: set[tuple[str, int | None]] = set()  # (service, pid) already snapshotted by this request
        before = {name: self._record(name) for name in names} if request.report else {}
        for action in request.actions:
            for name in names:
                if action.do != "signal" and self.target.stage == "stopping":  # began during this request
                    problems.append(f"the container is shutting down: {action.do} not done")
                    return plain(protocol.error("; ".join(problems)[:4000], protocol.EXIT_FORBIDDEN))
                problems += await self._apply(name, action, peer, snapshots)
                await anyio.lowlevel.checkpoint()  # the rest of PID 1 runs between two applications
        if problems:
            return plain(protocol.error("; ".join(problems)[:4000], protocol.EXIT_SYSTEM))
        if request.wait is None:
            if request.report and request.settle_ms:
                await self._settle(request, names, started)
            return self._answer(names, before)
        timeout = request.timeout_ms / 1000 if request.timeout_ms else float("inf")
        wait = request.wait
        predicates = {name: wait_predicate(wait, started, self.target.view(name).spec) for name in names}
        hopeless = HOPELESS.get(wait) if request.give_up else None
        with anyio.move_on_after(timeout):
            if hopeless is not None:  # each of them at once, before waiting for the first
                for name in names:
                    self._give_up_if(name, wait, predicates[name], hopeless)
            for name in names:
                if hopeless is None:
                    await self.target.wait_until(name, predicates[name])
                else:
                    await self.target.wait_until(name, _either(predicates[name], hopeless))
                    self._give_up_if(name, wait, predicates[name], hopeless)
            return self._answer(names, before)
        return plain(protocol.error(self._timed_out(request, names, predicates), protocol.EXIT_TIMEOUT))

    def _timed_out(self, request: Request, names: list[str],
                   predicates: Mapping[str, Callable[[ServiceState], bool]]) -> str:
        """What a timed-out wait says: how long, for what, and the state of each service (5 at most)
        that did not get there: `cron: timed out after 5 s waiting for up; it is down, wanted up`."""
        what = f"timed out after {request.timeout_ms / 1000:g} s waiting for {request.wait}"
        unmet = [name for name in names if not predicates[name](self.target.view(name).state)]
        if len(unmet) == 1:
            return f"{unmet[0]}: {what}; it is {protocol.describe_state(self._record(unmet[0]))}"
        told = "; ".join(f"{name} is {protocol.describe_state(self._record(name))}" for name in unmet[:5])
        more = f"; and {len(unmet) - 5} more" if len(unmet) > 5 else ""
        return f"{what}: {told}{more}" if told else what

    def _give_up_if(self, name: str, wait: str, predicate: Callable[[ServiceState], bool],
                    hopeless: Callable[[ServiceState], bool]) -> None:
        """pysvc's wait (Request.give_up) that can no longer be met ends now, saying why and what to do."""
        state = self.target.view(name).state
        if predicate(state) or not hopeless(state):
            return
        fix = "clears the bail and starts it" if state.bailed else "starts it"
        raise ProtocolError(f"{name}: waiting for {wait} cannot be met: it is "
                            f"{protocol.describe_state(self._record(name))} (pysvc -u {name} {fix})",
                            protocol.EXIT_FORBIDDEN)

    async def _settle(self, request: Request, names: list[str], started: float) -> None:
        """For a report without a wait: what the last state action set going (a restart's new
        process, a stop's death), waited for at most settle_ms; never an error, the report says
        how far it got."""
        last = next((action.do for action in reversed(request.actions) if action.do != "signal"), None)
        settled = SETTLED.get(last or "")
        if settled is None:
            return
        done = _either(settled(started), _will_not_come_up)
        with anyio.move_on_after(request.settle_ms / 1000):
            for name in names:
                await self.target.wait_until(name, done)

    def _record(self, name: str) -> dict[str, object]:
        view = self.target.view(name)
        return state_record(view.spec, view.state, anyio.current_time())

    def _answer(self, names: list[str], before: dict[str, dict[str, object]]) -> Answer:
        """{"ok": true}; with a report (before is filled), an item per service: before and now."""
        if not before:
            return plain({"ok": True})
        items = [{"name": name, "before": before[name], "after": self._record(name)} for name in names]
        return {"ok": True, "items": len(items)}, items

    def _check_allowed(self, name: str, action: WireAction) -> None:
        """The table's own refusal (a signal to a down service), and pysvc's: a restart of a down one."""
        refusal = self.target.refusal(name, action)
        if refusal is not None:
            raise ProtocolError(refusal, protocol.EXIT_FORBIDDEN)
        if action.do == "restart" and self.target.view(name).state.phase is not Phase.UP:
            raise ProtocolError(f"{name} is down: nothing to restart (use -u)", protocol.EXIT_FORBIDDEN)

    async def _apply(self, name: str, action: WireAction, peer: Peer,
                     snapshots: set[tuple[str, int | None]]) -> list[str]:
        """Do one action to one service through the one path (ServiceTable.apply); the problems it
        met (a failed kill), never an exception but the down file's."""
        detail = {"signal": signal_name(action.signum), "group": action.group} if action.do == "signal" else {}
        fields = {"action": action.do, "peer_uid": peer.uid, **detail}
        try:
            return await self.target.apply(name, action, "control", fields, snapshots, self.command_timeout)
        except OSError as exc:  # the down file
            raise ProtocolError(f"{name}: down file: {exc.strerror}", protocol.EXIT_SYSTEM) from None


def _started_since(t0: float) -> Callable[[ServiceState], bool]:
    return lambda s: s.phase is Phase.UP and s.last_start is not None and s.last_start >= t0


WAIT_PREDICATES: dict[str, Callable[[float], Callable[[ServiceState], bool]]] = {
    "up": lambda t0: lambda s: s.phase is Phase.UP,
    "ready": lambda t0: lambda s: s.phase is Phase.UP and s.ready_at is not None,
    "down": lambda t0: lambda s: s.phase is not Phase.UP,
    "finished": lambda t0: lambda s: s.phase in (Phase.DOWN, Phase.WAITING),
    "restarted": _started_since,
    "restarted-ready": lambda t0: lambda s: _started_since(t0)(s) and s.ready_at is not None and s.ready_at >= t0,
}


# The waits of pys6's s6-svc -wU -wR and s6-svwait -U -R: readiness as s6-supervise says it
# (policy.s6_ready), so a service with neither notification-fd nor health check never gets there,
# as with s6. pysvc's "ready" (above) counts such a service ready once up, as s6-overlay's and
# s6-rc's own waits do: they wait for it with s6-svwait -u, and for the others with -U.
S6_WAIT_PREDICATES: dict[str, Callable[[float, ServiceSpec], Callable[[ServiceState], bool]]] = {
    "s6-ready": lambda t0, spec: lambda s: policy.s6_ready(spec, s),
    "s6-restarted-ready": lambda t0, spec: lambda s: (_started_since(t0)(s) and policy.s6_ready(spec, s)
                                                      and s.ready_at is not None and s.ready_at >= t0),
}


def wait_predicate(wait: str, t0: float, spec: ServiceSpec) -> Callable[[ServiceState], bool]:
    if wait in S6_WAIT_PREDICATES:
        return S6_WAIT_PREDICATES[wait](t0, spec)
    return WAIT_PREDICATES[wait](t0)


def _either(first: Callable[[ServiceState], bool], second: Callable[[ServiceState], bool]) -> Callable[[ServiceState], bool]:
    return lambda s: first(s) or second(s)


def _will_not_come_up(state: ServiceState) -> bool:
    """Down and staying down: wanted down (pysvc -d, a finish's 125, the container stopping) or bailed."""
    return state.phase is not Phase.UP and (state.want is Want.DOWN or state.bailed)


# pysvc's give_up: the waits a service can make hopeless. A down wait never is: a service wanted up
# still dies (a signal, a crash), and its moment down is what the wait sees.
HOPELESS: dict[str, Callable[[ServiceState], bool]] = {
    wait: _will_not_come_up for wait in ("up", "ready", "restarted", "restarted-ready", "s6-ready",
                                         "s6-restarted-ready")}

# What a report without a wait waits for (Request.settle_ms), by the last state action.
SETTLED: dict[str, Callable[[float], Callable[[ServiceState], bool]]] = {
    "up": WAIT_PREDICATES["up"], "up-remove-down": WAIT_PREDICATES["up"], "once": WAIT_PREDICATES["up"],
    "down": WAIT_PREDICATES["down"], "down-create-down": WAIT_PREDICATES["down"],
    "restart": WAIT_PREDICATES["restarted"],
}


def state_record(spec: ServiceSpec, state: ServiceState, now: float) -> dict[str, object]:
    """One service's state as a control report carries it (protocol.describe_state reads it)."""
    return {"phase": state.phase.value, "want": state.want.value, "pid": state.pid, "ready": state.ready_at is not None,
            "bailed": state.bailed, "deaths": len(policy.deaths_in_window(state.deaths, now, spec.crash)),
            "window": spec.crash.window, "exitcode": state.exitcode,
            "signal": signal_name(state.signum) if state.signum is not None else None,
            "normally_up": spec.normally_up}
