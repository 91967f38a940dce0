"""Health checks, in process: the pure policy (core/health) with a fake clock, what the service's
state machine makes of a health restart (core/policy), the files and YAML keys that define a
check (core/servicedir, core/settings), and how reporting shows it (records, statusfmt, metrics)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervisor.control import statusfmt
from supervisor.control.records import status_record
from supervisor.core import health, policy
from supervisor.core.health import HealthReport, HealthSpec, Verdict
from supervisor.core.model import (
    Boot,
    Command,
    CrashPolicy,
    Exited,
    Note,
    Phase,
    Ready,
    SendSignal,
    ServiceSpec,
    ServiceState,
    Spawn,
    Spawned,
    TimerFired,
    Verb,
)
from supervisor.core.servicedir import read_service
from supervisor.core.settings import ConfigError, Settings, load_settings
from supervisor.core.telemetry import ServiceTally, count_step

CHECK = HealthSpec("exec", "./health", interval=10.0, timeout=5.0, retries=3, start=60.0)


# --- the pure policy, a fake clock ---------------------------------------------------------


def test_the_first_check_is_at_once_without_notification_fd_and_one_interval_later_with_it():
    assert health.came_up(CHECK, 7, 100.0, notifies=False).due == 100.0
    assert health.came_up(CHECK, 7, 100.0, notifies=True).due == 110.0


def test_a_first_pass_is_ready_once_and_the_next_check_is_one_interval_after_the_result():
    state = health.begin(health.came_up(CHECK, 7, 0.0, notifies=False))
    assert state.running and state.due is None  # never two at once
    state, verdict = health.result(CHECK, state, "pass", 1.5)
    assert verdict is Verdict.READY and state.due == 11.5 and health.status(state) == "healthy"
    state, verdict = health.result(CHECK, health.begin(state), "pass", 11.6)
    assert verdict is Verdict.NOTHING and state.due == 21.6


def test_failures_before_the_first_pass_are_forgiven_during_the_start_period():
    state = health.came_up(CHECK, 7, 0.0, notifies=False)
    for now in (0.0, 10.0, 20.0, 59.9):
        state, verdict = health.result(CHECK, health.begin(state), "fail", now)
        assert verdict is Verdict.NOTHING and state.failures == 0 and health.status(state) == "starting"
    for count, now in enumerate((60.0, 70.0), start=1):
        state, verdict = health.result(CHECK, health.begin(state), "timeout", now)
        assert verdict is Verdict.NOTHING and state.failures == count and health.status(state) == "unhealthy"
    state, verdict = health.result(CHECK, health.begin(state), "error", 80.0)
    assert verdict is Verdict.RESTART and state.restarting and state.due is None


def test_once_it_passed_every_failure_counts_and_a_pass_clears_them():
    state = health.came_up(CHECK, 7, 0.0, notifies=True)
    state, _ = health.result(CHECK, health.begin(state), "pass", 10.0)
    state, _ = health.result(CHECK, health.begin(state), "fail", 20.0)  # inside the start period: counts now
    state, _ = health.result(CHECK, health.begin(state), "fail", 30.0)
    assert state.failures == 2
    state, verdict = health.result(CHECK, health.begin(state), "pass", 40.0)
    assert state.failures == 0 and verdict is Verdict.NOTHING  # ready only once
    for now in (50.0, 60.0):
        state, _ = health.result(CHECK, health.begin(state), "fail", now)
    state, verdict = health.result(CHECK, health.begin(state), "fail", 70.0)
    assert verdict is Verdict.RESTART


def test_a_result_after_a_restart_was_asked_for_or_the_service_went_down_changes_nothing():
    state = health.came_up(CHECK, 7, 0.0, notifies=True)
    state = health.HealthState(pid=7, restarting=True, failures=3)
    after, verdict = health.result(CHECK, state, "pass", 1.0)
    assert verdict is Verdict.NOTHING and after.due is None
    after, verdict = health.result(CHECK, health.went_down(), "fail", 1.0)
    assert verdict is Verdict.NOTHING and after.due is None and health.status(after) is None


@given(st.lists(st.sampled_from(health.RESULTS), max_size=60), st.integers(1, 5), st.floats(0, 50))
def test_restart_comes_exactly_after_retries_counted_failures_in_a_row(outcomes, retries, start):
    spec = HealthSpec("tcp", host="127.0.0.1", port=1, interval=1.0, retries=retries, start=start)
    state = health.came_up(spec, 1, 0.0, notifies=False)
    now, run, passed = 0.0, 0, False
    for outcome in outcomes:
        if state.restarting:
            break
        assert state.due is not None and not state.running
        now = state.due
        state, verdict = health.result(spec, health.begin(state), outcome, now)
        if outcome == "pass":
            run, first, passed = 0, not passed, True
            assert verdict is (Verdict.READY if first else Verdict.NOTHING)
            continue
        if passed or now >= start:
            run += 1
        assert state.failures == run
        assert (verdict is Verdict.RESTART) == (run >= retries)


# --- the service's state machine --------------------------------------------------------------

SPEC = ServiceSpec(name="svc", directory="/x", health=CHECK, crash=CrashPolicy(5, 60.0))


def up(spec: ServiceSpec, now: float, pid: int, state: ServiceState | None = None) -> ServiceState:
    if state is None:
        state, _ = policy.step(spec, ServiceState(), Boot(), now, 3.0)
    state, _ = policy.step(spec, state, Spawned(pid), now, 3.0)
    return state


def test_a_service_with_a_check_and_no_notification_fd_is_not_ready_when_up_but_at_its_ready_event():
    state = up(SPEC, 0.0, 100)
    assert state.phase is Phase.UP and state.ready_at is None
    state, actions = policy.step(SPEC, state, Ready(100), 2.0, 3.0)
    assert state.ready_at == 2.0 and any(isinstance(a, Note) and a.event == "service ready" for a in actions)
    plain = ServiceSpec(name="svc", directory="/x")
    assert up(plain, 0.0, 100).ready_at == 0.0  # without a check: ready when up, as before


def test_an_unhealthy_restart_stops_the_service_and_its_death_counts_for_the_bail():
    tally = ServiceTally()
    state, now, pid = None, 0.0, 100
    for restart in range(1, 6):
        state = up(SPEC, now, pid, state)
        state, actions = policy.step(SPEC, state, Command(Verb.UNHEALTHY), now + 0.1, 3.0)
        assert SendSignal(15) in actions and state.stopping and state.unhealthy
        before = state
        state, actions = policy.step(SPEC, state, Exited(None, 15, pid), now + 0.2, 3.0)
        count_step(tally, Exited(None, 15, pid), before, state)
        died = next(a for a in actions if isinstance(a, Note) and a.event == "service died")
        assert ("cause", "unhealthy") in died.fields and ("expected", False) in died.fields
        assert len(state.deaths) == restart and not state.unhealthy
        if restart < 5:
            # never ready, so paced as a crash loop: its next start one second after the last
            assert not state.bailed and state.phase is Phase.WAITING and state.deadline == now + 1.0
            state, actions = policy.step(SPEC, state, TimerFired(), now + 1.0, 3.0)
            assert actions == [Spawn()]
        now, pid = now + 2.0, pid + 1
    assert state.bailed and state.phase is Phase.DOWN
    assert tally.deaths == {("unhealthy", False): 5}


def test_a_restart_asked_by_a_person_is_still_expected_and_unhealthy_is_ignored_when_not_wanted_up():
    state = up(SPEC, 0.0, 100)
    state, _ = policy.step(SPEC, state, Command(Verb.RESTART), 1.0, 3.0)
    state, _ = policy.step(SPEC, state, Exited(None, 15, 100), 1.1, 3.0)
    assert state.deaths == ()
    state = up(SPEC, 2.0, 101, state)
    state, _ = policy.step(SPEC, state, Command(Verb.ONCE), 2.5, 3.0)
    same, actions = policy.step(SPEC, state, Command(Verb.UNHEALTHY), 3.0, 3.0)
    assert same == state and actions == []
    stopping, _ = policy.step(SPEC, up(SPEC, 4.0, 102, ServiceState()), Command(Verb.SHUTDOWN), 4.5, 3.0)
    assert policy.step(SPEC, stopping, Command(Verb.UNHEALTHY), 5.0, 3.0) == (stopping, [])


# --- the files and the YAML -----------------------------------------------------------------------


def service_dir(tmp_path: Path, **files: str) -> Path:
    directory = tmp_path / "svc"
    directory.mkdir()
    (directory / "run").write_text("#!/bin/sh\n")
    (directory / "run").chmod(0o755)
    for name, text in files.items():
        (directory / name.replace("_", "-")).write_text(text)
    return directory


def test_the_files_define_the_check_and_its_numbers(tmp_path: Path):
    directory = service_dir(tmp_path, health_tcp="2222\n", health_interval="2.5\n", health_timeout="1\n",
                            health_retries="4\n", health_start="0\n")
    spec = read_service(str(directory), Settings())
    assert spec.health == HealthSpec("tcp", "2222", "127.0.0.1", 2222, interval=2.5, timeout=1.0, retries=4,
                                     start=0.0)
    assert spec.problems == ()


@pytest.mark.parametrize(("files", "problem"), [
    ({"health_tcp": "example.com:80"}, "health-tcp: 'example.com' is not an IP address"),
    ({"health_http": "https://127.0.0.1/"}, "health-http: must be an http:// URL"),
    ({"health_http": "http://192.0.2.1/"}, "neither a loopback address nor one of the pod's"),
    ({"health_tcp": "99999"}, "health-tcp: takes a port from 1 to 65535"),
    ({"health": "#!/bin/sh\n"}, "health is not an executable file"),
])
def test_a_bad_check_is_a_problem_and_no_check(tmp_path: Path, files: dict[str, str], problem: str):
    spec = read_service(str(service_dir(tmp_path, **files)), Settings())
    assert spec.health is None and any(problem in p for p in spec.problems), spec.problems


def test_a_bad_number_keeps_its_default_and_two_checks_use_the_first(tmp_path: Path):
    directory = service_dir(tmp_path, health_tcp="80", health_http="http://127.0.0.1/", health_retries="0")
    spec = read_service(str(directory), Settings())
    assert spec.health is not None and spec.health.kind == "tcp" and spec.health.retries == 3
    assert any("more than one health check" in p for p in spec.problems)
    assert any(p.startswith("health-retries:") for p in spec.problems)


def test_the_yaml_sets_the_check_and_its_knobs_per_service(tmp_path: Path):
    config = tmp_path / "pys6.yaml"
    config.write_text("services:\n  svc:\n    health_http: http://localhost:8080/healthz?x=1\n"
                      "    health_interval: 1\n    health_retries: 2\n    health_start: 0\n")
    settings = load_settings({"PYS6_CONFIG": str(config), "PYS6_ETC": str(tmp_path)})
    spec = read_service(str(service_dir(tmp_path, health_tcp="22", health_timeout="3")), settings)
    assert spec.health == HealthSpec("http", "http://localhost:8080/healthz?x=1", "127.0.0.1", 8080, "/healthz?x=1",
                                     interval=1.0, timeout=3.0, retries=2, start=0.0)


@pytest.mark.parametrize(("line", "error"), [
    ("health_retries: 0", "services.svc.health_retries: bad value 0"),
    ("health_interval: -1", "services.svc.health_interval: bad value -1"),
    ("health_tcp: db.example:5432", "services.svc.health_tcp: bad value"),
])
def test_bad_yaml_knobs_are_errors_naming_the_key(tmp_path: Path, line: str, error: str):
    config = tmp_path / "pys6.yaml"
    config.write_text(f"services:\n  svc:\n    {line}\n")
    with pytest.raises(ConfigError, match=error.replace(".", r"\.")):
        load_settings({"PYS6_CONFIG": str(config), "PYS6_ETC": str(tmp_path)})


# --- how it is shown --------------------------------------------------------------------------------


def record(status: str | None, failures: int = 0) -> dict[str, object]:
    report = HealthReport("./health", status, failures, 3, (("pass", 1), ("fail", failures)), "")
    return status_record(SPEC, up(SPEC, 0.0, 100), 5.0, report)


def test_pysvstat_says_healthy_or_unhealthy_after_s6s_words():
    assert statusfmt.words(record("healthy")).endswith(", healthy")
    assert statusfmt.words(record("unhealthy", 2)).endswith(", unhealthy (2 of 3 failures)")
    assert "health" not in statusfmt.words(status_record(SPEC, up(SPEC, 0.0, 100), 5.0))
    json_record = record("unhealthy", 2)
    assert json_record["health"] == "unhealthy" and json_record["health_failures"] == 2
