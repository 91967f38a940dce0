"""Per-job heartbeats in Prometheus' text format, with supercronic's metric names and labels.

supercronic_executions, _successful_executions, _failed_executions,
_deadline_exceeded (a tick that found the job's last run still running), _currently_running
and _cron_execution_time_seconds keep their names and meanings so dashboards and
alerts keep working; pycrond adds the runs stopped by a timeout, the last start,
success and failure times and the next run, which stale-heartbeat alerts need.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterable

from ..base import files
from ..metrics.promtext import escape_label, number
from .scheduler import BUCKETS, JobState

COUNTERS: tuple[tuple[str, str, Callable[[JobState], int]], ...] = (
    ("supercronic_executions", "count of cron executions", lambda s: s.runs),
    ("supercronic_successful_executions", "count of successful cron executions", lambda s: s.successes),
    ("supercronic_failed_executions", "count of failed cron executions", lambda s: s.failures),
    ("supercronic_deadline_exceeded", "count of exceeded deadline cron executions", lambda s: s.deadline_exceeded),
    ("pycrond_timeouts_total", "count of runs stopped by their PYCROND_TIMEOUT", lambda s: s.timeouts),
)
TIMESTAMPS: tuple[tuple[str, str, Callable[[JobState], float | None]], ...] = (
    ("pycrond_last_start_timestamp_seconds", "when the job last started", lambda s: s.last_start),
    ("pycrond_last_success_timestamp_seconds", "when the job last succeeded", lambda s: s.last_success),
    ("pycrond_last_failure_timestamp_seconds", "when the job last failed", lambda s: s.last_failure),
    ("pycrond_next_run_timestamp_seconds", "when the job runs next",
     lambda s: s.next_due.timestamp() if s.next_due else None),
)


def _labels(state: JobState, extra: str = "") -> str:
    spec = state.spec
    text = (f'command="{escape_label(spec.command)}",position="{spec.position}",'
            f'schedule="{escape_label(spec.schedule_text)}"')
    return "{" + text + extra + "}"


def render(jobs: Iterable[JobState]) -> str:
    jobs = list(jobs)
    out: list[str] = []
    for name, help_text, count_of in COUNTERS:
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        out += [f"{name}{_labels(s)} {count_of(s)}" for s in jobs]
    out += ["# HELP supercronic_currently_running count of currently running cron executions",
            "# TYPE supercronic_currently_running gauge"]
    out += [f"supercronic_currently_running{_labels(s)} {s.running}" for s in jobs]
    name = "supercronic_cron_execution_time_seconds"
    out += [f"# HELP {name} duration of the cron executions", f"# TYPE {name} histogram"]
    for s in jobs:
        finished = s.successes + s.failures
        for bound, count in [*zip(map(number, BUCKETS), s.bucket_counts, strict=True), ("+Inf", finished)]:
            le = ',le="' + bound + '"'
            out.append(f"{name}_bucket{_labels(s, le)} {count}")
        out.append(f"{name}_sum{_labels(s)} {round(s.duration_sum, 6)}")
        out.append(f"{name}_count{_labels(s)} {finished}")
    for name, help_text, value in TIMESTAMPS:
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        for s in jobs:
            stamp = value(s)
            if stamp is not None:
                out.append(f"{name}{_labels(s)} {round(float(stamp), 3)}")
    return "\n".join(out) + "\n"


def write_atomically(path: str, text: str) -> None:
    """For node-exporter's textfile collector (and pyinit's metrics directory): readers never see half a file."""
    files.write_atomically(path, text, ".pycrond-metrics-")


def push(url: str, text: str, timeout: float) -> None:
    """PUT the whole set to a Pushgateway (…/metrics/job/pycrond), replacing the group."""
    target = url.rstrip("/") + "/metrics/job/pycrond"
    request = urllib.request.Request(target, data=text.encode(), method="PUT",
                                     headers={"Content-Type": "text/plain; version=0.0.4"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (the operator's URL)
        response.read()
