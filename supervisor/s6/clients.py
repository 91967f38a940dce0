"""pys6's own s6-svc, s6-svstat, s6-svwait, s6-svok, s6-svscanctl and s6-notifyoncheck, for
images that removed s6 (installed under those names by `pyinit --install-s6-commands`).

Each takes s6's flags and service directories (the last path component names the
service) and answers with s6's words and exit codes for what s6-overlay images use, but
speaks pyinit's control socket, so it works wherever pysvc does (an SSH session, uid
1000) without the supervise/ directories. Standard library only.
"""

import os
import sys
import time
from collections.abc import Callable, Sequence

from ..base import cli, s6getopt
from ..base.environ import exec_program
from ..base.terms import EXIT_NOT_FOUND, EXIT_S6_TIMEOUT
from ..control import client, protocol, statusfmt
from ..control.protocol import ProtocolError


def _die(program: str, message: str, code: int) -> int:
    sys.stderr.write(f"{program}: fatal: {message}\n")
    return code


def _usage(program: str, usage: str) -> int:
    sys.stderr.write(f"{program}: usage: {usage}\n")
    return protocol.EXIT_USAGE


# --- s6-svc -----------------------------------------------------------------------------

SVC_USAGE = ("s6-svc [ -wu | -wU | -wd | -wD | -wr | -wR ] [ -T timeout ] [ -s signal | -abqhkti12pcyrPCK ] "
             "[ -oduDUxO ] servicedirs...")


def s6_svc(argv: Sequence[str]) -> int:
    from ..control import svc

    kept: list[str] = []
    for arg in argv:  # -x: s6-supervise would exit; pyinit's supervision ends only with the container
        if arg.startswith("-") and arg != "--" and "T" not in arg and "s" not in arg and "x" in arg:
            arg = arg.replace("x", "")
            if arg == "-":
                continue
        kept.append(arg)
    try:  # the service directories, as s6-svc's getopt leaves them (not -T's or -s's value)
        services = s6getopt.parse(kept, takes_value="Tsw")[1]
    except s6getopt.UsageError:
        services = []  # svc.parse says what is wrong
    try:
        request = svc.parse(kept)
        timeout = client.answer_timeout(request.timeout_ms) if request.wait else client.answer_margin()
        body = _s6_wait(request.to_json())
        if body.get("wait") in S6_WAITS.values() and services and not _has_notification_fd(services[0]):
            body["wait"] = "up" if body["wait"] == "s6-ready" else "restarted"
        client.call(body, timeout)
    except ProtocolError as exc:
        if exc.code == protocol.EXIT_FORBIDDEN:
            return 0  # a signal to a down service: s6-supervise ignores it too
        if exc.code == protocol.EXIT_TIMEOUT:
            return _die("s6-svlisten1", "timed out", EXIT_S6_TIMEOUT)
        if exc.code == protocol.EXIT_NOT_RUNNING or "unknown service" in str(exc):
            where = services[0] if services else "service"
            return _die("s6-svc", f"unable to control {where}: supervisor not listening", protocol.EXIT_USAGE)
        if exc.code == protocol.EXIT_USAGE:
            return _usage("s6-svc", SVC_USAGE)
        return _die("s6-svc", str(exc), exc.code)
    return 0


# s6-svwait's -U and -R (and s6-svc's -wU, -wR) wait for readiness as s6-supervise says it: a
# service with neither notification-fd nor health check is never ready, so s6-svwait -U times
# out on it as s6's does; s6-svc first looks for DIR/notification-fd and, without it, waits for
# up instead (_has_notification_fd). pysvc's -wU counts such a service ready once up
# (control/handlers.py, S6_WAIT_PREDICATES).
S6_WAITS = {"ready": "s6-ready", "restarted-ready": "s6-restarted-ready"}


def _has_notification_fd(directory: str) -> bool:
    """s6-svc's own check before -wU or -wR: without DIR/notification-fd it waits for up (-wu, -wr)
    instead, saying so, as s6-svc 2.15 does (s6-svwait -U has no such check, and times out)."""
    path = os.path.join(directory, "notification-fd")
    if os.path.lexists(path):
        return True
    sys.stderr.write(f"s6-svc: warning: {path} not present - ignoring request for readiness notification\n")
    return False


