"""pycrond CRONTAB: the cron runner that replaces supercronic (a supervised service of pys6).

supercronic's command line is taken as it is (`-json`, `-test`, `--json` and
`-json=true` alike, as Go's flag package reads them), beside pycrond's own long
options; installed as `supercronic` (pys6-install-supercronic) it keeps an
image's `exec supercronic ...` working.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..logs.events import Logger

DESCRIPTION = """\
Runs the jobs of CRONTAB (a file, or a directory of crontab files) as
supercronic does, with its syntax: 5 fields; 6 (the last is the year); 7
(seconds first, year last); names; L W LW 5L 5#3; @yearly @annually @monthly
@weekly @daily @hourly; NAME=value lines for every job of the file (SHELL,
CRON_TZ); and pys6's own @reboot, @every DURATION and PYCROND_TIMEOUT=DURATION.
Schedules follow CRON_TZ, else the local zone. Edits are applied when the file
changes (or on SIGUSR2); SIGTERM, SIGINT or SIGQUIT stops scheduling, lets
running jobs finish within --grace, then stops their groups.

exit codes: 0 stopped cleanly, or -test found the crontab valid; 1 a bad line
or an unreadable CRONTAB at start (or for -test), or a metrics address that
cannot be listened on; 2 wrong usage.
"""

# supercronic's flags, as its Go flag set names them: bools, then those with a value.
SUPERCRONIC_BOOLS = ("debug", "quiet", "json", "version", "test", "inotify", "no-reap", "split-logs",
                     "passthrough-logs", "overlapping")
SUPERCRONIC_VALUES = ("prometheus-listen-address", "sentry-dsn", "sentryDsn", "sentry-environment", "sentry-release")
PYCROND_VALUES = ("grace", "kill-after", "metrics-listen", "metrics-file", "pushgateway", "push-timeout", "log-format",
                  "heartbeat-file", "heartbeat-interval", "notify-fd", "status-file")
PYCROND_BOOLS = ("keep-going",)
PROMETHEUS_DEFAULT_PORT = 9746  # supercronic's
SENTRY_VARIABLES = ("SENTRY_DSN", "SENTRY_ENVIRONMENT", "SENTRY_RELEASE")
MAX_FLAG_SECONDS = 7 * 86400


def go_style_arguments(argv: Sequence[str]) -> list[str]:
    """Go's flag syntax made argparse's: `-name`, `--name`, `-name=v`, `-bool=false`; flags end at the first operand."""
    out: list[str] = []
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--" or not arg.startswith("-") or arg == "-":
            out += [arg, *rest] if arg != "--" else ["--", *rest]
            break
        name, equals, value = arg.lstrip("-").partition("=")
        if name in ("h", "help") and not equals:  # Go's flag package answers -h, -help and --help
            out.append("--help")
        elif name in SUPERCRONIC_BOOLS or name in PYCROND_BOOLS:
            if equals and value.lower() in ("false", "0", "f"):
                continue
            if equals and value.lower() not in ("true", "1", "t"):
                out.append(arg)  # argparse says what is wrong with it
                continue
            out.append(f"--{name}")
        elif name in SUPERCRONIC_VALUES or name in PYCROND_VALUES:
            if not equals and rest:  # `-flag value`: the value is no operand, whatever it looks like
                value, equals = rest.pop(0), "="
            out.append(f"--{name}{equals}{value}")
        else:
            out.append(arg)
    return out


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    from ..base.cli import hinted_parser

    # Wrong usage exits 2, as supercronic's Go flag set does, with a hint to --help.
    parser = hinted_parser(prog="pycrond", description=DESCRIPTION, allow_abbrev=False,
                           formatter_class=argparse.RawDescriptionHelpFormatter, code=2, version=False)
    parser.add_argument("crontab", metavar="CRONTAB", nargs="?")
    supercronic = parser.add_argument_group("supercronic's flags (one dash or two)")
    supercronic.add_argument("--test", action="store_true", help="check the crontab, print each job's next runs, exit")
    supercronic.add_argument("--json", action="store_true", help="log lines as JSON objects (supercronic's)")
    supercronic.add_argument("--debug", action="store_true", help="log debug lines too")
    supercronic.add_argument("--quiet", action="store_true", help="log warnings and errors only (wins over -debug)")
    supercronic.add_argument("--overlapping", action="store_true", help="let a job start while its last run still runs")
    supercronic.add_argument("--passthrough-logs", action="store_true", help="job output as it is, not in log lines")
    supercronic.add_argument("--split-logs", action="store_true", help="debug and info lines to stdout, the rest to stderr")
    supercronic.add_argument("--inotify", action="store_true",
                             help="pycrond always watches the crontab; with -inotify an edit is logged "
                                  "in supercronic's words (received user defined signal 2)")
    supercronic.add_argument("--no-reap", action="store_true", help="do not adopt and reap orphans of the jobs")
    supercronic.add_argument("--prometheus-listen-address", metavar="ADDR",
                             help=f"serve /metrics and /health at IP[:PORT] (port {PROMETHEUS_DEFAULT_PORT} by default)")
    supercronic.add_argument("--version", action="store_true", help="print the version and exit")
    for name in ("sentry-dsn", "sentryDsn", "sentry-environment", "sentry-release"):
        supercronic.add_argument(f"--{name}", metavar="VALUE", help="accepted and ignored (no Sentry here)")
    own = parser.add_argument_group("pycrond's own options")
    own.add_argument("--log-format", choices=("logfmt", "json", "text"), default=None,
                     help="logfmt (supercronic's, the default), json (as -json), or text (pycrond's readable lines)")
    own.add_argument("--keep-going", action="store_true",
                     help="at start, run the good lines of a crontab with bad ones, and wait for a missing crontab, "
                          "where supercronic exits 1")
    own.add_argument("--grace", type=float, default=30.0, metavar="S",
                     help="on SIGTERM, how long running jobs may finish before SIGTERM (default 30)")
    own.add_argument("--kill-after", type=float, default=10.0, metavar="S",
                     help="SIGTERM to SIGKILL, at shutdown and on a job's timeout (default 10)")
    own.add_argument("--metrics-listen", metavar="HOST:PORT", help="serve Prometheus metrics over HTTP")
    own.add_argument("--metrics-file", metavar="PATH", help="write Prometheus metrics atomically to PATH")
    own.add_argument("--pushgateway", metavar="URL", help="push metrics to this Pushgateway after each run")
    own.add_argument("--push-timeout", type=float, default=5.0, metavar="S")
    own.add_argument("--heartbeat-file", metavar="PATH",
                     help="the scheduling loop writes here, at least once an interval, the Unix time by which it "
                          "promises its next write (twice the interval ahead): stale when it no longer schedules")
    own.add_argument("--heartbeat-interval", type=float, default=15.0, metavar="S",
                     help="seconds between heartbeats when idle (default 15; from 0.1)")
    own.add_argument("--notify-fd", type=int, metavar="FD",
                     help="s6's notification-fd: a newline on FD once the crontab is read and jobs are scheduled")
    own.add_argument("--status-file", metavar="PATH",
                     help="keep in PATH one line on what is wrong with the crontab now (refused lines, unreadable), "
                          "empty when nothing is; pyinit shows a service's status-note in pysvstat")
    args = parser.parse_args(go_style_arguments(argv))
    if args.crontab is None and not args.version:
        parser.error("CRONTAB is required")
    from ..base.listenaddr import listen_address

    args.metrics_address = None
    for flag, text, default_port in (("--metrics-listen", args.metrics_listen, None),
                                     ("-prometheus-listen-address", args.prometheus_listen_address,
                                      PROMETHEUS_DEFAULT_PORT)):
        if text:
            try:
                args.metrics_address = listen_address(text, default_port)
            except ValueError as exc:
                parser.error(f"{flag} {exc}")
    for flag, value in (("--grace", args.grace), ("--kill-after", args.kill_after), ("--push-timeout", args.push_timeout)):
        if not 0 <= value <= MAX_FLAG_SECONDS:  # also refuses nan and inf
            parser.error(f"{flag} takes seconds, from 0 to {MAX_FLAG_SECONDS}")
    if not 0.1 <= args.heartbeat_interval <= MAX_FLAG_SECONDS:
        parser.error(f"--heartbeat-interval takes seconds, from 0.1 to {MAX_FLAG_SECONDS}")
    if args.notify_fd is not None:
        if not 3 <= args.notify_fd <= 1023:  # s6's range for notification-fd
            parser.error("--notify-fd takes a descriptor from 3 to 1023")
        try:
            os.set_inheritable(args.notify_fd, False)  # for pycrond alone: no job keeps the pipe open
        except OSError:
            parser.error(f"--notify-fd {args.notify_fd} is not open")
    args.log_format = args.log_format or ("json" if args.json else "logfmt")
    sentry = [f"-{n}" for n in ("sentry-dsn", "sentryDsn", "sentry-environment", "sentry-release")
              if getattr(args, n.replace("-", "_"))] + [v for v in SENTRY_VARIABLES if os.environ.get(v)]
    args.sentry_settings = sentry
    return args


def version() -> str:
    from .. import __version__

    return f"v{__version__}"


def configure_logging(args: argparse.Namespace) -> Logger:
    from ..logs import events as log
    from .logrus import renderer

    verbosity = 1 if args.quiet else 3 if args.debug else 2
    chosen = None if args.log_format == "text" else renderer(args.log_format == "json")
    log.configure(args.log_format, verbosity, source="pycrond", renderer=chosen)
    if args.split_logs:
        from ..logs.writer import write_all

        log.route_to(log.ROUTER.sink, lambda data: write_all(1, data))
    return log.get()


def run_test(args: argparse.Namespace, logger: Logger) -> int:
    from .load import read_crontabs
    from .schedule import RebootSchedule

    now = datetime.now(timezone.utc)
    path = args.crontab
    logger.info(f"read crontab: {path}")
    try:
        parsed, _ = read_crontabs(path, now)
    except OSError as exc:
        logger.critical(open_error(path, exc))
        return 1
    for notice in parsed.notices:
        getattr(logger, notice.level)(notice.message)
    for line in parsed.bad:
        sys.stderr.write(f"{line}\n")
    for job in parsed.jobs:
        times: list[str] = []
        when: datetime | None = now
        for _ in range(3):
            if isinstance(job.schedule, RebootSchedule):
                times = ["at start"]
                break
            when = job.schedule.next_after(when) if when else None
            if when is None:
                times.append("never again")
                break
            times.append(when.astimezone(getattr(job.schedule, "zone", None)).isoformat(timespec="seconds"))
        sys.stdout.write(f"{job.source}:{job.line}: {job.schedule_text} -> {job.command}\n")
        sys.stdout.write(f"    next: {', '.join(times)}\n")
    sys.stdout.flush()
    if parsed.bad:
        sys.stderr.write(f"pycrond: {len(parsed.bad)} bad line(s)\n")
        logger.critical(parsed.bad[0].supercronic_message)
        return 1
    logger.info("crontab is valid")
    return 0


def open_error(path: str, exc: OSError) -> str:
    """Go's words for a file that cannot be opened: `open PATH: no such file or directory`."""
    from .logrus import go_reason

    return f"open {path}: {go_reason(exc)}"


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.version:
        print(version())
        raise SystemExit(0)
    logger = configure_logging(args)
    if args.sentry_settings:
        logger.warning("Sentry is not supported by pycrond: these settings are ignored",
                       settings=" ".join(args.sentry_settings))
    if args.test:
        raise SystemExit(run_test(args, logger))
    import anyio

    from .daemon import serve

    code = anyio.run(serve, args)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
