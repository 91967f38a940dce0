"""pyinit: the container's PID 1 (or a subreaper in a developer's shell).

Order: settings (fail before anything starts), log, runtime dir, subreaper, the signal
receiver, the head start (container/early: stage 2's first steps and cont-init.d's first
script, before anything heavy is imported), then structlog, anyio and the loop's modules
imported in a second thread beside a script that takes its time, or once the start path has
started what it can, and one anyio run whose root task group holds the signal loop, the
output writer and the stages, which adopt what the head start began.
Until structlog is imported, events are recorded (logs/events.configure_early).
"""

from __future__ import annotations

import _signal  # not signal and socket: their enums would bring enum onto the start path
import os
import sys

from .base.terms import EXIT_SYSTEM, EXIT_USAGE

TYPE_CHECKING = False  # typing's own costs the start path its import (and re's)
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Sequence

USAGE = """\
usage: pyinit [--] [PROG ARGS...]
       pyinit --install-s6-commands DIR [--force]
       pyinit -h | --help | --version

PID 1 for containers, a drop-in for s6-overlay's /init. Runs $PYS6_ETC/cont-init.d,
supervises $PYS6_ETC/services.d, and on SIGTERM runs $PYS6_ETC/cont-finish.d and
stops everything. With PROG, runs it once services are up and exits with its code
(a PROG whose name starts with "-" only after "--": anything else there is an option).
--install-s6-commands links with-contenv, printcontenv, s6-setuidgid, halt, s6-svc,
s6-svstat, s6-svwait, s6-svok, s6-svscanctl, s6-notifyoncheck, s6-log,
s6-format-filter, logutil-service and supercronic in DIR to pys6's own, for images that removed
s6-overlay.

exit codes: 0 clean shutdown; PROG's code; an essential service's code;
100 bad configuration (or a /run this image's s6-overlay commands need but pyinit
cannot lay out); 111 the runtime directory or a system call failed.
See README.md for every variable.
"""


