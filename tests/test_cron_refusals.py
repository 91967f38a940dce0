"""A crontab's refused lines reach `pysvstat cron`, not only the log; the seeded crontab says how to check it;
an edit's log line says the file changed.

pycrond keeps what is wrong with its crontab in --status-file (the pod's run
script: status-note in the service's directory), and pyinit shows a service's
status-note on its status line while it is up, when written since it went up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import REPO, Cron, Pod, pycrond_on_path, wait_for


def cron_record(pod: Pod) -> dict:
    answer = pod.cli("svstat", "--json", "cron")
    assert answer.returncode == 0, answer.stderr
    return dict(json.loads(answer.stdout))


def cron_line(pod: Pod) -> str:
    answer = pod.cli("svstat", "cron")
    assert answer.returncode == 0, answer.stderr
    return answer.stdout.strip()


def test_pysvstat_cron_says_how_many_lines_were_refused_until_the_crontab_is_fixed(pod: Pod):
    crontab = pod.root / "crontab"
    crontab.write_text("* * * * * * * true\nnot a cron line\n61 * * * * echo bad minute\n")
    pod.script("services.d/cron/run", (REPO / "services.d" / "cron" / "run").read_text())  # the pod's own
    bin_dir = pycrond_on_path(pod.root)
    pod.start(env={"CRONTAB": str(crontab), "PATH": f"{bin_dir}:/usr/bin:/bin"})
    pod.wait_control()

    refused = f"crontab: 2 lines refused (see pycrond -test {crontab})"
    wait_for(lambda: cron_record(pod).get("note") == refused, 15, "the refusals in cron's status record")
    line = cron_line(pod)
    assert line.startswith("up (pid ") and line.endswith(", " + refused), line

    crontab.write_text("* * * * * * * true\n")  # fixed: nothing more to say
    wait_for(lambda: cron_record(pod).get("note") is None, 15, "the note to go once the crontab is fixed")
    assert "crontab:" not in cron_line(pod)

    with crontab.open("a") as stream:  # a bad line appended, as in the issue: the whole edit is refused
        stream.write("* * * * echo four fields\n")
    wait_for(lambda: cron_record(pod).get("note") is not None, 15, "the refused edit in cron's status record")
    assert cron_record(pod)["note"] == (f"crontab: edit refused, 1 line bad, the previous 1 job kept "
                                        f"(see pycrond -test {crontab})")
    # pycrond's own log says what happened: the file changed (its watch), not a signal nobody sent.
    log = pod.stderr() + pod.stdout()
    assert "crontab file changed, reloading crontab" in log
    assert "received user defined signal 2" not in log


GREETER = """\
if [ ! -e "$STATE/said" ]; then
    printf 'disk: 91%% full\\033[2J\\n' > status-note
    touch "$STATE/said"
