"""pysvc: s6-svc for pys6's services, and a forced command for SSH keys. Standard library only."""

import os
import sys

from ..base import s6getopt
from ..base.terms import signal_name, valid_name
from . import client, protocol
from .protocol import ProtocolError, Request, WireAction

TYPE_CHECKING = False  # what a fresh pysvc imports is kept to the minimum (tests/test_client_imports.py)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

USAGE = """\
usage: pysvc [-wu|-wU|-wd|-wD|-wr|-wR] [-T MS] [-s SIG | -abqhkti12pcyPCK] [-uUdDoOr] SERVICE...
       pysvc --ssh-forced
       pysvc --help | --version   (not -h: that is SIGHUP, as in s6-svc)

Controls pys6's services as s6-svc does. SERVICE is a name or an s6 path.
Options apply in the order given, to every SERVICE, then the wait.

signals, to the service's main process (as s6): -a ALRM  -b ABRT  -q QUIT
  -h HUP  -k KILL  -t TERM  -i INT  -1 USR1  -2 USR2  -p STOP  -c CONT
  -y WINCH  -s SIG (one of those, by name or number)
signals to its whole process group: -P STOP  -C CONT  -K KILL
state:
  -u  up, and clear a bail      -U  up, and remove the down file
  -d  down: down-signal and SIGCONT to its group, SIGKILL to the group after
      timeout-kill (or S6_SERVICES_GRACETIME)
  -D  down, and create the down file
  -o  once: up, not restarted   -O  once at most: not restarted if it dies
  -r  restart: down-signal to its group; it comes back since it is wanted up
waits (after the commands): -wu up, -wU up and ready, -wd down, -wD down and
  finish done, -wr restarted, -wR restarted and ready; -T MS timeout (0 forever).
  A wait for up (-wu -wU -wr -wR) on a service wanted down or bailed fails at
  once (exit 3) instead of waiting for ever (pys6's s6-svc waits, as s6's).

On a terminal (stderr a tty) one line per service says what was done, e.g.
  cron: restarted, pid 68 -> 91   (without a wait, up to 3 s for it to happen);
without one pysvc is silent, as s6-svc.

--ssh-forced: for authorized_keys' command="pysvc --ssh-forced",restrict. Runs
  only $SSH_ORIGINAL_COMMAND among: status, status NAME, restart NAME,
  stop NAME, start NAME, log NAME, forensics NAME. Anything else is refused
  and reported to pyinit's log. log NAME always shows control characters
  escaped (the far end is a terminal, though sshd gives no pty).

exit codes: 0 ok; 1 a wait timed out; 3 the service's state forbids the action
(a signal or -r to a down service, a wait for up that cannot be met, or the
container is stopping); 100 wrong
usage or unknown service; 102 pyinit is not running; 111 a system call failed
or pyinit refused us.
"""


def parse(argv: "Sequence[str]") -> Request:
    actions: list[WireAction] = []
    wait: str | None = None
    timeout_ms = 0
    for arg in argv:  # s6's getopt has no long options: "--restart" would read as -, -r, -e, ...
        if arg == "--" or not arg.startswith("-"):
            break
        if arg.startswith("--"):
            raise ProtocolError(f"unknown option {arg[:100]!r}")
    try:
        options, services = s6getopt.parse(argv, takes_value="Ts", one_letter="w")
    except s6getopt.UsageError as exc:
        raise ProtocolError(str(exc)) from None
    for letter, value in options:
        if letter == "w":
            if value not in protocol.WAIT_LETTERS:
                raise ProtocolError("-w needs one of u U d D r R")
            wait = protocol.WAIT_LETTERS[value]
        elif letter == "T":
            if not value.isdecimal():
                raise ProtocolError(f"-T needs milliseconds, not {value!r}")
            timeout_ms = int(value)
        elif letter == "s":
            actions.append(WireAction("signal", protocol.signal_number(value)))
        elif letter in protocol.SIGNAL_LETTERS:
            signum, group = protocol.SIGNAL_LETTERS[letter]
            actions.append(WireAction("signal", signum, group))
        elif letter in protocol.STATE_LETTERS:
            actions.append(WireAction(protocol.STATE_LETTERS[letter]))
        elif letter == "x":
            raise ProtocolError("-x is not supported: pyinit's supervision ends only with the container")
        else:
            raise ProtocolError(f"unknown option -{letter}")
    if not services:
        raise ProtocolError("no SERVICE named")
    if not actions and wait is None:
        raise ProtocolError("nothing to do: give a command or a wait")
    names = tuple(protocol.service_name(s) for s in services)
    return Request("control", names, tuple(actions), wait, timeout_ms)


