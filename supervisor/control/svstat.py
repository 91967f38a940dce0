"""pysvstat: s6-svstat for pys6's services. Standard library only."""

import sys

from . import client, protocol, statusfmt
from .protocol import ProtocolError

TYPE_CHECKING = False  # what a fresh pysvstat imports is kept to the minimum (tests/test_client_imports.py)
if TYPE_CHECKING:
    from collections.abc import Sequence

USAGE = """\
usage: pysvstat [-uwNrpgest | -o FIELD,...] [-n] [--json] [--check] [SERVICE...]
       pysvstat --log SERVICE [-n LINES] [--raw]
       pysvstat --forensics SERVICE
       pysvstat --prometheus

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
               last 1000 lines or 128 KiB); control characters are shown
               escaped on a terminal unless --raw
  --forensics SERVICE        its process tree, recent deaths and last lines
  --prometheus the metrics page pyinit serves (PYS6_METRICS_LISTEN), in
               Prometheus' text format, with the services' metrics files

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
        self.raw = False
        self.prometheus = False
        self.services: list[str] = []


def _parse(argv: "Sequence[str]") -> "Options":
    opts = Options()
    args = list(argv)
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
        elif arg == "-n" and opts.log is not None:
            if not args or not args[0].isdigit():
                raise ProtocolError("-n needs a number of lines with --log")
            opts.lines = int(args.pop(0))
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
    unknown = [f for f in opts.fields if f not in statusfmt.FIELDS]
    if unknown:
        raise ProtocolError(f"unknown field: {', '.join(unknown)}")
    return opts


def show_log(name: str, lines: int, raw: bool, *, always_escaped: bool = False) -> int:
    """The service's last lines. Control characters are escaped on a terminal unless `raw`, and always
    when `always_escaped` (pysvc --ssh-forced: sshd gives a forced command pipes, not a pty, yet what
    reads them is the operator's terminal)."""
    _head, entries = client.call_stream({"v": protocol.VERSION, "verb": "log",
                                         "services": [protocol.service_name(name)], "lines": lines})
    for entry in entries:
        stream = sys.stdout if entry.get("stream") == "stdout" else sys.stderr
        line = str(entry.get("line", ""))
        if always_escaped or (not raw and stream.isatty()):  # a service's escapes must not drive a terminal
            line = statusfmt.escape_controls(line)
        stream.write(line + "\n")
    return 0


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
        return show_log(opts.log, opts.lines, opts.raw)
    if opts.forensics is not None:
        return show_forensics(opts.forensics)
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
