"""pys6-log: a logger for a service's `log/run` or an s6-rc consumer, for images without s6-log.

    pys6-log [nN] [sN] [T] [t] DIR

Reads its stdin (its service's stdout) and keeps DIR as s6-log keeps a log directory:
`current`, archived as @<TAI64N>.s once it would pass sN bytes (default 99999), at most nN
archives (default 10), each line stamped with a TAI64N label (t) and/or an ISO 8601 time
(T). Other s6-log directives are named once on stderr and not applied. Standard library only.
"""

import os
import sys
from collections.abc import Sequence

from ..base import cli
from ..logs.logdir import CatchAllLog, parse_script

USAGE = "usage: pys6-log [nN] [sN] [T] [t] DIR\n"


def run(argv: Sequence[str]) -> int:
    words = [word for word in argv if not word.startswith("-")]  # s6-log's -b -p -l: nothing to do here
    directories = [word for word in words if word.startswith(("/", "."))]
    if len(directories) != 1:
        sys.stderr.write(USAGE)
        return 100
    directives = [word for word in words if word not in directories]
    keep, size, stamps, ignored = parse_script(" ".join(directives) or "n10 s99999")
    if not any(word.startswith("n") for word in directives):
        keep = 10
    if not any(word.startswith("s") for word in directives):
        size = 99999
    if ignored:
        sys.stderr.write(f"pys6-log: warning: not applied: {' '.join(ignored)[:200]}\n")
    try:
        log = CatchAllLog(directories[0], keep, size, stamps)
    except OSError as exc:
        sys.stderr.write(f"pys6-log: fatal: unable to use {directories[0]}: {exc.strerror}\n")
        return 111
    while True:
        try:
            data = os.read(0, 65536)
        except InterruptedError:
            continue
        if not data:
            return 0
        log.write(1, data)


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
