"""pycrond CRONTAB: the cron runner that replaces supercronic (a supervised service of pys6)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timezone

DESCRIPTION = """\
Runs the jobs of CRONTAB (a file, or a directory of crontab files) with
supercronic's syntax: 5 fields; 6 (the last is the year); 7 (seconds first, year
last); L W LW # 5L, names, @yearly..@hourly, @reboot, @every DURATION;
NAME=value lines (SHELL, CRON_TZ or TZ, PYCROND_TIMEOUT=DURATION) for the lines
below. Edits are applied when the file changes (or on SIGUSR2); SIGTERM stops
scheduling, lets running jobs finish within --grace, then stops their groups.

exit codes: 0 stopped cleanly, or --test found no error; 1 --test found bad
lines or could not read CRONTAB; 2 wrong usage.
"""


MAX_FLAG_SECONDS = 7 * 86400


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pycrond", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("crontab", metavar="CRONTAB")
    parser.add_argument("--test", action="store_true", help="parse, print each job with its next 3 runs, exit")
    parser.add_argument("--json", action="store_true", help="log events and job lines as JSON")
    parser.add_argument("--overlapping", action="store_true", help="let a job start while its last run still runs")
    parser.add_argument("--grace", type=float, default=30.0, metavar="S",
                        help="on SIGTERM, how long running jobs may finish before SIGTERM (default 30)")
    parser.add_argument("--kill-after", type=float, default=10.0, metavar="S",
                        help="SIGTERM to SIGKILL, at shutdown and on a job's timeout (default 10)")
    parser.add_argument("--metrics-listen", metavar="HOST:PORT", help="serve Prometheus metrics over HTTP")
    parser.add_argument("--metrics-file", metavar="PATH", help="write Prometheus metrics atomically to PATH")
    parser.add_argument("--pushgateway", metavar="URL", help="push metrics to this Pushgateway after each run")
    parser.add_argument("--push-timeout", type=float, default=5.0, metavar="S")
    args = parser.parse_args(argv)
    if args.metrics_listen:
        host, _, port = args.metrics_listen.rpartition(":")
        if not host or not port.isdigit() or len(port) > 5 or not 0 < int(port) <= 65535:
            parser.error("--metrics-listen takes HOST:PORT, the port from 1 to 65535")
        args.metrics_address = (host.strip("[]"), int(port))
    for flag, value in (("--grace", args.grace), ("--kill-after", args.kill_after), ("--push-timeout", args.push_timeout)):
        if not 0 <= value <= MAX_FLAG_SECONDS:  # also refuses nan and inf
            parser.error(f"{flag} takes seconds, from 0 to {MAX_FLAG_SECONDS}")
    return args


def run_test(path: str) -> int:
    from .load import read_crontabs
    from .schedule import RebootSchedule

    now = datetime.now(timezone.utc)
    try:
        jobs, bad, _ = read_crontabs(path, now)
    except OSError as exc:
        sys.stderr.write(f"pycrond: cannot read {path}: {exc.strerror}\n")
        return 1
    for line in bad:
        sys.stderr.write(f"{line}\n")
    for job in jobs:
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
            times.append(when.astimezone().isoformat(timespec="seconds"))
        sys.stdout.write(f"{job.source}:{job.line}: {job.schedule_text} -> {job.command}\n")
        sys.stdout.write(f"    next: {', '.join(times)}\n")
    if bad:
        sys.stderr.write(f"pycrond: {len(bad)} bad line(s)\n")
        return 1
    return 0


def main() -> None:
    args = parse_args(sys.argv[1:])
    if args.test:
        raise SystemExit(run_test(args.crontab))
    from .. import log

    log.configure("json" if args.json else "text", 2, source="pycrond")
    import anyio

    from .daemon import serve

    code = anyio.run(serve, args)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()

