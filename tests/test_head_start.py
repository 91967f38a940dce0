"""pyinit's head start (container/early): stage 2's first script started before anyio, asyncio and
structlog are loaded, and adopted by the loop: its output prefixed and in order, its exit read by
the one reaper, its events rendered by structlog with the time they were logged."""

from __future__ import annotations

import calendar
import os
import signal
import subprocess
import sys
import time

from harness import REPO, Pod, wait_for

HEAVY = {"anyio", "asyncio", "structlog", "yaml", "psutil", "supervisor.root", "supervisor.container.stages"}
# The standard library's costlier modules: together some 18 ms of a 60 ms path to the first script.
COSTLY = {"re", "typing", "dataclasses", "inspect", "json", "shutil", "threading", "logging", "enum", "signal", "socket",
          "collections"}


def test_the_start_path_loads_nothing_heavy():
    """What init.py needs before it starts the first script, and nothing of the loop."""
    code = ("import sys; before = set(sys.modules); import supervisor.init, supervisor.base.cli, supervisor.base.paths, supervisor.core.settings, "
            "supervisor.logs.events, supervisor.s6.layout, supervisor.control.binding, supervisor.proc.signals, "
            "supervisor.container.early; print(' '.join(sorted(set(sys.modules) - before)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO),
                                check=True).stdout.split())
    assert "supervisor.container.early" in loaded
    assert not {name for name in loaded if name.split(".")[0] in HEAVY or name in HEAVY}
    assert not loaded & COSTLY


def _seconds(stamp: str) -> float:
    """The events' time=2026-12-07T19:57:09.123Z as seconds since the epoch."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + int(fraction or 0) / 1000


def test_the_first_script_is_adopted_its_output_prefixed_and_its_exit_read(pod: Pod):
    pod.script("cont-init.d/10-first", """
        date +%s.%N > "$STATE/first-started"
        echo "out of first"
        echo "err of first" >&2
        exit 3
    """)
    pod.script("cont-init.d/20-second", 'echo "second ran" > "$STATE/second"\n')
    pod.service("svc", 'echo up > "$STATE/svc"; exec sleep 60\n')
    pod.start(env={"S6_VERBOSITY": "3"})
    wait_for(lambda: pod.read_state("svc"), what="the service")
    pod.wait_event("services started")
    assert "[cont-init.d/10-first] out of first" in pod.stdout()
    assert "[cont-init.d/10-first] err of first" in pod.stderr()
    assert pod.event("script failed", script="cont-init.d/10-first", exitcode=3) is not None
    assert pod.read_state("second") == "second ran\n"
    names = [e.event for e in pod.events() if e.event in ("starting", "script starting", "script failed",
                                                         "script done")]
    assert names == ["starting", "script starting", "script failed", "script starting", "script done"]
    # its exit went to the script's watcher, not to the orphans': one reaper, watching it from the start
    assert not [e for e in pod.events("orphan reaped")]
    # logged before structlog was loaded, rendered by it later, with the time it was logged
    said = pod.event("script starting", script="cont-init.d/10-first")
    assert said is not None
    assert _seconds(said["time"]) <= float(pod.read_state("first-started")) + 0.001
    assert pod.stop() == 0


def test_the_scripts_are_those_listed_before_the_first_ran(pod: Pod):
    """s6-overlay's loop expands cont-init.d/* once: a script the first one adds does not run."""
    pod.script("cont-init.d/10-first", """
        printf '#!/bin/sh\\necho ran > "$STATE/added"\\n' > "$0-added"
        chmod +x "$0-added"
    """)
    pod.service("svc", 'echo up > "$STATE/svc"; exec sleep 60\n')
    pod.start()
    wait_for(lambda: pod.read_state("svc"), what="the service")
    assert (pod.etc / "cont-init.d" / "10-first-added").exists()
    assert pod.read_state("added") == ""
    assert pod.stop() == 0


def test_sigterm_while_the_first_script_runs_stops_it_and_the_boot(pod: Pod):
    pod.script("cont-init.d/10-slow", 'echo $$ > "$STATE/slow"; exec sleep 60\n')
    pod.script("cont-init.d/20-never", 'echo ran > "$STATE/never"\n')
    pod.service("svc", 'echo up > "$STATE/svc"; exec sleep 60\n')
    pod.start()
    wait_for(lambda: pod.read_state("slow"), what="the first script")
    pod.signal(signal.SIGTERM)
    assert pod.wait_exit(15) == 0
    assert pod.read_state("never") == "" and pod.read_state("svc") == ""
    assert pod.event("shutting down", reason="received SIGTERM") is not None


