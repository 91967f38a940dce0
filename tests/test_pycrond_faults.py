"""Issue 7 for pycrond: RT signals, hostile crontab files, SIGTERM at any moment, edits elsewhere cost nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import REPO, Cron, killed_at_exit, wait_for


def test_a_job_killed_by_a_real_time_signal_is_named_and_pycrond_goes_on(cron: Cron):
    cron.crontab.write_text("* * * * * * * kill -40 $$\n* * * * * * * echo still here\n")
    cron.start("-debug")
    cron.wait_err("error running command: signal: signal 40 iteration=")  # Go's words for it, as supercronic's
    cron.wait_err("signal=SIGRTMIN+6")  # pycrond's name for it, on the debug line
    cron.wait_out("still here", 5)
    count = cron.stdout().count("still here")
    wait_for(lambda: cron.stdout().count("still here") > count, 5, "the next run")
    assert cron.stop() == 0


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_a_fifo_or_a_device_as_the_crontab_is_refused_and_sigterm_still_works(tmp_path: Path, kind: str):
    if kind == "fifo":
        path = tmp_path / "crontab"
        os.mkfifo(path)
    else:
        path = Path(kind)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    refused = subprocess.run([sys.executable, "-m", "supervisor.cron.main", str(path)], capture_output=True, text=True,
                             timeout=10, env=env)
    assert refused.returncode == 1  # as supercronic: a crontab that cannot be read at start is fatal
    assert f'level=fatal msg="open {path}: not a regular file' in refused.stderr
    log = tmp_path / "stderr.log"
    with open(log, "wb") as handle:  # with --keep-going, pycrond waits for a crontab it can read
        process = subprocess.Popen([sys.executable, "-m", "supervisor.cron.main", "--keep-going", str(path)],
                                   stdout=subprocess.DEVNULL, stderr=handle, start_new_session=True,
                                   env={**os.environ, "PYTHONPATH": str(REPO)})
    with killed_at_exit(process):
        wait_for(lambda: b"crontab unreadable" in log.read_bytes(), 10, "pycrond to refuse the crontab")
        assert b"not a regular file" in log.read_bytes()
        process.terminate()
        assert process.wait(10) == 0
    test = subprocess.run([sys.executable, "-m", "supervisor.cron.main", "--test", str(path)],
                          capture_output=True, text=True, timeout=10, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert test.returncode == 1 and "not a regular file" in test.stderr


def test_a_crontab_swapped_for_a_fifo_while_running_keeps_the_jobs_and_sigterm_works(cron: Cron):
    cron.crontab.write_text("@daily echo kept\n")
    cron.start()
    fifo = cron.root / "crontab.new"
    os.mkfifo(fifo)
    os.replace(fifo, cron.crontab)  # an editor's rename: the watch fires, the reload meets a FIFO
    cron.wait_err("crontab unreadable, keeping the previous jobs")
    assert any("not a regular file (a FIFO)" in e["reason"]
               for e in cron.events("crontab unreadable, keeping the previous jobs", jobs_kept=1))
    assert cron.stop(timeout=10) == 0


def test_a_write_to_another_file_of_the_directory_does_not_even_read_the_crontab(cron: Cron, tmp_path: Path):
    # The crontab is a hard link to a file elsewhere: writes there reach it without an event in
    # the watched directory. Only the unrelated file's event comes; the crontab must not be read.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    original = elsewhere / "crontab"
    original.write_text("@daily echo first\n")
    os.link(original, cron.crontab)
    cron.start()
    assert len(cron.events("crontab loaded")) == 1
    with open(original, "a") as handle:
        handle.write("@daily echo second\n")
    (cron.root / ".bash_history").write_text("ls\n")
    (cron.root / "notes.txt").write_text("x\n")
    time.sleep(0.5)  # nothing should happen: give a wrong reload the time to show itself
    assert len(cron.events("crontab loaded")) == 1
    os.utime(cron.crontab)  # the crontab's own name: now it is read, and the new line is seen
    wait_for(lambda: len(cron.events("crontab loaded")) == 2, 10, "the reload")
    assert cron.events("crontab loaded", jobs=2)
    assert cron.stop() == 0


@pytest.mark.parametrize("line", ["@every " + "9" * 400 + "h echo x", "PYCROND_TIMEOUT=1.2.3s",
                                  "@every 1e400s echo x"])
def test_out_of_range_durations_are_bad_lines(cron: Cron, line: str):
    cron.crontab.write_text(f"{line}\n@daily echo fine\n")
    cron.start()
    cron.wait_err("bad crontab line")
    assert cron.events("crontab loaded", jobs=1)
    assert cron.stop() == 0
