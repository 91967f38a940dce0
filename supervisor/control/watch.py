"""pysvstat --watch: a live status table on a terminal. Standard library only, as the clients are.

Loaded only when --watch is given: everything imported here (termios, select, signal, which
brings enum) would otherwise cost every plain pysvstat and every probe its start-up
(tests/test_client_imports.py).

On a terminal the table is redrawn in place each `interval` seconds: the cursor goes home and
each line is written over the last frame's, its rest cleared, then everything below the table;
the screen is never cleared as a whole, so nothing flickers. It runs in the alternate screen
(the shell's screen is as it was after quitting), with the cursor hidden and the input in
cbreak mode (one key at a time, no echo; Ctrl-C still makes SIGINT). One select() waits for a
key, a signal (through a wakeup pipe) or the next refresh: the client wakes once per refresh.
The terminal's settings, cursor and screen are restored on every way out: q, Ctrl-C, SIGTERM,
SIGHUP, an error.

A terminal that cannot move its cursor (TERM dumb or unset: an editor's shell buffer) gets the
table again below the last one, only when something other than the uptimes changed. Colour
only where stdout is a terminal, TERM is not dumb and NO_COLOR is unset or empty
(https://no-color.org). Not on a terminal: the table once, exit 0.
"""

import os
import select
import signal
import sys
import termios
import time
import unicodedata

from . import client, protocol, statusfmt
from .protocol import ProtocolError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    Record = dict[str, Any]
    Cell = tuple[str, str]  # text, colour (an SGR parameter; "" none)

HEADERS = ("SERVICE", "STATE", "PID", "UPTIME", "RESTARTS", "DEATHS", "READY", "HEALTH", "NOTE")
GREEN, YELLOW, RED = "32", "33", "1;31"
MIN_INTERVAL, MAX_INTERVAL = 0.1, 3600.0

ENTER = "\x1b[?1049h\x1b[?25l"  # the alternate screen, the cursor hidden
LEAVE = "\x1b[?25h\x1b[?1049l"
HOME, CLEAR_LINE, CLEAR_BELOW = "\x1b[H", "\x1b[K", "\x1b[J"
_STARTS = 'pys6_service_starts_total{service="'