def test_the_stage2_hook_is_started_early_and_its_code_stops_the_container_at_2(pod: Pod):
    pod.script("cont-init.d/10-after-hook", 'echo ran > "$STATE/cont-init"\n')
    pod.start(env={"S6_STAGE2_HOOK": 'echo "hook says hi"; exit 7', "S6_BEHAVIOUR_IF_STAGE2_FAILS": "2"})
    assert pod.wait_exit(15) == 7
    assert "[S6_STAGE2_HOOK] hook says hi" in pod.stdout()
    assert pod.read_state("cont-init") == ""
    assert pod.event("stage 2 hook failed, stopping the container", exitcode=7) is not None


def test_raw_output_comes_after_what_pyinit_said_before(pod: Pod):
    """PYS6_LOG_PREFIX=0: the first script writes to PID 1's own stderr at once, after "script starting"."""
    pod.script("cont-init.d/10-raw", 'echo "raw line" >&2\n')
    pod.service("svc", 'echo up > "$STATE/svc"; exec sleep 60\n')
    pod.start(env={"PYS6_LOG_PREFIX": "0"})
    wait_for(lambda: pod.read_state("svc"), what="the service")
    lines = pod.stderr().splitlines()
    said = next(i for i, line in enumerate(lines) if line.startswith("[pyinit] script starting"))
    assert lines.index("raw line") > said
    assert pod.stop() == 0


def test_a_first_script_that_cannot_be_executed_is_said_once(pod: Pod):
    pod.script("cont-init.d/10-bad", "#!/nonexistent/interpreter\necho never\n")
    pod.script("cont-init.d/20-good", 'echo ran > "$STATE/good"\n')
    pod.service("svc", 'echo up > "$STATE/svc"; exec sleep 60\n')
    pod.start()
    wait_for(lambda: pod.read_state("svc"), what="the service")
    assert len(pod.events("script starting", script="cont-init.d/10-bad")) == 1
    assert len(pod.events("script could not start", script="cont-init.d/10-bad")) == 1
    assert pod.read_state("good") == "ran\n"
    assert pod.stop() == 0


def test_fix_attrs_is_applied_before_the_first_script_sees_the_file(pod: Pod):
    target = pod.root / "fixed"
    target.write_text("x\n")
    target.chmod(0o644)
    (pod.etc / "fix-attrs.d").mkdir()
    (pod.etc / "fix-attrs.d" / "01-fixed").write_text(f"{target} false {os.getuid()} 0600 0700\n")
    pod.script("cont-init.d/10-look", f'stat -c %a {target} > "$STATE/mode"\n')
    pod.service("svc", 'echo up > "$STATE/svc"; exec sleep 60\n')
    pod.start()
    wait_for(lambda: pod.read_state("svc"), what="the service")
    assert pod.read_state("mode") == "600\n"
    assert pod.stop() == 0



def test_the_scripts_after_the_first_run_while_pyinit_imports_and_are_said_in_order(pod: Pod):
    """Each one's lines, then its end, then the next one's start, with the times they happened."""
    for name in ("10-a", "20-b", "30-c"):
        pod.script(f"cont-init.d/{name}", f"""
            date +%s.%N > "$STATE/{name}"
            echo "line of {name}" >&2
        """)
    pod.service("svc", 'echo up > "$STATE/svc"; exec sleep 60\n')
    pod.start()
    wait_for(lambda: pod.read_state("svc"), what="the service")
    pod.wait_event("services started")
    lines = pod.stderr().splitlines()
    order = [line.split(" time=")[0] for line in lines
             if "cont-init.d/" in line and (line.startswith("[pyinit] script") or line.startswith("[cont-init.d/"))]
    expected = []
    for name in ("10-a", "20-b", "30-c"):
        expected += [f"[pyinit] script starting script=cont-init.d/{name}", f"[cont-init.d/{name}] line of {name}",
                     f"[pyinit] script done script=cont-init.d/{name}"]
    assert order == expected
    for name in ("10-a", "20-b", "30-c"):
        said = pod.event("script starting", script=f"cont-init.d/{name}")
        assert said is not None
        assert _seconds(said["time"]) <= float(pod.read_state(name)) + 0.001, name
    assert pod.stop() == 0