# --- forced-command mode --------------------------------------------------------------

FORCED = {  # bare verb -> what it runs
    "restart": ["-r"], "stop": ["-d"], "start": ["-u"],
}


def ssh_forced(command: str) -> int:
    """Run one allowed bare verb from SSH_ORIGINAL_COMMAND; refuse (and report) anything else."""
    import shlex  # only this mode splits words; shlex imports re

    try:
        words = shlex.split(command)
    except ValueError:
        words = []
    verb, rest = (words[0], words[1:]) if words else ("", [])
    one_name = len(rest) == 1 and valid_name(rest[0])
    from . import svstat

    # No option of pysvstat's is reachable from here (a valid name never starts with "-"), --raw least
    # of all: sshd gives a forced command pipes, not a pty, yet what reads them is the operator's
    # terminal, so a service's lines are escaped whatever stdout is. Status lines carry only names
    # (valid ones: no control character) and pyinit's own words; forensics is ASCII-only JSON.
    if verb == "status" and (not rest or one_name):
        return svstat.run(rest)
    if verb == "log" and one_name:
        return svstat.show_log(rest[0], 100, raw=False, always_escaped=True)
    if verb == "forensics" and one_name:
        return svstat.show_forensics(rest[0])
    if verb in FORCED and one_name:
        return run([*FORCED[verb], rest[0]])
    sys.stderr.write("pysvc: refused: allowed are status [NAME], restart NAME, stop NAME, start NAME, "
                     "log NAME, forensics NAME\n")
    try:
        client.call({"v": protocol.VERSION, "verb": "audit", "message": f"ssh-forced refused: {command[:500]!r}"})
    except ProtocolError:
        pass  # the refusal stands whether or not pyinit could be told
    return protocol.EXIT_USAGE


def _warn_own_door(request: Request) -> None:
    """Stopping sshd from an SSH session: say what it does to logins before it is done."""
    if "sshd" not in request.services or not os.environ.get("SSH_CONNECTION"):
        return
    if any(action.do in ("down", "down-create-down") for action in request.actions):
        sys.stderr.write("pysvc: sshd is going down: new SSH logins are refused until `pysvc -u sshd` "
                         "(this session and the other open ones stay)\n")


def run(argv: "Sequence[str]") -> int:
    if argv and argv[0] == "--help":  # not -h: that is SIGHUP, as in s6-svc
        sys.stdout.write(USAGE)
        return 0
    if argv and argv[0] == "--version":
        from .. import __version__

        sys.stdout.write(f"pysvc (pys6) {__version__}\n")
        return 0
    if argv and argv[0] == "--ssh-forced":
        return ssh_forced(os.environ.get("SSH_ORIGINAL_COMMAND", ""))
    request = _as_pysvc(parse(argv), _person_waiting())
    _warn_own_door(request)
    if request.wait:
        timeout = client.answer_timeout(request.timeout_ms)
    else:
        timeout = client.answer_timeout(request.settle_ms) if request.settle_ms else client.answer_margin()
    answer = client.call(request.to_json(), timeout)
    if request.report:
        for item in answer.get("items", ()):  # none from a pyinit that knows no reports: then nothing is said
            if isinstance(item, dict) and isinstance(item.get("before"), dict) and isinstance(item.get("after"), dict):
                sys.stderr.write(_printable(said(request, item)) + "\n")
    return 0


# --- what pysvc says where a person is waiting ------------------------------------------

SETTLE_MS = 3000  # on a terminal, how long pysvc waits for what its actions set going, to say how it went


def _person_waiting() -> bool:
    """Whether stderr is a terminal: then pysvc says in one line per service what it did. stderr,
    not stdout: the line is for the person, beside pysvc's errors, and `x=$(pysvc ...)` or a pipe
    from stdout never catches it. Without a terminal (a script, a run file), silent as s6-svc."""
    try:
        return os.isatty(2)
    except (OSError, ValueError):
        return False


