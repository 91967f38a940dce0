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

Each pane comes back with its own index, directory and place: a window is
first given its saved size, every pane after the first is split off the one
made just before it (tmux puts a split right after its target, so the saved
order holds) and then grown to take the room of the others, as tmux-resurrect
does, so that ten panes fit where halving would leave no room after five; the
saved layout string then puts every pane where it was (select-layout), the
window gives its size back to whatever client attaches, and a zoomed window
comes back zoomed. A session tmux refuses half-way is removed again, so the
next save does not keep the half.

Old save files are pruned after each save by tmux-resurrect's rule: the five
newest `tmux_resurrect_*.txt` (by modification time) are always kept, and of
the others those older than `@resurrect-delete-backup-after` days (a tmux
option, default 30; `find -mtime +N`, whole days) are removed. Only regular
files of that name go, never the one `last` points to.

Nothing read from a save file or from tmux is ever run. tmux expands formats
(`#(command)` runs a command) in session and window names and in start
directories, and ends a command at an argument ending in `;`: every such text
goes to tmux through `literal()`. Sessions, windows and panes are addressed by
the ids tmux gives them (`$1`, `@2`, `%3`), never by saved names; a layout is
passed only when it looks like one (tmux 3.3's server dies on a malformed one).
A save asks tmux for fields fenced by a fresh random token, so a directory or a
program name holding a tab or a newline cannot forge a line of the file.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field

from ..base.files import read_regular_file
from ..base.terms import visible

TMUX_TIMEOUT = 5.0
MAX_SAVE_FILE = 4 << 20
PANE_FIELDS = ("session_name", "window_index", "window_name", "window_active", "window_flags", "pane_index",
               "pane_current_path", "pane_active", "pane_current_command", "pane_pid")
WINDOW_FIELDS = ("session_name", "window_index", "window_active", "window_flags", "window_layout")
STATE_FIELDS = ("client_session", "client_last_session")
# What tmux's `window_layout` prints: a checksum, then sizes, offsets and pane ids in {} and [].
LAYOUT = re.compile(r"[0-9a-f]{4},[0-9x,{}\[\]]+")
LAYOUT_SIZE = re.compile(r"[0-9a-f]{4},([0-9]{1,5})x([0-9]{1,5}),")  # the whole window's, first in a layout
GROW = "10000"  # more cells than any window has: resize-pane stops at what the other panes leave
SAVE_FILE = re.compile(r"tmux_resurrect_.*\.txt")  # tmux-resurrect's ${RESURRECT_FILE_PREFIX}_*.txt
KEEP_SAVES = 5  # tmux-resurrect's remove_old_backups: `ls -t ... | tail -n +6`
DELETE_AFTER_OPTION = "@resurrect-delete-backup-after"
DEFAULT_DELETE_AFTER_DAYS = 30
TMUX_CLEANS = str.maketrans(":.", "__")  # what tmux 3.3 does to those in a session's name
LINE_BREAKING = re.compile(r"[\t\n\r]")


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


def query(command: tuple[str, ...], fields: tuple[str, ...]) -> list[list[str]]:
    """The `fields` of each thing `command` lists, whatever tabs and newlines they hold.

    Each record is fenced by a token drawn now, which no directory or program
    name can know in advance; a record that does not parse is left out.
    """
    token = secrets.token_hex(16)
    start, separator, end = f"<{token}>", f"|{token}|", f"</{token}>"
    output = tmux(*command, start + separator.join(f"#{{{name}}}" for name in fields) + end)
    records = []
    for chunk in output.split(end + "\n")[:-1]:  # tmux ends each record with a newline
        values = chunk.removeprefix(start).split(separator)
        if chunk.startswith(start) and len(values) == len(fields):
            records.append(values)
    return records


def one_line(text: str) -> str:
    """A name as a field of a save line: tabs and line breaks would split it, so they become spaces."""
    return LINE_BREAKING.sub(" ", text)


def snapshot() -> str:
    lines = []
    for (session, window_index, window_name, window_active, window_flags, pane_index, directory, pane_active,
         command, pane_pid) in query(("list-panes", "-a", "-F"), PANE_FIELDS):
        # A directory that the format cannot hold is not saved as another one: the pane comes back in ~.
        directory = "" if LINE_BREAKING.search(directory) else directory
        lines.append("\t".join(("pane", one_line(session), window_index, ":" + one_line(window_name), window_active,
                                ":" + one_line(window_flags), pane_index, ":" + directory, pane_active,
                                one_line(command), ":" + one_line(_full_command(pane_pid)))))
    for session, window_index, window_active, window_flags, layout in query(("list-windows", "-a", "-F"),
                                                                            WINDOW_FIELDS):
        lines.append("\t".join(("window", one_line(session), window_index, window_active,
                                ":" + one_line(window_flags), one_line(layout))))
    try:
        states = query(("display-message", "-p"), STATE_FIELDS)
    except RuntimeError:
        states = []
    client_session, last_session = states[0] if states else ("", "")
    lines.append(f"state\t{one_line(client_session)}\t{one_line(last_session)}")
    return "\n".join(lines) + "\n"


def save(directory: str | None = None) -> str:
    """Write the snapshot and point `last` at it (unless it equals the last one); the file's path.

    Both the file and the new `last` are made under fresh names (O_EXCL, no link
    followed) and renamed into place, so nothing left or planted there, not even
    a `last.tmp` of an older save, stops a save or has it write elsewhere.
    """
    import tempfile

    directory = directory or resurrect_dir()
    os.makedirs(directory, mode=0o700, exist_ok=True)
    text = snapshot()
    last = os.path.join(directory, "last")
    try:
        if read_regular_file(last, MAX_SAVE_FILE).decode("utf-8", "replace") == text:
            prune(directory, delete_after_days())
            return os.path.realpath(last)
    except OSError:
        pass
    name = f"tmux_resurrect_{time.strftime('%Y%m%dT%H%M%S')}.txt"
    path = os.path.join(directory, name)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmux_resurrect_", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(temporary, path)
        temporary = _new_symlink(name, directory)
        os.replace(temporary, last)
    except BaseException:
        _unlink_quietly(temporary)
        raise
    prune(directory, delete_after_days())
    return path


def delete_after_days() -> int:
    """The tmux option tmux-resurrect reads for how old a save may grow (days); its default when unset or not a count."""
    try:
        value = tmux("show-options", "-gqv", DELETE_AFTER_OPTION).strip()
    except (NoServer, RuntimeError):
        return DEFAULT_DELETE_AFTER_DAYS
    return int(value) if value.isdecimal() and len(value) < 7 else DEFAULT_DELETE_AFTER_DAYS


def prune(directory: str, days: int, now: float | None = None) -> list[str]:
    """Remove old save files as tmux-resurrect's remove_old_backups does; the names removed.

    The KEEP_SAVES newest (by modification time, as `ls -t` sorts) always stay;
    of the others, a regular file whose age in whole days exceeds `days` goes
    (`find -mtime +N`: 24-hour periods, the fraction dropped). Links, directories
    and other names are not save files and stay, and so does whatever `last`
    names, however old: a restore needs it. A file that cannot be removed is
    left (the next save tries again): pruning never fails a save.
    """
    now = time.time() if now is None else now
    try:
        last = os.readlink(os.path.join(directory, "last"))
    except OSError:
        last = ""
    saves: list[tuple[float, str]] = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if not SAVE_FILE.fullmatch(entry.name):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    saves.append((info.st_mtime, entry.name))
    except OSError:
        return []
    saves.sort(reverse=True)
    removed = []
    for mtime, name in saves[KEEP_SAVES:]:
        if name == os.path.basename(last) or int((now - mtime) // 86400) <= days:
            continue
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            continue
        removed.append(name)
    return removed


def _new_symlink(target: str, directory: str) -> str:
    """A symlink to `target` under a fresh name in `directory` (symlink() never follows or replaces one)."""
    while True:
        path = os.path.join(directory, f".last.{secrets.token_hex(8)}.tmp")
        try:
            os.symlink(target, path)
            return path
        except FileExistsError:
            continue


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# --- restore ------------------------------------------------------------------------------


@dataclass
class Window:
    index: int
    name: str = ""
    active: bool = False
    layout: str = ""
    zoomed: bool = False
    panes: list[tuple[int, str, bool]] = field(default_factory=list)  # (index, directory, active)


def parse(text: str) -> dict[str, dict[int, Window]]:
    """Sessions, in the order they appear, each with its windows by index."""
    sessions: dict[str, dict[int, Window]] = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if fields[0] == "pane" and len(fields) >= 10 and fields[2].isdecimal() and fields[6].isdecimal():
            window = sessions.setdefault(fields[1], {}).setdefault(int(fields[2]), Window(int(fields[2])))
            window.name = fields[3][1:]
            window.active = fields[4] == "1"
            window.zoomed = "Z" in fields[5]
            window.panes.append((int(fields[6]), fields[7][1:], fields[8] == "1"))
        elif fields[0] == "window" and len(fields) >= 6 and fields[2].isdecimal():
            window = sessions.setdefault(fields[1], {}).setdefault(int(fields[2]), Window(int(fields[2])))
            window.layout = fields[5]
    return sessions


def literal(text: str) -> str:
    """`text` as tmux must be given it to take it as it is, in a name or a start directory.

    tmux expands formats there (`##` is a `#`, and nothing else starts one) and
    reads an argument ending in `;` as the end of a command (`\\;` is a `;`).
    """
    escaped = text.replace("#", "##")
    return escaped[:-1] + "\\;" if escaped.endswith(";") else escaped


def _directory(path: str) -> str:
    return path if os.path.isabs(path) and os.path.isdir(path) else os.path.expanduser("~")


def restore_session(name: str, windows: dict[int, Window]) -> None:
    """Rebuild one session; every target is an id tmux gave back, so no saved text is ever parsed as one.

    When tmux refuses a step, what was made of the session is removed again and
    the error raised: a half session would be saved over the whole one at the
    next stop, and would stop the next restore from making it whole.
    """
    session_id = ""
    try:
        for window in (windows[i] for i in sorted(windows) if windows[i].panes):
            start = ("-n", literal(window.name), "-c", literal(_directory(min(window.panes)[1])))
            if not session_id:
                made = tmux("new-session", "-d", "-P", "-F", "#{session_id} #{window_id} #{pane_id}",
                            "-s", literal(name), *start).split()
                session_id, window_id, pane_id = made[0], made[1], made[2]
            else:
                window_id, pane_id = tmux("new-window", "-d", "-P", "-F", "#{window_id} #{pane_id}",
                                          "-t", f"{session_id}:", *start).split()[:2]
            _fill_window(window_id, pane_id, window)
    except RuntimeError:
        if session_id:
            try:
                tmux("kill-session", "-t", session_id)
            except (RuntimeError, NoServer):
                pass  # the last session of the server: it went with the server
        raise


def _fill_window(window_id: str, first_pane: str, window: Window) -> None:
    """The rest of a new window's panes after its first, their layout, the active pane and the zoom."""
    panes = sorted(window.panes)
    pane_ids = [first_pane]
    size = LAYOUT_SIZE.match(window.layout) if LAYOUT.fullmatch(window.layout) else None
    if size and len(panes) > 1:
        # The room the panes had: a detached window is 80x24 (default-size) whatever the saved one was.
        try:
            tmux("resize-window", "-t", window_id, "-x", size[1], "-y", size[2])
        except RuntimeError:
            pass  # a size tmux does not take (0, beyond its maximum): the splits below make their own room
    for _index, directory, _active in panes[1:]:
        pane_ids.append(_split_after(pane_ids[-1], _directory(directory)))
    if size:
        try:
            tmux("select-layout", "-t", window_id, window.layout)
        except RuntimeError:
            pass  # not one tmux takes for these panes: keep tmux's own
    if size and len(panes) > 1:
        # resize-window made the window's size manual; the global choice (latest client, ...) rules again.
        tmux("set-option", "-w", "-u", "-t", window_id, "window-size")
    active_pane = pane_ids[0]
    for pane_id, (_index, _directory_name, active) in zip(pane_ids, panes, strict=False):
        if active:
            active_pane = pane_id
            tmux("select-pane", "-t", pane_id)
    if window.zoomed and len(pane_ids) > 1:
        tmux("resize-pane", "-Z", "-t", active_pane)
    if window.active:
        tmux("select-window", "-t", window_id)


def _split_after(pane_id: str, directory: str) -> str:
    """A new pane right after `pane_id` (tmux's place for a split), in `directory`; its id.

    Splitting the newest pane keeps the saved order (splitting the first one
    every time reverses it). Halving the newest pane again and again leaves no
    room after a few, so the new pane then takes all the room the others can
    give (tmux-resurrect's `resize-pane -U 999`), and the split goes across when
    no row is left to split. The saved layout places every pane afterwards.
    """
    height, width = (int(n) for n in tmux("display-message", "-p", "-t", pane_id,
                                          "#{pane_height} #{pane_width}").split())
    across = height < 3 <= width  # a split needs a line for each pane and one for the border
    made = tmux("split-window", "-d", "-h" if across else "-v", "-P", "-F", "#{pane_id}", "-t", pane_id,
                "-c", literal(directory)).strip()
    tmux("resize-pane", "-t", made, "-L" if across else "-U", GROW)
    return made


def restore(path: str | None = None) -> tuple[list[str], list[str]]:
    """Rebuild every saved session that does not exist yet: the names of those rebuilt, and why others were not."""
    path = path or os.path.join(resurrect_dir(), "last")
    sessions = parse(read_regular_file(path, MAX_SAVE_FILE).decode("utf-8", "replace"))
    try:
        existing = set(tmux("list-sessions", "-F", "#{session_name}").split("\n"))
    except NoServer:
        existing = set()
    rebuilt: list[str] = []
    refused: list[str] = []
    for name, windows in sessions.items():
        if name in existing or name.translate(TMUX_CLEANS) in existing:
            continue
        try:
            restore_session(name, windows)
        except RuntimeError as exc:  # tmux refused this one (a duplicate once tmux cleans the name, ...): the next
            refused.append(visible(f"{name}: {exc}"))
            if not existing and not rebuilt:
                _server_gone()  # its removal was the server's last session: the next must not meet it dying
            continue
        rebuilt.append(name)
    return rebuilt, refused


def _server_gone(within: float = 3.0) -> None:
    """Wait (bounded) until the server this restore started has exited: a server exits once its
    last session is killed, but not at once, and a new-session sent meanwhile reaches the dying
    one and fails ("server exited unexpectedly")."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            tmux("list-sessions")
        except NoServer:
            return
        except RuntimeError:
            pass
        time.sleep(0.02)


def _file_argument(program: str, what: str) -> str | None:
    """The one optional FILE; --help, --version and anything else that is not a file exit here,
    before anything is saved or restored (`pys6-tmux-save --help` once wrote a save into ./--help)."""
    from ..base import cli

    argv = sys.argv[1:]
    answered = cli.answer(argv, program, f"usage: {program} [FILE]\n\n{what}")
    if answered is not None:
        raise SystemExit(answered)
    if argv and argv[0] == "--":
        argv = argv[1:]
    elif argv and argv[0].startswith("-"):
        raise SystemExit(cli.usage_error(program, f"unknown option {argv[0][:100]!r}"))
    if len(argv) > 1:
        raise SystemExit(cli.usage_error(program, "one FILE at most"))
    return argv[0] if argv else None


def main_save() -> None:
    started = time.monotonic()
    where = _file_argument("pys6-tmux-save", "Saves the tmux server's sessions, windows, panes, layouts and "
                           "working directories to FILE (default: the saved layout's usual place).")
    try:
        path = save(where)
    except NoServer:
        print("no tmux server runs: nothing to save")
        return
    except (OSError, RuntimeError) as exc:
        print(f"pys6-tmux-save: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"tmux layout saved to {path} in {time.monotonic() - started:.2f} s")


def main_restore() -> None:
    where = _file_argument("pys6-tmux-restore", "Rebuilds the sessions saved in FILE (default: the saved "
                           "layout's usual place) that the tmux server does not have yet.")
    try:
        rebuilt, refused = restore(where)
    except FileNotFoundError as exc:
        print(f"pys6-tmux-restore: nothing saved: {exc.filename}", file=sys.stderr)
        raise SystemExit(1) from None
    except (OSError, RuntimeError, NoServer) as exc:
        print(f"pys6-tmux-restore: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"restored: {', '.join(map(visible, rebuilt)) if rebuilt else 'nothing new'}")
    for reason in refused:
        print(f"pys6-tmux-restore: not restored: {reason}", file=sys.stderr)
    if refused:
        raise SystemExit(1)


if __name__ == "__main__":  # python -m supervisor.pod.tmux save|restore [FILE]
    command = sys.argv.pop(1) if len(sys.argv) > 1 else ""
    if command not in ("save", "restore"):
        sys.exit("usage: python -m supervisor.pod.tmux save|restore [FILE]")
    (main_save if command == "save" else main_restore)()