def _s6_wait(body: dict[str, object]) -> dict[str, object]:
    wait = body.get("wait")
    if isinstance(wait, str) and wait in S6_WAITS:
        body["wait"] = S6_WAITS[wait]
    return body


# --- s6-svstat ----------------------------------------------------------------------------

SVSTAT_USAGE = "s6-svstat [ -uwNrpgest | -o up,wantedup,normallyup,ready,paused,pid,pgid,exitcode,signal,signum," \
               "updownsince,readysince,updownfor,readyfor ] [ -n ] servicedir"
SHORT_FIELDS = statusfmt.SHORT_FLAGS


def _status(name: str) -> dict[str, object] | None:
    """pyinit's record of one service; None when pyinit does not supervise it (or does not run)."""
    try:
        _head, records = client.call_stream({"v": protocol.VERSION, "verb": "status", "services": [name]})
        found = list(records)
    except ProtocolError as exc:
        if exc.code in (protocol.EXIT_NOT_RUNNING, protocol.EXIT_USAGE):
            return None
        raise
    return found[0] if found else None


def s6_svstat(argv: Sequence[str]) -> int:
    fields: list[str] = []
    numeric = False
    try:
        options, operands = s6getopt.parse(argv, takes_value="o")
    except s6getopt.UsageError:
        return _usage("s6-svstat", SVSTAT_USAGE)
    for letter, value in options:
        if letter == "n":
            numeric = True
        elif letter == "o":
            for field in value.split(","):
                if field not in statusfmt.FIELDS:
                    return _die("s6-svstat", f"invalid option field: {field}", protocol.EXIT_USAGE)
                fields.append(field)
        elif letter in SHORT_FIELDS:
            fields.append(SHORT_FIELDS[letter])
        else:
            return _usage("s6-svstat", SVSTAT_USAGE)
    if len(operands) != 1:
        return _usage("s6-svstat", SVSTAT_USAGE)
    try:
        record = _status(protocol.service_name(operands[0]))
    except ProtocolError as exc:
        return _die("s6-svstat", str(exc), protocol.EXIT_SYSTEM)
    if record is None:
        return _die("s6-svstat", f"unable to read status for {operands[0]}: s6-supervise not running", 1)
    if fields:
        line = statusfmt.fields_line(record, fields, s6=True)
    else:
        line = statusfmt.s6_words(record, numeric)
    sys.stdout.write(line + "\n")
    return 0


# --- s6-svwait ----------------------------------------------------------------------------

SVWAIT_USAGE = "s6-svwait [ -U | -u | -d | -D | -r | -R ] [ -a | -o ] [ -t timeout ] servicedir..."


def s6_svwait(argv: Sequence[str]) -> int:
    wait, any_of, timeout_ms = "u", False, 0
    try:
        options, services = s6getopt.parse(argv, takes_value="t")
    except s6getopt.UsageError:
        return _usage("s6-svwait", SVWAIT_USAGE)
    for letter, value in options:
        if letter in protocol.WAIT_LETTERS:
            wait = letter
        elif letter in "ao":
            any_of = letter == "o"
        elif letter == "t" and value.isdecimal():
            timeout_ms = int(value)
        else:
            return _usage("s6-svwait", SVWAIT_USAGE)
    if not services:
        return _usage("s6-svwait", SVWAIT_USAGE)
    waits = [[f"-w{wait}", "-T", str(timeout_ms), service] for service in services]
    return _wait_all_or_any(waits, any_of)


def _wait_all_or_any(waits: list[list[str]], any_of: bool) -> int:
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    from ..control import svc

    def one(args: list[str]) -> int:
        try:
            request = svc.parse(args)
            client.call(_s6_wait(request.to_json()), client.answer_timeout(request.timeout_ms))
        except ProtocolError as exc:
            return exc.code
        return 0

    if not any_of:
        codes = [one(args) for args in waits]  # each wait has the whole timeout: s6 counts one deadline
    else:
        pool = ThreadPoolExecutor(len(waits))
        pending = {pool.submit(one, args) for args in waits}
        codes = []
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            codes += [future.result() for future in done]
            if 0 in codes:
                pool.shutdown(wait=False, cancel_futures=True)
                return 0
        pool.shutdown(wait=False)
    if all(code == 0 for code in codes):
        return 0
    if protocol.EXIT_TIMEOUT in codes:
        return _die("s6-svwait", "timed out", EXIT_S6_TIMEOUT)
    return _die("s6-svwait", "some services reported permanent failure or their supervisor died", protocol.EXIT_SYSTEM)


