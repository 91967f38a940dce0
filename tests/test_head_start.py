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
COSTLY = {"re", "typing", "dataclasses", "inspect", "json", "shutil", "threading", "logging"}


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
print(json.dumps({"prestarted": sorted(head.prestarted), "read": head.services is not None, "heavy": heavy}))
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
    path starts it, before anyio, asyncio or structlog exist; what a runner must watch from the
    first moment (a readiness pipe, a logger of its own, a down file) is left to the loop."""
    pod.service("plain", "exec sleep 60\n")
    pod.service("notified", "exec sleep 60\n", notification_fd="3\n")
    pod.service("downed", "exec sleep 60\n", down="")
    pod.service("logged", "exec sleep 60\n")
    pod.script("services.d/logged/log/run", "exec cat\n")
    assert _head_start(pod) == {"prestarted": ["plain"], "read": True, "heavy": []}
    # a cont-init script comes first: the loop starts services.d once it is done
    pod.script("cont-init.d/10-first", "true\n")
    assert _head_start(pod) == {"prestarted": [], "read": False, "heavy": []}
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