def _ensure_standard_fds() -> None:
    """A PID 1 may start with 0, 1 or 2 closed; a pipe landing there would be a mess."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open("/dev/null", os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def s6_path(path: str, has_command: bool) -> str:
    """PATH as s6-overlay's /init makes it: /bin and /usr/bin added when missing, and
    /command (where s6-overlay v3 keeps its binaries) first, here only where it exists."""
    parts = [part for part in path.split(":") if part] or ["/bin"]
    for needed in ("/bin", "/usr/bin", *(["/command"] if has_command else [])):
        if needed not in parts:
            parts.insert(0, needed)
    return ":".join(parts)


def _wait_for_closing_fd(fd: int) -> None:
    """S6_WAIT_FOR_CLOSING_FD: the container manager says go by closing its end of `fd`."""
    try:
        while os.read(fd, 4096):
            pass
        os.close(fd)
    except OSError:
        pass  # not open: nothing to wait for, as in s6-overlay


def _fail(message: str, code: int) -> int:
    from .logs import events as log

    log.flush_early()  # what was said before, first
    sys.stderr.write(f"pyinit: fatal: {message}\n")
    sys.stderr.flush()
    _leave_verdict(f"pyinit: fatal: {message}", code)
    return code


def _leave_verdict(reason: str, code: int) -> None:
    """The termination log of a pyinit that never ran its stages (container/verdict). Read from the
    environment, as the knob is: the settings may be what failed."""
    from .container import verdict

    def warn(event: str, why: str) -> None:
        sys.stderr.write(f"pyinit: {event}: {why}\n")

    verdict.leave(os.environ.get("PYS6_TERMINATION_LOG", ""), verdict.Verdict(reason, code), warn)


def run(argv: Sequence[str]) -> int:
    from .base import cli

    answered = cli.answer(argv, "pyinit", USAGE)
    if answered is not None:
        return answered
    if argv and argv[0] == "--install-s6-commands":
        rest = [arg for arg in argv[1:] if arg != "--force"]
        if len(rest) != 1 or rest[0].startswith("-"):
            return cli.usage_error("pyinit", "pyinit --install-s6-commands DIR [--force]")
        from .s6.commands import install

        return install(rest[0], "--force" in argv[1:])
    # Before anything is touched: `pyinit --versoin` must not boot the real /etc trees as root with
    # "--versoin" as its program. A program named with a dash comes after "--", as for env(1).
    if argv and argv[0] == "--":
        argv = argv[1:]
    elif argv and argv[0].startswith("-"):
        return cli.usage_error("pyinit", f"unknown option {argv[0][:100]!r} (a PROG starting with - goes after --)")
    _ensure_standard_fds()
    os.environ["PATH"] = s6_path(os.environ.get("PATH", ""), os.path.isdir("/command"))
    from .base import paths
    from .core.settings import ConfigError, load_settings
    from .logs import events as log

    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        return _fail(f"bad configuration: {exc}", EXIT_USAGE)
    log.configure_early(settings.log_format, settings.verbosity, timestamps=settings.log_timestamps)
    for warning in settings.warnings:
        log.get().warning(warning)
    if settings.wait_for_closing_fd >= 3:
        _wait_for_closing_fd(settings.wait_for_closing_fd)
    is_pid1 = os.getpid() == 1
    from .s6 import layout as s6layout

    # Before anything runs: an image whose own s6-overlay commands know only /run's paths, on a
    # PID 1 that cannot lay them out, would boot with every with-contenv script failing. s6-overlay's
    # preinit refuses such a /run too (exit 100); here one line says which path and the fix.
    needed_by = s6layout.s6_command_needing_run(os.environ) if is_pid1 and settings.s6_run else None
    if needed_by is not None:
        problem = s6layout.run_problem(os.environ, settings.world_writable_run)
        if problem is not None:
            return _fail(problem, EXIT_USAGE)
    try:
        rundir = paths.prepare_rundir(os.environ)
    except (paths.RuntimeDirError, OSError) as exc:
        return _fail(str(exc), EXIT_SYSTEM)
    metrics_dir = _prepare_metrics_directory(rundir)
    from .control.binding import ControlSocketError, bind_control_socket

    try:  # as PID 1, also on an abstract address no one can rename or replace (server.py)
        listener = bind_control_socket(rundir, settings.control_group, abstract=is_pid1)
    except (ControlSocketError, OSError) as exc:
        return _fail(f"control socket: {exc}", EXIT_SYSTEM)
    if listener.abstract_problem:
        log.get().warning("control socket: no abstract address, clients reach pyinit by the socket file only",
                          reason=listener.abstract_problem)
    try:  # after the socket: a second pyinit on this runtime directory has been turned away
        layout = s6layout.prepare(rundir, dict(os.environb), is_pid1 and settings.s6_run, settings.world_writable_run,
                                  needed_by)
    except s6layout.RunUnusable as exc:
        listener.close()
        os.unlink(os.path.join(rundir, paths.SOCKET_NAME))
        return _fail(str(exc), EXIT_USAGE)
    except OSError as exc:
        listener.close()
        os.unlink(os.path.join(rundir, paths.SOCKET_NAME))
        return _fail(f"cannot write the container environment: {exc.filename}: {exc.strerror}", EXIT_SYSTEM)
    if not is_pid1:
        from .proc.reaper import become_subreaper

        try:
            become_subreaper()
        except OSError as exc:
            return _fail(str(exc), EXIT_SYSTEM)

    metrics_listener = _metrics_listener(settings.metrics_listen)
    from .proc.signals import DIVERTED_SIGNALS, HANDLED_SIGNALS, SignalReceiver

    # Entered before anything starts: a signal from here on is recorded, and read by the loop.
    receiver = SignalReceiver(HANDLED_SIGNALS + (DIVERTED_SIGNALS if settings.cmd_receive_signals else ()))
    try:
        with receiver:
            from .container.early import carry_on, head_start, needs_the_loop, prestarted_pids, running_pids

            head = head_start(settings, layout, rundir, is_pid1, metrics_dir, metrics_listener is not None,
                              log.get())

            def stopping() -> bool:
                return receiver.has_pending(_signal.SIGTERM, _signal.SIGINT, _signal.SIGQUIT)

            # The loop's modules imported in a second thread, this one carrying the start on meanwhile
            # (container/early.carry_on) each time a script exits, until the loop has work to do.
            _import_the_loop(lambda: running_pids(head), lambda: prestarted_pids(head),
                             lambda: carry_on(head, settings, layout, stopping()),
                             lambda: stopping() or needs_the_loop(head))
            # structlog is loaded: the recorded events are replayed through it
            log.configure(settings.log_format, settings.verbosity, timestamps=settings.log_timestamps)
            import anyio

            from .root import run_pid1

            return anyio.run(run_pid1, settings, list(argv), rundir, listener, is_pid1, layout, metrics_listener,
                             metrics_dir, head, receiver)
    except BaseException as exc:  # noqa: BLE001 (the event loop itself is gone: still orphan nothing)
        _emergency_stop(is_pid1, settings.kill_gracetime / 1000, exc)
        return EXIT_SYSTEM
    finally:
        listener.close()
        try:
            os.unlink(os.path.join(rundir, paths.SOCKET_NAME))
        except OSError:
            pass


WAKE_INTERVAL = 0.0005  # seconds: sys.setswitchinterval while the start path waits for a child
WORK_INTERVAL = 0.05  # and while it starts what comes next
# How long a script started here may run before the imports start beside it, and, once they are
# done, before the loop takes over from the start path. On a machine of one or two cores the
# imports (some 60 to 100 ms of CPU) slow down every script they share the machine with, and the
# start path's reaction to each exit: a chain of short scripts runs alone, a longer one hides the
# imports, and a script's live output (read by the loop only) waits for at most this and them.
IDLE_MS = 50


def _import_the_loop(running: Callable[[], list[int]], services: Callable[[], list[int]],
                     carry_on: Callable[[], None], needs_the_loop: Callable[[], bool]) -> None:
    """structlog, anyio and the loop's modules imported in a thread of their own, while this one
    waits for the start path's scripts (`running`: pidfds, no polling) and calls `carry_on` as each
    exits. The imports start once nothing is left to wait for, or the loop has work to do
    (`needs_the_loop`, or one of the `services` started here has exited), or a script has run
    IDLE_MS; once they are done, the start path carries on until one of those holds, and returns
    (what the imports raised is raised here). Only the standard library's cheapest is used:
    _thread, not threading."""
    import _thread
    import select

    # what carry_on imports is imported here first: the two threads never wait on one module
    from .core import prestart, servicedir  # noqa: F401
    from .s6 import rcsource, supervisedir  # noqa: F401

    done_read, done_write = os.pipe()
    failure: list[BaseException] = []

    def imports() -> None:
        try:
            import anyio  # noqa: F401
            import anyio._backends._asyncio  # noqa: F401  (anyio.run's own, else imported by it, on this thread)
            import structlog  # noqa: F401

            from . import root  # noqa: F401
        except BaseException as exc:  # noqa: BLE001 (raised again in the main thread)
            failure.append(exc)
        finally:
            os.write(done_write, b"x")

    def begin() -> bool:
        _thread.start_new_thread(imports, ())
        return True

    # The GIL is handed over after the switch interval to a thread that waits for it: short while
    # this thread waits in poll (a child's exit is acted on within half a millisecond of imports),
    # long while it carries on (its work is not cut into slices shared with the imports).
    switch = sys.getswitchinterval()
    importing = imported = service_exited = False
    watched: dict[int, int] = {}  # pid -> its pidfd: the scripts carry_on waits for
    serving: dict[int, int] = {}  # pid -> its pidfd: the services started here, until one exits
    # each pid is watched once: one that carry_on leaves to the loop stays a readable zombie, and one
    # whose pidfd cannot be had (ENOSYS before Linux 5.3, EMFILE) is the loop's to see
    seen: set[int] = set()
    waiting = select.poll()  # not select(): a thousand services' pipes put these fds past 1,024
    waiting.register(done_read, select.POLLIN)

    def watch(pids: list[int], into: dict[int, int]) -> bool:
        """Each new pid's pidfd polled; False when one is gone already (reaped meanwhile)."""
        for pid in pids:
            if pid in seen:
                continue
            seen.add(pid)
            try:
                into[pid] = os.pidfd_open(pid)
            except OSError:
                return False
            waiting.register(into[pid], select.POLLIN)
        return True

    def forget(into: dict[int, int], ready: set[int]) -> bool:
        """The pidfds of `into` in `ready` closed; whether there was one."""
        gone = [pid for pid, fd in into.items() if fd in ready]
        for pid in gone:
            waiting.unregister(into[pid])
            os.close(into.pop(pid))
        return bool(gone)

    try:
        while True:
            if not watch(running(), watched):
                carry_on()  # gone already (reaped meanwhile): carry_on sees it
            service_exited = not watch(services(), serving) or service_exited
            wanted = not watched or service_exited or needs_the_loop()
            if imported and (wanted or failure):
                break
            if not importing and wanted:
                importing = begin()
            sys.setswitchinterval(WAKE_INTERVAL)
            ready = {fd for fd, _events in waiting.poll(None if importing and not imported else IDLE_MS)}
            sys.setswitchinterval(WORK_INTERVAL)
            if not ready:  # a script that takes its time
                if imported:
                    break
                importing = begin()
                continue
            if done_read in ready:
                imported = True
                waiting.unregister(done_read)
            service_exited = forget(serving, ready) or service_exited
            forget(watched, ready)
            carry_on()
    finally:
        for fd in (*watched.values(), *serving.values()):
            os.close(fd)
        if importing and not imported:  # carry_on raised: the thread's end first, so that its write finds its pipe
            os.read(done_read, 1)
        sys.setswitchinterval(switch)
        os.close(done_read)
        os.close(done_write)
    if failure:
        raise failure[0]
    carry_on()  # whatever exited since the last look


