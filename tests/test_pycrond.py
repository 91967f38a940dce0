"""A live pycrond: jobs really run on seconds-level schedules, reloads, shutdown, metrics."""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from harness import REPO, Cron, Pod, alive, free_port, wait_for


def replace_like_vi(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".swp")
    temporary.write_text(text)
    os.replace(temporary, path)


def test_seconds_level_jobs_run_with_their_identity_and_environment(cron: Cron):
    cron.crontab.write_text('WHO="the crontab"\n* * * * * * * echo "hello from $WHO"\n'
                            "* * * * * * * exit 3\n* * * * * * * no-such-command-here\n")
    cron.start()
    cron.wait_out('[line 2 run ', 10)
    cron.wait_err("error running command: exit status 127", 10)
    assert re.search(r'^\[line 2 run \d+: echo "hello from \$WHO"\] hello from the crontab$', cron.stdout(), re.M)
    err = cron.stderr()
    assert re.search(r"error running command: exit status 3 iteration=\d+ job.command=\"exit 3\" job.position=1 ", err)
    assert re.search(r"error running command: exit status 127 iteration=\d+ job.command=no-such-command-here "
                     r"job.position=2 ", err)
    assert "] /bin/sh: 1: no-such-command-here: " in err  # the shell's complaint (its words depend on PATH), tagged
    assert cron.stop() == 0


def test_a_job_gets_pycronds_environment_as_exec_d_not_pythons_locale_coercion(cron: Cron):
    """In the C locale Python sets LC_CTYPE in its own os.environ at start-up; supercronic (Go)
    hands its jobs the environment it was given, so pycrond's jobs get no LC_CTYPE either."""
    cron.crontab.write_text('* * * * * * * env > "$STATE/job.env"\n')
    plain = {name: value for name, value in os.environ.items() if not name.startswith(("LC_", "LANG"))}
    cron.start(environ={**plain, "PYCROND_PROBE": "given"})
    wait_for(lambda: "PYCROND_PROBE=given" in _read(cron.root / "job.env"), 10, "the job's environment")
    job = dict(line.split("=", 1) for line in _read(cron.root / "job.env").splitlines() if "=" in line)
    assert "LC_CTYPE" not in job and "LANG" not in job and job["PYCROND_PROBE"] == "given"
    assert cron.stop() == 0


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def test_a_job_still_running_is_skipped(cron: Cron):
    cron.crontab.write_text("* * * * * * * sleep 2.5; echo done\n")
    cron.start()
    cron.wait_err("not starting: job is still running since ", 10)
    assert cron.stop() == 0
    assert "[line 1 run 1: sleep 2.5; echo done] done" in cron.stdout()


def test_an_edit_saved_by_rename_is_picked_up_without_a_restart(cron: Cron):
    cron.crontab.write_text("* * * * * * * echo old-job\n")
    cron.start()
    cron.wait_out("old-job")
    replace_like_vi(cron.crontab, "* * * * * * * echo new-job\n")
    cron.wait_out("new-job")
    wait_for(lambda: len(cron.events("crontab loaded")) == 2, 5, "the reload")
    marker = len(cron.stdout())
    time.sleep(1.5)  # the old job would have run again in this time
    assert "old-job" not in cron.stdout()[marker:]


def test_a_kubernetes_style_symlink_swap_is_picked_up(cron: Cron):
    data1 = cron.root / "..2026_a"
    data1.mkdir()
    (data1 / "crontab").write_text("* * * * * * * echo first-version\n")
    (cron.root / "..data").symlink_to(data1.name)
    (cron.root / "crontab").symlink_to("..data/crontab")
    cron.start()
    cron.wait_out("first-version")
    data2 = cron.root / "..2026_b"
    data2.mkdir()
    (data2 / "crontab").write_text("* * * * * * * echo second-version\n")
    (cron.root / "..data_tmp").symlink_to(data2.name)
    os.replace(cron.root / "..data_tmp", cron.root / "..data")
    cron.wait_out("second-version")


def test_an_edit_with_errors_keeps_the_previous_jobs_and_names_every_bad_line(cron: Cron):
    cron.crontab.write_text("* * * * * * * echo still-here\n")
    cron.start()
    cron.wait_out("still-here")
    replace_like_vi(cron.crontab, "* * * * * * * echo replacement\nnonsense line\n99 * * * * bad\n")
    cron.wait_err("crontab has errors, keeping the previous jobs")
    err = cron.stderr()
    assert "bad crontab line" in err and "line=2" in err and "line=3" in err
    marker = len(cron.stdout())
    wait_for(lambda: "still-here" in cron.stdout()[marker:], 5, "the previous job to keep running")
    assert "replacement" not in cron.stdout()


