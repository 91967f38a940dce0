"""pyinit's head start: stage 2's first steps before the event loop and its imports exist.

anyio, asyncio, structlog and the modules of the loop cost pyinit some 100 ms to import, far
more than all it does before its first script. So, standard library and cheap modules of
ours only, the start path (init.py) does here what the loop would do first, in the loop's
order, and the loop (root.run_pid1, container.stages, container.scripts) adopts the results:

1. the children's environment, with the container environment directory written from it;
2. the events the loop says first (the layout's problems, "starting", the trees pyinit does
   not handle), the s6-rc plan, read (and said) as stage 2 reads it, and fix-attrs.d applied;
3. cont-init.d's first script started, in its place (the oneshot runner's directory,
   RC_NAME, PWD, its session), its stdout and stderr in pipes (raw: PID 1's own fds) that
   the loop's LogPipes adopt, so its lines are prefixed and ordered as any other script's.

(S6_STAGE2_HOOK instead, when it is set: it runs before everything else of stage 2.)

The heavy imports then happen while that script runs on the other core; between two of them
`carry_on` starts cont-init.d's next script once the last has exited. Nothing here blocks on
a process. Before the loop, the start path reaps only its own scripts, each by its pid and
without waiting (proc/reaper.reap_own); orphans wait for the loop's Reaper, which watches the
running script's pid before its first reap (dead meanwhile: a zombie until then) and is the
one waitpid owner from then on. A signal that comes meanwhile is recorded by the
SignalReceiver init.py entered before any of this (a pending stop starts no further script).

Step 3 is taken only where the loop would start that script first and with nothing beside
it: no S6_STAGE2_HOOK, no catch-all log, no metrics endpoint or file (each says something
or runs something first), an s6-rc plan without problems whose every service waits for
cont-init.d (base), and fix-attrs.d without failure. Otherwise the loop starts it as before.
"""

from __future__ import annotations

import fcntl  # C modules, cheap: not on the costly list of the start path
import os
import stat
import sys
import termios
import time

from ..core.settings import ConfigError, Settings
from ..logs import events
from ..logs.events import Logger, Recorder
from ..proc.reaper import reap_own
from ..proc.spawn import spawn
from ..s6 import fixattrs
from ..s6 import rcplan as s6rc
from ..s6.childenv import ChildEnvironment, container_environment, exec_environment, shell_pwd
from ..s6.contenv import write_environment
from ..s6.layout import Layout, clear_legacy_services, forget_other_services

TYPE_CHECKING = False  # typing's own costs the start path its import (and re's)
if TYPE_CHECKING:  # mypy reads real dataclasses; the start path builds them without importing dataclasses
    from collections.abc import Callable
    from dataclasses import dataclass as record
    from dataclasses import field, replace

    from ..core.model import ServiceSpec
    from ..core.prestart import Prestarted
    from ..s6.supervisedir import SuperviseDir
else:
    from ..base.record import field, record, replace

if TYPE_CHECKING:
    from ..proc.reaper import ChildExit

LEGACY_CONT_INIT = "legacy-cont-init"  # s6-overlay's oneshot that runs cont-init.d (container.scripts too)
# What s6-overlay's base bundle stands for: a service that needs one of them waits for cont-init.d.
WAITS_FOR_CONT_INIT = frozenset({"base", LEGACY_CONT_INIT, s6rc.AFTER_SERVICES})


@record
class EarlyScript:
    """The stage-2 hook or cont-init.d's first script, started before the loop: what Scripts adopts."""

    kind: str  # "hook" (S6_STAGE2_HOOK) or "cont-init.d"
    names: list[bytes]  # cont-init.d's entries, in order, listed before its first started (the loop runs the rest)
    pid: int
    fds: tuple[int, int] | None  # the read ends of its stdout and stderr pipes; None: PID 1's own fds
    stage_started: float  # time.monotonic(), the loop's clock, as run_scripts would take it
    started: float
    exited: ChildExit | None = None  # the reaper's watch, set by Stages before the loop's first reap
    error: OSError | None = None  # it could not start (pid -1): what the loop reports
    name: str = ""  # cont-init.d's: its file name
    said: bool = True  # "script starting" said here; False: the loop says it, with `started_at`
    started_at: float = 0.0  # time.time() when it started
    result: tuple[int | None, int | None] | None = None  # reaped here already: (exit code, signal)
    ended: float = 0.0  # time.monotonic() and time.time() when it was seen dead
    ended_at: float = 0.0


