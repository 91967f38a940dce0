"""supercronic's own integration tests (integration/test.bats and reload.bats), restated against pycrond
installed under supercronic's name and invoked exactly as they invoke supercronic; then its other flags."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from harness import REPO, can_unshare, free_port, wait_for

# integration/*.crontab
CRONTABS = {
    "env": '* * * * * * * echo "$VAR"\n',
    "exit": '* * * * * * * echo "$MSG_START" && sleep 2 && echo "$MSG_DONE"\n',
    "hello": '* * * * * * * echo "hello from crontab"\n',
    "invalid": "oops\n",
    "noop": "",
    "normal": "* * * * * * * echo 1\n",
    "override": 'VAR="hello from bar"\n* * * * * * * echo "$VAR"\n',
    "timeout": "* * * * * * * sleep 2.5\n",
    "user": "USER=foo\n",
    "zombie": "* * * * * * * /bin/sleep 0.1 & exec /bin/sleep 0\n",
}


@pytest.fixture(scope="module")
def supercronic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pys6-install-supercronic DIR`, as an image would run it."""
    bin_dir = tmp_path_factory.mktemp("bin")
    installed = subprocess.run([sys.executable, "-m", "supervisor.cron.install", str(bin_dir)], capture_output=True,
                               text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=30)
    assert installed.returncode == 0, installed.stderr
    exe = bin_dir / "supercronic"
    assert exe.is_symlink() and os.readlink(exe).endswith("pycrond")
    return exe


@pytest.fixture
def crontabs(tmp_path: Path) -> Path:
    for name, text in CRONTABS.items():
        (tmp_path / f"{name}.crontab").write_text(text)
    return tmp_path


def environment(**extra: str) -> dict[str, str]:
    # This checkout's code, whatever the installed console script was made from.
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


def run_supercronic(exe: Path, crontab: Path, until: str, args: tuple[str, ...] = (), count: int = 1,
                    **env: str) -> str:
    """test.bats' run_supercronic (`timeout --preserve-status 1s supercronic ARGS CRONTAB 2>&1`) with its fixed
    time made a condition: run until `until` (a regular expression) has matched `count` times (at most 20 s),
    then SIGTERM, and return all it said, the shutdown included."""
    output = Path(tempfile.mkdtemp()) / "out"
    with open(output, "wb") as handle:
        process = subprocess.Popen([str(exe), *args, str(crontab)], stdout=handle, stderr=subprocess.STDOUT,
                                   env=environment(**env))
    try:
        wait_for(lambda: len(re.findall(until, output.read_text())) >= count, 20, f"{count} x {until!r}")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = output.read_text()
    shutil.rmtree(output.parent)
    return text


def term_once_started(exe: Path, crontab: Path, out: Path) -> str:
    """test.bats' 1 s run of a slow job, as a condition: SIGTERM once the first run has started, then all it says."""
    with open(out, "wb") as handle:
        process = subprocess.Popen([str(exe), str(crontab)], stdout=handle, stderr=subprocess.STDOUT, env=environment())
    try:
        wait_for(lambda: "msg=starting" in out.read_text(), 10, "the first run")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return out.read_text()


def test_it_prints_the_version(supercronic: Path):
    result = subprocess.run([str(supercronic), "-version"], capture_output=True, text=True, env=environment(), timeout=30)
    assert result.returncode == 0 and re.fullmatch(r"v\d+\.\d+\.\d+\n", result.stdout)


def test_it_starts(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "noop.crontab", "read crontab")  # and exits 0 on SIGTERM
    assert "level=error" not in out and "level=fatal" not in out


def test_it_runs_a_cron_job(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "hello.crontab", r"(?im)hello from crontab.*channel=stdout", count=4)
    assert len(re.findall(r"(?im)hello from crontab.*channel=stdout", out)) > 3


def test_it_passes_the_environment_through(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "env.crontab", "job succeeded", VAR="hello from foo")
    assert re.search(r"(?i)hello from foo.*channel=stdout", out)


def test_it_overrides_the_environment_with_the_crontab(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "override.crontab", "job succeeded", VAR="hello from foo")
    assert re.search(r"(?i)hello from bar.*channel=stdout", out)


def test_it_warns_when_user_is_set(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "user.crontab", "read crontab")
    assert re.search(r"(?i)processes will not.*USER=", out)


