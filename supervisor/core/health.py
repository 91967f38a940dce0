"""Health checks, the decisions: what a check is, when the next one is due, what a result means.

Pure like core/policy: no I/O, no clock reads (times are monotonic seconds passed in).
core/healthrun.py performs the checks and calls these functions; the service's own
state machine (core/policy) hears only two things from here: a first passing check makes
a service without notification-fd ready (a `Ready` event), and too many failures in a row
ask for a restart (Verb.UNHEALTHY, through services.apply, the one path of a command).

One incarnation of a service is checked at a time (its pid), one check at a time: the
next is due `interval` seconds after the last one ended, so a slow check never overlaps
the next. Failures before the first pass are forgiven for `start` seconds after the
service came up (Docker's --start-period); after that, and always once it has passed,
`retries` failures in a row restart it.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from ..base.listenaddr import listen_address

KINDS = ("exec", "tcp", "http")  # the files health, health-tcp, health-http
OUTPUT_KEPT = 4096  # bytes of an exec check's output kept (its last ones), for the log and forensics
DEFAULT_HOST = "127.0.0.1"


@dataclass(frozen=True)
class HealthSpec:
    """One service's check, as read from its directory and the YAML.

    `kind` exec: `target` is the program (./health, in the service directory);
    tcp: `host` and `port`; http: those and `path`, the request target."""

    kind: str
    target: str = ""
    host: str = DEFAULT_HOST
    port: int = 0
    path: str = "/"
    interval: float = 10.0
    timeout: float = 5.0
    retries: int = 3
    start: float = 60.0

    def describe(self) -> str:
        if self.kind == "exec":
            return self.target
        if self.kind == "tcp":
            return f"tcp {self.host}:{self.port}"
        return f"http {self.target}"


def parse_tcp(text: str) -> tuple[str, int]:
    """health-tcp's one line: PORT or HOST:PORT ([V6]:PORT), the host an IP address (no name
    lookup inside PID 1: it would block the loop) or localhost."""
    text = text.strip()
    if "\n" in text:
        raise ValueError("takes one line, PORT or HOST:PORT")
    if text.isdecimal():
        text = f"{DEFAULT_HOST}:{text}"
    host, port = listen_address(text, None)
    return _address(host), port


def _address(host: str) -> str:
    if host in ("", "localhost"):
        return DEFAULT_HOST
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address (or localhost): pyinit looks up no names") from None


def parse_http(text: str, local_addresses: frozenset[str] | None = frozenset()) -> tuple[str, int, str]:
    """health-http's one line: an http:// URL on a loopback address or one of `local_addresses`
    (the pod's own; None: any address, for checking the YAML before the pod's are known);
    (host, port, request target)."""
    text = text.strip()
    if "\n" in text or any(c.isspace() for c in text):
        raise ValueError("takes one line, an http:// URL")
    try:
        url = urlsplit(text)
        port = url.port or 80
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if url.scheme != "http":
        raise ValueError("must be an http:// URL (pyinit speaks no TLS)")
    if url.username is not None or url.password is not None:
        raise ValueError("must not carry a user or password")
    host = _address(url.hostname or "")
    if local_addresses is not None and not ipaddress.ip_address(host).is_loopback and host not in local_addresses:
        raise ValueError(f"{host} is neither a loopback address nor one of the pod's: a check looks at its own pod")
    target = url.path or "/"
    if url.query:
        target += "?" + url.query
    return host, port, target


# --- the state of one service's checks -------------------------------------------------


class Verdict(enum.Enum):
    NOTHING = "nothing"
    READY = "ready"  # its first pass: a service without notification-fd is ready now
    RESTART = "restart"  # `retries` failures in a row


RESULTS = ("pass", "fail", "timeout", "error")  # error: the check could not run at all (no program)


@dataclass(frozen=True)
class HealthState:
    """The checks of the incarnation `pid` (None: the service is not up, nothing is checked)."""

    pid: int | None = None
    up_since: float = 0.0
    passed: bool = False  # this incarnation passed a check once
    failures: int = 0  # counted failures in a row
    running: bool = False  # a check is under way
    due: float | None = None  # when the next check starts
    restarting: bool = False  # a restart was asked for: no more checks of this incarnation
    last: str | None = None  # the last result, one of RESULTS


def came_up(spec: HealthSpec, pid: int, now: float, notifies: bool) -> HealthState:
    """A new incarnation is up: the first check at once when a pass is what makes it ready
    (no notification-fd), else one interval from now."""
    return HealthState(pid=pid, up_since=now, due=now + spec.interval if notifies else now)


def went_down() -> HealthState:
    return HealthState()


def begin(state: HealthState) -> HealthState:
    """A check starts now; none other until it has a result."""
    return replace(state, running=True, due=None)


def result(spec: HealthSpec, state: HealthState, outcome: str, now: float) -> tuple[HealthState, Verdict]:
    """A check of this incarnation ended with `outcome` (one of RESULTS) at `now`."""
    state = replace(state, running=False, last=outcome)
    if state.pid is None or state.restarting:
        return replace(state, due=None), Verdict.NOTHING
    due = now + spec.interval
    if outcome == "pass":
        first = not state.passed
        return replace(state, passed=True, failures=0, due=due), Verdict.READY if first else Verdict.NOTHING
    if not counts(spec, state, now):
        return replace(state, due=due), Verdict.NOTHING
    failures = state.failures + 1
    if failures >= spec.retries:
        return replace(state, failures=failures, due=None, restarting=True), Verdict.RESTART
    return replace(state, failures=failures, due=due), Verdict.NOTHING


def counts(spec: HealthSpec, state: HealthState, now: float) -> bool:
    """Whether a failure now counts toward a restart: always once it passed, else after the start period."""
    return state.passed or now - state.up_since >= spec.start


def status(state: HealthState) -> str | None:
    """What pysvstat says: None (not up), starting (no verdict yet), healthy, unhealthy."""
    if state.pid is None:
        return None
    if state.failures > 0 or state.restarting:
        return "unhealthy"
    if state.passed:
        return "healthy"
    return "starting"


@dataclass(frozen=True)
class HealthReport:
    """One service's checks as reporting reads them (status, JSON, metrics, forensics): plain data."""

    check: str  # HealthSpec.describe()
    status: str | None
    failures: int
    retries: int
    checks: tuple[tuple[str, int], ...]  # (result, count) since pyinit started, every result of RESULTS
    output: str  # the last failed check's output (its last OUTPUT_KEPT bytes) or reason
