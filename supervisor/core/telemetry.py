"""What pyinit counts for its metrics: plain counters, and the pure rule that reads a policy step.

`count_step` looks at one event and the states before and after `policy.step`
and says whether a start or a death happened, and of which kind; it performs no
I/O and reads no clock, like the policy itself. `PodRecords` is what the metrics page
reads of the pod, as plain records: whoever holds the services makes them, so metrics
imports nothing of the container.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .model import Event, Exited, Phase, ServiceSpec, ServiceState, Spawned, SpawnFailed, Want

if TYPE_CHECKING:  # mypy reads dataclasses; base/record builds them without importing dataclasses
    from dataclasses import dataclass as record
else:
    from ..base.record import record

if TYPE_CHECKING:
    from .health import HealthReport

DEATH_CAUSES = ("exit", "signal", "spawn_failure", "unhealthy")  # unhealthy: restarted for its health checks
UNKNOWN_VERB = "other"  # a verb no pyinit knows: one label value, whatever a client sends


class ServiceTally:
    """Starts and deaths of one service since pyinit started; `deaths` is made at the first death."""

    __slots__ = ("starts", "deaths")

    def __init__(self) -> None:
        self.starts = 0
        self.deaths: dict[tuple[str, bool], int] | None = None  # (cause, expected) -> count

    def death(self, cause: str, expected: bool) -> None:
        if self.deaths is None:
            self.deaths = {}
        key = (cause, expected)
        self.deaths[key] = self.deaths.get(key, 0) + 1


def death_expected(before: ServiceState) -> bool:
    """The policy's own rule: a death is expected once it was asked to stop, or is not wanted up."""
    return (before.stopping and not before.unhealthy) or before.want is not Want.UP


def count_step(tally: ServiceTally, event: Event, before: ServiceState, after: ServiceState) -> None:
    """Record what one step did: a start (a new incarnation, or an attempt that could not exec),
    a death by exit code, signal or spawn failure, expected or not."""
    if isinstance(event, Spawned) and after.pid == event.pid and before.pid != event.pid:
        tally.starts += 1
    elif isinstance(event, SpawnFailed):
        tally.starts += 1
        tally.death("spawn_failure", death_expected(before))
    elif isinstance(event, Exited) and before.phase is Phase.UP and event.pid in (None, before.pid):
        expected = death_expected(before)
        if before.unhealthy and not expected:
            tally.death("unhealthy", False)
        else:
            tally.death("signal" if event.signum is not None else "exit", expected)


class StageRecord:
    """One run of cont-init.d or cont-finish.d: each script's fate and time, and the whole stage's."""

    __slots__ = ("stage", "scripts", "seconds", "done")

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.scripts: list[tuple[str, int, float]] = []  # (name, exit code, seconds)
        self.seconds = 0.0
        self.done = False

    @property
    def failures(self) -> int:
        return sum(1 for _name, code, _seconds in self.scripts if code != 0)


class ControlTally:
    """Control requests by verb and result, and peers refused; bounded label values only."""

    __slots__ = ("requests", "refused", "verbs")

    def __init__(self, verbs: tuple[str, ...]) -> None:
        self.verbs = frozenset(verbs)
        self.requests: dict[tuple[str, str], int] = {}
        self.refused = 0

    def request(self, verb: str, result: str) -> None:
        key = (verb if verb in self.verbs else UNKNOWN_VERB, result)
        self.requests[key] = self.requests.get(key, 0) + 1


@record(frozen=True)
class ServiceFigures:
    """One service as the metrics page reads it: its spec, state and tally, its log's counts."""

    spec: ServiceSpec
    state: ServiceState
    tally: ServiceTally
    log_lines: tuple[int, int]  # stdout, stderr
    log_bytes: tuple[int, int]
    health: HealthReport | None = None  # its health checks, when it has one


@record(frozen=True)
class PodRecords:
    """What the metrics page reads of the pod at one instant (its other figures are its own)."""

    services: Sequence[ServiceFigures]
    stage: str  # starting, running, stopping
    stages: Sequence[StageRecord]
    orphans_reaped: int