def test_it_warns_when_a_job_is_falling_behind(supercronic: Path, crontabs: Path, tmp_path: Path):
    out = term_once_started(supercronic, crontabs / "timeout.crontab", tmp_path / "out")
    assert re.search(r"(?i)job took too long to run", out)


def test_it_warns_repeatedly_when_a_job_is_still_running(supercronic: Path, crontabs: Path, tmp_path: Path):
    out = term_once_started(supercronic, crontabs / "timeout.crontab", tmp_path / "out")
    assert len(re.findall(r"(?i)job is still running", out)) == 2, out


def test_it_runs_overlapping_jobs(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "timeout.crontab", "msg=starting", ("-overlapping",), count=4)
    assert len(re.findall(r"(?i)starting", out)) >= 4


def test_it_supports_debug_logging(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "hello.crontab", "job succeeded", ("-debug",))
    assert re.search(r"(?i)debug", out)


def test_it_supports_json_logging(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "noop.crontab", "read crontab", ("-json",))
    assert re.search(r"(?m)^\{", out)
    assert all(json.loads(line)["level"] for line in out.splitlines())


def test_it_supports_passing_command_logging_through(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "hello.crontab", "job succeeded", ("-passthrough-logs",))
    assert re.search(r"(?im)^hello from crontab$", out)


def test_it_waits_for_jobs_to_exit_before_terminating(supercronic: Path, crontabs: Path, tmp_path: Path):
    out = tmp_path / "out"
    with open(out, "wb") as handle:
        process = subprocess.Popen([str(supercronic), str(crontabs / "exit.crontab")], stdout=handle,
                                   stderr=subprocess.STDOUT, env=environment(MSG_START="will start", MSG_DONE="all done"))
    try:
        wait_for(lambda: "will start" in out.read_text(), 10, "the job to start")
        process.send_signal(signal.SIGTERM)
        wait_for(lambda: "all done" in out.read_text(), 10, "the job to finish")
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_it_tests_a_valid_crontab(supercronic: Path, crontabs: Path):
    result = subprocess.run(["timeout", "10s", str(supercronic), "-test", str(crontabs / "noop.crontab")],
                            capture_output=True, text=True, env=environment(), timeout=30)
    assert result.returncode == 0 and "crontab is valid" in result.stderr


def test_it_tests_an_invalid_crontab(supercronic: Path, crontabs: Path):
    result = subprocess.run(["timeout", "10s", str(supercronic), "-test", str(crontabs / "invalid.crontab")],
                            capture_output=True, text=True, env=environment(), timeout=30)
    assert result.returncode == 1
    assert 'level=fatal msg="bad crontab line: \'oops\' (use -debug for details)"' in result.stderr


def test_it_errors_on_an_invalid_crontab(supercronic: Path, crontabs: Path):
    result = subprocess.run([str(supercronic), str(crontabs / "invalid.crontab")], capture_output=True, text=True,
                            env=environment(), timeout=30)
    assert result.returncode == 1 and "level=fatal" in result.stderr


def test_a_missing_crontab_is_fatal_with_gos_words(supercronic: Path, tmp_path: Path):
    result = subprocess.run([str(supercronic), str(tmp_path / "absent")], capture_output=True, text=True,
                            env=environment(), timeout=30)
    assert result.returncode == 1
    assert f'level=fatal msg="open {tmp_path / "absent"}: no such file or directory"' in result.stderr


def _as_pid1(supercronic: Path, crontab: Path, out: Path, seconds: float) -> str:
    problem = can_unshare()
    if problem:
        pytest.skip(problem)
    with open(out, "wb") as handle:
        outer = subprocess.Popen(["unshare", "--fork", "--pid", "--mount-proc", "--kill-child", str(supercronic),
                                  str(crontab)], stdout=handle, stderr=subprocess.STDOUT, env=environment())
    try:
        inner = wait_for(lambda: psutil.Process(outer.pid).children(), 10, "supercronic as PID 1")[0]
        wait_for(lambda: "read crontab" in out.read_text(), 10, "the crontab to be read")
        deadline = time.monotonic() + seconds
        wait_for(lambda: time.monotonic() > deadline or "reaper cleanup: pid=" in out.read_text(), seconds + 5,
                 "the run")
        inner.send_signal(signal.SIGTERM)
        assert outer.wait(30) == 0
    finally:
        if outer.poll() is None:
            outer.kill()
            outer.wait()
    return out.read_text()


