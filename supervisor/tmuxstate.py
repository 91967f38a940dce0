"""pys6-tmux-save and pys6-tmux-restore: people's tmux layout across pod restarts, in tmux-resurrect's format.

The save file is what tmux-resurrect's save script writes (tab-separated lines),
so the plugin restores it too when it is installed:

    pane    SESSION WINDOW_INDEX :WINDOW_NAME WINDOW_ACTIVE :WINDOW_FLAGS PANE_INDEX :DIR PANE_ACTIVE COMMAND :FULL_COMMAND
    window  SESSION WINDOW_INDEX WINDOW_ACTIVE :WINDOW_FLAGS LAYOUT
    state   CLIENT_SESSION CLIENT_LAST_SESSION

into `~/.tmux/resurrect/tmux_resurrect_<YYYYmmddTHHMMSS>.txt`, with `last`
linking to the newest. Restoring rebuilds each session, its windows (names, in
order) and panes in their directories, the layouts and the active window and
pane; it starts no program but each pane's shell. Both run as the pod's user
(cont-finish.d/02-tmux-save, or by hand) and never wait long on tmux.
Standard library only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

from .files import read_regular_file

TMUX_TIMEOUT = 5.0
MAX_SAVE_FILE = 4 << 20
PANE_FORMAT = "\t".join(("pane", "#{session_name}", "#{window_index}", ":#{window_name}", "#{window_active}",
                         ":#{window_flags}", "#{pane_index}", ":#{pane_current_path}", "#{pane_active}",
                         "#{pane_current_command}", "#{pane_pid}"))
WINDOW_FORMAT = "\t".join(("window", "#{session_name}", "#{window_index}", "#{window_active}", ":#{window_flags}",
                           "#{window_layout}"))
STATE_FORMAT = "state\t#{client_session}\t#{client_last_session}"


class NoServer(Exception):
    pass


def tmux(*args: str) -> str:
    """Run one tmux command against the user's default server; NoServer when none runs."""
    try:
        result = subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=TMUX_TIMEOUT)
    except FileNotFoundError:
        raise NoServer("tmux is not installed") from None
    except subprocess.TimeoutExpired:
        raise NoServer("tmux did not answer in time") from None
    if result.returncode != 0:
        message = result.stderr.strip()
        if "no server running" in message or "error connecting" in message or "No such file" in message:
            raise NoServer(message)
        raise RuntimeError(f"tmux {args[0]}: {message}")
    return result.stdout


