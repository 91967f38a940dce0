"""pyinit as uid 1000 with no capabilities and /run not writable, and as a plain subreaper."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import psutil
import pytest

from harness import SLEEPER, Pod, alive, read_int, wait_for


@pytest.mark.machine_wide  # the default runtime directory
def test_everything_works_as_uid_1000_without_capabilities(unprivileged_pod: Pod):
    pod = unprivileged_pod
    assert not os.access("/run", os.W_OK) or os.geteuid() == 0  # as root it is; uid 1000 below is not
    pod.script("cont-init.d/10-whoami", 'id -u > "$STATE/init-uid"; grep CapEff /proc/self/status | awk \'{print $2}\' > "$STATE/caps"')
    pod.service("svc", SLEEPER)
    pod.service("crasher", "exit 1")
    pod.service("forker", '( setsid sleep 0.2 & )\nexec sleep 1000')
    pod.script("cont-finish.d/10-hook", 'touch "$STATE/finished"')
    pod.start(default_rundir=True, env={"PYS6_CRASH_DEATHS": "2"})
    pod.wait_event("service bailed", 15, service="crasher")
    svc = wait_for(lambda: read_int(pod, "svc.pid"), what="svc")
    assert pod.read_state("init-uid").strip() == "1000"
    assert int(pod.read_state("caps").strip(), 16) == 0
    assert psutil.Process(pod.host_pid(svc)).uids().real == 1000
    assert psutil.Process(pod.init_pid).uids().effective == 1000
    assert pod.event("starting", rundir="/tmp/pys6-1000")
    assert oct(os.stat("/tmp/pys6-1000").st_mode & 0o777) == "0o700"
    assert pod.stop() == 0
    assert (pod.state / "finished").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to plant a directory for another uid")
@pytest.mark.machine_wide  # the default runtime directory
def test_a_planted_runtime_directory_is_refused(pod: Pod):
    from harness import unprivileged_python_problem

    if unprivileged_python_problem():
        pytest.skip(unprivileged_python_problem())
    planted = Path("/tmp/pys6-1001")
    shutil.rmtree(planted, ignore_errors=True)
    planted.mkdir(mode=0o777)
    os.chmod(planted, 0o777)
    try:
        pod.uid = 1001
        pod.script("cont-init.d/01-mark", 'touch "$STATE/ran"')
        pod.start(default_rundir=True)
        assert pod.wait_exit(10) == 111
        assert "pyinit: fatal: runtime directory /tmp/pys6-1001 belongs to uid 0" in pod.stderr()
        assert not (pod.state / "ran").exists()
    finally:
        shutil.rmtree(planted, ignore_errors=True)


def test_as_a_subreaper_orphans_come_to_pyinit_and_shutdown_spares_the_caller(subreaper_pod: Pod):
    pod = subreaper_pod
    pod.service("daemonizer", '''
        ( setsid bash -c 'trap "" TERM; echo $$ > "$STATE/daemon.pid"; exec sleep 1000' & )
        exec sleep 1000
    ''')
    pod.service("svc", SLEEPER)
    pod.start(mode="subreaper", env={"S6_KILL_GRACETIME": "300"})
    daemon = wait_for(lambda: read_int(pod, "daemon.pid"), what="the daemon")
    wait_for(lambda: psutil.Process(daemon).ppid() == pod.init_pid, 5, "the daemon to be re-parented to pyinit")
    assert pod.wait_event("starting", mode="subreaper")  # said once the loop runs: the services may start first
    assert pod.stop() == 0
    assert not alive(daemon)
    assert alive(os.getpid())


def test_sigint_stops_a_subreaper_pyinit_like_sigterm(subreaper_pod: Pod):
    pod = subreaper_pod
    pod.service("svc", SLEEPER)
    pod.start(mode="subreaper")
    svc = wait_for(lambda: read_int(pod, "svc.pid"), what="svc")
    pod.signal(signal.SIGINT)
    assert pod.wait_exit(15) == 0
    assert not alive(svc)
    assert pod.event("shutting down", reason="received SIGINT")