fi
echo $$ > "$STATE/svc.pid"
exec sleep 1000
"""


def test_a_note_shows_while_its_run_is_up_and_not_after_a_restart_that_wrote_none(pod: Pod):
    pod.service("svc", GREETER)
    pod.start()
    pod.wait_control()
    wait_for(lambda: (pod.state / "said").exists(), 10, "the first run's note")
    record = wait_for(lambda: (r := json.loads(pod.cli("svstat", "--json", "svc").stdout)).get("note") and r, 10,
                      "the note in the record")
    assert record["note"] == "disk: 91% full\\x1b[2J", "a terminal escape in a note is shown, never sent"
    first_pid = record["pid"]
    # The next run starts well after the note was written, so the note is older than it.
    wait_for(lambda: json.loads(pod.cli("svstat", "--json", "svc").stdout)["seconds"] >= 1, 10, "a second up")
    assert pod.cli("svc", "-k", "svc").returncode == 0

    def restarted() -> dict | None:
        again = json.loads(pod.cli("svstat", "--json", "svc").stdout)
        return again if again["state"] == "up" and again["pid"] not in (None, first_pid) else None

    again = wait_for(restarted, 15, "the restart")
    assert again["note"] is None, "the earlier run's note says nothing about this one"
    assert "disk:" not in pod.cli("svstat", "svc").stdout


# --- the note as pyinit reads it -----------------------------------------------------------------------------


def test_read_note_refuses_links_fifos_big_files_and_keeps_one_short_escaped_line(tmp_path: Path):
    from supervisor.core.statusnote import NOTE_CHARS, NOTE_FILE, read_note

    note = tmp_path / NOTE_FILE
    before = time.time() - 5
    assert read_note(str(tmp_path), None, before) is None  # no file
    note.write_text("first line\u2028still first\nsecond line\n")
    assert read_note(str(tmp_path), None, before) == "first line\\u2028still first"
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert read_note(str(tmp_path), fd, before) == "first line\\u2028still first"  # pyinit's handle on the copy
    finally:
        os.close(fd)
    assert read_note(str(tmp_path), None, time.time() + 5) is None, "older than the run: stale"
    note.write_text("x" * 1000)
    shown = read_note(str(tmp_path), None, before)
    assert shown is not None and len(shown) == NOTE_CHARS and shown.endswith("...")
    note.write_text("y" * 5000)
    assert read_note(str(tmp_path), None, before) is None, "not a note: too big"
    note.write_text("\n\n")
    assert read_note(str(tmp_path), None, before) is None
    note.unlink()
    (tmp_path / "secret").write_text("do not show me\n")
    note.symlink_to(tmp_path / "secret")
    assert read_note(str(tmp_path), None, before) is None, "a link is not followed"
    note.unlink()
    os.mkfifo(note)
    assert read_note(str(tmp_path), None, before) is None, "a FIFO is not waited on"


# --- pycrond's status file and its log lines, standalone ------------------------------------------------------


@pytest.fixture
def cron(tmp_path: Path) -> Iterator[Cron]:
    runner = Cron(tmp_path)
    try:
        yield runner
    finally:
        runner.close()


def test_pycrond_keeps_its_status_file_to_what_is_wrong_now(cron: Cron, tmp_path: Path):
    status = tmp_path / "status"
    cron.start("--status-file", str(status))  # no crontab yet
    wait_for(lambda: status.exists(), 10, "the status file")
    assert status.read_text() == f"crontab: none yet, waiting for {cron.crontab}\n"
    cron.crontab.write_text("* * * * * * * true\n")
    wait_for(lambda: status.read_text() == "", 10, "an empty status once the crontab loads")
    cron.crontab.write_text("* * * * * * * true\n@every nonsense echo x\n* * * * * * * true\n")
    wait_for(lambda: status.read_text() != "", 10, "the refused edit")
    assert status.read_text() == (f"crontab: edit refused, 1 line bad, the previous 1 job kept "
                                  f"(see pycrond -test {cron.crontab})\n")
    cron.crontab.write_text("* * * * * * * true\n* * * * * * * false\n")
    wait_for(lambda: status.read_text() == "", 10, "an empty status once the edit is good")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pycrond-status-")], "no temporary left"
    assert cron.stop() == 0


def test_pycrond_says_the_crontab_changed_and_with_inotify_in_supercronics_words(tmp_path: Path):
    for flags, expected, absent in (((), "crontab file changed, reloading crontab", "received user defined signal 2"),
                                    (("-inotify",), "received user defined signal 2, reloading crontab",
                                     "crontab file changed")):
        root = tmp_path / ("inotify" if flags else "plain")
        root.mkdir()
        runner = Cron(root)
        runner.crontab.write_text("* * * * * * * echo one\n")
        try:
            runner.start(*flags, readable=False)
            runner.crontab.write_text("* * * * * * * echo two\n")
            runner.wait_err(expected)
            assert absent not in runner.stderr()
            assert runner.stop() == 0
        finally:
            runner.close()


def test_the_seeded_crontab_says_how_to_check_it_and_passes_that_check():
    template = REPO / "templates" / "crontab"
    header = template.read_text()
    assert "pycrond -test ~/.crontab" in header
    assert "pysvstat cron" in header
    checked = subprocess.run([sys.executable, "-m", "supervisor.cron.main", "-test", str(template)],
                             capture_output=True, text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert checked.returncode == 0, checked.stderr