@record
class HeadStart:
    """What the start path did: the loop skips each of these and adopts its result."""

    environment: ChildEnvironment
    said_starting: bool = False  # the layout's problems, "starting", the unhandled trees
    plan: s6rc.Plan | None = None  # read and said
    fix_failures: list[str] | None = None  # fix-attrs.d applied (None: not here)
    scripts: list[EarlyScript] = field(default_factory=list)  # all started here, in order: the loop adopts them
    services: ServicesD | None = None  # services.d read, copied and said (None: not here)
    unsaid: Recorder | None = None  # what reading the plan and fix-attrs.d had to say after the hook: the loop says it
    oneshots_done: dict[str, bool] = field(default_factory=dict)  # s6-rc oneshots run here: whether each succeeded
    rc_specs: dict[str, ServiceSpec] = field(default_factory=dict)  # s6-rc longruns compiled here (and started)
    walk: bool = False  # the start path starts s6-rc services as what they need comes up
    base_done: bool = False  # fix-attrs.d applied and cont-init.d run to success, here
    stuck: bool = False  # carrying on failed (said): the loop does the rest
    left: bool = False  # something ready to start was left to the loop (see needs_the_loop)
    passed: set[str] = field(default_factory=set)  # s6-rc services left to the loop: not tried again here
    logger_pipes: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # producer: (logger, read, write)
    prestarted: dict[str, Prestarted] = field(default_factory=dict)  # their run scripts started here
    supervise_dirs: dict[str, SuperviseDir] = field(default_factory=dict)  # theirs, made first: the s6 bridge's


@record
class ServicesD:
    """services.d as stage 2 starts it: its services, each read from its fresh copy (s6-overlay's
    services-up), and what is to be said of it, in order, as (level, event, fields)."""

    specs: list[ServiceSpec]
    said: list[tuple[str, str, dict[str, object]]]
    unreadable: str = ""  # why services.d cannot be read at all: nothing starts, the container stops
    told: bool = False  # `said` said already (by the start path, before anything ran)


def prepare_services_d(settings: Settings, layout: Layout, rc_names: set[str]) -> ServicesD:
    """Read services.d, remove the previous boot's copies and copy each service afresh to run from
    (cwd, what the run script writes, supervise/, event/, down: all there, never in /etc; a copy
    that cannot be made leaves that service broken, not run from services.d), forget a previous
    boot's s6 entries of services gone. Nothing is logged here (the loop calls it in a worker
    thread): the caller says `said`."""
    from ..core.servicedir import copy_service, scan, unknown_overrides  # the model's records: only where needed

    try:
        specs, skipped = scan(settings.dirs("services.d"), settings)
    except ConfigError as exc:
        return ServicesD([], [("error", "cannot read the services", {"reason": str(exc)})], str(exc))
    said: list[tuple[str, str, dict[str, object]]] = [
        ("warning", "services.d entry skipped", {"entry": entry}) for entry in skipped]
    try:
        clear_legacy_services(layout)
    except OSError as exc:
        said.append(("warning", "the previous boot's service copies cannot all be removed",
                     {"directory": layout.legacy_services, "reason": exc.strerror or str(exc)}))
    specs = [copy_service(spec, layout.legacy_services, settings) for spec in specs]
    names = {spec.name for spec in specs} | rc_names
    try:
        forget_other_services(layout, names)
    except OSError as exc:  # a previous boot's entry that cannot be removed: this boot's services still start
        said.append(("warning", "a previous boot's service entry cannot be removed",
                     {"entry": exc.filename or "", "reason": exc.strerror or str(exc)}))
    told, more = unknown_overrides(settings, names)  # a typo under the YAML's services: (crn for cron)
    for name, closest in told:
        said.append(("warning", "config names no such service", {"entry": name, **({"closest": closest} if closest else {})}))
    if more:
        said.append(("warning", "config names no such service", {"more": more}))
    return ServicesD(specs, said)


def say(said: list[tuple[str, str, dict[str, object]]], logger: Logger) -> None:
    for level, event, fields in said:
        getattr(logger, level)(event, **fields)


