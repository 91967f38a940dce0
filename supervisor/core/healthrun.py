"""Health checks, the effects: run one service's exec, TCP or HTTP check when core/health says.

One `HealthMonitor` per service that has a check. It hears of every change of the
service's state (the service table's listener), keeps one event-loop timer at the next
check's time (an idle pod wakes only when a check is due: no polling loop), and runs a
check as a task that exists only while the check runs:

- exec: `./health NAME` in the service directory, spawned by proc/spawn in its own session
  (so its own process group), its exit heard from proc/reaper (the one waitpid owner), its
  output read from a pipe by a loop callback and kept bounded (its last 4 KiB); at its
  timeout, or when the service stops, its whole group gets SIGKILL; when it exits, what
  it left in its group too;
- tcp: a connect inside pyinit (anyio), bounded by the timeout;
- http: a GET over that connection, healthy on a 2xx or 3xx status line.

What a result means is core/health's decision; a first pass makes a service without
notification-fd ready (`ready`), and too many failures ask for a restart (`restart`:
the service table's one path, with its forensics).
"""

from __future__ import annotations

import asyncio
import os
import signal
import traceback
from collections.abc import Awaitable, Callable, Mapping

import anyio
import anyio.abc

from ..logs.events import Logger
from ..proc.reaper import ChildExit, Reaper
from ..proc.spawn import signal_group, spawn
from . import health
from .health import OUTPUT_KEPT, RESULTS, HealthReport, HealthSpec, HealthState, Verdict
from .model import Phase, ServiceSpec, ServiceState

KILLED_GRACE = 1.0  # seconds to hear of a SIGKILLed check's exit before giving up on it (EPERM: not ours)
HTTP_HEAD = 4096  # bytes of an HTTP answer read for its status line
LOGGED_OUTPUT = 1024  # of the kept output, in the log event of a failure (all of it in forensics)
READ_CHUNK = 65536
DRAIN_LIMIT = 1 << 20  # bytes read at most when a check ends: a flood from what it left behind is cut


class Tail:
    """The last `limit` bytes of a stream."""

    def __init__(self, limit: int = OUTPUT_KEPT) -> None:
        self.limit = limit
        self.data = b""

    def add(self, chunk: bytes) -> None:
        self.data = (self.data + chunk)[-self.limit:]

    def text(self) -> str:
        return self.data.decode("utf-8", "backslashreplace")


