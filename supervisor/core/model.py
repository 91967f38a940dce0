"""Plain data shared by every layer: service definitions, state, events, actions.

Nothing here performs I/O or reads a clock; times are monotonic seconds passed in.
"""

from __future__ import annotations

import _signal  # not signal: its own enums cost a millisecond of the start path
import enum

# A death as one exit code: its home is base/terms; named here too, as the core's vocabulary
# (policy, metrics and the stages take it from the model).
from ..base.terms import death_code as death_code

TYPE_CHECKING = False  # no typing at run time: pyinit's start path starts services (container/early)
if TYPE_CHECKING:  # mypy reads dataclasses; base/record builds them without importing dataclasses
    from dataclasses import dataclass as record
    from dataclasses import field

    from ..logs.lines import RecentLines
    from .health import HealthReport, HealthSpec
else:
    from ..base.record import field, record


@record(frozen=True)
class CrashPolicy:
    """When repeated deaths make a service bail (s6-supervise has no such rule; `bail` False:
    none either, PYS6_CRASH_BAIL=0, the deaths still counted)."""

    max_deaths: int = 5
    window: float = 60.0
    bail: bool = True


@record(frozen=True)
class ServiceSpec:
    """A service as read from its servicedir, after config overrides."""

    name: str
    directory: str
    has_finish: bool = False
    normally_up: bool = True
    notification_fd: int | None = None
    timeout_kill_ms: int | None = None  # None: the grace time applies; 0: never SIGKILL on down (s6)
    timeout_finish_ms: int = 5000  # 0: finish may run for ever (s6)
    down_signal: int = _signal.SIGTERM
    essential: bool = False
    crash: CrashPolicy = CrashPolicy()
    # True: the down-signal, SIGCONT and SIGKILL go to the process group, SIGKILL also at the grace
    # time (pys6); False: to the pid, SIGKILL only at timeout-kill, as s6-supervise (PYS6_GROUP_SIGNALS=0)
    group_signals: bool = True
    problems: tuple[str, ...] = ()  # what is wrong with the definition, for the log
    health: HealthSpec | None = None  # its health check (core/health), if it has one
    # pyinit's own handle on `directory` (a copy under /run): what it runs from even if another
    # uid renames a path above it (a shared /run), so nobody can swap the run script it starts
    directory_fd: int | None = None
    # ".user": its scripts are ./run.user and ./finish.user (an s6-rc longrun in a pipeline, laid
    # out as s6-rc-compile does, s6/rcrun), so argv[0] and the script's own file are s6-overlay's
    script_suffix: str = ""


class Phase(enum.Enum):
    DOWN = "down"  # no process, nothing scheduled
    WAITING = "waiting"  # down, a start is scheduled at the deadline
    UP = "up"  # the run process is alive
    FINISHING = "finishing"  # the run process died, ./finish is running


class Want(enum.Enum):
    UP = "up"
    DOWN = "down"
    ONCE = "once"  # up, but not restarted when it dies (s6-svc -o)


class Timer(enum.Enum):
    START = "start"
    KILL = "kill"  # SIGKILL: the down-signal was not enough
    KILL_FINISH = "kill-finish"


@record(frozen=True)
class ServiceState:
    """What the supervisor knows of one service; replaced, never mutated."""

    phase: Phase = Phase.DOWN
    want: Want = Want.DOWN
    pid: int | None = None
    pgid: int | None = None  # of the last instance, kept after it dies (s6-svstat's pgid)
    started: bool = False  # has it ever been started
    since: float = 0.0  # when it last went up or down
    died_at: float | None = None  # when its last incarnation died (the pacing rule counts from there)
    ready_at: float | None = None
    down_ready_at: float | None = None  # when it was last down with its finish done (s6's readystamp then)
    last_start: float | None = None
    deaths: tuple[float, ...] = ()  # unexpected deaths still inside the crash window
    exitcode: int | None = None  # of the last death
    signum: int | None = None  # of the last death
    bailed: bool = False
    stopping: bool = False  # the down-signal was sent: the coming death is expected
    shutting_down: bool = False
    finish_pid: int | None = None
    deadline: float | None = None
    timer: Timer | None = None
    unhealthy: bool = False  # stopping for its failed health checks: the coming death counts (cause unhealthy)


# --- events: what happened ---------------------------------------------------


@record(frozen=True)
class Boot:
    """The supervisor is ready to run services: go to the wanted state."""


@record(frozen=True)
class Spawned:
    """The run process started (`at`: when, on the loop's clock, if not now: the start path's)."""

    pid: int
    at: float | None = None


@record(frozen=True)
class SpawnFailed:
    """./run could not be executed at all; it counts as a death (exit 126/127). `hint`: how to fix it."""

    exitcode: int
    reason: str
    hint: str = ""


@record(frozen=True)
class Exited:
    """An incarnation's run process ended; a stale one (another pid) changes nothing."""

    exitcode: int | None
    signum: int | None
    pid: int | None = None


@record(frozen=True)
class FinishSpawned:
    """./finish started."""

    pid: int


@record(frozen=True)
class FinishExited:
    """./finish ended (or was killed)."""

    exitcode: int | None


@record(frozen=True)
class Ready:
    """The incarnation `pid` wrote its readiness newline."""

    pid: int


@record(frozen=True)
class TimerFired:
    """The state's deadline passed: its timer's action is due."""


class Verb(enum.Enum):
    UP = "up"  # also clears a bail
    DOWN = "down"
    ONCE = "once"
    ONCE_AT_MOST = "once-at-most"
    RESTART = "restart"
    SHUTDOWN = "shutdown"  # the container is stopping: down with the grace time
    UNHEALTHY = "unhealthy"  # restart for failed health checks: its death counts toward the bail


@record(frozen=True)
class Command:
    """An order to the service (a client's, the stages')."""

    verb: Verb


Event = Boot | Spawned | SpawnFailed | Exited | FinishSpawned | FinishExited | Ready | TimerFired | Command


# --- actions: what the effect layer must do ----------------------------------


@record(frozen=True)
class Spawn:
    """Start the run process."""


@record(frozen=True)
class RunFinish:
    """Start ./finish with these arguments."""

    args: tuple[str, ...]  # exit code (256 if killed), signal number, name, pgid


@record(frozen=True)
class SendSignal:
    """A signal to the run process's group, or to its pid alone when `group` is False."""

    signum: int
    group: bool = True


@record(frozen=True)
class KillFinish:
    """SIGKILL to ./finish: its group, or its pid alone when `group` is False."""

    group: bool = True


@record(frozen=True)
class Note:
    """A structured log event: name and fields."""

    event: str
    level: str = "info"
    fields: tuple[tuple[str, object], ...] = field(default=())


@record(frozen=True)
class Forensics:
    """Record a snapshot of the service (process tree, deaths, last lines) in the log."""

    reason: str


@record(frozen=True)
class EssentialBailed:
    """An essential service bailed: the container must stop with this code."""

    exitcode: int


Action = Spawn | RunFinish | SendSignal | KillFinish | Note | Forensics | EssentialBailed


@record(frozen=True)
class ServiceView:
    """What reporting needs of one service: plain records, read at one instant."""

    spec: ServiceSpec
    state: ServiceState
    recent: RecentLines
    health: HealthReport | None = None  # its health checks, when it has one