def runs_nothing(directory: str) -> bool:
    """Whether run_scripts would run nothing in `directory` and say nothing of it: absent, or
    holding only hidden entries and directories."""
    try:
        names = os.listdir(os.fsencode(directory))
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return _only_skipped(directory, names)


def start_services_early(head: HeadStart, settings: Settings, layout: Layout, logger: Logger | None) -> None:
    """services.d's services, once stage 2 has nothing left to run before them (cont-init.d and
    the s6-rc user bundle done here, or none): read, copied and said (`logger`; None: the loop
    says it, in order), and each that can be (core/prestart) started, as its runner would start
    it; the loop's runners adopt them."""
    from ..core.prestart import can_prestart

    assert head.plan is not None
    services = prepare_services_d(settings, layout, set(head.plan.definitions))
    if services.unreadable:
        if logger is not None:
            say(services.said, logger)
        head.left = True
        return  # the loop reads it again, says so and stops the container
    if logger is not None:
        say(services.said, logger)
        services = replace(services, told=True)
    head.services = services
    for spec in services.specs:  # in order; two threads spawning at once were no faster on 2 cores
        if not can_prestart(spec) or not _prestart(head, layout, spec):
            head.left = True  # the loop starts it (a down file's: the loop looks at once)
        elif spec.notification_fd is not None:
            head.left = True  # its readiness is the loop's to read


def user_bundle_up(head: HeadStart) -> bool:
    """Whether every service of the s6-rc user bundle was started here and is up (a oneshot done
    with success, a longrun spawned, and without a notification-fd: its readiness is the loop's
    to read): services.d may go."""
    assert head.plan is not None
    return all(_is_up(head, name) for name in head.plan.first)


def child_environment(settings: Settings, layout: Layout, metrics_dir: str, logger: Logger) -> ChildEnvironment:
    """What everything pyinit starts gets, as s6-overlay gives it (childenv), and the container
    environment directory written again from the same: init.py wrote it from pyinit's own
    os.environ, which holds Python's LC_CTYPE and pyinit's PYS6_METRICS_DIR, neither of them
    the container's. Nothing has read it yet: no script has run."""
    serves_metrics = settings.metrics_listen is not None or bool(settings.metrics_file)
    container = container_environment(os.environb, metrics_dir, serves_metrics, exec_environment())
    try:
        write_environment(layout.container_environment, container)
    except OSError as exc:  # it was just written: the same write failing now is no reason to stop the boot
        logger.error("container environment not rewritten; with-contenv may see pyinit's own variables",
                     directory=layout.container_environment, reason=exc.strerror)
    return ChildEnvironment(settings.keep_env, container)


def say_starting(settings: Settings, layout: Layout, rundir: str, is_pid1: bool, logger: Logger) -> None:
    """What the loop says before stage 2 (root.run_pid1), and stage 2's first words (stages)."""
    for problem in layout.problems:
        logger.warning(problem)
    mode = "pid1" if is_pid1 else "subreaper"
    logger.info("starting", pid=os.getpid(), mode=mode, etc=settings.etc, rundir=rundir)
    fixattrs.report_unhandled_trees(settings.etc, logger)


def read_plan(settings: Settings, logger: Logger) -> s6rc.Plan:
    """rc.init compiles the s6-rc source before anything runs (a cont-init script that writes
    s6-rc.d changes nothing): read it before any script starts, and say it."""
    the_plan = load_plan(settings)
    say_plan(the_plan, logger)
    return the_plan


def load_plan(settings: Settings) -> s6rc.Plan:
    base = settings.dirs("s6-overlay")
    source = os.path.join(base, "s6-rc.d")
    bundles = [settings.runtime_bundledir or os.path.join(base, "user-bundles.d")]
    return s6rc.plan(s6rc.load(source, bundles))


def say_plan(the_plan: s6rc.Plan, logger: Logger) -> None:
    for problem in the_plan.problems:
        logger.error("s6-rc service definition problem", problem=problem)
    if the_plan.first or the_plan.second:
        logger.info("s6-rc services", user=" ".join(the_plan.first), user2=" ".join(the_plan.second))