class HealthMonitor:
    """The checks of one service: its timer, the check under way, the counts."""

    def __init__(self, spec: ServiceSpec, check: HealthSpec, reaper: Reaper, log: Logger,
                 environment: Callable[[], Mapping[bytes, bytes]], task_group: anyio.abc.TaskGroup,
                 ready: Callable[[int], None], restart: Callable[[int], Awaitable[None]]) -> None:
        self.spec = spec
        self.check = check
        self.state = HealthState()
        self.counts = dict.fromkeys(RESULTS, 0)
        self.output = ""
        self._reaper = reaper
        self._log = log
        self._environment = environment
        self._task_group = task_group
        self._ready = ready
        self._restart = restart
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._scope: anyio.CancelScope | None = None  # of the check under way
        self._check_pid: int | None = None  # an exec check's process, while it runs
        self._closed = False

    # --- what the service table tells it ------------------------------------------------

    def service_changed(self, after: ServiceState) -> None:
        """Checked: up and not being stopped. A new incarnation starts over; a stop ends all checks."""
        checked = after.phase is Phase.UP and not after.stopping and after.pid is not None
        if checked and after.pid != self.state.pid:
            assert after.pid is not None
            self._end_check()
            self.state = health.came_up(self.check, after.pid, anyio.current_time(), self.spec.notification_fd is not None)
        elif not checked and self.state.pid is not None:
            self._end_check()
            self.state = health.went_down()
        self._arm()

    def report(self) -> HealthReport:
        return HealthReport(self.check.describe(), health.status(self.state), self.state.failures, self.check.retries,
                            tuple(self.counts.items()), self.output)

    def close(self) -> None:
        """No more checks: the timer cancelled, a check under way killed with its group."""
        self._closed = True
        self._end_check()
        self.state = health.went_down()
        self._arm()

    # --- the one timer -------------------------------------------------------------------

    def _arm(self) -> None:
        due = None if self._closed else self.state.due
        if due == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = due
        if due is not None:
            self._timer = self._loop.call_at(due, self._on_due)

    def _on_due(self) -> None:
        self._timer = self._timer_at = None
        if self._closed or self.state.pid is None or self.state.running:
            return
        self.state = health.begin(self.state)
        self._task_group.start_soon(self._run_one, self.state.pid)  # the task exists while the check runs

    def _end_check(self) -> None:
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None
        if self._check_pid is not None:
            signal_group(self._check_pid, signal.SIGKILL)  # now, not when the task next runs
            self._check_pid = None

    # --- one check -------------------------------------------------------------------------

    async def _run_one(self, pid: int | None) -> None:
        if self._closed or self.state.pid != pid or not self.state.running:
            return  # the service stopped (or came back) before the task began
        scope = anyio.CancelScope()
        self._scope = scope
        outcome, output = "error", ""
        try:
            with scope:
                if self.check.kind == "exec":
                    outcome, output = await self._exec()
                elif self.check.kind == "tcp":
                    outcome, output = await self._tcp()
                else:
                    outcome, output = await self._http()
        except Exception:  # noqa: BLE001 (a check's failure is the check's: PID 1 goes on)
            outcome, output = "error", traceback.format_exc()[-OUTPUT_KEPT:]
        if self._scope is scope:
            self._scope = None
        if scope.cancel_called or self._closed or self.state.pid != pid:
            return  # the service stopped or is another incarnation: this result says nothing
        self._record(outcome, output)

    def _record(self, outcome: str, output: str) -> None:
        now = anyio.current_time()
        before = self.state
        counted = health.counts(self.check, before, now)
        self.state, verdict = health.result(self.check, before, outcome, now)
        self.counts[outcome] += 1
        name = self.spec.name
        if outcome == "pass":
            if before.failures or not before.passed:
                self._log.info("service healthy", service=name, check=self.check.describe())
        else:
            self.output = output
            level = "warning" if counted else "info"
            getattr(self._log, level)("health check failed", service=name, check=self.check.describe(),
                                      result=outcome, failures=self.state.failures, retries=self.check.retries,
                                      counted=counted, output=output[-LOGGED_OUTPUT:])
        if verdict is Verdict.READY and self.spec.notification_fd is None and self.state.pid is not None:
            self._ready(self.state.pid)
        elif verdict is Verdict.RESTART:
            self._task_group.start_soon(self._restart_now, self.state.pid)
        self._arm()

    async def _restart_now(self, pid: int | None) -> None:
        try:
            await self._restart(self.state.failures)
        except Exception:  # noqa: BLE001
            self._log.error("health restart failed", service=self.spec.name, traceback=traceback.format_exc())
        if not self._closed and self.state.pid == pid and self.state.restarting:
            # Not restarted (s6-svc -o, or the container is stopping): go on checking it.
            self.state = HealthState(pid=pid, up_since=self.state.up_since, passed=self.state.passed,
                                     due=anyio.current_time() + self.check.interval)
            self._arm()

    async def _exec(self) -> tuple[str, str]:
        tail = Tail()
        try:
            read_fd, write_fd = os.pipe()
        except OSError as exc:
            return "error", f"no pipe for the check's output: {exc.strerror}"
        try:
            try:
                pid = spawn([self.check.target, self.spec.name], cwd=self.spec.directory, stdout=write_fd,
                            stderr=write_fd, env=self._environment())
            finally:
                os.close(write_fd)
        except OSError as exc:
            os.close(read_fd)
            return "error", f"{self.check.target}: {exc.strerror or exc}"
        exited = ChildExit()

        def on_exit(exitcode: int | None, signum: int | None) -> None:
            # Called right after waitpid, before anything else can be spawned: what the check
            # left in its process group goes with it.
            signal_group(pid, signal.SIGKILL)
            exited(exitcode, signum)

        self._reaper.watch(pid, on_exit)
        self._check_pid = pid
        os.set_blocking(read_fd, False)
        reading = [True]

        def on_readable() -> None:
            try:
                chunk = os.read(read_fd, READ_CHUNK)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if chunk:
                tail.add(chunk)
            else:
                self._loop.remove_reader(read_fd)
                reading[0] = False

        self._loop.add_reader(read_fd, on_readable)
        timed_out = False
        try:
            with anyio.move_on_after(self.check.timeout):
                await exited.wait()
            if not exited.done:
                timed_out = True
                signal_group(pid, signal.SIGKILL)
                with anyio.move_on_after(KILLED_GRACE):
                    await exited.wait()
        finally:
            if not exited.done:
                signal_group(pid, signal.SIGKILL)  # cancelled (the service stopped): the reaper still reaps it
            if self._check_pid == pid:
                self._check_pid = None
            _drain(read_fd, tail)
            if reading[0]:
                self._loop.remove_reader(read_fd)
            os.close(read_fd)
        output = tail.text()
        if output and not output.endswith("\n"):
            output += "\n"
        if timed_out:
            return "timeout", output + f"(killed after {self.check.timeout:g} s)"
        if exited.signum is not None:
            return "fail", output + f"(killed by signal {exited.signum})"
        if exited.exitcode != 0:
            return "fail", output + f"(exit code {exited.exitcode})"
        return "pass", output

    async def _tcp(self) -> tuple[str, str]:
        try:
            with anyio.fail_after(self.check.timeout):
                stream = await anyio.connect_tcp(self.check.host, self.check.port)
                await stream.aclose()
        except TimeoutError:
            return "timeout", f"no connection to {self.check.host}:{self.check.port} in {self.check.timeout:g} s"
        except OSError as exc:
            return "fail", f"{self.check.host}:{self.check.port}: {_reason(exc)}"
        return "pass", ""

    async def _http(self) -> tuple[str, str]:
        check = self.check
        host = f"[{check.host}]" if ":" in check.host else check.host
        request = (f"GET {check.path} HTTP/1.0\r\nHost: {host}:{check.port}\r\nUser-Agent: pys6-health\r\n"
                   "Accept: */*\r\nConnection: close\r\n\r\n").encode("ascii", "replace")
        head = b""
        try:
            with anyio.fail_after(check.timeout):
                stream = await anyio.connect_tcp(check.host, check.port)
                async with stream:
                    await stream.send(request)
                    while b"\n" not in head and len(head) < HTTP_HEAD:
                        try:
                            head += await stream.receive(HTTP_HEAD - len(head))
                        except anyio.EndOfStream:
                            break
        except TimeoutError:
            return "timeout", f"no answer from {check.target} in {check.timeout:g} s"
        except (OSError, anyio.BrokenResourceError) as exc:
            return "fail", f"{check.target}: {_reason(exc)}"
        line = head.split(b"\n", 1)[0].strip().decode("latin-1")
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdecimal():
            return "fail", f"{check.target}: not an HTTP answer: {line[:200]!r}"
        if 200 <= int(parts[1]) < 400:
            return "pass", line
        return "fail", f"{check.target}: {line[:200]}"


def _reason(exc: BaseException) -> str:
    """Why a connection failed: anyio's "All connection attempts failed" has the errno as its cause."""
    cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
    if isinstance(cause, OSError) and cause.errno:
        return os.strerror(cause.errno)  # asyncio's strerror is "Connect call failed (address)"
    return str(cause) or type(cause).__name__


def _drain(read_fd: int, tail: Tail) -> None:
    """What the pipe holds now, bounded: the check is dead and its group killed."""
    taken = 0
    while taken < DRAIN_LIMIT:
        try:
            chunk = os.read(read_fd, READ_CHUNK)
        except OSError:
            return
        if not chunk:
            return
        taken += len(chunk)
        tail.add(chunk)