def interval_of(text: str) -> float:
    """--interval's seconds, from MIN_INTERVAL to MAX_INTERVAL (nan and inf fail both bounds)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise ProtocolError(f"--interval needs seconds from {MIN_INTERVAL:g} to {MAX_INTERVAL:g}, "
                            f"not {text[:20]!r}")
    return value


# --- what is shown ---------------------------------------------------------------------------------


def shown(text: object) -> str:
    """Text from pyinit made harmless for a terminal and for the columns: control characters (a
    tab too, which would break the alignment) as visible escapes. pyinit escapes a note already;
    the client does not count on it."""
    return statusfmt.escape_controls(str(text)).replace("\t", "\\t")


def duration(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def state_cell(record: "Record") -> "Cell":
    if record["bailed"]:
        return "bailed", RED
    if statusfmt.check_problem(record, "live") == "crash-looping":  # wanted up, down, dead twice in its window
        return "crash-loop", RED
    if record["state"] == "up":
        return ("paused", YELLOW) if record["paused"] else ("up", GREEN)
    if record["finishing"]:
        return "finishing", YELLOW
    if not record["started"]:
        return "down (not started)", YELLOW
    if record["signum"]:
        return f"down ({shown(record.get('signal') or record['signum'])})", YELLOW
    if record["exitcode"] is not None:
        return f"down (exit {shown(record['exitcode'])})", YELLOW
    return "down", YELLOW


def health_text(record: "Record") -> str:
    health = record.get("health")
    if health == "unhealthy":
        return f"unhealthy ({shown(record.get('health_failures'))} of {shown(record.get('health_retries'))})"
    if health == "healthy":
        return "healthy"
    if health is not None:
        return "starting"  # checked, no verdict yet
    return ""


def row(record: "Record", restarts: "dict[str, int] | None") -> "list[Cell]":
    up = record["state"] == "up"
    starts = None if restarts is None else restarts.get(record["name"])
    health = health_text(record)
    return [
        (shown(record["name"]), ""),
        state_cell(record),
        (str(int(record["pid"])) if up and record["pid"] else "", ""),
        (duration(float(record["seconds"])) if up else "", ""),
        ("-" if starts is None else str(max(0, starts - 1)), ""),  # the first start is no restart
        (f"{int(record['deaths'])} in {float(record['window']):g}s", RED if record["deaths"] else ""),
        (("yes" if record["ready"] else "no") if up else "", ""),
        (health, RED if health.startswith("unhealthy") else GREEN if health == "healthy" else ""),
        (shown(record["note"]) if record.get("note") else "", ""),
    ]


def width(text: str) -> int:
    """Columns `text` takes on a terminal: wide (East Asian) characters two, combining ones none."""
    if text.isascii():
        return len(text)
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
               for c in text)


def cut(text: str, room: int) -> str:
    """The start of `text` that fits in `room` columns."""
    if width(text) <= room:
        return text
    kept, used = [], 0
    for char in text:
        used += width(char)
        if used > room:
            break
        kept.append(char)
    return "".join(kept)


def lay_out(rows: "list[list[Cell]]", columns: int | None, colour: bool) -> list[str]:
    """The table's lines, the header first, each column as wide as its widest cell, the note (the
    last) as long as it is; each line cut at `columns` (None: no limit), never wrapped. Colour
    codes take no columns: the visible text is cut first, then coloured."""
    table = [[(h, "") for h in HEADERS], *rows]
    widths = [max(width(r[i][0]) for r in table) for i in range(len(HEADERS))]
    lines = []
    for cells in table:
        parts, used = [], 0
        for index, (text, tint) in enumerate(cells):
            last = index == len(cells) - 1
            cell = text if last else text + " " * (widths[index] - width(text) + 2)
            if columns is not None:
                cell = cut(cell, columns - used)
            used += width(cell)
            body = cell.rstrip(" ")
            if colour and tint and body:
                cell = f"\x1b[{tint}m{body}\x1b[0m{cell[len(body):]}"
            parts.append(cell)
            if columns is not None and used >= columns:
                break
        lines.append("".join(parts).rstrip(" "))
    return lines


def heading(stage: str, records: "list[Record]") -> str:
    counts = statusfmt.Summary()
    for record in records:
        counts.add(record)
    return f"pyinit {shown(stage)[:20]}: {counts.line()}"


# --- talking to pyinit -----------------------------------------------------------------------------


def fetch(names: "Sequence[str]") -> "tuple[str, list[Record]]":
    head, records = client.call_stream({"v": protocol.VERSION, "verb": "status", "services": list(names)})
    listed = list(records)
    for record in listed:
        try:
            row(record, None)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ProtocolError("pyinit sent a status record pysvstat cannot read", protocol.EXIT_SYSTEM) from None
    return str(head.get("stage", "running")), listed


class Restarts:
    """Each service's restarts since pyinit started: its pys6_service_starts_total on the metrics
    page, less the first start. The status records do not carry it; the page is asked for again
    only when a service's `since` changed (every start changes it), so pyinit renders nothing
    more while nothing happens, however long the watch."""

    def __init__(self) -> None:
        self.counts: dict[str, int] | None = None
        self.seen: object = None

    def update(self, records: "list[Record]") -> None:
        seen = [(r["name"], r["since"]) for r in records]
        if seen == self.seen:
            return
        self.seen = seen
        try:
            _head, pieces = client.call_stream({"v": protocol.VERSION, "verb": "metrics"})
            text = "".join(str(piece.get("text", "")) for piece in pieces)
        except ProtocolError:
            self.counts = None  # shown as "-" until the next change asks again
            return
        counts: dict[str, int] = {}
        for line in text.splitlines():  # pyinit's own family: no drop-in file may write pys6_ names
            if line.startswith(_STARTS):
                name, sep, value = line[len(_STARTS):].partition('"} ')
                if sep and value.isdecimal():
                    counts[name] = int(value)
        self.counts = counts


# --- the terminal ----------------------------------------------------------------------------------


def colour_wanted(out_fd: int) -> bool:
    term = os.environ.get("TERM", "")
    return os.isatty(out_fd) and term not in ("", "dumb") and not os.environ.get("NO_COLOR")


class _Ended(Exception):
    """SIGTERM or SIGHUP: leave the way q does, then exit 128+N."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class Screen:
    """The terminal while the watch runs, and everything needed to give it back as it was."""

    def __init__(self, out_fd: int, in_fd: int | None, movable: bool) -> None:
        self.out_fd = out_fd
        self.in_fd = in_fd  # None: stdin is no terminal, no keys are read
        self.movable = movable
        self.saved: list[Any] | None = None
        self.entered = False
        self.wake_read, self.wake_write = os.pipe()
        for fd in (self.wake_read, self.wake_write):
            os.set_blocking(fd, False)
        self.old_handlers: dict[int, Any] = {}
        self.old_wakeup = -1

    def write(self, text: str) -> None:
        data = text.encode(sys.stdout.encoding or "utf-8", "replace")
        while data:
            data = data[os.write(self.out_fd, data):]

    def __enter__(self) -> "Screen":
        self.old_wakeup = signal.set_wakeup_fd(self.wake_write)
        for signum in (signal.SIGWINCH, signal.SIGTERM, signal.SIGHUP):
            self.old_handlers[signum] = signal.signal(signum, self._signalled)
        if self.in_fd is not None:
            self.saved = termios.tcgetattr(self.in_fd)
            mode = termios.tcgetattr(self.in_fd)
            mode[3] &= ~(termios.ICANON | termios.ECHO)  # lflag: a key at a time, unechoed; ISIG kept
            mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
            termios.tcsetattr(self.in_fd, termios.TCSANOW, mode)
        if self.movable:
            self.write(ENTER)
            self.entered = True
        return self

    def __exit__(self, *_exc: object) -> None:
        # No signal handler runs while the terminal is given back (a second Ctrl-C or SIGTERM would
        # leave it half restored): they wait, blocked, and act once it is, with the handlers that
        # were there before (a SIGTERM then ends pysvstat as it would have without --watch).
        # Each step on its own: a terminal already gone (SIGHUP) fails the writes, not the rest.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
        if self.entered:
            try:
                self.write(LEAVE)
            except OSError:
                pass
        if self.saved is not None:
            try:
                termios.tcsetattr(self.in_fd, termios.TCSADRAIN, self.saved)  # type: ignore[arg-type]
            except (OSError, termios.error):
                pass
        for signum, handler in self.old_handlers.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self.old_wakeup)
        os.close(self.wake_read)
        os.close(self.wake_write)
        signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def _signalled(self, signum: int, _frame: object) -> None:
        if signum != signal.SIGWINCH:  # a resize only wakes the select (the wakeup pipe) to redraw
            raise _Ended(signum)

    def size(self) -> tuple[int | None, int | None]:
        try:
            size = os.get_terminal_size(self.out_fd)
        except OSError:
            return None, None
        return (size.columns or None), (size.lines or None)

    def wait(self, timeout: float) -> bool:
        """Until a key, a signal or `timeout`; True when q (or Ctrl-C's byte, ISIG off) was pressed."""
        watched = [self.wake_read] + ([self.in_fd] if self.in_fd is not None else [])
        ready, _, _ = select.select(watched, [], [], max(0.0, timeout))
        if self.wake_read in ready:
            try:
                os.read(self.wake_read, 512)
            except BlockingIOError:
                pass
        if self.in_fd is not None and self.in_fd in ready:
            try:
                keys = os.read(self.in_fd, 64)
            except OSError:  # EIO: the terminal hung up (SIGHUP follows)
                keys = b""
            if not keys:
                self.in_fd = None  # end of input: Ctrl-C still quits
            return any(key in keys for key in (b"q", b"Q", b"\x03"))
        return False

    def draw(self, lines: list[str]) -> None:
        """Over the last frame: each line then the rest of it cleared, then all below the last."""
        columns, rows = self.size()
        if rows is not None and len(lines) > rows:
            hidden = len(lines) - rows + 1
            lines = lines[:rows - 1] + [cut(f"... {hidden} more (a taller terminal shows them)", columns or 80)]
        frame = HOME + "".join(line + ("" if columns is not None and width(_plain(line)) >= columns else CLEAR_LINE)
                               + ("\n" if index < len(lines) - 1 else "")  # no newline past the last: no scroll
                               for index, line in enumerate(lines))
        self.write(frame + CLEAR_BELOW)