def everything_waits_for_cont_init(the_plan: s6rc.Plan) -> bool:
    """Whether every s6-rc service of the plan needs cont-init.d to be done first (through base,
    legacy-cont-init or legacy-services, directly or through another service): else one starts
    beside cont-init.d, or before it (one that needs only fix-attrs), and the loop does it all."""
    known: dict[str, bool] = {}

    def waits(name: str, seen: frozenset[str]) -> bool:
        if name not in known:
            needs = the_plan.needs.get(name, ())
            known[name] = any(need in WAITS_FOR_CONT_INIT or (need not in seen and need in the_plan.definitions
                                                              and waits(need, seen | {need})) for need in needs)
        return known[name]

    try:
        return all(waits(name, frozenset({name})) for name in (*the_plan.first, *the_plan.second))
    except RecursionError:  # a chain the plan itself just fitted in (it refuses deeper ones): the loop's case
        return False


def first_script(directory: str) -> tuple[str, list[bytes]] | None:
    """cont-init.d's first entry in run_scripts' order, when it is a script the loop would run
    without a word first, and the directory's listing; None otherwise (none, unreadable, or a
    skipped entry comes first)."""
    try:
        names = sorted(os.listdir(os.fsencode(directory)))
    except OSError:
        return None
    name = next_script(directory, names)
    return None if name is None else (name, names)


def place(env: dict[bytes, bytes], path: str, rc_name: str | None, shell: bool,
          oneshot_directory: str | None) -> str:
    """Where a script runs, `env` completed for it (container.scripts runs every script so): run as
    s6-rc runs oneshots (`rc_name`), in the oneshot runner's directory with RC_NAME, plus, from
    s6-overlay's /bin/sh loop (`shell`, cont-init.d and cont-finish.d), the PWD that shell exports
    (OSError: that directory cannot be resolved); else in its own directory."""
    cwd = os.path.dirname(path)
    if rc_name is None:
        return cwd
    if oneshot_directory is not None and os.path.isdir(oneshot_directory):
        cwd = oneshot_directory
    env[b"RC_NAME"] = os.fsencode(rc_name)
    if shell:
        env[b"PWD"] = shell_pwd(env.get(b"PWD"), os.fsencode(cwd))
    return cwd


def start_script(settings: Settings, layout: Layout, environment: ChildEnvironment, name: str, names: list[bytes],
                 stage_started: float, logger: Logger | None) -> EarlyScript | None:
    """Start cont-init.d/`name` as container.scripts.Scripts.run_script would (its place, its
    pipes, its session); None when it cannot start (the loop then tries it and says why)."""
    path = os.path.join(settings.dirs("cont-init.d"), name)
    env = environment()
    try:
        cwd = place(env, path, LEGACY_CONT_INIT, True, layout.oneshot_runner)
    except OSError:
        return None
    return _start("cont-init.d", names, [path], cwd, env, False, f"cont-init.d/{name}", settings, stage_started,
                  logger)


# What an s6-rc service of the plan may need of s6-overlay's own: s6-rc's runner and fd holder are
# there from the start and fix-attrs.d is applied before any service starts here; base (and
# legacy-cont-init) once cont-init.d has run to success (HeadStart.base_done); legacy-services
# (services.d) is never up before the loop.
UP_FROM_THE_START = frozenset({"fix-attrs", "s6rc-oneshot-runner", "s6rc-fdholder"})
UP_WITH_BASE = frozenset({"base", LEGACY_CONT_INIT})


def _is_up(head: HeadStart, need: str) -> bool:
    """Whether `need` is up as far as the start path knows: s6-overlay's own (see above), a longrun
    it spawned (but one whose readiness s6-rc would wait for), a oneshot it ran to success; a name the plan
    does not define is passed over, as rcrun passes it over."""
    assert head.plan is not None
    if need in UP_FROM_THE_START:
        return True
    if need in head.rc_specs:  # s6-rc waits for a notification-fd's readiness: the loop reads it
        return head.rc_specs[need].notification_fd is None
    if need in UP_WITH_BASE:
        return head.base_done
    if need == s6rc.AFTER_SERVICES:
        return False
    return head.oneshots_done.get(need, need not in head.plan.definitions)


