"""pys6-tmux-restore puts every pane back at its index, in its directory and its place; saves are pruned as
tmux-resurrect prunes them.

Each test has a tmux server of its own: its socket in a directory of its own
(TMUX_TMPDIR), HOME in the test's temp dir; it is killed at the end, by pid
when `kill-server` does not end it. The programs under test are this
checkout's (`python -m supervisor.pod.tmux`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import REPO, stop_tmux_server

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (scripts/bootstrap)")

DAY = 86400
# What a pane is, as this file compares them: its window's index, its own index, directory, place and size.
PANE = "#{window_index}\t#{pane_index}\t#{pane_current_path}\t#{pane_left},#{pane_top}\t#{pane_width}x#{pane_height}"


class Server:
    """A private tmux server's world and the programs under test."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir()
        sockets = root / "sockets"
        sockets.mkdir(mode=0o700)
        self.saves = self.home / ".tmux" / "resurrect"  # as cont-init.d/10-home makes it
        self.saves.mkdir(parents=True, mode=0o700)
        self.env = {"HOME": str(self.home), "TMUX_TMPDIR": str(sockets), "SHELL": "/bin/sh", "LANG": "C.UTF-8",
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)}
        self.pids: set[int] = set()

    def tmux(self, *args: str) -> str:
        result = subprocess.run(["tmux", *args], env=self.env, cwd=self.home, capture_output=True, text=True,
                                timeout=10)
        assert result.returncode == 0, (args, result.stderr)
        self.note_pid()
        return result.stdout

    def note_pid(self) -> None:
        result = subprocess.run(["tmux", "display-message", "-p", "#{pid}"], env=self.env, capture_output=True,
                                text=True, timeout=10)
        if result.returncode == 0 and result.stdout.strip().isdigit():
            self.pids.add(int(result.stdout))

    def program(self, command: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "supervisor.pod.tmux", command], env=self.env, cwd=self.home,
                                capture_output=True, text=True, timeout=60)
        self.note_pid()
        return result

    def directory(self, name: str) -> str:
        path = self.root / name
        path.mkdir()
        return str(path)

    def panes(self, session: str) -> list[list[str]]:
        return [line.split("\t") for line in self.tmux("list-panes", "-s", "-t", session, "-F", PANE).splitlines()]

    def save_stop_restore(self) -> subprocess.CompletedProcess[str]:
        saved = self.program("save")
        assert saved.returncode == 0, saved.stderr
        self.stop()
        return self.program("restore")

    def stop(self) -> None:
        self.note_pid()
        stop_tmux_server(self.env, self.pids)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    world = Server(tmp_path)
    try:
        yield world
    finally:
        world.stop()


def test_windows_of_three_and_four_panes_come_back_each_pane_at_its_index_in_its_directory_and_place(
        server: Server):
    # Window 0: three panes, the second split across and the third down from the first, so that tmux's order
    # (by place) is neither the order they were made in nor its reverse.
    server.tmux("new-session", "-d", "-s", "work", "-x", "150", "-y", "45", "-c", server.directory("a0"))
    server.tmux("split-window", "-h", "-t", "work:0.0", "-c", server.directory("a1"))
    server.tmux("split-window", "-v", "-t", "work:0.0", "-c", server.directory("a2"))
    # Window 1: four panes, tiled.
    server.tmux("new-window", "-t", "work:1", "-c", server.directory("b0"))
    for n in (1, 2, 3):
        server.tmux("split-window", "-t", "work:1", "-c", server.directory(f"b{n}"))
        server.tmux("select-layout", "-t", "work:1", "tiled")
    server.tmux("select-pane", "-t", "work:1.2")
    before = server.panes("work")
    assert [pane[2] for pane in before] == [str(server.root / n) for n in ("a0", "a2", "a1", "b0", "b1", "b2", "b3")]
    assert len({pane[3] for pane in before[3:]}) == 4, "the four panes of window 1 each have a place of their own"

    restored = server.save_stop_restore()

    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.strip() == "restored: work"
    assert server.panes("work") == before
    assert server.tmux("display-message", "-p", "-t", "work:1", "#{pane_index}").strip() == "2", "the active pane"


def test_a_column_of_ten_panes_fits_again_though_halving_the_newest_pane_would_run_out_of_room(server: Server):
    # A detached window is 80x24; splitting the newest pane in two each time leaves it no row after five.
    server.tmux("new-session", "-d", "-s", "tall", "-x", "100", "-y", "50", "-c", server.directory("p0"))
    for n in range(1, 10):
        server.tmux("split-window", "-t", "tall", "-c", server.directory(f"p{n}"))
        server.tmux("select-layout", "-t", "tall", "even-vertical")
    before = server.panes("tall")
    assert [pane[2] for pane in before] == [str(server.root / f"p{n}") for n in range(10)]

    restored = server.save_stop_restore()

    assert restored.returncode == 0, restored.stderr
    assert server.panes("tall") == before


