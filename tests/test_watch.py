"""pysvstat --watch on a real pseudo-terminal against a live pyinit: the table, its refresh, its
ways out (the terminal given back as it was), colour and its absence, the width it keeps to.

pysvstat runs in its own session with the pty's slave as its controlling terminal (os.login_tty),
so a \\x03 written to the master is the line discipline's SIGINT, as a person's Ctrl-C is. The
test keeps the slave open too, to read its settings before and after (tcgetattr).
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import sys
import termios
import time

import pytest

from harness import GREETING_SLEEPER, REPO, Pod, read_int, started, wait_for

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


class Watch:
    """A pysvstat --watch on a pty of `columns` x `rows`; its output gathered as it comes."""

    def __init__(self, pod: Pod, *args: str, columns: int = 160, rows: int = 40, **env: str) -> None:
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.before = termios.tcgetattr(self.slave)
        environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "LANG": "C.UTF-8",
                   "PYS6_RUNDIR": str(pod.rundir), "TERM": "xterm-256color", **env}
        command = [sys.executable, "-m", "supervisor.control.svstat", "--watch", "--interval", "0.2", *args]
        slave_name = os.ttyname(self.slave)
        self.pid = os.fork()
        if self.pid == 0:  # the child: nothing but exec (or _exit), in a session of its own on the pty
            try:
                os.close(self.master)
                os.login_tty(os.open(slave_name, os.O_RDWR))
                os.execve(sys.executable, command, environ)
            finally:
                os._exit(127)
        os.set_blocking(self.master, False)
        self.output = b""
        self.status: int | None = None

    def read(self) -> None:
        while select.select([self.master], [], [], 0)[0]:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: nothing more, the child is gone
                return
            if not data:
                return
            self.output += data

    def text(self) -> str:
        self.read()
        return self.output.decode("utf-8", "replace")

    def frames(self) -> list[list[str]]:
        """Each whole frame drawn so far (cursor home ... clear below), its lines without escapes."""
        pieces = self.text().split("\x1b[H")[1:]
        return [[_ESCAPE.sub("", line) for line in piece.split("\x1b[J")[0].split("\r\n")]
                for piece in pieces if "\x1b[J" in piece]

    def table(self) -> dict[str, dict[str, str]]:
        """The last frame's rows by service, each cell by its column's header."""
        frames = self.frames()
        return parse_table(frames[-1]) if frames else {}

    def wait_row(self, service: str, what: str, condition: object, timeout: float = 15.0) -> dict[str, str]:
        def seen() -> dict[str, str] | None:
            row = self.table().get(service)
            return row if row is not None and condition(row) else None  # type: ignore[operator]
        return wait_for(seen, timeout, what, interval=0.05)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait_exit(self, timeout: float = 10.0) -> int:
        def ended() -> bool:
            self.read()  # a child blocked on a full pty would never end
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
            return bool(pid)
        wait_for(ended, timeout, "pysvstat --watch to exit", interval=0.02)
        assert self.status is not None
        return os.waitstatus_to_exitcode(self.status)

    def after(self) -> list[object]:
        return termios.tcgetattr(self.slave)

    def close(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except ProcessLookupError:
                pass
        os.close(self.master)
        os.close(self.slave)


def parse_table(lines: list[str]) -> dict[str, dict[str, str]]:
    try:
        at = next(i for i, line in enumerate(lines) if line.startswith("SERVICE "))
    except StopIteration:
        return {}
    header = lines[at]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    rows = {}
    for line in lines[at + 1:]:
        cells = [line[start:end].strip() for start, end in zip(starts, [*starts[1:], None], strict=True)]
        if cells and cells[0]:
            rows[cells[0]] = dict(zip(names, cells, strict=True))
    return rows


@pytest.fixture
def watching(pod: Pod):
    opened: list[Watch] = []

    def start(*args: str, **kwargs: object) -> Watch:
        watch = Watch(pod, *args, **kwargs)  # type: ignore[arg-type]
        opened.append(watch)
        return watch

    yield start
    for watch in opened:
        watch.close()


def test_the_table_follows_the_services_and_q_gives_the_terminal_back(pod: Pod, watching) -> None:
    pod.service("crasher", "exit 3")
    started(pod, "web", "db")
    watch = watching()
    row = watch.wait_row("web", "web up in the table", lambda r: r["STATE"] == "up")
    assert row["PID"] == str(read_int(pod, "web.pid")) and row["READY"] == "yes" and row["RESTARTS"] == "0"
    assert watch.wait_row("db", "db up", lambda r: r["STATE"] == "up")
    assert watch.wait_row("crasher", "crasher dying", lambda r: r["STATE"] in ("crash-loop", "bailed")
                          or r["STATE"].startswith("down (exit 3)"))
    during = watch.after()
    assert during[3] & termios.ICANON == 0 and during[3] & termios.ECHO == 0 and during != watch.before
    assert "\x1b[?1049h" in watch.text() and "\x1b[32mup\x1b[0m" in watch.text()  # its own screen, in colour

    assert pod.cli("svc", "-r", "web").returncode == 0  # a restart: counted from pyinit's metrics
    watch.wait_row("web", "web restarted once", lambda r: r["RESTARTS"] == "1" and r["STATE"] == "up")
    assert pod.cli("svc", "-d", "web").returncode == 0
    watch.wait_row("web", "web down on a refresh", lambda r: r["STATE"].startswith("down"))
    assert watch.table()["web"]["PID"] == "" and watch.table()["db"]["STATE"] == "up"

    watch.send(b"q")
    assert watch.wait_exit() == 0
    assert watch.after() == watch.before
    assert watch.text().endswith("\x1b[?25h\x1b[?1049l")  # the cursor shown, the shell's screen back


@pytest.mark.parametrize("how", ["ctrl-c", "sigint", "sigterm"])
def test_ctrl_c_and_sigterm_quit_with_the_terminal_restored(pod: Pod, watching, how: str) -> None:
    started(pod, "web")
    watch = watching()
    watch.wait_row("web", "the table", lambda r: r["STATE"] == "up")
    assert watch.after() != watch.before
    if how == "ctrl-c":
        watch.send(b"\x03")  # the line discipline makes it SIGINT to the foreground process group
    else:
        os.kill(watch.pid, signal.SIGINT if how == "sigint" else signal.SIGTERM)
    assert watch.wait_exit() == (143 if how == "sigterm" else 0)
    assert watch.after() == watch.before
    assert watch.text().endswith("\x1b[?25h\x1b[?1049l")


@pytest.mark.parametrize("env", [{"NO_COLOR": "1"}, {"TERM": "dumb"}], ids=["NO_COLOR", "dumb"])
def test_no_colour_with_no_color_or_a_dumb_terminal(pod: Pod, watching, env: dict[str, str]) -> None:
    started(pod, "web")
    watch = watching(**env)
    if env.get("TERM") == "dumb":  # no cursor to move: tables one below the other, no escape at all
        wait_for(lambda: re.search(r"\nweb +up ", watch.text()), 15, "the table", interval=0.05)
        assert pod.cli("svc", "-d", "web").returncode == 0
        wait_for(lambda: re.search(r"\nweb +down", watch.text()), 15, "a new table once web is down", interval=0.05)
        assert "\x1b" not in watch.text()
        tables = watch.text().count("SERVICE ")
        assert 2 <= tables <= 3  # one per change, not one per refresh (0.2 s)
    else:
        watch.wait_row("web", "the table", lambda r: r["STATE"] == "up")
        assert "\x1b[H" in watch.text() and not _COLOUR.search(watch.text())
    watch.send(b"q")
    assert watch.wait_exit() == 0
    assert watch.after() == watch.before


def test_a_narrow_terminal_gets_lines_cut_never_wrapped(pod: Pod, watching) -> None:
    pod.service("a-service-whose-name-is-longer-than-forty-columns", GREETING_SLEEPER)  # cut in its cell
    pod.service("noted", 'printf "a note much longer than forty columns, written by the service\\n" > status-note\n'
                         "exec sleep 1000\n")
    started(pod, "web")
    watch = watching(columns=40)
    long_name = "a-service-whose-name-is-longer-than-forty-columns"
    wait_for(lambda: any(line == "noted" for f in watch.frames() for line in f), 15, "the table",
             interval=0.05)
    watch.send(b"q")
    assert watch.wait_exit() == 0
    lines = [line for frame in watch.frames() for line in frame]
    assert max(len(line) for line in lines) == 40  # the header and the long rows fill it
    assert not any("NOTE" in line or "note much" in line for line in lines)
    assert long_name[:40] in lines and not any(long_name in line for line in lines)


def test_a_resize_is_followed_at_once(pod: Pod, watching) -> None:
    """Making the pty narrower sends pysvstat SIGWINCH (the kernel does, to the foreground group):
    it draws again at once, long before its 30 s refresh, keeping to the new width."""
    pod.service("noted", 'printf "a note much longer than forty columns, written by the service\\n" > status-note\n'
                         "exec sleep 1000\n")
    started(pod, "web")
    watch = watching("--interval", "30", columns=160)  # the last --interval given counts
    watch.wait_row("noted", "the note", lambda r: r["NOTE"].startswith("a note much longer"))
    fcntl.ioctl(watch.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 40, 0, 0))
    wait_for(lambda: (f := watch.frames()) and max(len(line) for line in f[-1]) <= 40
             and any(line.startswith("noted") for line in f[-1]), 15, "a frame 40 columns wide", interval=0.05)
    watch.send(b"q")
    assert watch.wait_exit() == 0


def test_pyinit_going_away_is_said_and_q_still_quits(pod: Pod, watching) -> None:
    started(pod, "web")
    watch = watching()
    watch.wait_row("web", "the table", lambda r: r["STATE"] == "up")
    pod.stop()
    wait_for(lambda: "trying again every 0.2s" in watch.text(), 15, "the word that pyinit is gone", interval=0.05)
    assert watch.table()["web"]["STATE"] == "up"  # the last table seen stays
    watch.send(b"q")
    assert watch.wait_exit() == 0
    assert watch.after() == watch.before


def test_not_on_a_terminal_the_table_once(pod: Pod) -> None:
    pod.service("noted", 'printf "lines \\033[31mrefused\\n" > status-note\nexec sleep 1000\n')
    started(pod, "web")
    wait_for(lambda: "refused" in pod.cli("svstat", "noted").stdout, 10, "the note")
    started_at = time.monotonic()
    result = pod.cli("svstat", "--watch", env={"TERM": "xterm"})
    assert result.returncode == 0 and time.monotonic() - started_at < 10
    assert "\x1b" not in result.stdout
    table = parse_table(result.stdout.splitlines())
    assert table["web"]["STATE"] == "up" and table["noted"]["STATE"] == "up"
    assert table["noted"]["NOTE"] == "lines \\x1b[31mrefused"  # escaped, never acted on
    assert result.stdout.splitlines()[0].startswith("SERVICE ") and len(table) == 2
    one = pod.cli("svstat", "--watch", "web")
    assert parse_table(one.stdout.splitlines()).keys() == {"web"}, one


def test_watch_usage(pod: Pod) -> None:
    started(pod, "web")
    assert "--watch" in pod.cli("svstat", "--help").stdout
    for args in (("--watch", "--json"), ("--watch", "-o", "up"), ("--interval", "1"), ("--watch", "--interval", "0"),
                 ("--watch", "--interval", "nan"), ("--watch", "--interval=x"), ("--watch", "--check")):
        result = pod.cli("svstat", *args)
        assert result.returncode == 100 and "usage" in result.stderr, args
    unknown = pod.cli("svstat", "--watch", "nosuch")
    assert unknown.returncode == 100 and "unknown service" in unknown.stderr


def test_health_where_a_check_exists(pod: Pod) -> None:
    pod.service("good", GREETING_SLEEPER, health_interval="0.2\n")
    pod.script("services.d/good/health", "#!/bin/sh\nexit 0\n")
    pod.service("bad", GREETING_SLEEPER, health_interval="0.2\n", health_start="0\n", health_retries="100\n")
    pod.script("services.d/bad/health", "#!/bin/sh\nexit 1\n")
    started(pod, "web")

    def table() -> dict[str, dict[str, str]]:
        return parse_table(pod.cli("svstat", "--watch").stdout.splitlines())

    wait_for(lambda: table()["good"]["HEALTH"] == "healthy", 15, "good healthy")
    row = wait_for(lambda: re.fullmatch(r"unhealthy \(([1-9][0-9]*) of 100\)", table()["bad"]["HEALTH"]) and
                   table()["bad"], 15, "bad unhealthy")
    assert row["STATE"] == "up" and table()["web"]["HEALTH"] == ""