def start_ready_rc(head: HeadStart, settings: Settings, layout: Layout, logger: Logger | None) -> None:
    """The s6-rc user bundle's services whose every dependency is done (stage 2's own, or a oneshot
    the start path ran to success), started as the loop's rcrun would start them, in the plan's
    order: a oneshot as a script, a longrun compiled and, where nothing must be watched from its
    first moment (core/prestart), spawned with its pipeline's pipe; the loop adopts each (its
    pipes, its exit, its result). `logger` says each oneshot's start (the first ones, before any
    output); None: the loop says it, with its time, in order."""
    from ..s6.rcsource import CommandLineError, command_line, find_execlineb

    plan = head.plan
    assert plan is not None
    execlineb = find_execlineb()
    done = len(head.oneshots_done)
    for name in (*plan.first, *plan.second):  # user2's too: each once what it needs is up, as rcrun
        definition = plan.definitions[name]
        if name in head.oneshots_done or name in head.rc_specs or name in head.passed or any(
                script.kind == "oneshot" and script.name == name for script in head.scripts):
            continue
        if not all(_is_up(head, need) for need in plan.needs.get(name, ())):
            continue
        if definition.type == "longrun":
            if not start_longrun(head, settings, layout, name):
                head.left = True
                head.passed.add(name)  # compiled again by the loop, once
            continue
        if definition.type != "oneshot":
            continue
        try:
            argv = command_line(definition.up, name, execlineb)
        except CommandLineError:
            head.left = True
            head.passed.add(name)
            continue  # the loop says why it cannot run
        if not argv:  # nothing to run (comments only): done, as execlineb's empty program, by the loop too
            head.oneshots_done[name] = True
            continue
        path = os.path.join(definition.directory, "up")
        env = head.environment()
        cwd = place(env, path, name, False, layout.oneshot_runner)
        started_at = time.time()
        script = _start("oneshot", [], argv, cwd, env, True, name, settings, time.monotonic(), None)
        if script is None:
            head.left = True
            head.passed.add(name)
            continue  # no pipe could be made: the loop starts it, and says why if it fails again
        if logger is not None:  # once started: the loop says it when it starts it instead
            logger.info("s6-rc oneshot starting", service=name)
        script.name, script.said, script.started_at = name, logger is not None, started_at
        head.scripts.append(script)
    if len(head.oneshots_done) > done:  # one with nothing to run let others go
        start_ready_rc(head, settings, layout, logger)
    elif head.services is None and head.base_done and user_bundle_up(head):
        start_services_early(head, settings, layout, logger)


def start_hook(settings: Settings, environment: ChildEnvironment) -> EarlyScript | None:
    """Start S6_STAGE2_HOOK as Stages._stage2_hook would (`/bin/sh -c HOOK` from $PYS6_ETC, the
    children's environment, nothing said first); None when it cannot start."""
    return _start("hook", [], ["/bin/sh", "-c", settings.stage2_hook], settings.etc, environment(), True, "",
                  settings, time.monotonic(), None)


def _start(kind: str, names: list[bytes], argv: list[str], cwd: str, env: dict[bytes, bytes], search_path: bool,
           source: str, settings: Settings, stage_started: float, logger: Logger | None) -> EarlyScript | None:
    """spawn `argv`, its stdout and stderr in pipes (raw: PID 1's own), as spawn_child would; `logger`
    says "script starting" for `source` first."""
    made: list[int] = []
    started = time.monotonic()
    try:
        if settings.log_prefix:
            for _ in (1, 2):
                made.extend(os.pipe())
            out, err = made[1], made[3]
        else:
            out, err = 1, 2  # raw (PYS6_LOG_PREFIX=0, no catch-all log): PID 1's own, as DirectOutput
            # the child writes there at once: what pyinit said so far must be there first
            events.configure(settings.log_format, settings.verbosity, timestamps=settings.log_timestamps)
        if logger is not None:
            logger.info("script starting", script=source)
        started = time.monotonic()
        pid = spawn(argv, cwd=cwd, stdout=out, stderr=err, env=env, search_path=search_path,
                    new_session=settings.group_signals)
    except OSError as exc:
        for fd in made:
            os.close(fd)
        if not made and settings.log_prefix:
            return None  # no pipe could be made: nothing was said, the loop tries it again and says why
        # it could not be executed (the exec's error, as spawn_child's): the loop says so, once
        return EarlyScript(kind, names, -1, None, stage_started, started, error=exc)
    fds = None
    if made:
        os.close(made[1])
        os.close(made[3])
        fds = (made[0], made[2])
    return EarlyScript(kind, names, pid, fds, stage_started, started)


