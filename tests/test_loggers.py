"""Per-service loggers as in s6: services.d/<name>/log/run and s6-rc pipelines read their
service's stdout through one pipe pyinit holds, so neither side's restart loses a line."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from harness import Pod, wait_for

PYS6_LOG = str(Path(sys.executable).parent / "pys6-log")
LOGGERS = ["pys6-log", "s6-log"]


def logger_command(which: str) -> str:
    if which == "s6-log":
        if shutil.which("s6-log") is None:
            pytest.skip("needs Debian's s6 package (.ci/run installs it)")
        return "s6-log"
    return PYS6_LOG


def logged(directory: Path) -> list[str]:
    """Every line of the log directory, oldest first, without s6-log's stamps."""
    lines: list[str] = []
    try:
        files = sorted(p for p in directory.iterdir() if p.name.startswith("@")) + [directory / "current"]
        for path in files:
            if path.exists():
                lines += path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return lines


@pytest.mark.parametrize("which", LOGGERS)
def test_a_services_log_run_gets_its_stdout_and_nothing_is_lost_across_restarts(subreaper_pod: Pod, which: str):
    pod = subreaper_pod
    logs = pod.root / "logs"
    # Prints 1..40, then dies; its next incarnation prints 41..80 and stays.
    service = pod.service("app", '''
        n=$(cat "$STATE/round" 2>/dev/null || echo 0); echo $((n + 1)) > "$STATE/round"
        start=$((n * 40 + 1)); end=$((start + 39))
        for i in $(seq $start $end); do echo "line $i"; done
        echo "to stderr" >&2
        [ "$n" -ge 1 ] && exec sleep 1000
        exit 1
    ''')
    (service / "log").mkdir()
    (service / "log" / "run").write_text(f"#!/bin/sh\nexec {logger_command(which)} n20 s100000 {logs}\n")
    (service / "log" / "run").chmod(0o755)
    pod.start()
    wait_for(lambda: "line 80" in logged(logs), 20, f"all 80 lines in the log\n{pod.stderr()[-2000:]}")
    assert logged(logs) == [f"line {i}" for i in range(1, 81)]
    assert "line 1" not in pod.stdout()  # stdout went to the logger...
    pod.wait_stderr("[app] to stderr")  # ...stderr is merged as ever
    assert pod.cli("svstat", "app-log").returncode == 0  # the logger is a supervised service
    # the logger restarts (pysvc -k): its service's next lines wait in the pipe, then arrive
    assert pod.cli("svc", "-wr", "-k", "app-log").returncode == 0
    assert pod.cli("svc", "-wr", "-r", "app").returncode == 0
    wait_for(lambda: "line 120" in logged(logs), 20, "the third round's lines")
    assert logged(logs) == [f"line {i}" for i in range(1, 121)]
    assert pod.stop() == 0


def test_at_shutdown_the_logger_gets_the_last_lines_before_it_ends(subreaper_pod: Pod):
    pod = subreaper_pod
    logs = pod.root / "logs"
    service = pod.service("app", 'trap \'echo "last words"; exit 0\' TERM\necho "first"\nwhile :; do sleep 0.05; done\n')
    (service / "log").mkdir()
    (service / "log" / "run").write_text(f"#!/bin/sh\nexec {PYS6_LOG} {logs}\n")
    (service / "log" / "run").chmod(0o755)
    pod.start()
    wait_for(lambda: "first" in logged(logs), 20, "the first line")
    assert pod.stop() == 0
    assert logged(logs) == ["first", "last words"]


def test_an_s6_rc_pipeline_feeds_its_consumer(pod: Pod):
    logs = pod.root / "logs"
    base = pod.etc / "s6-overlay" / "s6-rc.d"
    for name, files in (
        ("app", {"type": "longrun\n", "producer-for": "app-log\n",
                 "run": "#!/bin/sh\nfor i in 1 2 3; do echo \"pipeline $i\"; done\nexec sleep 1000\n"}),
        ("app-log", {"type": "longrun\n", "consumer-for": "app\n", "run": f"#!/bin/sh\nexec {PYS6_LOG} {logs}\n"}),
    ):
        (base / name).mkdir(parents=True)
        for filename, content in files.items():
            (base / name / filename).write_text(content)
    bundle = pod.etc / "s6-overlay" / "user-bundles.d" / "user" / "contents.d"
    bundle.mkdir(parents=True)
    (bundle / "app").touch()  # the consumer comes with its producer
    pod.start()
    wait_for(lambda: logged(logs) == ["pipeline 1", "pipeline 2", "pipeline 3"], 20, "the pipeline's lines")
    assert pod.stop() == 0


def test_s6_logging_1_logs_the_services_but_leaves_the_main_program_on_stdout(pod: Pod):
    import os

    pod.service("talk", 'echo "from the service"\nexec sleep 1000\n')
    main = ["sh", "-c", 'echo "from the main program"; exec sleep 1000']
    if os.geteuid() == 0:  # /var/log/s6-uncaught-logs, in a /var/log of its own (a tmpfs in its namespace)
        pod.start(*main, env={"S6_LOGGING": "1"},
                  wrapper=["sh", "-c", 'mount -t tmpfs pys6-test-log /var/log && exec "$@"', "sh"])
        logs = Path(f"/proc/{pod.init_pid}/root/var/log/s6-uncaught-logs")
    else:
        pod.start(*main, env={"S6_LOGGING": "1"})
        logs = pod.rundir / "uncaught-logs"
    wait_for(lambda: "from the main program" in pod.stdout(), 20, "the main program's line on stdout")
    wait_for(lambda: any("[talk] from the service" in line for line in logged(logs)), 20, "the catch-all log")
    assert "from the service" not in pod.stdout()
    pod.stop()


def test_logutil_service_keeps_the_log_as_nobody_with_s6_logging_script(subreaper_pod: Pod, tmp_path: Path):
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("logutil-service drops to nobody: needs root")
    commands = tmp_path / "bin"
    commands.mkdir()
    made = subprocess.run([str(Path(sys.executable).parent / "pyinit"), "--install-s6-commands", str(commands)],
                          capture_output=True, text=True, timeout=30)
    assert made.returncode == 0, made.stderr
    pod = subreaper_pod
    logs = pod.root / "logs"
    logs.mkdir()
    os.chown(logs, 65534, 65534)  # as an image's Dockerfile would give the log directory to nobody
    service = pod.service("app", 'echo "hello from app"\nexec sleep 1000\n')
    (service / "log").mkdir()
    (service / "log" / "run").write_text(f"#!/bin/sh\nexec {commands}/logutil-service {logs}/app\n")
    (service / "log" / "run").chmod(0o755)
    pod.start(env={"S6_LOGGING_SCRIPT": "n3 s4096"})
    wait_for(lambda: logged(logs / "app") == ["hello from app"], 20, f"the line\n{pod.stderr()[-2000:]}")
    assert (logs / "app" / "current").stat().st_uid == 65534
    assert pod.stop() == 0