def _as_pysvc(request: Request, person: bool) -> Request:
    """pysvc's own flags on the request s6-svc's words made. `give_up` always, and only here: a wait
    for up on a service wanted down or bailed fails at once (exit 3) instead of waiting for ever as
    s6-svc's does; pys6's s6-svc (s6/clients.py) and s6-svwait send parse()'s request as it is, so
    they keep s6's behaviour. With a person waiting, a report, and (no wait given) up to SETTLE_MS
    for a restart's new process or a stop's death, so that the line can say pid 68 -> 91."""
    settles = person and request.wait is None and any(action.do != "signal" for action in request.actions)
    return Request(request.verb, request.services, request.actions, request.wait, request.timeout_ms,
                   give_up=True, report=person, settle_ms=SETTLE_MS if settles else 0)


def said(request: Request, item: "dict[str, Any]") -> str:
    """One line of what the request did to one service, from its state before and after:
    `cron: restarted, pid 68 -> 91`, `cron: sent SIGHUP to pid 68`, `cron: already up, pid 68`."""
    before, after = item["before"], item["after"]
    parts: list[str] = []
    for action in request.actions:
        if action.do == "signal":
            target = f"process group {before.get('pid')}" if action.group else f"pid {before.get('pid')}"
            parts.append(f"sent {signal_name(action.signum)} to {target}")
    last = next((action.do for action in reversed(request.actions) if action.do != "signal"), None)
    if last is not None:
        parts.append(_state_said(last, str(item.get("name")), before, after, request))
    elif not request.actions:  # a wait alone: where it got
        parts.append(protocol.describe_state(after))
    dones = {"up-remove-down": "down file removed", "down-create-down": "down file created"}
    parts += [dones[do] for do in dict.fromkeys(action.do for action in request.actions) if do in dones]
    return f"{item.get('name')}: " + "; ".join(parts)


def _state_said(do: str, name: str, before: "dict[str, Any]", after: "dict[str, Any]", request: Request) -> str:
    was_up, is_up = before.get("phase") == "up", after.get("phase") == "up"
    old, new = before.get("pid"), after.get("pid")
    waited = f"after {request.settle_ms / 1000:g} s" if request.settle_ms else "now"
    if do in ("up", "up-remove-down", "once"):
        once = " once" if do == "once" else ""
        if was_up:
            again = {"once": "; not restarted when it dies"}.get(do, "; wanted up again" if before.get("want") != "up" else "")
            return f"already up, pid {old}{again}"
        if is_up:
            return f"started{once}, pid {new}" + (" (bail cleared)" if before.get("bailed") else "")
        return f"asked up{once}, not up {waited}: it is {protocol.describe_state(after)}"
    if do in ("down", "down-create-down"):
        if not was_up:
            return "already down" + ("" if before.get("want") == "down" else "; it will not be started again")
        if not is_up:
            return f"stopped (was pid {old})"
        return f"stopping: pid {new} is still up {waited} (pysvc -wd {name} waits for it)"
    if do == "restart":
        if is_up and new != old:
            return f"restarted, pid {old} -> {new}"
        if is_up:
            return f"restarting: pid {old} is still up {waited} (pysvc -wr {name} waits for it)"
        return f"restarting: pid {old} stopped, not up again {waited}: it is {protocol.describe_state(after)}"
    if do == "once-at-most":
        return f"pid {old} will not be restarted when it dies" if was_up else "stays down"
    return do


def _printable(line: str) -> str:
    """The line as a terminal shows it harmlessly: a control character escaped (names are checked
    on both ends; this holds whatever pyinit sent)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in line)


def main() -> None:
    try:
        code = run(sys.argv[1:])
    except ProtocolError as exc:
        if exc.code == protocol.EXIT_USAGE and not str(exc).startswith("unknown service"):
            sys.stderr.write(f"pysvc: usage: {exc}; try pysvc --help\n")
        else:
            sys.stderr.write(f"pysvc: fatal: {exc}\n")
        code = exc.code
    raise SystemExit(code)


if __name__ == "__main__":
    main()
