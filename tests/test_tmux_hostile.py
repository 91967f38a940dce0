"""pys6-tmux-save and pys6-tmux-restore against hostile names, directories and leftovers, on a real tmux.

tmux expands formats in session and window names and in start directories:
`#(command)` there runs the command. A save file, or a pane merely left in a
directory named `x#(command)` when the pod stops, must never run anything at the
next restore, and must come back with its literal names. Each test has a tmux
server of its own (TMUX_TMPDIR and HOME in its temp dir), started by the
programs under test or by the test, and stops it by pid.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import REPO, stop_tmux_server, wait_for

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (scripts/bootstrap)")

def hostile(marker: str) -> str:
    """A format that runs a command in tmux; no slash, so it can sit in a directory's name (it goes home first)."""
    return f"#(cd;touch {marker})"


class Tmux:
    """A private tmux server's world: its socket directory, a home, and the programs under test."""

    def __init__(self, root: Path) -> None:
        self.home = root / "home"
        self.home.mkdir()
        sockets = root / "sockets"
        sockets.mkdir(mode=0o700)
        self.saves = self.home / ".tmux" / "resurrect"  # as cont-init.d/10-home makes it
        self.saves.mkdir(parents=True, mode=0o700)
        self.env = {"HOME": str(self.home), "TMUX_TMPDIR": str(sockets), "XDG_CONFIG_HOME": str(self.home / ".config"),
                    "XDG_DATA_HOME": str(self.home / ".local" / "share"), "SHELL": "/bin/sh",
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "LANG": "C.UTF-8"}
        self.server_pids: set[int] = set()

    def tmux(self, *args: str, cwd: Path | None = None, check: bool = True) -> str | None:
        """tmux's output; None when it failed and `check` is off."""
        result = subprocess.run(["tmux", *args], env=self.env, cwd=cwd or self.home, capture_output=True,
                                text=True, timeout=10)
        self.note_server()
        if check:
            assert result.returncode == 0, (args, result.stderr)
        return result.stdout if result.returncode == 0 else None

    def output(self, *args: str) -> str:
        listed = self.tmux(*args)
        assert listed is not None
        return listed

    def note_server(self) -> None:
        result = subprocess.run(["tmux", "display-message", "-p", "#{pid}"], env=self.env, cwd=self.home,
                                capture_output=True, text=True, timeout=10)
        if result.returncode == 0 and result.stdout.strip().isdigit():
            self.server_pids.add(int(result.stdout))

    def program(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "supervisor.pod.tmux", command, *args], env=self.env,
                                cwd=self.home, capture_output=True, text=True, timeout=30)
        self.note_server()
        return result

    def sessions(self) -> dict[str, str]:
        """Session name -> id."""
        listed = self.output("list-sessions", "-F", "#{session_id}\t#{session_name}")
        return {name: session_id for session_id, name in (line.split("\t", 1) for line in listed.splitlines())}

    def panes(self, session_id: str) -> list[tuple[str, str]]:
        """(window name, pane directory) of each pane of a session, in order."""
        listed = self.output("list-panes", "-s", "-t", session_id, "-F", "#{window_name}\t#{pane_current_path}")
        return [(window, directory) for window, directory in (line.split("\t", 1) for line in listed.splitlines())]

    def jobs_have_run(self) -> None:
        """A control job, started after everything else: once it has run, any job restore started has too."""
        control = self.home / "control"
        if self.tmux("run-shell", f"touch {control}", check=False) is None:
            # No server any more (tmux 3.3 dies of a malformed layout): a new one's first job is the control.
            self.tmux("new-session", "-d", f"touch {control}")
        wait_for(control.exists, 10, "tmux's control job")

    def stop_server(self) -> None:
        self.note_server()
        stop_tmux_server(self.env, self.server_pids)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Tmux]:
    world = Tmux(tmp_path)
    try:
        yield world
    finally:
        world.stop_server()


def no_marker(world: Tmux) -> None:
    world.jobs_have_run()
    ran = sorted(path.name for path in world.home.rglob("pwned-*"))
    assert ran == [], f"restore ran what a save file held: {ran}"