def test_a_script_that_fills_its_pipe_before_the_loop_exists_is_drained_and_loses_nothing(pod: Pod):
    """Four pipes' worth from the first script, more than its pipe holds before anything reads it:
    it blocks until the start path, after IDLE_MS, starts the imports and the loop drains it."""
    pod.script("cont-init.d/10-chatty", 'seq -f "chatty %.0f" 1 40000\n')
    pod.script("cont-init.d/20-next", 'echo "next ran" > "$STATE/next"\n')
    pod.service("svc", 'echo up > "$STATE/svc"; exec sleep 60\n')
    pod.start()
    wait_for(lambda: pod.read_state("svc"), 30, "the service")
    assert pod.read_state("next") == "next ran\n"
    wait_for(lambda: pod.stdout().count("[cont-init.d/10-chatty] chatty") >= 40000, 30, "every line")
    lines = [line for line in pod.stdout().splitlines() if line.startswith("[cont-init.d/10-chatty] ")]
    assert lines == [f"[cont-init.d/10-chatty] chatty {i}" for i in range(1, 40001)]
    assert pod.stop() == 0


def test_a_dependency_chain_too_deep_to_follow_leaves_the_start_to_the_loop():
    """A chain of s6-rc services deeper than Python's recursion: no head start, never a RecursionError."""
    from supervisor.container.early import everything_waits_for_cont_init
    from supervisor.s6.rcplan import Plan

    depth = sys.getrecursionlimit() * 2
    names = [f"s{i}" for i in range(depth)]
    needs = {name: (names[i + 1],) for i, name in enumerate(names[:-1])}
    needs[names[-1]] = ("base",)
    definitions = dict.fromkeys(names, None)
    plan = Plan(tuple(names), (), definitions, needs)  # type: ignore[arg-type]
    assert everything_waits_for_cont_init(plan) is False


HEAD_START = """
import json, os, signal, sys
from supervisor.base import paths
from supervisor.container import early
from supervisor.core.settings import load_settings
from supervisor.logs import events
from supervisor.s6 import layout as s6layout

settings = load_settings(os.environ)
events.configure_early()
rundir = paths.prepare_rundir(os.environ)
layout = s6layout.prepare(rundir, dict(os.environb), False, False, None)
head = early.head_start(settings, layout, rundir, False, "", False, events.get())
for started in head.prestarted.values():
    os.kill(started.pid, signal.SIGKILL)
    os.waitpid(started.pid, 0)
heavy = sorted(name for name in ("anyio", "asyncio", "structlog") if name in sys.modules)
for script in head.scripts:
    if script.pid > 0:
        os.kill(script.pid, signal.SIGKILL)
        os.waitpid(script.pid, 0)
oneshots = [script.name for script in head.scripts if script.kind == "oneshot"]
print(json.dumps({"prestarted": sorted(head.prestarted), "read": head.services is not None, "heavy": heavy,
                  "oneshots": oneshots}))
"""


def _head_start(pod: Pod, env: dict[str, str] | None = None) -> dict[str, object]:
    import json

    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYS6_ETC": str(pod.etc),
               "PYS6_RUNDIR": str(pod.rundir), "STATE": str(pod.state), "PYTHONPATH": str(REPO), **(env or {})}
    result = subprocess.run([sys.executable, "-c", HEAD_START], env=environ, capture_output=True, text=True,
                            timeout=60, check=True, cwd="/")
    found: dict[str, object] = json.loads(result.stdout)
    return found


