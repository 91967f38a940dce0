"""pys6-log: a logger for a service's `log/run` or an s6-rc consumer, for images without s6-log.

    pys6-log [nN] [sN] [T] [t] DIR

Reads its stdin (its service's stdout) and keeps DIR as s6-log keeps a log directory:
`current`, archived as @<TAI64N>.s once it would pass sN bytes (default 99999), at most nN
archives (default 10), each line stamped with a TAI64N label (t) and/or an ISO 8601 time
(T). Other s6-log directives are named once on stderr and not applied. Standard library only.
"""

import os
import sys
import time
from collections.abc import Sequence

# Every module of ours is imported here, before logutil-service drops to nobody: past that,
# a package nobody may read (a root-only checkout, a 0700 site-packages) would fail the import.
from ..base import cli, s6getopt
from ..logs.logdir import LINE_LIMIT, LINE_LIMIT_MIN, READ_SIZE, TOLERANCE, S6LogDir, parse_script

USAGE = "usage: pys6-log [nN] [sN] [T] [t] DIR\n"


def _options(argv: Sequence[str]) -> tuple[dict[str, str], list[str]] | None:
    """s6-log's options (-d notif, -q, -v, -b, -p, -l linelimit, -t lastlinetimeout) and the script."""
    try:
        options, script = s6getopt.parse(argv, takes_value="dlt", stop_at_operand=True)
    except s6getopt.UsageError:
        return None
    if any(letter not in "dqvbplt" for letter, _ in options):
        return None
    values = dict(options)
    if any(not values[letter].isdecimal() for letter in "dlt" if letter in values):
        return None
    return values, script


def run(argv: Sequence[str]) -> int:
    parsed = _options(argv)
    if parsed is None:
        sys.stderr.write(USAGE)
        return 100
    options, words = parsed
    directories = [word for word in words if word.startswith(("/", "."))]
    if len(directories) != 1:
        sys.stderr.write(USAGE)
        return 100
    directives = [word for word in words if word not in directories]
    tolerance = TOLERANCE
    for word in [w for w in directives if w[:1] == "l" and w[1:].isdecimal() and len(w) <= 10]:
        tolerance = int(word[1:])  # s6-log's lN: the rotation's tolerance (no catch-all has it)
        directives.remove(word)
    keep, size, stamps, ignored = parse_script(" ".join(directives) or "n10 s99999")
    if not any(word.startswith("n") for word in directives):
        keep = 10
    if not any(word.startswith("s") for word in directives):
        size = 99999
    if ignored:
        sys.stderr.write(f"pys6-log: warning: not applied: {' '.join(ignored)[:200]}\n")
    line_limit = int(options.get("l", str(LINE_LIMIT))[:9])
    if line_limit:
        line_limit = max(line_limit, LINE_LIMIT_MIN)
    last_line_timeout = int(options.get("t", "2000")[:9]) / 1000
    try:
        log = S6LogDir(directories[0], keep, size, stamps, tolerance)
    except OSError as exc:
        sys.stderr.write(f"pys6-log: fatal: unable to use {directories[0]}: {exc.strerror}\n")
        return 111
    if "d" in options:
        try:
            os.write(int(options["d"]), b"\n")
            os.close(int(options["d"]))
        except OSError:
            pass  # nobody listens for readiness: s6-log goes on as well
    try:
        _read_loop(log, line_limit, last_line_timeout, protect="p" in options)
    finally:
        log.close()
    return 0


def _cut(line: bytes, line_limit: int) -> list[bytes]:
    if not line_limit or len(line) <= line_limit:
        return [line]
    return [line[i:i + line_limit] for i in range(0, len(line), line_limit)]