def test_a_deleted_crontab_keeps_the_last_good_jobs_and_sigusr2_reloads(cron: Cron):
    cron.crontab.write_text("* * * * * * * echo survivor\n")
    cron.start()
    cron.wait_out("survivor")
    cron.crontab.unlink()
    cron.wait_err("crontab unreadable, keeping the previous jobs")
    marker = len(cron.stdout())
    wait_for(lambda: "survivor" in cron.stdout()[marker:], 5, "the job to keep running")
    assert cron.process is not None and cron.process.poll() is None
    cron.process.send_signal(signal.SIGUSR2)  # an explicit reload reads (and reports) again
    wait_for(lambda: len(cron.events("crontab unreadable, keeping the previous jobs")) == 2, 5, "the reload")
    cron.crontab.write_text("* * * * * * * echo newcomer\n")
    cron.wait_out("newcomer")


def test_sigusr2_reloads(cron: Cron):
    cron.crontab.write_text("* * * * * * * echo before\n")
    cron.start()
    cron.wait_out("before")
    assert cron.process is not None
    cron.process.send_signal(signal.SIGUSR2)
    wait_for(lambda: cron.events("received user defined signal 2, reloading crontab")
             and len(cron.events("crontab loaded")) == 2, 5, "the reload")


def test_shutdown_lets_jobs_finish_within_the_grace_then_stops_their_groups(cron: Cron):
    cron.crontab.write_text(
        "@reboot sleep 1; echo finished-in-grace\n"
        "@reboot trap '' TERM; echo $$ > \"$STATE/stubborn.pid\"; while :; do sleep 0.1; done\n"
        "@reboot setsid sh -c 'echo $$ > \"$STATE/daemon.pid\"; exec sleep 1000' & echo forked\n")
    cron.start("--grace", "2", "--kill-after", "1")
    # a pid file exists a moment before its pid is in it: wait for the whole line
    wait_for(lambda: all((cron.root / name).exists() and (cron.root / name).read_text().endswith("\n")
                         for name in ("stubborn.pid", "daemon.pid")), 10, "the jobs")
    stubborn = int((cron.root / "stubborn.pid").read_text())
    daemon = int((cron.root / "daemon.pid").read_text())
    started = time.monotonic()
    assert cron.stop() == 0
    elapsed = time.monotonic() - started
    assert "finished-in-grace" in cron.stdout()
    assert cron.events("jobs still running after the grace time, stopping them", count=1)
    assert not alive(stubborn) and not alive(daemon)
    assert elapsed < 2 + 1 + 5  # grace, kill-after, margin


def test_a_job_timeout_stops_its_group_and_is_counted(cron: Cron):
    metrics_file = cron.root / "metrics.prom"
    cron.crontab.write_text("PYCROND_TIMEOUT=1s\n@reboot trap '' TERM; sleep 30\n")
    cron.start("--kill-after", "0.5", "--metrics-file", str(metrics_file))
    cron.wait_err("job timed out, stopping it", 10)
    cron.wait_err("error running command: signal: killed", 10)
    wait_for(lambda: metrics_file.exists() and 'pycrond_timeouts_total{' in metrics_file.read_text(), 5, "metrics")
    text = metrics_file.read_text()
    labels = '{command="trap \'\' TERM; sleep 30",position="0",schedule="@reboot"}'
    assert f"pycrond_timeouts_total{labels} 1" in text
    assert f"supercronic_deadline_exceeded{labels} 0" in text  # @reboot has no later tick to miss


def test_the_metrics_file_shows_a_run_while_it_runs(cron: Cron):
    metrics_file = cron.root / "metrics.prom"
    cron.crontab.write_text(f"@reboot touch {cron.root}/started; sleep 30\n")
    cron.start("--metrics-file", str(metrics_file))
    wait_for(lambda: (cron.root / "started").exists(), 10, "the run to start")
    labels = f'{{command="touch {cron.root}/started; sleep 30",position="0",schedule="@reboot"}}'
    wait_for(lambda: f"supercronic_currently_running{labels} 1" in metrics_file.read_text(), 5, "the file")
    assert f"pycrond_last_start_timestamp_seconds{labels}" in metrics_file.read_text()
    assert "\npycrond_last_success_timestamp_seconds{" not in metrics_file.read_text()  # not finished yet