def test_services_d_alone_is_started_by_the_start_path_before_anything_heavy(pod: Pod):
    """No cont-init script and no s6-rc user service: nothing comes before services.d, so the start
    path starts it, before anyio, asyncio or structlog exist, with its readiness pipe if it has one;
    what a runner must do from the first moment (a logger of its own, a down file) is left to the loop."""
    pod.service("plain", "exec sleep 60\n")
    pod.service("notified", "exec sleep 60\n", notification_fd="3\n")
    pod.service("downed", "exec sleep 60\n", down="")
    pod.service("logged", "exec sleep 60\n")
    pod.script("services.d/logged/log/run", "exec cat\n")
    assert _head_start(pod) == {"prestarted": ["notified", "plain"], "read": True, "heavy": [], "oneshots": []}
    # a cont-init script comes first: the loop starts services.d once it is done
    pod.script("cont-init.d/10-first", "true\n")
    assert _head_start(pod) == {"prestarted": [], "read": False, "heavy": [], "oneshots": []}
    (pod.etc / "cont-init.d" / "10-first").unlink()
    (pod.etc / "cont-init.d" / "README").write_text("not a script: the loop warns of it, first\n")
    assert _head_start(pod)["prestarted"] == []


def test_a_service_started_before_the_loop_is_adopted_its_exit_and_output_kept(pod: Pod):
    pod.service("quick", 'echo "$$" >> "$STATE/quick"; echo "quick out"; echo "quick err" >&2; exit 3\n')
    pod.service("stay", 'echo "$$" > "$STATE/stay"; echo "stay out"; exec sleep 60\n')
    pod.start()
    wait_for(lambda: len(pod.read_state("quick").split()) >= 2, what="quick's respawn")
    wait_for(lambda: pod.read_state("stay"), what="stay")
    quick_pids = [int(pid) for pid in pod.read_state("quick").split()]
    died = pod.wait_event("service died", service="quick")
    assert died["exitcode"] == "3"
    # its exit reached its runner, not the orphans'
    assert not [e for e in pod.events("orphan reaped") if int(e["pid"]) in quick_pids]
    assert "[quick] quick out" in pod.stdout() and "[quick] quick err" in pod.stderr()
    assert "[stay] stay out" in pod.stdout()
    pod.wait_control()
    shown = pod.cli("svstat", "-o", "up,pid", "stay")
    assert shown.stdout.split() == ["true", pod.read_state("stay").strip()]
    assert pod.stop() == 0


def _rc(pod: Pod, name: str, kind: str, needs: tuple[str, ...] = (), **files: str) -> None:
    directory = pod.etc / "s6-overlay" / "s6-rc.d" / name
    (directory / "dependencies.d").mkdir(parents=True)
    (directory / "type").write_text(kind + "\n")
    for need in needs:
        (directory / "dependencies.d" / need).write_text("")
    for filename, text in files.items():
        (directory / filename.replace("_", "-")).write_text(text)
        if filename in ("run", "script"):
            (directory / filename).chmod(0o755)
    contents = pod.etc / "s6-overlay" / "s6-rc.d" / "user" / "contents.d"
    contents.mkdir(parents=True, exist_ok=True)
    (pod.etc / "s6-overlay" / "s6-rc.d" / "user" / "type").write_text("bundle\n")
    (contents / name).write_text("")


def _oneshot(pod: Pod, name: str, body: str, needs: tuple[str, ...] = ("base",)) -> None:
    script = pod.script(f"s6-overlay/scripts/{name}", body)
    _rc(pod, name, "oneshot", needs, up=f"{script}\n")


def test_readiness_written_before_the_loop_is_read_by_the_runner_that_adopts_the_service(pod: Pod):
    """A service the start path started with its notification-fd pipe says it is ready at once,
    long before the loop exists: the line waits in the pipe, and its runner reads it."""
    pod.service("notified", 'echo "$$" > "$STATE/notified"; echo >&3; exec sleep 60\n', notification_fd="3\n")
    pod.start()
    wait_for(lambda: pod.read_state("notified"), what="notified")
    pod.wait_event("service ready", service="notified")
    pod.wait_control()
    shown = pod.cli("svstat", "-o", "up,ready,pid", "notified")
    assert shown.stdout.split() == ["true", "true", pod.read_state("notified").strip()]
    assert pod.stop() == 0