def _plain(line: str) -> str:
    """A line without its colour codes (only lay_out's own SGR sequences are in it)."""
    out, index = [], 0
    while index < len(line):
        if line.startswith("\x1b[", index):
            index = line.index("m", index) + 1
            continue
        out.append(line[index])
        index += 1
    return "".join(out)


def frame_lines(stage: str, records: "list[Record]", restarts: "dict[str, int] | None", interval: float,
                problem: str, columns: int | None, colour: bool, keys: bool) -> list[str]:
    top = f"{heading(stage, records)}  {time.strftime('%H:%M:%S')}  every {interval:g}s" + ("  q quits" if keys else "")
    lines = [cut(top, columns) if columns is not None else top]
    if problem:
        warning = cut(problem, columns) if columns is not None else problem
        lines.append(f"\x1b[{RED}m{warning}\x1b[0m" if colour else warning)
    return lines + [""] + lay_out([row(r, restarts) for r in records], columns, colour)


def run(names: "Sequence[str]", interval: float) -> int:
    """The watch of `names` (all services: none); its exit code."""
    try:
        return _run(names, interval)
    except KeyboardInterrupt:
        return 0  # Ctrl-C is how a watch is left, as with top and watch(1): not a failure


def _run(names: "Sequence[str]", interval: float) -> int:
    out_fd = sys.stdout.fileno()
    stage, records = fetch(names)  # a wrong name, or no pyinit, fails here as any pysvstat does
    restarts = Restarts()
    restarts.update(records)
    if not os.isatty(out_fd):
        sys.stdout.write("\n".join(lay_out([row(r, restarts.counts) for r in records], None, False)) + "\n")
        return 0
    movable = os.environ.get("TERM", "") not in ("", "dumb")
    colour = colour_wanted(out_fd)
    in_fd = sys.stdin.fileno() if sys.stdin is not None and os.isatty(sys.stdin.fileno()) else None
    sys.stdout.flush()
    try:
        with Screen(out_fd, in_fd, movable) as screen:
            return _loop(screen, names, interval, stage, records, restarts, colour)
    except _Ended as ended:
        return 128 + ended.signum