def head_start(settings: Settings, layout: Layout, rundir: str, is_pid1: bool, metrics_dir: str,
               has_metrics_listener: bool, logger: Logger) -> HeadStart:
    """Everything the loop would do first, as far as it can be done here (see the module's doc)."""
    head = HeadStart(child_environment(settings, layout, metrics_dir, logger))
    if settings.logging >= 1 or has_metrics_listener or settings.metrics_file:
        return head  # the loop says or starts something of its own before "starting"
    say_starting(settings, layout, rundir, is_pid1, logger)
    head.said_starting = True
    if settings.stage2_hook:  # the hook runs before the s6-rc plan is read: that is all to start here
        hook = start_hook(settings, head.environment)
        if hook is not None:
            head.scripts.append(hook)
        return head
    head.plan = read_plan(settings, logger)
    if head.plan.problems:
        return head
    # cont-init.d with nothing to run (as in LinuxServer's images): base is done once fix-attrs.d is,
    # and the first of stage 2 is the s6-rc user bundle's oneshots (services.d, when it has none)
    nothing_before = runs_nothing(settings.dirs("cont-init.d"))
    if not everything_waits_for_cont_init(head.plan) and not settings.log_prefix:
        return head  # a service starts beside cont-init.d's scripts: with raw output, the loop does it all
    head.fix_failures = fixattrs.apply_fix_attrs(settings.dirs("fix-attrs.d"), settings.fix_attrs_hidden, logger)
    first = first_script(settings.dirs("cont-init.d"))  # after fix-attrs, as the loop lists it
    if head.fix_failures:
        return head
    head.walk = settings.log_prefix and (first is not None or nothing_before)
    if first is not None:
        script = start_script(settings, layout, head.environment, *first, time.monotonic(), logger)
        if script is not None:
            script.name = first[0]
            head.scripts.append(script)
        else:
            head.left = True  # the loop tries it, and says why
    else:
        head.base_done = nothing_before
    if head.walk and not head.plan.first and not head.plan.second and head.base_done:
        _carefully(head, lambda: start_services_early(head, settings, layout, logger))
    elif head.walk:  # those that need nothing cont-init.d does beside it
        _carefully(head, lambda: start_ready_rc(head, settings, layout, logger))
    return head


def carry_on(head: HeadStart, settings: Settings, layout: Layout, stopping: bool) -> None:
    """Until the loop takes over, each time a script started here exits: reap it (its
    pid only) and start what comes next, as the loop would: after the hook, the plan; cont-init.d's
    next script; the s6-rc services each once what it needs is up; services.d once the user bundle
    is. Nothing is said here: the loop says each start and end in order, after the lines of the
    one before (drained from its pipes), with the times they happened. Not with raw output (it
    would come before those words), nor once a stop signal is pending, nor past an entry the loop
    would skip with a word."""
    _carefully(head, lambda: _carry_on(head, settings, layout, stopping))


def _carefully(head: HeadStart, work: Callable[[], None]) -> None:
    """`work`, unless an earlier one failed; what it raises is said and ends the head start, never
    the boot: the loop adopts what was started and does what is left, as without a head start."""
    if head.stuck:
        return
    try:
        work()
    except Exception:  # noqa: BLE001 (see above)
        import traceback

        head.stuck = True
        events.get().error("the start path cannot carry on, the loop does the rest", traceback=traceback.format_exc())


def _carry_on(head: HeadStart, settings: Settings, layout: Layout, stopping: bool) -> None:
    hook = head.scripts[0] if head.scripts and head.scripts[0].kind == "hook" else None
    if hook is not None and hook.error is None and hook.result is None:
        result = reap_own(hook.pid)
        if result is not None:
            hook.result, hook.ended, hook.ended_at = result, time.monotonic(), time.time()
            if not stopping and result == (0, None):
                after_the_hook(head, settings, layout)
        return
    _carry_on_cont_init(head, settings, layout, stopping)
    carry_on_oneshots(head, settings, layout, stopping)