def test_a_chatty_service_beside_a_chain_of_short_scripts_calls_the_loop_in_to_read_it(pod: Pod):
    """An s6-rc longrun started beside cont-init.d writes more than its pipe holds, while thirty
    short scripts run one after the other (each under IDLE_MS): half a pipe unread calls the loop
    in, which reads it, so the service is not left blocked in its write until the chain ends."""
    _rc(pod, "chatty", "longrun", (), run='#!/bin/sh\nseq -f "chatty %.0f" 1 40000\n'
        'date +%s.%N > "$STATE/chatty-done"\nexec sleep 60\n')
    for i in range(30):
        pod.script(f"cont-init.d/{i:02d}-short", f'sleep 0.04; date +%s.%N > "$STATE/short-{i:02d}"\n')
    pod.start()
    wait_for(lambda: pod.read_state("short-29") and pod.read_state("chatty-done"), 30, "the chain and the service")
    assert float(pod.read_state("chatty-done")) < float(pod.read_state("short-29"))
    wait_for(lambda: pod.stdout().count("[chatty] chatty") >= 40000, 30, "every line")
    assert pod.stop() == 0


def test_the_first_s6_rc_services_are_started_by_the_start_path(pod: Pod):
    """cont-init.d with nothing to run: the oneshots and longruns whose dependencies are done start
    before anything heavy is loaded; what waits for a oneshot still running waits for the loop."""
    _oneshot(pod, "first", "exit 0\n")
    _oneshot(pod, "second", "exit 0\n", needs=("first",))
    _rc(pod, "svc", "longrun", ("base",), run="#!/bin/sh\nexec sleep 60\n")
    _rc(pod, "after", "longrun", ("second",), run="#!/bin/sh\nexec sleep 60\n")
    found = _head_start(pod)
    assert found == {"prestarted": ["svc"], "read": False, "heavy": [], "oneshots": ["first"]}, found
    pod.script("cont-init.d/10-first", "true\n")  # a cont-init script first: the loop does it all
    assert _head_start(pod)["oneshots"] == []


def test_oneshots_started_early_are_adopted_in_order_and_a_failure_holds_its_dependents(pod: Pod):
    _oneshot(pod, "first", 'echo "first says"; echo "$RC_NAME" > "$STATE/first"\n')
    _oneshot(pod, "second", 'echo "second says"; echo ran > "$STATE/second"\n', needs=("first",))
    _oneshot(pod, "bad", 'echo "bad says" >&2; exit 3\n')
    _oneshot(pod, "never", 'echo ran > "$STATE/never"\n', needs=("bad",))
    _rc(pod, "svc", "longrun", ("second",), run='#!/bin/sh\necho "$$" > "$STATE/svc"; exec sleep 60\n')
    pod.start()
    wait_for(lambda: pod.read_state("svc"), what="the longrun after the oneshots")
    pod.wait_event("services.d not started: a service it depends on failed")  # as s6-overlay: bad is in user
    assert pod.read_state("first") == "first\n" and pod.read_state("second") == "ran\n"
    assert pod.read_state("never") == ""
    assert "[first] first says" in pod.stdout() and "[second] second says" in pod.stdout()
    assert "[bad] bad says" in pod.stderr()
    assert pod.event("s6-rc oneshot failed", service="bad", exitcode="3") is not None
    assert pod.event("s6-rc service not started: a dependency failed", service="never") is not None
    said = [(e.event, e.fields.get("service")) for e in pod.events() if e.event.startswith("s6-rc oneshot")]
    assert said.index(("s6-rc oneshot done", "first")) < said.index(("s6-rc oneshot starting", "second"))
    assert said.count(("s6-rc oneshot starting", "first")) == 1
    # every oneshot's exit reached its watcher, none the orphans'
    assert not pod.events("orphan reaped")
    assert pod.stop() == 0


def test_after_the_hook_the_plan_it_changed_is_read_and_its_words_come_after_the_hook(pod: Pod):
    """LinuxServer's /docker-mods may add s6-rc services: the start path reads the plan once the
    hook has exited 0, and what it had to say comes after the hook's lines and its end."""
    _oneshot(pod, "first", 'echo ran > "$STATE/first"\n')
    added = pod.script("s6-overlay/scripts/added", 'echo ran > "$STATE/added"\n')
    rcd = pod.etc / "s6-overlay" / "s6-rc.d"
    hook = (f'echo "hook says"; mkdir -p {rcd}/added/dependencies.d && echo oneshot > {rcd}/added/type && '
            f'touch {rcd}/added/dependencies.d/first && echo {added} > {rcd}/added/up && '
            f'touch {rcd}/user/contents.d/added')
    pod.start(env={"S6_STAGE2_HOOK": hook})
    wait_for(lambda: pod.read_state("added"), what="the oneshot the hook added")
    pod.wait_event("s6-rc oneshot done", service="added")
    assert "[S6_STAGE2_HOOK] hook says" in pod.stdout()
    names = [e.event for e in pod.events()]
    assert names.index("stage 2 hook done") < names.index("s6-rc services") < names.index("s6-rc oneshot starting")
    assert pod.event("s6-rc services")["user"] == "first added"
    assert pod.stop() == 0