# --- s6-svok, s6-svscanctl --------------------------------------------------------------------


def s6_svok(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        return _usage("s6-svok", "s6-svok servicedir")
    if argv[0].startswith("-"):  # s6-svok has no option: "--help" is a directory, and not a supervised one
        return 1
    try:
        return 0 if _status(protocol.service_name(argv[0])) is not None else 1
    except ProtocolError as exc:
        return _die("s6-svok", str(exc), protocol.EXIT_SYSTEM)


def s6_svscanctl(argv: Sequence[str]) -> int:
    from .commands import write_control

    usage = "s6-svscanctl [ -zabhitqnN ] svscandir"
    letters = "".join(arg[1:] for arg in argv if arg.startswith("-") and arg != "--")
    operands = [arg for arg in argv if not arg.startswith("-")]
    if len(operands) != 1 or not letters or any(letter not in "zabhitqnN0678" for letter in letters):
        return _usage("s6-svscanctl", usage)
    problem = write_control(letters.encode(), [os.path.join(operands[0], ".s6-svscan", "control")])
    if problem:
        return _die("s6-svscanctl", f"unable to control {operands[0]}: supervisor not listening", protocol.EXIT_USAGE)
    return 0


# --- s6-notifyoncheck -------------------------------------------------------------------------

NOTIFY_USAGE = ("s6-notifyoncheck [ -d ] [ -3 fd ] [ -s initialsleep ] [ -T globaltimeout ] [ -t localtimeout ] "
                "[ -w waitingtime ] [ -n tries ] [ -c \"checkprog...\" ] prog...")


def _parse_notify(argv: Sequence[str]) -> tuple[dict[str, str], bool, list[str]] | None:
    try:
        options, prog = s6getopt.parse(argv, takes_value="3sTtwnc", stop_at_operand=True)
    except s6getopt.UsageError:
        return None
    if not prog or any(letter not in "d3sTtwnc" for letter, _ in options):
        return None
    return {letter: value for letter, value in options if letter != "d"}, ("d", "") in options, prog


def s6_notifyoncheck(argv: Sequence[str]) -> int:
    """Run PROG; meanwhile, a child polls ./data/check (or -c's execline) and, once it succeeds,
    writes a newline to the notification fd. The child dies with PROG (PR_SET_PDEATHSIG)."""
    parsed = _parse_notify(argv)
    if parsed is None:
        return _usage("s6-notifyoncheck", NOTIFY_USAGE)
    values, _double_fork, prog = parsed
    numbers: dict[str, int] = {}
    for key, default in (("s", 10), ("T", 0), ("t", 0), ("w", 1000), ("n", 7)):
        text = values.get(key, str(default))
        if not text.isdecimal():
            return _die("s6-notifyoncheck", f"-{key} must be an unsigned integer", protocol.EXIT_USAGE)
        numbers[key] = int(text)
    if "3" in values:
        if not values["3"].isdecimal():
            return _die("s6-notifyoncheck", "notification-fd must be an unsigned integer", protocol.EXIT_USAGE)
        fd = int(values["3"])
    else:
        from ..base.files import read_regular_file

        try:  # a regular file of a few bytes: a FIFO or a huge file there is refused, never waited on
            fd = int(read_regular_file("notification-fd", 64).strip())
        except (OSError, ValueError):
            return _die("s6-notifyoncheck", "unable to read ./notification-fd", protocol.EXIT_SYSTEM)
    try:
        os.fstat(fd)
    except OSError:
        return _die("s6-notifyoncheck", "notification-fd sanity check failed", protocol.EXIT_SYSTEM)
    check = _check_argv(values["c"]) if "c" in values else ["./data/check"]
    if not check:  # the service still runs (nothing lost), it just never reports ready: say why, once
        sys.stderr.write(f"s6-notifyoncheck: warning: -c {values['c'][:100]!r} needs execlineb, which is not on "
                         "PATH (a plain command line, words with no quotes, braces or #, runs without it); "
                         "this service will not be reported ready\n")
    reader, writer = os.pipe()
    child = os.fork() if check else 1
    if child:
        os.close(fd)
        os.close(writer)
        if check:
            os.read(reader, 1)  # the child is set to die with us before we become PROG
        os.close(reader)
        try:
            exec_program(prog)
        except OSError as exc:
            return _die("s6-notifyoncheck", f"unable to exec {prog[0]}: {exc.strerror}", EXIT_NOT_FOUND)
    os.close(reader)
    _die_with_parent()
    os.write(writer, b"x")
    os.close(writer)
    os._exit(_poll_check(check, fd, numbers))


# What execlineb -P reads as nothing but words split on whitespace: without these, a -c check
# line means the same to execlineb as to str.split(), and needs no execline to run.
EXECLINE_SYNTAX = frozenset('"\\{}#')


def _check_argv(script: str) -> list[str]:
    """-c's check line as s6-notifyoncheck runs it: `execlineb -Pc LINE` where execline is installed
    (s6-overlay's, pys6 mode); without it (the image removed s6-overlay: pys6-bare), a line of plain
    words runs as those words, which is what execlineb would exec; [] when it needs execline."""
    from ..base.environ import find_program

    if find_program("execlineb"):
        return ["execlineb", "-Pc", script]
    if EXECLINE_SYNTAX.isdisjoint(script) and script.split():
        return script.split()
    return []


def _die_with_parent() -> None:
    import ctypes
    import ctypes.util
    import signal

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def _poll_check(check: list[str], fd: int, numbers: dict[str, int]) -> int:
    import subprocess

    start = time.monotonic()
    deadline = start + numbers["T"] / 1000 if numbers["T"] else float("inf")
    time.sleep(numbers["s"] / 1000)
    tries = 0
    while time.monotonic() < deadline:
        tries += 1
        local = numbers["t"] / 1000 if numbers["t"] else None
        remaining = deadline - time.monotonic()
        try:
            code = subprocess.run(check, timeout=min(x for x in (local, remaining) if x is not None)
                                  if local or remaining != float("inf") else None,
                                  stdin=subprocess.DEVNULL).returncode
        except (OSError, subprocess.TimeoutExpired):
            code = 1
        if code == 0:
            os.write(fd, b"\n")
            return 0
        if numbers["n"] and tries >= numbers["n"]:
            return 1
        time.sleep(numbers["w"] / 1000)
    return 99


def _entry(command: Callable[[Sequence[str]], int], usage: str, letter_h: bool = False) -> Callable[[], None]:
    """Under s6's name (s6-svc) s6's flags only, and s6's answer to --help (usage on stderr, exit
    100: measured against s6 2.11); under pys6's own (pys6-s6-svc) also --help and --version as
    every pys6 command, and -h unless it is one of the command's own letters (s6-svc's SIGHUP)."""
    def main() -> None:
        argv = sys.argv[1:]
        if cli.own_name():
            program = cli.invoked_as()
            answered = cli.answer(argv, program, f"usage: {program} {usage.split(' ', 1)[1]}\n"
                                  f"(pys6's {usage.split(' ', 1)[0]}, spoken to pyinit's control socket)",
                                  ("--help",) if letter_h else ("-h", "--help"))
            if answered is not None:
                sys.exit(answered)
            if argv and argv[0].startswith("--") and argv[0] != "--":
                sys.exit(cli.usage_error(program, f"unknown option {argv[0][:100]!r}"))
        sys.exit(command(argv))

    return main


svc_main = _entry(s6_svc, SVC_USAGE, letter_h=True)
svstat_main = _entry(s6_svstat, SVSTAT_USAGE)
svwait_main = _entry(s6_svwait, SVWAIT_USAGE)
svok_main = _entry(s6_svok, "s6-svok servicedir")
svscanctl_main = _entry(s6_svscanctl, "s6-svscanctl [ -zabhitqnN ] svscandir", letter_h=True)
notifyoncheck_main = _entry(s6_notifyoncheck, NOTIFY_USAGE)