def _carry_on_cont_init(head: HeadStart, settings: Settings, layout: Layout, stopping: bool) -> None:
    last = next((script for script in reversed(head.scripts) if script.kind == "cont-init.d"), None)
    if last is None or last.error is not None or last.result is not None:
        return
    result = reap_own(last.pid)
    if result is None:
        return
    last.result, last.ended, last.ended_at = result, time.monotonic(), time.time()
    if stopping or not settings.log_prefix:
        return
    directory = settings.dirs("cont-init.d")
    following = last.names[last.names.index(os.fsencode(last.name)) + 1:]
    name = next_script(directory, following)
    if name is None:
        # base is up (all ran, each to success): what needs only it may start
        head.base_done = _only_skipped(directory, following) and all(
            script.result == (0, None) for script in head.scripts if script.kind == "cont-init.d")
        head.left = head.left or not head.base_done
        return
    started_at = time.time()
    script = start_script(settings, layout, head.environment, name, last.names, last.stage_started, None)
    if script is not None:
        script.name, script.said, script.started_at = name, False, started_at
        head.scripts.append(script)
    else:
        head.left = True  # the loop tries it, and says why


def _only_skipped(directory: str, names: list[bytes]) -> bool:
    """Whether run_scripts would pass over every one of `names` without a word (hidden, a directory)."""
    return all(raw.startswith(b".") or os.path.isdir(os.path.join(os.fsencode(directory), raw)) for raw in names)


def needs_the_loop(head: HeadStart) -> bool:
    """Whether the loop has work the start path will not do: something ready it left (a longrun
    watched from its first moment, a oneshot needing execline, a script it cannot run), a script
    that failed or could not be executed (the loop decides what follows), or a failed carry-on.
    Until then, the start path may carry on past the loop's imports (init._import_the_loop). Also
    a service started here with half a pipe of output unread: only the loop reads it, and a
    service whose pipe is full waits in its write (looked at each time the start path wakes)."""
    return head.stuck or head.left or any(
        script.error is not None or (script.result is not None and script.result != (0, None))
        for script in head.scripts) or any(
        _unread(fd) >= OUTPUT_WAITING for started in head.prestarted.values()
        for fd in (started.stdout[0], started.stderr[0]))


OUTPUT_WAITING = 32 * 1024  # bytes unread in a service's pipe (of 64 KiB) that call the loop in


def _unread(fd: int) -> int:
    """The bytes `fd`'s pipe holds unread (FIONREAD); 0 when it cannot say."""
    try:
        return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, bytes(4)), sys.byteorder)
    except OSError:
        return 0


def prestarted_pids(head: HeadStart) -> list[int]:
    """The services the start path started: their runners, in the loop, respawn one that exits."""
    return [started.pid for started in head.prestarted.values()]


def running_pids(head: HeadStart) -> list[int]:
    """The scripts the start path started that it has not seen exit: what carry_on waits for."""
    return [script.pid for script in head.scripts if script.result is None and script.error is None and script.pid > 0]


def next_script(directory: str, names: list[bytes]) -> str | None:
    """The first of `names` run_scripts would run, when it runs it without a word first (see first_script)."""
    for raw in names:
        name = os.fsdecode(raw)
        if name.startswith("."):
            continue
        path = os.path.join(directory, name)
        try:
            info = os.stat(path)
        except OSError:
            return None  # the loop warns of it: leave the rest of the stage to the loop
        if stat.S_ISDIR(info.st_mode):
            continue
        return name if stat.S_ISREG(info.st_mode) and os.access(path, os.X_OK) else None
    return None


def carry_on_oneshots(head: HeadStart, settings: Settings, layout: Layout, stopping: bool) -> None:
    """Between two of the loop's imports: each s6-rc oneshot started here that has exited, reaped
    (its pid only) and its result kept; then those it let go started (none once a stop is pending).
    Nothing is said here: the loop says each end and each later start, in order, with its time."""
    from ..base.terms import death_code

    for script in head.scripts:
        if script.kind != "oneshot" or script.error is not None or script.result is not None:
            continue
        result = reap_own(script.pid)
        if result is not None:
            script.result, script.ended, script.ended_at = result, time.monotonic(), time.time()
            head.oneshots_done[script.name] = death_code(*result) == 0
    if not stopping and head.walk:
        start_ready_rc(head, settings, layout, None)


