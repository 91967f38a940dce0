"""pysvstat: s6-svstat for pys6's services. Standard library only."""

import sys

from . import client, protocol, statusfmt
from .protocol import ProtocolError

TYPE_CHECKING = False  # what a fresh pysvstat imports is kept to the minimum (tests/test_client_imports.py)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import TextIO

USAGE = """\
usage: pysvstat [-uwNrpgest | -o FIELD,...] [-n] [--json] [--check] [SERVICE...]
       pysvstat --log SERVICE [-n LINES] [-f] [--timestamps] [--raw]
       pysvstat --forensics SERVICE
       pysvstat --prometheus
       pysvstat --watch [--interval S] [SERVICE...]

Status of pys6's services, in s6-svstat's words (all services, and a summary
line, when none is named). SERVICE is a name or an s6 path (/run/service/sshd).

  -o FIELDS    print these fields, space-separated: up wantedup normallyup ready
               paused pid pgid exitcode signal signum updownsince readysince
               updownfor readyfor
  -u -w -N -r -p -g -e -s -t   short for -o up, wantedup, normallyup, ready,
               pid, pgid, exitcode, signal, updownfor
  -n           print signal numbers instead of names
  --json       one JSON object per service
  --check, --check=ready   readiness (Kubernetes readinessProbe): exit 0 only
               if pyinit runs its services (not booting, not stopping), no
               service bailed or crash-loops, and every normally-up service
               is up (and ready when it has a notification-fd), except one an
               operator brought down (pysvc -d): that is a choice, not a fault
  --check=live liveness (livenessProbe): exit 0 while pyinit answers and no
               service bailed or crash-loops (booting, stopping and services
               brought down on purpose are alive)
  --log SERVICE [-n LINES]   the service's last lines (default 100; kept: the
               last 1000 lines or 128 KiB), all on stdout whichever stream
               they came from; control characters are shown escaped on a
               terminal unless --raw. -n may be written anywhere
    -f, --follow   then each new line as it comes, until Ctrl-C (-n 0: only
               the new ones); lines a slow reader could not take are dropped
               and counted on stderr
    --timestamps   each line preceded by when pyinit read it (UTC)
  --forensics SERVICE        its process tree, recent deaths and last lines
  --prometheus the metrics page pyinit serves (PYS6_METRICS_LISTEN), in
               Prometheus' text format, with the services' metrics files
  --watch      a live table, redrawn in place every S seconds (--interval S,
               0.1 to 3600, default 1): state, pid, uptime, restarts since
               pyinit started, deaths in the crash window, ready, health,
               note; q or Ctrl-C quits (exit 0), any other key refreshes.
               Colour unless NO_COLOR is set or TERM is dumb; on a dumb
               terminal a new table only when something changed. When pyinit
               stops answering it says so and keeps trying. Not on a
               terminal: the table once, exit 0

exit codes: 0 ok; 1 --check found a service not as it should be; 100 wrong
usage or unknown service; 102 pyinit is not running; 111 a system call failed
or pyinit refused us.
"""


class Options:
    def __init__(self) -> None:
        self.fields: list[str] = []
        self.numeric = False
        self.json = False
        self.check = False
        self.check_mode = "ready"
        self.log: str | None = None
        self.forensics: str | None = None
        self.lines = 100
        self.follow = False
        self.timestamps = False
        self.raw = False
        self.prometheus = False
        self.watch = False
        self.interval: str | None = None
        self.services: list[str] = []


def _log_mode(argv: "Sequence[str]") -> bool:
    """Whether --log is asked for anywhere (before a --): then -n is its number of lines, wherever
    it is written, not s6-svstat's -n (signal numbers), which means nothing to a log."""
    for arg in argv:
        if arg == "--":
            return False
        if arg == "--log":
            return True
    return False


def _lines(text: str) -> int:
    if not text.isdecimal() or len(text) > 6:
        raise ProtocolError(f"-n needs a number of lines with --log, not {text[:20]!r}")
    return int(text)