def test_cont_init_scripts_and_s6_rc_services_beside_them_each_run_once(pod: Pod):
    """A service that needs nothing starts beside cont-init.d (as under s6-overlay); the start path
    runs both, and the loop adopts each script once, in its place (never a second run)."""
    for name in ("10-first", "20-second", "30-third"):
        pod.script(f"cont-init.d/{name}", f'echo {name} >> "$STATE/ran"\n')
    _oneshot(pod, "beside", 'echo beside >> "$STATE/ran"\n', needs=())
    rcd = pod.etc / "s6-overlay" / "s6-rc.d"
    (rcd / "user" / "contents.d" / "beside").unlink()  # in user2, whose services the loop takes up last
    (rcd / "user2" / "contents.d").mkdir(parents=True)
    (rcd / "user2" / "type").write_text("bundle\n")
    (rcd / "user2" / "contents.d" / "beside").write_text("")
    _oneshot(pod, "after-base", 'echo after-base >> "$STATE/ran"\n', needs=("base",))
    pod.service("svc", 'echo svc >> "$STATE/ran"; exec sleep 60\n')
    pod.start()
    wait_for(lambda: "svc" in pod.read_state("ran"), what="services.d")
    pod.wait_event("services started")
    ran = pod.read_state("ran").split()
    assert sorted(ran) == sorted(["10-first", "20-second", "30-third", "beside", "after-base", "svc"]), ran
    assert ran.index("30-third") < ran.index("after-base") < ran.index("svc")
    assert [e["script"] for e in pod.events("script starting")] == [
        "cont-init.d/10-first", "cont-init.d/20-second", "cont-init.d/30-third"]
    assert pod.stop() == 0


CARRY_ON_FAILS = """
import json, os, sys
from supervisor.base import paths
from supervisor.container import early
from supervisor.core.settings import load_settings
from supervisor.logs import events
from supervisor.s6 import layout as s6layout

def broken(*args, **kwargs):
    raise RuntimeError("planted")

early.start_longrun = broken
settings = load_settings(os.environ)
events.configure_early()
rundir = paths.prepare_rundir(os.environ)
layout = s6layout.prepare(rundir, dict(os.environb), False, False, None)
head = early.head_start(settings, layout, rundir, False, "", False, events.get())
first = head.scripts[0]
os.waitid(os.P_PID, first.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: carry_on reaps it
early.carry_on(head, settings, layout, False)
early.carry_on(head, settings, layout, False)  # a second call does nothing more
print(json.dumps({"first": first.result, "stuck": head.stuck, "prestarted": sorted(head.prestarted),
                  "said": [event for _level, event, _fields, _when in events.get().recorded]}))
"""


def test_what_the_start_path_cannot_do_is_left_to_the_loop_and_never_ends_the_boot(pod: Pod):
    """An unexpected error while the start path carries on is said once and stops the head start;
    the boot goes on: the loop does what is left, as it would without a head start."""
    _oneshot(pod, "first", 'echo ran > "$STATE/first"\n')
    _rc(pod, "svc", "longrun", ("first",), run='#!/bin/sh\necho "$$" > "$STATE/svc"\nexec sleep 60\n')
    import json

    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYS6_ETC": str(pod.etc),
               "PYS6_RUNDIR": str(pod.rundir), "STATE": str(pod.state), "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", CARRY_ON_FAILS], env=environ, capture_output=True, text=True,
                            timeout=60, cwd="/")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["first"] == [0, None] and found["stuck"] is True and found["prestarted"] == []
    assert found["said"].count("the start path cannot carry on, the loop does the rest") == 1
    # and the real boot, where nothing is planted, runs both
    pod.start()
    wait_for(lambda: pod.read_state("svc"), what="the longrun")
    assert pod.read_state("first") == "ran\n"
    assert pod.stop() == 0