def test_a_zoomed_window_comes_back_zoomed_on_its_pane(server: Server):
    server.tmux("new-session", "-d", "-s", "z", "-x", "120", "-y", "40", "-c", server.directory("z0"))
    for n in (1, 2):
        server.tmux("split-window", "-t", "z", "-c", server.directory(f"z{n}"))
    server.tmux("select-pane", "-t", "z:0.1")
    server.tmux("resize-pane", "-Z", "-t", "z:0.1")

    restored = server.save_stop_restore()

    assert restored.returncode == 0, restored.stderr
    assert server.tmux("display-message", "-p", "-t", "z:0", "#{window_zoomed_flag} #{pane_index} #{pane_current_path}"
                       ).split() == ["1", "1", str(server.root / "z1")]


def test_a_session_tmux_cannot_fit_is_removed_again_and_the_others_come_back(server: Server):
    # Forty panes in a saved 10x5 window: no way of splitting gives them room, so tmux refuses one split.
    far = server.directory("far")
    lines = [f"pane\tcramped\t0\t:w\t1\t:*\t{n}\t:{far}\t{int(n == 0)}\tsh\t:" for n in range(40)]
    lines.append("window\tcramped\t0\t1\t:*\tabcd,10x5,0,0,0")
    lines.append(f"pane\tfine\t0\t:w\t1\t:*\t0\t:{far}\t1\tsh\t:")
    lines.append("state\tfine\t")
    save = server.saves / "tmux_resurrect_20260101T000000.txt"
    save.write_text("\n".join(lines) + "\n")
    (server.saves / "last").symlink_to(save.name)

    restored = server.program("restore")

    assert restored.returncode == 1
    assert "not restored: cramped: tmux split-window" in restored.stderr
    assert restored.stdout.strip() == "restored: fine"
    assert server.tmux("list-sessions", "-F", "#{session_name}").split() == ["fine"], "no half session is left"


# --- pruning ------------------------------------------------------------------------------------------------


def plant(directory: Path, name: str, age_days: float, now: float) -> Path:
    path = directory / name
    path.write_text("state\t\t\n")
    os.utime(path, (now - age_days * DAY, now - age_days * DAY))
    return path


def names(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir()}


def test_prune_keeps_the_five_newest_whatever_their_age_and_of_the_others_only_those_within_n_whole_days(
        tmp_path: Path):
    from supervisor.pod.tmux import prune

    now = time.time()
    ages = {"a": 40, "b": 41, "c": 42, "d": 43, "e": 44,  # the five newest: kept though older than 30 days
            "f": 44.5, "g": 45}  # beyond the five and older than 30 days: removed
    for name, age in ages.items():
        plant(tmp_path, f"tmux_resurrect_{name}.txt", age, now)

    assert sorted(prune(str(tmp_path), 30, now)) == ["tmux_resurrect_f.txt", "tmux_resurrect_g.txt"]
    assert names(tmp_path) == {f"tmux_resurrect_{n}.txt" for n in "abcde"}


def test_prune_counts_whole_days_as_find_mtime_does_and_spares_last_and_what_is_no_save_file(tmp_path: Path):
    from supervisor.pod.tmux import prune

    now = time.time()
    for n in range(5):
        plant(tmp_path, f"tmux_resurrect_new{n}.txt", n * 0.1, now)
    plant(tmp_path, "tmux_resurrect_30days_and_a_half.txt", 30.5, now)  # find -mtime +30: 30 whole days, kept
    plant(tmp_path, "tmux_resurrect_31days.txt", 31.01, now)  # 31 whole days: removed
    plant(tmp_path, "tmux_resurrect_pointed_at.txt", 90, now)  # what last names: kept
    (tmp_path / "last").symlink_to("tmux_resurrect_pointed_at.txt")
    plant(tmp_path, "notes.txt", 90, now)
    plant(tmp_path, "tmux_resurrect_x.txt.bak", 90, now)
    (tmp_path / "tmux_resurrect_dir.txt").mkdir()
    os.utime(tmp_path / "tmux_resurrect_dir.txt", (now - 90 * DAY, now - 90 * DAY))
    (tmp_path / "tmux_resurrect_link.txt").symlink_to("notes.txt")

    assert prune(str(tmp_path), 30, now) == ["tmux_resurrect_31days.txt"]
    assert "tmux_resurrect_31days.txt" not in names(tmp_path)
    assert {"tmux_resurrect_30days_and_a_half.txt", "tmux_resurrect_pointed_at.txt", "last", "notes.txt",
            "tmux_resurrect_x.txt.bak", "tmux_resurrect_dir.txt", "tmux_resurrect_link.txt"} <= names(tmp_path)


def test_a_save_prunes_by_the_tmux_option_tmux_resurrect_reads(server: Server):
    server.tmux("new-session", "-d", "-s", "s", "-c", server.directory("here"))
    server.tmux("set-option", "-g", "@resurrect-delete-backup-after", "2")
    now = time.time()
    for n in range(5):
        plant(server.saves, f"tmux_resurrect_2026010{n}T000000.txt", 1 + n * 0.1, now)
    plant(server.saves, "tmux_resurrect_20251201T000000.txt", 2.5, now)  # 2 whole days: kept
    plant(server.saves, "tmux_resurrect_20251101T000000.txt", 3.5, now)  # 3 whole days: beyond the option's 2

    saved = server.program("save")

    assert saved.returncode == 0, saved.stderr
    left = names(server.saves)
    assert "tmux_resurrect_20251101T000000.txt" not in left
    assert "tmux_resurrect_20251201T000000.txt" in left
    assert os.path.realpath(server.saves / "last") in {str(server.saves / name) for name in left}