def _parse(argv: "Sequence[str]") -> "Options":
    opts = Options()
    args = list(argv)
    log_mode = _log_mode(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-h", "--help"):
            sys.stdout.write(USAGE)
            raise SystemExit(0)
        if arg == "--version":
            from .. import __version__

            sys.stdout.write(f"pysvstat (pys6) {__version__}\n")
            raise SystemExit(0)
        if arg == "--":
            opts.services += args
            break
        if arg == "--json":
            opts.json = True
        elif arg in ("--check", "--check=ready", "--check=live"):
            opts.check = True
            opts.check_mode = "live" if arg == "--check=live" else "ready"
        elif arg == "--raw":
            opts.raw = True
        elif arg == "--prometheus":
            opts.prometheus = True
        elif arg == "--watch":
            opts.watch = True
        elif arg == "--interval":
            if not args:
                raise ProtocolError("--interval needs a number of seconds")
            opts.interval = args.pop(0)
        elif arg.startswith("--interval="):
            opts.interval = arg[11:]
        elif arg in ("--log", "--forensics"):
            if not args:
                raise ProtocolError(f"{arg} needs a SERVICE")
            setattr(opts, arg[2:], args.pop(0))
        elif arg == "-o":
            if not args:
                raise ProtocolError("-o needs a list of fields")
            opts.fields += args.pop(0).split(",")
        elif arg.startswith("-o"):
            opts.fields += arg[2:].split(",")
        elif log_mode and arg in ("-n", "--lines"):
            if not args:
                raise ProtocolError("-n needs a number of lines with --log")
            opts.lines = _lines(args.pop(0))
        elif log_mode and arg.startswith("-n") and arg[2:].isdecimal():
            opts.lines = _lines(arg[2:])
        elif log_mode and arg.startswith("--lines="):
            opts.lines = _lines(arg[8:])
        elif log_mode and arg in ("-f", "--follow"):
            opts.follow = True
        elif log_mode and arg == "--timestamps":
            opts.timestamps = True
        elif arg.startswith("-") and len(arg) > 1 and not arg.startswith("--"):
            for letter in arg[1:]:
                if letter == "n":
                    opts.numeric = True
                elif letter in statusfmt.SHORT_FLAGS:
                    opts.fields.append(statusfmt.SHORT_FLAGS[letter])
                else:
                    raise ProtocolError(f"unknown option -{letter}")
        elif arg.startswith("--"):
            raise ProtocolError(f"unknown option {arg}")
        else:
            opts.services.append(arg)
    if (opts.follow or opts.timestamps) and opts.log is None:
        raise ProtocolError("-f and --timestamps go with --log SERVICE")
    if opts.log is not None and opts.lines == 0 and not opts.follow:
        raise ProtocolError("-n 0 shows nothing without -f")
    if opts.log is not None and opts.lines > 100_000:
        raise ProtocolError("-n: at most 100000 lines")
    if opts.interval is not None and not opts.watch:
        raise ProtocolError("--interval goes with --watch")
    if opts.watch and (opts.json or opts.check or opts.fields or opts.numeric or opts.prometheus
                       or opts.log is not None or opts.forensics is not None):
        raise ProtocolError("--watch shows its own table: not with -o, -n, --json, --check, --log, "
                            "--forensics or --prometheus")
    unknown = [f for f in opts.fields if f not in statusfmt.FIELDS]
    if unknown:
        raise ProtocolError(f"unknown field: {', '.join(unknown)}")
    return opts


def _stamp(when: object) -> str:
    """An arrival time as ISO 8601 in UTC with milliseconds, as pyinit's own event lines show it."""
    if not isinstance(when, int | float) or isinstance(when, bool):
        return "-"
    import time  # built in: nothing to load

    seconds = int(when)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((when - seconds) * 1000):03d}Z"


def show_log(name: str, lines: int, raw: bool, *, always_escaped: bool = False, follow: bool = False,
             timestamps: bool = False) -> int:
    """The service's last lines, on stdout whichever stream each came from (`pysvstat --log x | wc -l`
    counts them all), then with `follow` each new one until Ctrl-C or pyinit's end. Control characters
    are escaped on a terminal unless `raw`, and always when `always_escaped` (pysvc --ssh-forced: sshd
    gives a forced command pipes, not a pty, yet what reads them is the operator's terminal)."""
    body: dict[str, object] = {"v": protocol.VERSION, "verb": "log", "services": [protocol.service_name(name)],
                               "lines": lines}
    if timestamps:
        body["timestamps"] = True
    out = sys.stdout
    escaped = always_escaped or (not raw and out.isatty())  # a service's escapes must not drive a terminal
    if not follow:
        _head, entries = client.call_stream(body)
        for entry in entries:
            _write_entry(out, entry, escaped, timestamps)
        return 0
    body["follow"] = True
    try:
        _head, entries = client.call_follow(body)
        for entry in entries:
            if "dropped" in entry:
                out.flush()
                dropped = entry["dropped"]
                shown = dropped if isinstance(dropped, int) else "some"  # pyinit's count, never its text
                sys.stderr.write(f"pysvstat: {shown} lines of {name} dropped: this reader was too slow\n")
                continue
            _write_entry(out, entry, escaped, timestamps)
            out.flush()  # live: each line as it comes, through a pipe too
    except KeyboardInterrupt:
        return 130  # Ctrl-C: the end a person asked for, said by the shell's own convention
    sys.stderr.write(f"pysvstat: pyinit closed the connection: no more lines of {name}\n")
    return protocol.EXIT_NOT_RUNNING