def _prepare_metrics_directory(rundir: str) -> str:
    """$PYS6_METRICS_DIR (default $rundir/metrics), where services drop their metrics files; exported
    before the container environment is written, so every script and service knows it. "" when it
    cannot be used: then no service's file is served."""
    from .base.paths import RuntimeDirError, metrics_directory, prepare_metrics_directory

    path = metrics_directory(rundir, os.environ)
    try:
        prepare_metrics_directory(path)
    except (OSError, RuntimeDirError) as exc:
        from .logs import events as log

        log.get().warning("services' metrics directory unusable, none of their files is served", directory=path,
                          reason=getattr(exc, "strerror", None) or str(exc))
        os.environ.pop("PYS6_METRICS_DIR", None)
        return ""
    os.environ["PYS6_METRICS_DIR"] = path
    return path


def _metrics_listener(address: tuple[str, int] | None) -> socket.socket | None:
    """The Prometheus endpoint, bound before anything starts; a port that cannot be had is logged,
    and the container runs without it (metrics are never a reason to refuse a boot)."""
    if address is None:
        return None
    from .logs import events as log
    from .metrics.http import listen

    try:
        return listen(*address)
    except OSError as exc:
        log.get().error("metrics endpoint cannot listen, going on without it", address=f"{address[0]}:{address[1]}",
                        reason=exc.strerror or str(exc))
        return None


def _emergency_stop(is_pid1: bool, grace: float, exc: BaseException) -> None:
    """Stage 3's kill path without an event loop: TERM everyone, KILL after the grace time, reap."""
    import traceback

    from .proc.killall import kill_everyone_now  # standard library beneath: it cannot fail as the loop did

    try:  # the words first, but they need structlog and the writer (anyio): what failed may be one of them
        from .logs import events as log
        from .logs.writer import write_if_room

        log.flush_early()  # what was said before the loop failed
        detail = "".join(traceback.format_exception(exc))[-3000:]
        write_if_room(2, f"pyinit: fatal: the event loop failed, stopping everything:\n{detail}\n".encode())
    except BaseException:  # noqa: BLE001 (nothing may keep the stop from happening)
        try:
            os.write(2, f"pyinit: fatal: the event loop failed, stopping everything: {exc!r}\n".encode()[-3000:])
        except OSError:
            pass
    kill_everyone_now(is_pid1, grace)
    _leave_verdict(f"pyinit: fatal: the event loop failed: {exc!r}", EXIT_SYSTEM)


def main() -> None:
    code = run(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: no interpreter teardown (it would only wait for idle worker threads).
    os._exit(code)


if __name__ == "__main__":
    main()