def resurrect_dir() -> str:
    home = os.path.expanduser("~")
    classic = os.path.join(home, ".tmux", "resurrect")
    if os.path.isdir(classic):
        return classic
    return os.path.join(os.environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share"), "tmux", "resurrect")


def _full_command(pane_pid: str) -> str:
    """What runs in the pane: the arguments of the shell's first child, as resurrect's ps strategy finds them."""
    try:
        with open(f"/proc/{pane_pid}/task/{pane_pid}/children") as handle:
            children = handle.read().split()
        if not children:
            return ""
        with open(f"/proc/{children[0]}/cmdline", "rb") as handle:
            return handle.read().rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def snapshot() -> str:
    lines = []
    for raw in tmux("list-panes", "-a", "-F", PANE_FORMAT).splitlines():
        fields = raw.split("\t")
        if len(fields) != 11:
            continue
        lines.append("\t".join(fields[:10] + [":" + _full_command(fields[10])]))
    lines += [line for line in tmux("list-windows", "-a", "-F", WINDOW_FORMAT).splitlines() if line]
    try:
        lines.append(tmux("display-message", "-p", STATE_FORMAT).rstrip("\n"))
    except RuntimeError:
        lines.append("state\t\t")
    return "\n".join(lines) + "\n"


def save(directory: str | None = None) -> str:
    """Write the snapshot and point `last` at it (unless it equals the last one); the file's path."""
    directory = directory or resurrect_dir()
    os.makedirs(directory, mode=0o700, exist_ok=True)
    text = snapshot()
    last = os.path.join(directory, "last")
    try:
        with open(last) as handle:
            if handle.read() == text:
                return os.path.realpath(last)
    except OSError:
        pass
    name = f"tmux_resurrect_{time.strftime('%Y%m%dT%H%M%S')}.txt"
    path = os.path.join(directory, name)
    with open(path + ".tmp", "w") as handle:
        handle.write(text)
    os.replace(path + ".tmp", path)
    os.symlink(name, last + ".tmp")
    os.replace(last + ".tmp", last)
    return path


# --- restore ------------------------------------------------------------------------------


@dataclass
class Window:
    index: int
    name: str = ""
    active: bool = False
    layout: str = ""
    panes: list[tuple[int, str, bool]] = field(default_factory=list)  # (index, directory, active)


def parse(text: str) -> dict[str, dict[int, Window]]:
    """Sessions, in the order they appear, each with its windows by index."""
    sessions: dict[str, dict[int, Window]] = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if fields[0] == "pane" and len(fields) >= 10 and fields[2].isdigit() and fields[6].isdigit():
            window = sessions.setdefault(fields[1], {}).setdefault(int(fields[2]), Window(int(fields[2])))
            window.name = fields[3][1:]
            window.active = fields[4] == "1"
            window.panes.append((int(fields[6]), fields[7][1:], fields[8] == "1"))
        elif fields[0] == "window" and len(fields) >= 6 and fields[2].isdigit():
            window = sessions.setdefault(fields[1], {}).setdefault(int(fields[2]), Window(int(fields[2])))
            window.layout = fields[5]
    return sessions


def _directory(path: str) -> str:
    return path if os.path.isdir(path) else os.path.expanduser("~")


def restore_session(name: str, windows: dict[int, Window]) -> None:
    target = f"={name}"
    ordered = [windows[i] for i in sorted(windows) if windows[i].panes]
    for number, window in enumerate(ordered):
        panes = sorted(window.panes)
        first_dir = _directory(panes[0][1])
        if number == 0:
            tmux("new-session", "-d", "-s", name, "-n", window.name, "-c", first_dir)
            where = tmux("display-message", "-p", "-t", target, "#{window_index}").strip()
        else:
            where = tmux("new-window", "-d", "-P", "-F", "#{window_index}", "-t", f"{target}:", "-n", window.name,
                         "-c", first_dir).strip()
        window_target = f"{target}:{where}"
        for _index, directory, _active in panes[1:]:
            tmux("split-window", "-d", "-t", window_target, "-c", _directory(directory))
        if window.layout:
            try:
                tmux("select-layout", "-t", window_target, window.layout)
            except RuntimeError:
                pass  # a layout for another terminal size: keep tmux's own
        for position, (_index, _directory_name, active) in enumerate(panes):
            if active:
                tmux("select-pane", "-t", f"{window_target}.{tmux_pane_base(window_target) + position}")
        if window.active:
            tmux("select-window", "-t", window_target)


def tmux_pane_base(window_target: str) -> int:
    indexes = tmux("list-panes", "-t", window_target, "-F", "#{pane_index}").split()
    return min(int(i) for i in indexes) if indexes else 0


def restore(path: str | None = None) -> list[str]:
    """Rebuild every saved session that does not exist yet; the names of those rebuilt."""
    path = path or os.path.join(resurrect_dir(), "last")
    sessions = parse(read_regular_file(path, MAX_SAVE_FILE).decode("utf-8", "replace"))
    try:
        existing = set(tmux("list-sessions", "-F", "#{session_name}").split("\n"))
    except NoServer:
        existing = set()
    rebuilt = []
    for name, windows in sessions.items():
        if name in existing:
            continue
        restore_session(name, windows)
        rebuilt.append(name)
    return rebuilt


def main_save() -> None:
    started = time.monotonic()
    try:
        path = save(sys.argv[1] if len(sys.argv) > 1 else None)
    except NoServer:
        print("no tmux server runs: nothing to save")
        return
    except (OSError, RuntimeError) as exc:
        print(f"pys6-tmux-save: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"tmux layout saved to {path} in {time.monotonic() - started:.2f} s")


def main_restore() -> None:
    try:
        rebuilt = restore(sys.argv[1] if len(sys.argv) > 1 else None)
    except FileNotFoundError as exc:
        print(f"pys6-tmux-restore: nothing saved: {exc.filename}", file=sys.stderr)
        raise SystemExit(1) from None
    except (OSError, RuntimeError, NoServer) as exc:
        print(f"pys6-tmux-restore: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"restored: {', '.join(rebuilt) if rebuilt else 'nothing new'}")


if __name__ == "__main__":  # python -m supervisor.tmuxstate save|restore [FILE]
    command = sys.argv.pop(1) if len(sys.argv) > 1 else ""
    if command not in ("save", "restore"):
        sys.exit("usage: python -m supervisor.tmuxstate save|restore [FILE]")
    (main_save if command == "save" else main_restore)()