def _loop(screen: Screen, names: "Sequence[str]", interval: float, stage: str, records: "list[Record]",
          restarts: Restarts, colour: bool) -> int:
    problem = ""
    last_shown: object = None
    while True:
        columns, _rows = screen.size()
        if not screen.movable:
            columns = None  # the lines scroll by: a dumb terminal wraps what it must
        lines = frame_lines(stage, records, restarts.counts, interval, problem, columns, colour,
                            screen.in_fd is not None)
        if screen.movable:
            screen.draw(lines)
        else:
            steady = [_without_uptime(r) for r in records], problem, stage, restarts.counts
            if steady != last_shown:  # a new table only when more than the uptimes changed
                screen.write(("\n" if last_shown is not None else "") + "\n".join(lines) + "\n")
                last_shown = steady
        due = time.monotonic() + interval
        while (left := due - time.monotonic()) > 0:
            if screen.wait(left):
                return 0
            if screen.movable:
                break  # a key other than q, or a resize: redraw now
        try:
            stage, records = fetch(names)
            restarts.update(records)
            problem = ""
        except ProtocolError as exc:
            # pyinit gone, busy or refusing: said on screen, the last table kept, asked again each
            # refresh. As watch(1) and supervisorctl's shell do, the watch stays until q: a busy PID 1
            # (an answer late) or a pyinit restarted outside a container comes back, and inside one
            # the container's end ends this session anyway.
            problem = f"pysvstat: {shown(exc)[:300]}; the table is as last seen; trying again every {interval:g}s"


def _without_uptime(record: "Record") -> object:
    return {key: value for key, value in record.items() if key not in ("seconds", "ready_seconds")}