def start_longrun(head: HeadStart, settings: Settings, layout: Layout, name: str) -> bool:
    """An s6-rc longrun compiled (s6-rc-compile's copy) and, if it can be, started as rcrun and its
    runner would (a pipeline's pipe made here, the table's from then on); the loop adopts both.
    False: something of it left to the loop: its start (a health check to run from its first
    moment, or something failed: the loop says it), or its readiness to read."""
    from ..core.prestart import can_prestart
    from ..core.servicedir import read_service
    from ..s6.rcsource import USER_SUFFIX, compile_longrun

    assert head.plan is not None
    definition = head.plan.definitions[name]
    pipelined = bool(definition.producer_for or definition.consumer_for)
    compiled = os.path.join(layout.rc_compiled, name)
    try:
        compile_longrun(definition.directory, compiled, pipelined)
    except OSError:
        return False  # the loop compiles it again, and says why it cannot
    spec = read_service(compiled, settings)
    if pipelined:
        spec = replace(spec, script_suffix=USER_SUFFIX)
    if not can_prestart(spec):
        return False
    stdout_to = stdin_from = None
    try:
        if definition.producer_for:
            stdout_to = _logger_pipe(head, name, definition.producer_for)[1]
        if definition.consumer_for:
            stdin_from = _logger_pipe(head, definition.consumer_for, name)[0]
    except OSError:
        return False
    if not _prestart(head, layout, spec, stdout_to, stdin_from):
        return False
    head.rc_specs[name] = spec
    return spec.notification_fd is None


def _prestart(head: HeadStart, layout: Layout, spec: ServiceSpec, stdout_to: int | None = None,
              stdin_from: int | None = None) -> bool:
    """`spec` started as its runner would start it (core/prestart); False: left to its runner. With a
    notification-fd, its s6 directory is made first, as s6-supervise makes it (the bridge adopts
    it): s6-notifyoncheck, which such a service runs, refuses to start without it. The others'
    are made by the bridge once the loop adopts them: five entries a service (some 0.4 ms on
    ext4) before every spawn put 100 services' start at 1.2x s6's in the anchor bench."""
    from ..core.prestart import prestart, room_after

    if spec.name in head.prestarted:
        return False  # services.d's and s6-rc's of one name: the loop refuses the second, and says so
    if spec.notification_fd is not None and spec.name not in head.supervise_dirs:
        _make_supervise_dir(head, layout, spec)
    directory = head.supervise_dirs.get(spec.name)
    if directory is not None and not room_after(directory.control_fd):
        del head.supervise_dirs[spec.name]
        directory.close()
        return False
    started = prestart(spec, head.environment(), stdout_to, stdin_from)
    if started is None:
        if directory is not None:  # its runner starts it from a fresh copy: the bridge makes its own
            del head.supervise_dirs[spec.name]
            directory.close()
        return False
    head.prestarted[spec.name] = started
    return True


def _make_supervise_dir(head: HeadStart, layout: Layout, spec: ServiceSpec) -> None:
    from ..s6.supervisedir import make_supervise_dir

    try:
        head.supervise_dirs[spec.name] = make_supervise_dir(spec, layout)
    except OSError:
        pass  # the bridge tries again, and says why


def _logger_pipe(head: HeadStart, producer: str, logger: str) -> tuple[int, int]:
    """The pipe from `producer`'s stdout to `logger`'s stdin, as the service table makes it once
    (core/services.logger_pipe), which takes it over."""
    if producer not in head.logger_pipes:
        read_end, write_end = os.pipe()
        head.logger_pipes[producer] = (logger, read_end, write_end)
    _logger, read_end, write_end = head.logger_pipes[producer]
    return read_end, write_end


def after_the_hook(head: HeadStart, settings: Settings, layout: Layout) -> None:
    """S6_STAGE2_HOOK has exited 0 (LinuxServer's /docker-mods): what the loop would do next, done
    between its imports as head_start would do it, nothing said (the hook's lines are not yet
    read): the s6-rc plan read (the hook may have added to it) and fix-attrs.d applied, their words
    kept for the loop to say after the hook's, and the first s6-rc services started, when
    cont-init.d has nothing to run."""
    head.unsaid = Recorder()
    head.plan = load_plan(settings)
    say_plan(head.plan, head.unsaid.as_logger())
    if (head.plan.problems or not (head.plan.first or head.plan.second) or not settings.log_prefix
            or not runs_nothing(settings.dirs("cont-init.d"))):
        return
    head.fix_failures = fixattrs.apply_fix_attrs(settings.dirs("fix-attrs.d"), settings.fix_attrs_hidden,
                                                 head.unsaid.as_logger())
    if not head.fix_failures:
        head.walk = head.base_done = True
        start_ready_rc(head, settings, layout, None)
