"""pyinit's Prometheus endpoint on a live pod: what it says, promtool's verdict, its bounds, the textfile."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request

import psutil
import pytest

from harness import Pod, free_port, wait_for


def scrape(port: int, path: str = "/metrics", timeout: float = 5.0) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
        return response.read().decode()


def scrape_or_nothing(port: int) -> str:
    """The page, or "" while the endpoint is not (yet) there."""
    try:
        return scrape(port, timeout=2)
    except (OSError, urllib.error.URLError):
        return ""


def page_with(port: int, needle: str, timeout: float = 10.0) -> str:
    def page() -> str | None:
        text = scrape_or_nothing(port)
        return text if needle in text else None

    return wait_for(page, timeout, repr(needle))


def series(text: str) -> dict[str, float]:
    """name{labels} -> value, for every sample line."""
    values: dict[str, float] = {}
    for line in text.split("\n"):
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


def promtool_problems(text: str) -> str:
    if shutil.which("promtool") is None:
        pytest.skip("needs promtool from Debian's prometheus package (.ci/run installs it)")
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    return f"rc={result.returncode} {result.stdout}{result.stderr}".strip()


def metrics_pod(pod: Pod, **env: str) -> int:
    port = free_port()
    pod.script("cont-init.d/10-ok", "exit 0")
    pod.script("cont-init.d/20-fails", "exit 3")
    pod.service("talker", "printf 'one\\ntwo\\nthree\\n'; printf 'e1\\ne2\\n' >&2; exec sleep 1000")
    pod.service("crashy", "exit 1")
    pod.service("orphaner", "sh -c 'sleep 0.2 &'; exec sleep 1000")  # its sleep outlives its parent
    pod.start(env={"PYS6_METRICS_LISTEN": f"127.0.0.1:{port}", **env})
    wait_for(lambda: series(scrape_or_nothing(port)).get('pys6_service_bailed{service="crashy"}') == 1, 20,
             "crashy to bail")
    return port


def test_a_live_scrape_says_what_happened_and_promtool_finds_nothing(pod: Pod):
    port = metrics_pod(pod)
    wait_for(lambda: series(scrape(port)).get("pys6_orphans_reaped_total", 0) >= 1, 10, "the orphan reaped")
    assert pod.cli("svstat", "talker").returncode == 0
    assert pod.cli("svc", "-u", "nosuchservice").returncode == 100
    text = page_with(port, 'pys6_control_requests_total{verb="control",result="error"} 1')  # pages live 0.5 s
    values = series(text)
    assert promtool_problems(text) == "rc=0"
    assert values['pys6_service_up{service="talker"}'] == 1
    assert values['pys6_service_ready{service="talker"}'] == 1
    assert values['pys6_service_up{service="crashy"}'] == 0
    assert values['pys6_service_want_up{service="crashy"}'] == 1
    assert values['pys6_service_essential{service="crashy"}'] == 0
    assert values['pys6_service_starts_total{service="crashy"}'] == 5
    assert values['pys6_service_deaths_total{service="crashy",cause="exit",expected="false"}'] == 5
    assert values['pys6_service_deaths_total{service="crashy",cause="signal",expected="false"}'] == 0
    assert values['pys6_service_last_exit_code{service="crashy"}'] == 1
    assert values['pys6_service_window_deaths{service="crashy"}'] == 5
    assert 'pys6_service_last_exit_code{service="talker"}' not in values  # it never died
    assert values['pys6_log_lines_total{service="talker",stream="stdout"}'] == 3
    assert values['pys6_log_bytes_total{service="talker",stream="stdout"}'] == len("one\ntwo\nthree\n")
    assert values['pys6_log_lines_total{service="talker",stream="stderr"}'] == 2
    assert values['pys6_log_lines_total{service="crashy",stream="stdout"}'] == 0
    assert values['pys6_control_requests_total{verb="status",result="ok"}'] >= 1
    assert values['pys6_control_requests_total{verb="control",result="error"}'] == 1
    assert values['pys6_stage_failed_scripts{stage="cont-init"}'] == 1
    assert values['pys6_stage_script_exit_code{stage="cont-init",script="20-fails"}'] == 3
    assert values['pys6_stage_script_exit_code{stage="cont-init",script="10-ok"}'] == 0
    assert 0 < values['pys6_stage_duration_seconds{stage="cont-init"}'] < 60
    assert values['pys6_container_stage{stage="running"}'] == 1
    assert abs(values["process_start_time_seconds"] - psutil.Process(pod.init_pid).create_time()) < 2
    assert values["process_resident_memory_bytes"] > 1 << 20
    assert values["process_open_fds"] > 3
    up_for = values['pys6_service_state_duration_seconds{service="talker"}']
    assert abs(values['pys6_service_state_change_timestamp_seconds{service="talker"}'] + up_for - time.time()) < 2


def test_pysvstat_prometheus_prints_the_same_page(pod: Pod):
    port = metrics_pod(pod)
    from_shell = pod.cli("svstat", "--prometheus")
    assert from_shell.returncode == 0, from_shell.stderr
    assert promtool_problems(from_shell.stdout) == "rc=0"
    over_http = scrape(port)
    # the control socket's own request counters move with the requests themselves: the shell's
    # `metrics` request is counted once its answer is written, so the scrape after it may or may
    # not hold a series the shell's page could not have
    def page_keys(text: str) -> set[str]:
        return {k for k in series(text) if not k.startswith("pys6_control_requests_total")}
    assert page_keys(from_shell.stdout) == page_keys(over_http)
    stable = [k for k in series(over_http) if k.startswith(("pys6_service_starts", "pys6_service_deaths"))]
    assert {k: series(from_shell.stdout)[k] for k in stable} == {k: series(over_http)[k] for k in stable}


def test_services_metrics_files_are_served_on_the_same_endpoint_and_bad_ones_cannot_spoil_it(pod: Pod):
    port = metrics_pod(pod)
    directory = pod.rundir / "metrics"
    assert directory.is_dir()
    (directory / "app.prom").write_text("# HELP app_jobs_total jobs done\n# TYPE app_jobs_total counter\n"
                                        'app_jobs_total{kind="x"} 42\n')
    (directory / "careless.prom").write_text("garbage line\npys6_service_up{service=\"talker\"} 0\n"
                                            "# HELP fine_things how many\nfine_things 1\n")
    os.mkfifo(directory / "fifo.prom")  # a FIFO where a file should be: never read, never a hang
    (directory / ".partial.prom").write_text("half_written 1\n")  # a writer's temporary file
    text = page_with(port, "app_jobs_total")
    values = series(text)
    assert values['app_jobs_total{kind="x"}'] == 42
    assert values["fine_things"] == 1
    assert values['pys6_service_up{service="talker"}'] == 1  # the careless file's 0 was left out
    assert values['pys6_metrics_file_rejected_lines{file="careless.prom"}'] == 2
    assert values['pys6_metrics_file_rejected_lines{file="fifo.prom"}'] == -1
    assert "half_written" not in text
    assert promtool_problems(text) == "rc=0"


def test_the_pods_own_environment_names_the_metrics_directory_when_metrics_are_served(pod: Pod):
    # only then (issue 23: no pys6 variable reaches a child unless its feature is on; test_env_parity)
    pod.service("env", 'echo "$PYS6_METRICS_DIR" > "$STATE/dir"; exec sleep 1000')
    pod.start(env={"PYS6_METRICS_FILE": str(pod.state / "metrics.prom")})
    wait_for(lambda: pod.read_state("dir"), 10, "the service to write")
    assert pod.read_state("dir").strip() == str(pod.rundir / "metrics")


def test_a_squatted_metrics_directory_is_not_served_and_the_pod_runs(pod: Pod):
    if os.geteuid() != 0:
        pytest.skip("giving a directory to another uid needs root")
    squatted = pod.root / "squatted"
    squatted.mkdir()
    (squatted / "fake.prom").write_text("# HELP fake_jobs_total planted\nfake_jobs_total 1\n")
    os.chown(squatted, 4321, 4321)
    pod.service("env", 'echo "dir=${PYS6_METRICS_DIR:-unset}" > "$STATE/dir"; exec sleep 1000')
    pod.start(env={"PYS6_METRICS_DIR": str(squatted)})
    pod.wait_event("services' metrics directory unusable, none of their files is served")
    wait_for(lambda: pod.read_state("dir"), 10, "the service to write")
    assert pod.read_state("dir").strip() == "dir=unset"
    page = pod.cli("svstat", "--prometheus").stdout
    assert 'pys6_service_up{service="env"} 1' in page and "fake_jobs_total" not in page


def test_running_out_of_descriptors_the_endpoint_pauses_instead_of_spinning(pod: Pod):
    port = free_port()
    pod.service("idle", "exec sleep 1000")
    pod.start(env={"PYS6_METRICS_LISTEN": f"127.0.0.1:{port}"}, wrapper=["prlimit", "--nofile=32:32"])
    page_with(port, 'pys6_service_up{service="idle"} 1')
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]  # silent: each holds an fd
    try:
        pod.wait_event("metrics endpoint cannot accept")
        process = psutil.Process(pod.init_pid)
        before = sum(process.cpu_times()[:2])
        time.sleep(2.0)  # a window to measure CPU over, not a wait for an event
        assert sum(process.cpu_times()[:2]) - before < 0.5  # a spin on the readable listener would take ~2 s
        assert pod.cli("svstat", "idle").returncode == 0
    finally:
        for conn in held:
            conn.close()
    page_with(port, 'pys6_service_up{service="idle"} 1', timeout=30)


def test_without_the_setting_pyinit_listens_on_no_port(pod: Pod):
    pod.service("idle", "exec sleep 1000")
    pod.start()
    pod.wait_control()
    assert [c for c in psutil.Process(pod.init_pid).net_connections(kind="inet")] == []
    from_shell = pod.cli("svstat", "--prometheus")  # the page is still there from a shell
    assert from_shell.returncode == 0 and 'pys6_service_up{service="idle"} 1' in from_shell.stdout


def test_bad_addresses_are_refused_at_start_and_a_taken_port_only_costs_the_endpoint(pod: Pod):
    pod.service("idle", "exec sleep 1000")
    for value in ("nonsense", "127.0.0.1:99999", "127.0.0.1:" + "9" * 400):
        pod.start(env={"PYS6_METRICS_LISTEN": value})
        assert pod.wait_exit(30) == 100
        assert "PYS6_METRICS_LISTEN" in pod.stderr()  # "pyinit: fatal: bad configuration": before the logger
        pod.kill()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        pod.start(env={"PYS6_METRICS_LISTEN": f"127.0.0.1:{taken.getsockname()[1]}"})
        pod.wait_event("metrics endpoint cannot listen, going on without it")
        pod.wait_control()
        assert "idle: up" in pod.cli("svstat").stdout


def raw_request(port: int, data: bytes, read: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        if not read:
            return b""
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_hostile_scrapers_get_an_error_or_nothing_and_pid1_goes_on(pod: Pod):
    port = metrics_pod(pod)
    assert raw_request(port, b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw_request(port, b"POST /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405 ")
    assert raw_request(port, b"GET /nothing HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 404 ")
    assert raw_request(port, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n").startswith(b"HTTP/1.1 431 ")
    head = raw_request(port, b"HEAD /metrics HTTP/1.0\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")
    # Silent connections past the cap, and readers that never read: pyinit still serves its socket,
    # still restarts a service, and the endpoint answers again once they are timed out.
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
    stalled = []
    for _ in range(4):
        conn = socket.socket()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.connect(("127.0.0.1", port))
        conn.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        stalled.append(conn)
    try:
        old = pod.cli("svstat", "-p", "talker").stdout.strip()
        assert pod.cli("svc", "-k", "talker").returncode == 0
        wait_for(lambda: pod.cli("svstat", "-p", "talker").stdout.strip() not in ("", old, "-1"), 10, "a respawn")
        wait_for(lambda: "pys6_service_up" in scrape_or_nothing(port), 30, "the endpoint to answer again",
                 interval=0.5)
    finally:
        for conn in silent + stalled:
            conn.close()


def test_random_bytes_on_the_endpoint_get_an_error_or_a_close_and_change_nothing(pod: Pod):
    import random

    port = metrics_pod(pod)
    pid_before = pod.init_pid
    generator = random.Random(14)
    for _ in range(300):
        size = generator.choice([0, 1, 7, 100, 5000, 9000])
        data = bytes(generator.getrandbits(8) for _ in range(size))
        if generator.random() < 0.3:
            data = generator.choice([b"GET ", b"HEAD /", b"GET /metrics HTTP/1.1\r\n"]) + data + b"\r\n\r\n"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(data)
                conn.shutdown(socket.SHUT_WR)
                answer = conn.recv(64)
        except OSError:
            continue  # reset by pyinit: it closed a connection that sent too much
        assert answer == b"" or answer.startswith(b"HTTP/1.1 "), answer
    assert pod.init_pid == pid_before and pod.process is not None and pod.process.poll() is None
    assert "pys6_service_up" in page_with(port, "pys6_service_up")
    assert not pod.events("metrics request failed")  # no unexpected error in pyinit


def test_the_textfile_is_written_atomically_on_change_and_at_exit(pod: Pod):
    target = pod.root / "textfile" / "pys6.prom"
    target.parent.mkdir()
    pod.script("cont-finish.d/10-bye", "exit 4")
    pod.service("victim", "exec sleep 1000")
    pod.start(env={"PYS6_METRICS_FILE": str(target)})
    wait_for(lambda: target.exists() and 'pys6_service_starts_total{service="victim"} 1' in target.read_text(), 10,
             "the first write")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert pod.cli("svc", "-k", "victim").returncode == 0
    wait_for(lambda: 'pys6_service_starts_total{service="victim"} 2' in target.read_text(), 10, "the change written")
    (pod.rundir / "metrics" / "cron.prom").write_text("# HELP dropped_in a service's own\ndropped_in 5\n")
    wait_for(lambda: "dropped_in 5" in target.read_text(), 10, "a service's file followed")
    assert promtool_problems(target.read_text()) == "rc=0"
    assert "process_" not in target.read_text()  # node-exporter's own would collide (tests/test_prometheus.py)
    assert pod.stop() == 0
    final = series(target.read_text())
    assert final['pys6_stage_script_exit_code{stage="cont-finish",script="10-bye"}'] == 4
    assert final['pys6_container_stage{stage="stopping"}'] == 1
    assert [p.name for p in target.parent.iterdir()] == ["pys6.prom"]  # no temporary file left behind


def test_a_metrics_file_that_cannot_be_written_is_an_error_not_a_fall(pod: Pod):
    pod.service("idle", "exec sleep 1000")
    pod.start(env={"PYS6_METRICS_FILE": "/proc/nonexistent/x.prom"})
    pod.wait_event("cannot write the metrics file")
    pod.wait_control()
    pod.signal(signal.SIGTERM)
    assert pod.wait_exit() == 0


def test_a_scrape_of_an_endpoint_that_is_not_there_is_refused(pod: Pod):
    """The endpoint closes with pyinit: nothing keeps the port."""
    port = metrics_pod(pod)
    assert pod.stop() == 0
    with pytest.raises(urllib.error.URLError):
        scrape(port, timeout=2)