def _write_entry(out: "TextIO", entry: "dict[str, object]", escaped: bool, timestamps: bool) -> None:
    line = str(entry.get("line", ""))
    if escaped:
        line = statusfmt.escape_controls(line)
    if timestamps:
        line = f"{_stamp(entry.get('time'))} {line}"
    out.write(line + "\n")


def show_forensics(name: str) -> int:
    """The service's forensics as indented JSON: ASCII only, so a service's control characters in it
    (its last lines, its processes' command lines) are always written as \\u escapes, never raw."""
    head, processes = client.call_stream({"v": protocol.VERSION, "verb": "forensics",
                                          "services": [protocol.service_name(name)]})
    record = dict(head.get("forensics") or {})
    record["processes"] = list(processes)
    import json  # indented output is json's own (the wire's C encoder has no indent); rare enough to pay for

    sys.stdout.write(json.dumps(record, indent=2, ensure_ascii=True) + "\n")  # ensure_ascii: see above
    return 0


def _show_metrics() -> int:
    _head, pieces = client.call_stream({"v": protocol.VERSION, "verb": "metrics"})
    for piece in pieces:
        text = piece.get("text")
        if not isinstance(text, str):
            raise ProtocolError("pyinit sent a metrics piece pysvstat cannot read", protocol.EXIT_SYSTEM)
        sys.stdout.write(text)
    return 0


def run(argv: "Sequence[str]") -> int:
    opts = _parse(argv)
    if opts.prometheus:
        return _show_metrics()
    if opts.log is not None:
        return show_log(opts.log, opts.lines, opts.raw, follow=opts.follow, timestamps=opts.timestamps)
    if opts.forensics is not None:
        return show_forensics(opts.forensics)
    if opts.watch:
        from . import watch  # termios, select, signal: only for --watch, never on the plain path's start-up

        return watch.run([protocol.service_name(s) for s in opts.services],
                         watch.interval_of(opts.interval) if opts.interval is not None else 1.0)
    names = [protocol.service_name(s) for s in opts.services]
    head, records = client.call_stream({"v": protocol.VERSION, "verb": "status", "services": names})
    stage = head.get("stage", "running")
    single = len(names) == 1
    counts = statusfmt.Summary()
    all_fine = True
    for record in records:  # printed as they come: an answer of any size needs one record in memory
        try:
            fine = statusfmt.is_as_it_should_be(record, opts.check_mode)
            counts.add(record)
            if opts.json:
                line = protocol.dumps(record, sort_keys=True)
            elif opts.fields:
                line = statusfmt.fields_line(record, opts.fields)
            else:
                line = statusfmt.words(record, opts.numeric)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ProtocolError("pyinit sent a status record pysvstat cannot read", protocol.EXIT_SYSTEM) from None
        all_fine = all_fine and fine
        if not opts.json and not single:
            line = f"{record['name']}: {line}"
        if not opts.check or not fine:
            sys.stdout.write(line + "\n")
    if not names and not opts.json and not opts.fields and not opts.check:
        sys.stdout.write(counts.line() + "\n")
    if opts.check:
        if stage != "running" and opts.check_mode == "ready":  # booting or stopping: not ready
            sys.stdout.write(f"pyinit is {str(stage)[:20]}\n")
            return protocol.EXIT_TIMEOUT
        return 0 if all_fine else protocol.EXIT_TIMEOUT
    return 0


def main() -> None:
    try:
        code = run(sys.argv[1:])
    except ProtocolError as exc:
        if exc.code != protocol.EXIT_USAGE:
            sys.stderr.write(f"pysvstat: fatal: {exc}\n")
        elif str(exc).startswith("unknown service"):
            sys.stderr.write(f"pysvstat: usage: {exc}\n")
        else:
            sys.stderr.write(f"pysvstat: usage: {exc}; try pysvstat --help\n")
        code = exc.code
    except BrokenPipeError:
        code = 0
    sys.stdout.flush()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
