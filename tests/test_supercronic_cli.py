"""supercronic's reload.bats and the rest of its command line, restated against the installed
`supercronic` link. A module of its own so parallel workers can run it beside
test_supercronic_compat.py, whose fixtures and helpers it uses.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness import environment, free_port, killed_at_exit, run_supercronic, wait_for

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
    with killed_at_exit(process):
        wait_for(lambda: "crontab loaded" in stdout.read_text(), 20, "the crontab to be read")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
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
