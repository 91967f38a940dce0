"""s6-rc services run by pyinit: oneshots and longruns in dependency order, readiness before
dependents, services.d after the user bundle, user2 by its own dependencies, reverse order at shutdown."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness import Pod, wait_for
from supervisor.s6.rcrun import CommandLineError, command_line, compile_longrun


def rc(pod: Pod, name: str, kind: str, deps: tuple[str, ...] = (), **files: str) -> Path:
    directory = pod.etc / "s6-overlay" / "s6-rc.d" / name
    directory.mkdir(parents=True)
    (directory / "type").write_text(kind + "\n")
    if deps:
        (directory / "dependencies.d").mkdir()
        for dep in deps:
            (directory / "dependencies.d" / dep).touch()
    for filename, content in files.items():
        (directory / filename.replace("_", "-")).write_text(content)
    return directory


def in_user_bundle(pod: Pod, *names: str, bundle: str = "user") -> None:
    contents = pod.etc / "s6-overlay" / "user-bundles.d" / bundle / "contents.d"
    contents.mkdir(parents=True, exist_ok=True)
    for name in names:
        (contents / name).touch()


def order(pod: Pod) -> list[str]:
    return pod.read_state("order").split()


def test_command_lines_run_through_execlineb_or_as_one_plain_command():
    assert command_line("echo hi", "x", "/usr/bin/execlineb") == ["/usr/bin/execlineb", "-P", "-c", "echo hi"]
    assert command_line("# set up\nmkdir -p '/var/lib/my app'\n", "x", None) == ["mkdir", "-p", "/var/lib/my app"]
    # only comments (LinuxServer's init-os-end): nothing to run, done at once as execlineb's empty program
    assert command_line("# This file doesn't do anything, it's just the end of the downstream image init process\n",
                        "x", None) == []
    for needs_execline in ("foreground { echo a } echo b", "if { true } echo b", "echo a\necho b"):
        with pytest.raises(CommandLineError, match="x: this script needs execline"):
            command_line(needs_execline, "x", None)


def test_a_linuxserver_style_chain_starts_in_order_and_stops_in_reverse(pod: Pod):
    if shutil.which("execlineb") is None:
        pytest.skip("needs Debian's execline package (.ci/run installs it)")
    state = pod.state
    rc(pod, "init-adduser", "oneshot", ("base",), up=f'sh -c "echo adduser >> {state}/order"\n')
    rc(pod, "init-config", "oneshot", ("init-adduser",), up=f'sh -c "echo config >> {state}/order"\n',
       down=f'sh -c "echo config-down >> {state}/order"\n')
    rc(pod, "db", "longrun", ("init-config",), notification_fd="3\n",
       run=f'#!/bin/sh\nsleep 0.3\necho db-ready >> {state}/order\necho >&3\nexec sleep 1000\n',
       finish=f'#!/bin/sh\necho db-stop >> {state}/order\n')
    rc(pod, "web", "longrun", ("db", "init-config"),
       run=f'#!/bin/sh\necho web-start >> {state}/order\nexec sleep 1000\n',
       finish=f'#!/bin/sh\necho web-stop >> {state}/order\n')
    rc(pod, "late", "longrun", ("legacy-services",), run=f'#!/bin/sh\necho late >> {state}/order\nexec sleep 1000\n')
    in_user_bundle(pod, "web")  # its dependencies come with it
    in_user_bundle(pod, "late", bundle="user2")
    pod.service("legacy", f'echo legacy >> {state}/order\nexec sleep 1000\n')
    pod.start()
    wait_for(lambda: {"late", "legacy"} <= set(order(pod)), 20, "every service")
    started = order(pod)
    assert started[:3] == ["adduser", "config", "db-ready"], started
    # web is started before services.d's legacy and user2's late: pyinit's start times say so (the
    # lines the run scripts write come in whatever order the scheduler runs the three shells)
    since = {name: pod.cli("svstat", "-o", "updownsince", name).stdout for name in ("web", "legacy", "late")}
    assert since["web"] <= since["legacy"] <= since["late"], since
    status = pod.cli("svstat", "web", "db", "late", "legacy")
    assert status.returncode == 0 and status.stdout.count(": up (pid") == 4, status.stdout
    assert pod.stop() == 0
    stopped = order(pod)[len(started):]
    assert stopped.index("web-stop") < stopped.index("db-stop") < stopped.index("config-down"), stopped
    assert pod.event("s6-rc oneshot stopping", service="init-config")


def test_a_failing_oneshot_keeps_its_dependents_down_and_follows_the_behaviour(pod: Pod):
    if shutil.which("execlineb") is None:
        pytest.skip("needs Debian's execline package (.ci/run installs it)")
    rc(pod, "broken", "oneshot", up="exit 3\n")
    rc(pod, "app", "longrun", ("broken",), run='#!/bin/sh\ntouch "$STATE/app"\nexec sleep 1000\n')
    in_user_bundle(pod, "app")
    pod.service("legacy", 'touch "$STATE/legacy"\nexec sleep 1000\n')
    pod.start(env={"S6_BEHAVIOUR_IF_STAGE2_FAILS": "2"})
    assert pod.wait_exit(20) == 1
    assert not (pod.state / "app").exists() and not (pod.state / "legacy").exists()
    assert pod.event("s6-rc oneshot failed", service="broken", exitcode=3)
    assert pod.event("s6-rc service not started: a dependency failed", service="app", dependency="broken")


def test_a_cycle_is_reported_with_its_names_and_the_rest_still_runs(pod: Pod):
    rc(pod, "a", "longrun", ("b",), run="#!/bin/sh\nexec sleep 1000\n")
    rc(pod, "b", "longrun", ("a",), run="#!/bin/sh\nexec sleep 1000\n")
    rc(pod, "fine", "longrun", run='#!/bin/sh\ntouch "$STATE/fine"\nexec sleep 1000\n')
    in_user_bundle(pod, "a", "fine")
    pod.start()
    wait_for(lambda: (pod.state / "fine").exists(), 20, "the service outside the cycle")
    cycles = wait_for(lambda: [e["problem"] for e in pod.events("s6-rc service definition problem")
                               if e["problem"].startswith("dependency cycle: ")], 10, "the cycle to be reported")
    assert "dependency cycle: a -> b -> a" in cycles or "dependency cycle: b -> a -> b" in cycles
    assert pod.cli("svstat", "a").returncode == 100  # never started: not a service pyinit has
    assert pod.stop() == 0


def test_an_s6_rc_longrun_is_a_service_like_any_other(subreaper_pod: Pod):
    pod = subreaper_pod
    rc(pod, "app", "longrun", run='#!/bin/sh\necho $$ >> "$STATE/app.pids"\nexec sleep 1000\n')  # not executable
    in_user_bundle(pod, "app")
    pod.start()
    wait_for(lambda: pod.read_state("app.pids"), 20, "the longrun")
    assert pod.cli("svc", "-wr", "-r", "-T", "10000", "app").returncode == 0  # pysvc, the crash bail, forensics
    wait_for(lambda: len(pod.read_state("app.pids").split()) == 2, 20, "a restart")
    if shutil.which("s6-svstat"):
        result = subprocess.run(["s6-svstat", "-o", "up", str(pod.rundir / "service" / "app")],
                                capture_output=True, text=True, timeout=30)
        assert result.stdout == "true\n"
    assert pod.stop() == 0


def test_the_stage2_hook_may_write_the_s6_rc_source_before_it_is_read(subreaper_pod: Pod):
    pod = subreaper_pod
    source = pod.etc / "s6-overlay" / "s6-rc.d"
    hook = (f'mkdir -p {source}/patched {pod.etc}/s6-overlay/user-bundles.d/user/contents.d && '
            f'echo longrun > {source}/patched/type && '
            f'printf "#!/bin/sh\\ntouch {pod.state}/patched\\nexec sleep 1000\\n" > {source}/patched/run && '
            f'touch {pod.etc}/s6-overlay/user-bundles.d/user/contents.d/patched')
    pod.start(env={"S6_STAGE2_HOOK": hook})
    wait_for(lambda: (pod.state / "patched").exists(), 20, f"the service the hook defined\n{pod.stderr()[-1500:]}")
    assert pod.stop() == 0


def test_definition_problems_stop_the_boot_when_the_behaviour_says_so(subreaper_pod: Pod):
    pod = subreaper_pod
    rc(pod, "app", "longrun", ("nowhere",), run="#!/bin/sh\nexec sleep 1000\n")
    in_user_bundle(pod, "app")
    pod.service("legacy", 'touch "$STATE/legacy"\nexec sleep 1000\n')
    pod.start(env={"S6_BEHAVIOUR_IF_STAGE2_FAILS": "2"})
    assert pod.wait_exit(20) == 1
    assert pod.event("s6-rc service definition problem", problem="nowhere: no such service (needed by app)")
    assert not (pod.state / "legacy").exists()


def test_a_pipelined_longrun_is_laid_out_as_s6_rc_compile_does(tmp_path: Path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "run").write_text("#!/bin/sh\nexec sleep 1000\n")
    (source / "finish").write_text("#!/bin/sh\ntrue\n")
    compile_longrun(str(source), str(tmp_path / "plain"))
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["finish", "run"]
    compile_longrun(str(source), str(tmp_path / "piped"), pipelined=True)
    piped = tmp_path / "piped"
    assert sorted(p.name for p in piped.iterdir()) == ["finish", "finish.user", "run", "run.user"]
    assert (piped / "run.user").read_text() == "#!/bin/sh\nexec sleep 1000\n"
    assert 'exec ./run.user "$@"' in (piped / "run").read_text()
    assert all((piped / name).stat().st_mode & 0o111 for name in ("run", "run.user", "finish", "finish.user"))


def test_the_graph_is_s6_overlays_a_service_of_no_dependency_starts_beside_cont_init(pod: Pod):
    state = pod.state
    # at most 5 s for early (no dependency: s6-rc starts it beside cont-init.d) to be up
    pod.script("cont-init.d/10-slow", f'#!/bin/sh\nfor i in $(seq 100); do [ -e {state}/early ] && break; sleep 0.05; done\n'
               f'[ -e {state}/early ] && touch {state}/cont-init\n')
    rc(pod, "early", "longrun", run=f'#!/bin/sh\ntouch {state}/early\nexec sleep 1000\n')
    rc(pod, "late", "longrun", ("base",), run=f'#!/bin/sh\n[ -e {state}/cont-init ] && touch {state}/late\n'
                                               'exec sleep 1000\n')
    rc(pod, "producer", "longrun", ("base",), producer_for="logger\n",
       run='#!/bin/sh\necho "$0" > "$STATE/producer.argv0"\nexec sleep 1000\n')
    rc(pod, "logger", "longrun", ("base",), consumer_for="producer\n", run="#!/bin/sh\nexec cat > /dev/null\n")
    in_user_bundle(pod, "early", "late", "producer")
    pod.start()
    wait_for(lambda: (state / "late").exists() and (state / "producer.argv0").exists(), 20,
             f"cont-init to end once early is up, then late\n{pod.stderr()[-1500:]}")
    assert pod.read_state("producer.argv0").strip() == "./run.user"
    assert pod.stop() == 0


def test_a_failed_user_service_keeps_services_d_down_and_the_rest_runs(pod: Pod):
    rc(pod, "broken", "oneshot", up="false\n", down=f"touch {pod.state}/broken-down\n")
    rc(pod, "fine", "longrun", run='#!/bin/sh\ntouch "$STATE/fine"\nexec sleep 1000\n')
    rc(pod, "after", "oneshot", ("legacy-services",), up=f"touch {pod.state}/after\n")
    in_user_bundle(pod, "broken", "fine")
    in_user_bundle(pod, "after", bundle="user2")
    pod.service("legacy", 'touch "$STATE/legacy"\nexec sleep 1000\n')
    pod.start(env={"S6_BEHAVIOUR_IF_STAGE2_FAILS": "0"})
    wait_for(lambda: pod.event("services.d not started: a service it depends on failed"), 20, "services.d left down")
    # started beside the failing oneshot, not before it failed: its run may come later on a loaded machine
    wait_for(lambda: (pod.state / "fine").exists(), 20, "the service beside the failed one to run")
    assert not (pod.state / "legacy").exists() and not (pod.state / "after").exists()
    assert pod.stop() == 0
    assert not (pod.state / "broken-down").exists()  # a oneshot that failed is down: its down does not run