def test_a_hostile_save_file_runs_nothing_and_comes_back_literally(world: Tmux):
    first = world.home / f"x{hostile('pwned-directory')}"
    second = world.home / "y; $(cd;touch pwned-second) `cd;touch pwned-second`;"
    for directory in (first, second):
        directory.mkdir()
    session = f"S{hostile('pwned-session')} #{{pid}} %Y $(cd;touch pwned-second)"
    window = f"W{hostile('pwned-window')}"
    ending = "semi;"  # an argument ending in ; ends a tmux command
    other = "plain#{session_id}##"
    lines = [
        f"pane\t{session}\t0\t:{window}\t1\t:*\t0\t:{first}\t1\tsh\t:",
        f"pane\t{session}\t1\t:second\t0\t:-\t0\t:{second}\t0\tsh\t:",
        f"pane\t{session}\t1\t:second\t0\t:-\t1\t:{first}\t1\tsh\t:",
        f"window\t{session}\t0\t1\t:*\t{hostile('pwned-layout')}",
        f"window\t{session}\t1\t0\t:-\t,{hostile('pwned-layout')}",
        f"pane\t{ending}\t0\t:run-shell;\t1\t:*\t0\t:{second}\t1\tsh\t:",
        f"pane\t{other}\t0\t:{hostile('pwned-window')}\t1\t:*\t0\t:{first}\t1\tsh\t:",
        "state\t\t",
    ]
    saved = world.home / "hostile.txt"
    saved.write_text("\n".join(lines) + "\n")

    restored = world.program("restore", str(saved))
    no_marker(world)
    assert restored.returncode == 0, restored.stderr
    sessions = world.sessions()
    assert set(sessions) == {session, ending, other}
    wanted = [(window, str(first)), ("second", str(second)), ("second", str(first))]
    wait_for(lambda: world.panes(sessions[session]) == wanted, 10, f"the panes of {session!r} as saved")
    wait_for(lambda: world.panes(sessions[ending]) == [("run-shell;", str(second))], 10, "the session in ;")
    wait_for(lambda: world.panes(sessions[other]) == [(hostile("pwned-window"), str(first))], 10, "the other session")


def test_a_pane_left_in_a_hostile_directory_comes_back_there_and_runs_nothing(world: Tmux):
    directory = world.home / f"x{hostile('pwned-directory')}"
    directory.mkdir()
    # The test's own tmux commands: the directory as the client's cwd, names with `#` doubled.
    world.tmux("new-session", "-d", "-s", "s##(cd;touch pwned-session)", "-n", "w##(cd;touch pwned-window)",
               cwd=directory)
    session = f"s{hostile('pwned-session')}"
    window = f"w{hostile('pwned-window')}"
    wait_for(lambda: world.panes(world.sessions()[session]) == [(window, str(directory))], 10, "the pane")

    saved = world.program("save")
    assert saved.returncode == 0, saved.stderr
    assert f"\t:{directory}\t" in (world.saves / "last").read_text()
    world.stop_server()

    restored = world.program("restore")
    no_marker(world)
    assert restored.returncode == 0 and "restored: " in restored.stdout, restored
    wait_for(lambda: world.panes(world.sessions()[session]) == [(window, str(directory))], 10, "the restored pane")


def test_a_directory_name_with_a_newline_forges_no_line_of_the_save(world: Tmux):
    # What follows the newline is a whole pane line once tmux adds the fields after the directory.
    directory = world.home / "d\npane\tforged\t0\t:evil\t1\t:*\t0\t:"
    directory.mkdir()
    world.tmux("new-session", "-d", "-s", "work", cwd=directory)
    saved = world.program("save")
    assert saved.returncode == 0, saved.stderr
    text = (world.saves / "last").read_text()
    assert [line.split("\t")[0] + " " + line.split("\t")[1] for line in text.splitlines()] == [
        "pane work", "window work", "state "]
    world.stop_server()

    restored = world.program("restore")
    assert restored.returncode == 0, restored.stderr
    assert set(world.sessions()) == {"work"}
    # A directory that the format cannot hold comes back as the home, not as another directory.
    wait_for(lambda: [d for _w, d in world.panes(world.sessions()["work"])] == [str(world.home)], 10, "the pane")


@pytest.mark.parametrize("kind", ["file", "directory", "symlink", "dangling symlink", "fifo"])
def test_a_planted_last_tmp_does_not_stop_a_save(world: Tmux, tmp_path: Path, kind: str):
    planted = world.saves / "last.tmp"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not yours\n")
    if kind == "file":
        planted.write_text("left by a killed save\n")
        if os.geteuid() == 0:
            os.chown(planted, 1001, 1001)  # and another uid's
    elif kind == "directory":
        planted.mkdir()
    elif kind == "symlink":
        planted.symlink_to(elsewhere)
    elif kind == "dangling symlink":
        planted.symlink_to(tmp_path / "nowhere")
    else:
        os.mkfifo(planted)
    world.tmux("new-session", "-d", "-s", "kept")

    saved = world.program("save")
    assert saved.returncode == 0, saved.stderr
    last = world.saves / "last"
    assert last.is_symlink() and (world.saves / os.readlink(last)).is_file()
    assert "pane\tkept\t" in last.read_text()
    assert str(world.saves / os.readlink(last)) in saved.stdout
    assert elsewhere.read_text() == "not yours\n" and not (tmp_path / "nowhere").exists()
    assert os.path.lexists(planted)  # not ours to remove
    left = sorted(p.name for p in world.saves.iterdir())
    assert left == sorted(["last", "last.tmp", os.readlink(last)]), left  # no temporary left behind

    # A second save of a changed layout moves `last` again.
    world.tmux("new-session", "-d", "-s", "more")
    again = world.program("save")
    assert again.returncode == 0, again.stderr
    assert "pane\tmore\t" in last.read_text()