def _read_loop(log: S6LogDir, line_limit: int, last_line_timeout: float, protect: bool) -> None:
    """stdin, line by line, until EOF or SIGTERM (ignored with -p) / SIGHUP: then, as s6-log, a
    line begun is waited for, at most lastlinetimeout (0: for ever), and logged with a newline
    added; a partial line at EOF in normal running is dropped, as s6-log drops it. SIGALRM
    rotates `current`. Signals reach the loop through a wakeup pipe: no line is cut by one."""
    import select
    import signal

    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(signum, lambda *_: None)
    pending = b""
    deadline: float | None = None  # once stopping: when the line begun is given up on
    stopping = False
    while True:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            ready, _, _ = select.select([0, wake_r], [], [], timeout)
        except InterruptedError:
            continue
        if not ready:  # stopping, and the last line did not come in time
            log.write_lines(_cut(pending, line_limit))
            return
        if wake_r in ready:
            for number in os.read(wake_r, 64):
                if number == signal.SIGALRM:
                    log.rotate()
                elif number == signal.SIGHUP or (number == signal.SIGTERM and not protect):
                    if not pending:
                        return
                    stopping = True
                    if deadline is None and last_line_timeout:
                        deadline = time.monotonic() + last_line_timeout
        if 0 not in ready:
            continue
        try:
            data = os.read(0, READ_SIZE)
        except InterruptedError:
            continue
        except OSError:
            data = b""
        if not data:
            if stopping and pending:
                log.write_lines(_cut(pending, line_limit))
            return
        lines = (pending + data).split(b"\n")
        pending = lines.pop()
        if stopping and lines:  # the line begun is complete: s6-log reads no further
            log.write_lines(_cut(lines[0], line_limit))
            return
        whole = [piece for line in lines for piece in _cut(line, line_limit)]
        while line_limit and len(pending) >= line_limit:  # a line too long is cut as it comes
            whole.append(pending[:line_limit])
            pending = pending[line_limit:]
        log.write_lines(whole)


S6_LOG_USAGE = "s6-log: usage: s6-log [ -d notif ] [ -q | -v ] [ -b ] [ -p ] [ -l linelimit ] [ -- ] logging_script\n"


def main() -> None:
    argv = sys.argv[1:]
    if cli.own_name():
        answered = cli.answer(argv, "pys6-log", USAGE)
        if answered is not None:
            sys.exit(answered)
    if argv and argv[0].startswith("--") and argv[0] != "--":  # s6-log's getopt: no long option
        if cli.own_name():
            sys.exit(cli.usage_error("pys6-log", f"unknown option {argv[0][:100]!r}"))
        sys.stderr.write(S6_LOG_USAGE)
        sys.exit(100)
    sys.exit(run(argv))


def logutil_service(argv: Sequence[str]) -> int:
    """s6-overlay's `logutil-service [-f FIFO] DIR`: the log directory kept with S6_LOGGING_SCRIPT's
    rotation (default n20 s1000000 T), as nobody when run as root, reading FIFO if given."""
    args = list(argv)
    fifo = ""
    if args[:1] == ["-f"] and len(args) >= 2:
        fifo, args = args[1], args[2:]
    elif args and args[0].startswith("-f"):
        fifo, args = args[0][2:], args[1:]
    if len(args) != 1 or args[0].startswith("-"):  # "--help" is no log directory to make
        sys.stderr.write("logutil-service: usage: logutil-service [-f FIFO] DIR\n")
        return 100
    if fifo:
        try:
            fd = os.open(fifo, os.O_RDONLY)
        except OSError as exc:
            sys.stderr.write(f"logutil-service: fatal: unable to open {fifo}: {exc.strerror}\n")
            return 111
        os.dup2(fd, 0)
        os.close(fd)
    script = os.environ.get("S6_LOGGING_SCRIPT") or _container_variable("S6_LOGGING_SCRIPT") or "n20 s1000000 T"
    if os.geteuid() == 0:
        import pwd

        try:
            nobody = pwd.getpwnam("nobody")
            uid, gid = nobody.pw_uid, nobody.pw_gid
        except KeyError:
            uid = gid = 65534
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    return run([*script.split(), args[0]])


def _container_variable(name: str) -> str:
    from .contenv import find_directory

    directory = find_directory(os.environ)
    if directory is None:
        return ""
    try:
        with open(os.path.join(directory, name), "rb") as file:
            return file.read(4096).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def logutil_service_main() -> None:
    argv = sys.argv[1:]
    if cli.own_name():
        answered = cli.answer(argv, "pys6-logutil-service", "usage: pys6-logutil-service [-f FIFO] DIR  (as "
                              "s6-overlay's logutil-service: DIR kept with S6_LOGGING_SCRIPT's rotation)")
        if answered is not None:
            sys.exit(answered)
        if argv and argv[0].startswith("--") and argv[0] != "--":
            sys.exit(cli.usage_error("pys6-logutil-service", f"unknown option {argv[0][:100]!r}"))
    sys.exit(logutil_service(argv))