@pytest.mark.namespace
def test_it_runs_as_pid_1_and_reaps_zombie_processes(supercronic: Path, crontabs: Path, tmp_path: Path):
    text = _as_pid1(supercronic, crontabs / "zombie.crontab", tmp_path / "zombie-crontab-out", 5)
    assert 'level=info msg="reaping dead processes"' in text
    assert re.search(r'level=warning msg="reaper cleanup: pid=\d+, wstatus=0"', text)


@pytest.mark.namespace
def test_it_runs_as_pid_1_and_a_normal_crontab_gives_no_error(supercronic: Path, crontabs: Path, tmp_path: Path):
    text = _as_pid1(supercronic, crontabs / "normal.crontab", tmp_path / "normal-crontab-out", 3)
    assert "waitid: no child processes" not in text
    assert not re.search(r"level=(error|fatal)", text) and "Traceback" not in text
    assert text.count('level=info msg="job succeeded"') >= 2


# --- reload.bats ---------------------------------------------------------------------------------------------


class Running:
    def __init__(self, supercronic: Path, *args: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen([str(supercronic), *args], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, env=env)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def reload_files(tmp_path: Path) -> Iterator[tuple[Path, Path, list[Running]]]:
    running: list[Running] = []
    yield tmp_path / "crontab", tmp_path / "test-file", running
    for each in running:
        each.stop()


def _grep(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text()


def test_it_reloads_on_sigusr2(supercronic: Path, reload_files: tuple[Path, Path, list[Running]]):
    crontab, test_file, running = reload_files
    crontab.write_text('* * * * * * * echo a > "$TEST_FILE"\n')
    cron = Running(supercronic, str(crontab), env=environment(TEST_FILE=str(test_file)))
    running.append(cron)
    wait_for(lambda: _grep(test_file, "a"), 6, "a")
    crontab.write_text('* * * * * * * echo b > "$TEST_FILE"\n')
    cron.process.send_signal(signal.SIGUSR2)
    wait_for(lambda: _grep(test_file, "b"), 6, "b")


def test_with_inotify_it_reloads_on_a_write(supercronic: Path, reload_files: tuple[Path, Path, list[Running]]):
    crontab, test_file, running = reload_files
    crontab.write_text('* * * * * * * echo a > "$TEST_FILE"\n')
    running.append(Running(supercronic, "-inotify", str(crontab), env=environment(TEST_FILE=str(test_file))))
    wait_for(lambda: _grep(test_file, "a"), 6, "a")
    crontab.write_text('* * * * * * * echo b > "$TEST_FILE"\n')
    wait_for(lambda: _grep(test_file, "b"), 6, "b")


def test_with_inotify_it_follows_kubernetes_like_symlink_swaps_and_folder_deletion(
        supercronic: Path, reload_files: tuple[Path, Path, list[Running]], tmp_path: Path):
    _, test_file, running = reload_files
    work, pre, post = tmp_path / "work", tmp_path / "pre", tmp_path / "post"
    for directory in (work, pre, post):
        directory.mkdir()
    (pre / "crontab-x").write_text('* * * * * * * echo a > "$TEST_FILE"\n')
    (post / "crontab-x").write_text('* * * * * * * echo b > "$TEST_FILE"\n')
    (work / "crontab-x").symlink_to(pre / "crontab-x")
    running.append(Running(supercronic, "-inotify", "-debug", str(work / "crontab-x"),
                           env=environment(TEST_FILE=str(test_file))))
    wait_for(lambda: _grep(test_file, "a"), 6, "a")
    subprocess.run(["ln", "-sf", str(post / "crontab-x"), str(work / "crontab-x")], check=True)
    subprocess.run(["rm", "-r", str(pre)], check=True)
    wait_for(lambda: _grep(test_file, "b"), 6, "b")


# --- the rest of supercronic's command line ------------------------------------------------------------------


def test_go_flag_spellings_are_all_accepted(supercronic: Path, crontabs: Path):
    for args in (("-json",), ("--json",), ("-json=true",), ("--json=1",)):
        out = run_supercronic(supercronic, crontabs / "noop.crontab", "read crontab", args)
        assert out.startswith("{"), (args, out)
    out = run_supercronic(supercronic, crontabs / "noop.crontab", "read crontab", ("-json=false",))
    assert out.startswith("time="), out
    result = subprocess.run([str(supercronic), "-no-such-flag", str(crontabs / "noop.crontab")], capture_output=True,
                            env=environment(), timeout=30)
    assert result.returncode == 2  # usage, as Go's flag package exits


def test_split_logs_sends_info_to_stdout_and_warnings_to_stderr(supercronic: Path, crontabs: Path, tmp_path: Path):
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        process = subprocess.Popen([str(supercronic), "-split-logs", str(crontabs / "user.crontab")], stdout=out,
                                   stderr=err, env=environment())
    try:
        wait_for(lambda: "crontab loaded" in stdout.read_text(), 20, "the crontab to be read")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert 'level=info msg="read crontab: ' in stdout.read_text() and "level=warning" not in stdout.read_text()
    assert 'level=warning msg="processes will NOT be spawned as USER=foo"' in stderr.read_text()
    assert "level=info" not in stderr.read_text()


def test_quiet_keeps_only_warnings_and_errors(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "user.crontab", "USER=foo", ("-quiet", "-debug"))  # quiet wins
    assert "level=warning" in out and "level=info" not in out and "level=debug" not in out


def test_sentry_settings_are_accepted_with_one_warning(supercronic: Path, crontabs: Path):
    out = run_supercronic(supercronic, crontabs / "noop.crontab", "read crontab",
                          ("-sentry-dsn", "https://k@sentry.example/1", "-sentry-environment", "prod"),
                          SENTRY_RELEASE="1.2.3")
    warnings = [line for line in out.splitlines() if "Sentry" in line]
    assert len(warnings) == 1 and "level=warning" in warnings[0], out
    assert "-sentry-dsn" in warnings[0] and "SENTRY_RELEASE" in warnings[0]


@contextmanager
def running_in_background(*argv: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """supercronic ARGV with its output in `log`; at the end SIGTERM, and SIGKILL if it has not gone in 30 s."""
    with open(log, "wb") as handle:
        process = subprocess.Popen(list(argv), stdout=handle, stderr=subprocess.STDOUT, env=environment())
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_prometheus_listen_address_serves_metrics_and_health(supercronic: Path, crontabs: Path, tmp_path: Path):
    port = free_port()
    log = tmp_path / "log"
    with running_in_background(str(supercronic), "-prometheus-listen-address", f"127.0.0.1:{port}",
                               str(crontabs / "hello.crontab"), log=log):
        wait_for(lambda: "job succeeded" in log.read_text(), 10, "a run")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            assert response.read() == b"OK"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert "supercronic_successful_executions{" in response.read().decode()


def test_prometheus_listen_address_defaults_to_supercronics_port(supercronic: Path, crontabs: Path, tmp_path: Path):
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 9746)) == 0:
            pytest.skip("port 9746 is taken on this machine")
    log = tmp_path / "log"
    with running_in_background(str(supercronic), "-prometheus-listen-address", "127.0.0.1",
                               str(crontabs / "noop.crontab"), log=log):
        wait_for(lambda: "serving metrics" in log.read_text(), 10, "the listener")
        with urllib.request.urlopen("http://127.0.0.1:9746/health", timeout=5) as response:
            assert response.read() == b"OK"


def test_an_address_that_cannot_be_listened_on_is_fatal(supercronic: Path, crontabs: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([str(supercronic), "-prometheus-listen-address", f"127.0.0.1:{port}",
                                 str(crontabs / "noop.crontab")], capture_output=True, text=True, env=environment(),
                                timeout=30)
    assert result.returncode == 1 and 'level=fatal msg="prometheus http startup failed: ' in result.stderr


def test_deadline_exceeded_counts_ticks_that_found_the_job_still_running(supercronic: Path, crontabs: Path,
                                                                         tmp_path: Path):
    port = free_port()
    log = tmp_path / "log"
    with running_in_background(str(supercronic), "-prometheus-listen-address", f"127.0.0.1:{port}",
                               str(crontabs / "timeout.crontab"), log=log):
        wait_for(lambda: "job succeeded" in log.read_text(), 10, "a run of sleep 2.5")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        still_running = log.read_text().count("job is still running")
        value = re.search(r"^supercronic_deadline_exceeded\{[^}]*\} (\d+)$", text, re.M)
        assert value and int(value.group(1)) >= 2 and int(value.group(1)) <= still_running