def test_metrics_over_http_keep_supercronics_names_and_add_last_success(cron: Cron):
    port = free_port()
    cron.crontab.write_text("* * * * * * * true\n* * * * * * * false\n")
    cron.start("--metrics-listen", f"127.0.0.1:{port}")
    cron.wait_err("error running command: exit status 1", 10)
    cron.wait_err("job succeeded", 10)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    for name in ("supercronic_executions", "supercronic_successful_executions", "supercronic_failed_executions",
                 "supercronic_deadline_exceeded", "supercronic_currently_running",
                 "supercronic_cron_execution_time_seconds_bucket", "pycrond_last_success_timestamp_seconds"):
        assert f"\n{name}{{" in text, name
    assert 'supercronic_successful_executions{command="true",position="0",schedule="* * * * * * *"}' in text
    last_success = [line for line in text.splitlines()
                    if line.startswith('pycrond_last_success_timestamp_seconds{command="true"')]
    assert abs(float(last_success[0].split()[-1]) - time.time()) < 10
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
        assert response.read() == b"OK"
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5) as response:
        assert b"<h1>Supercronic</h1>" in response.read()  # supercronic's page, on any other path


def test_metrics_are_pushed_to_a_pushgateway(cron: Cron):
    received: list[tuple[str, str]] = []

    class Gateway(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, body.decode()))
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        cron.crontab.write_text("@reboot echo pushed\n")
        cron.start("--pushgateway", f"http://127.0.0.1:{server.server_port}")
        wait_for(lambda: any("supercronic_executions{" in body and '} 1' in body for _, body in received), 10,
                 "a push")
        assert received[-1][0] == "/metrics/job/pycrond"
    finally:
        server.shutdown()


def test_json_lines_are_supercronics(cron: Cron):
    cron.crontab.write_text("@reboot echo structured\n")
    cron.start("-json", readable=False)
    cron.wait_err("job succeeded")
    records = [json.loads(line) for line in cron.stderr().splitlines()]  # supercronic logs everything to stderr
    output = next(r for r in records if r["msg"] == "structured")
    assert set(output) == {"channel", "iteration", "job.command", "job.position", "job.schedule", "level", "msg", "time"}
    assert output | {"time": None} == {"channel": "stdout", "iteration": 0, "job.command": "echo structured",
                                       "job.position": 0, "job.schedule": "@reboot", "level": "info",
                                       "msg": "structured", "time": None}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", output["time"])
    assert [r["msg"] for r in records if "job.command" in r] == ["starting", "structured", "job succeeded"]
    assert cron.stdout() == ""


def test_dash_dash_test_lists_next_runs_or_every_bad_line(tmp_path: Path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("*/5 * * * * * * echo a\n@reboot echo b\n")
    bad.write_text("* * * * * ok\nbroken\n\n61 * * * * x\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "supervisor.cron.main", *args], capture_output=True, text=True,
                              env=env)

    ok = run("--test", str(good))
    assert ok.returncode == 0 and ok.stdout.count("next: ") == 2 and "at start" in ok.stdout
    assert len(ok.stdout.splitlines()[1].split(", ")) == 3
    failed = run("--test", str(bad))
    assert failed.returncode == 1
    assert f"{bad}:2: expected a schedule" in failed.stderr and f"{bad}:4: " in failed.stderr
    assert run("--test", str(tmp_path / "missing")).returncode == 1
    assert run().returncode == 2 and run("--bogus", str(good)).returncode == 2


def test_a_directory_of_crontabs(cron: Cron):
    directory = cron.root / "crontabs"
    directory.mkdir()
    (directory / "a").write_text("@reboot echo from-a\n")
    (directory / "b").write_text("@reboot echo from-b\n")
    cron.start(crontab=directory)
    cron.wait_out("from-a")
    cron.wait_out("from-b")


def test_pycrond_as_the_pods_cron_service_under_pyinit(pod: Pod):
    crontab = pod.root / "crontab"
    crontab.write_text("* * * * * * * echo tick-from-cron\n")
    pod.service("cron", f'exec {sys.executable} -m supervisor.cron.main --log-format=text {crontab}')
    pod.start()
    pod.wait_stdout("[cron] [line 1 run ", 15)
    assert "tick-from-cron" in pod.stdout()
    assert pod.stop() == 0
    assert "[cron] [pycrond] exiting" in pod.stderr()


def test_a_flooding_job_does_not_stop_others_running_on_time(cron: Cron):
    cron.crontab.write_text("@reboot yes flood | head -c 20000000\n* * * * * * * echo punctual\n")
    cron.start()
    cron.wait_err("job succeeded iteration=0 job.command=\"yes flood", 30)
    wait_for(lambda: cron.stdout().count("punctual") >= 2, 10, "the other job to keep running")
    assert cron.stdout().count("[line 1 run 1: yes flood | head -c 20000000] flood") >= 1_000_000
