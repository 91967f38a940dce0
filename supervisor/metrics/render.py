"""pyinit's metrics as Prometheus text, from plain records: pure (times are passed in).

The names and their meaning are docs/metrics.md's table; tests/test_metrics.py
checks a live scrape with `promtool check metrics`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from .. import __version__
from ..core.model import Phase, Want, death_code
from ..core.policy import deaths_in_window
from ..core.telemetry import DEATH_CAUSES, ControlTally, ServiceFigures, StageRecord
from .process import PROCESS_FAMILIES
from .promtext import Sample, family, labels

STREAMS = ("stdout", "stderr")


@dataclass(frozen=True)
class PodFigures:
    services: Sequence[ServiceFigures]
    stage: str  # starting, running, stopping
    stages: Sequence[StageRecord]
    control: ControlTally
    orphans_reaped: int
    rejected_lines: Mapping[str, int]  # metrics files of services: lines left out, per file
    process: Mapping[str, list[Sample]]


def _gauges(services: Sequence[ServiceFigures]) -> list[tuple[str, str, list[Sample]]]:
    def each(value_of: Callable[[ServiceFigures], int]) -> list[Sample]:
        return [(labels(service=s.spec.name), value_of(s)) for s in services]

    return [
        ("pys6_service_up", "1 when the service's run process is alive.",
         each(lambda s: int(s.state.phase is Phase.UP))),
        ("pys6_service_ready", "1 when the service is up and ready (notification-fd, or up without one).",
         each(lambda s: int(s.state.phase is Phase.UP and s.state.ready_at is not None))),
        ("pys6_service_want_up", "1 when the supervisor wants the service up (s6's wanted up).",
         each(lambda s: int(s.state.want is not Want.DOWN))),
        ("pys6_service_bailed", "1 when the service died too often in its crash window and is left down.",
         each(lambda s: int(s.state.bailed))),
        ("pys6_service_essential", "1 when the service is essential: its bail stops the container.",
         each(lambda s: int(s.spec.essential))),
    ]


def _services(services: Sequence[ServiceFigures], now: float, wall: float) -> list[str]:
    out: list[str] = []
    for name, help_text, samples in _gauges(services):
        out += family(name, "gauge", help_text, samples)
    out += family("pys6_service_starts_total", "counter", "Times the service's run was started (or failed to exec).",
                  [(labels(service=s.spec.name), s.tally.starts) for s in services])
    deaths: list[Sample] = []
    for s in services:
        counts = s.tally.deaths or {}
        for cause in DEATH_CAUSES:
            for expected in (False, True):
                deaths.append((labels(service=s.spec.name, cause=cause, expected=str(expected).lower()),
                               counts.get((cause, expected), 0)))
    out += family("pys6_service_deaths_total", "counter",
                  "Deaths of the service's run by cause (exit, signal, spawn_failure, unhealthy: restarted for its "
                  "health check); expected ones were asked for.",
                  deaths)
    out += family("pys6_service_last_exit_code", "gauge",
                  "Exit code of the last death, 128+N when killed by signal N (absent before the first death).",
                  [(labels(service=s.spec.name), death_code(s.state.exitcode, s.state.signum))
                   for s in services if s.state.died_at is not None])
    out += family("pys6_service_state_duration_seconds", "gauge",
                  "Seconds since the service last went up or down.",
                  [(labels(service=s.spec.name), round(max(0.0, now - s.state.since), 3)) for s in services])
    out += family("pys6_service_state_change_timestamp_seconds", "gauge",
                  "When the service last went up or down, in seconds since the epoch.",
                  [(labels(service=s.spec.name), round(wall - max(0.0, now - s.state.since), 3)) for s in services])
    out += family("pys6_service_window_deaths", "gauge",
                  "Unexpected deaths inside the crash window; the service bails when it reaches its limit.",
                  [(labels(service=s.spec.name), len(deaths_in_window(s.state.deaths, now, s.spec.crash)))
                   for s in services])
    out += family("pys6_service_window_deaths_limit", "gauge",
                  "Deaths inside the crash window at which the service bails.",
                  [(labels(service=s.spec.name), s.spec.crash.max_deaths) for s in services])
    out += _health(services)
    for name, what in (("lines", "Lines"), ("bytes", "Bytes")):
        per_stream: list[Sample] = []
        for s in services:
            figures = s.log_lines if name == "lines" else s.log_bytes
            per_stream += [(labels(service=s.spec.name, stream=stream), figures[index])
                           for index, stream in enumerate(STREAMS)]
        out += family(f"pys6_log_{name}_total", "counter",
                      f"{what} of the service's output merged into pyinit's stdout or stderr.", per_stream)
    return out


def _health(services: Sequence[ServiceFigures]) -> list[str]:
    """The services that have a health check (docs/health-checks.md); restarts for it are
    pys6_service_deaths_total{cause="unhealthy"}."""
    checked = [(s.spec.name, s.health) for s in services if s.health is not None]
    out = family("pys6_service_health_checks_total", "counter",
                 "Health checks of the service by result (pass, fail, timeout, error: the check could not run).",
                 [(labels(service=name, result=result), count) for name, report in checked
                  for result, count in report.checks])
    out += family("pys6_service_healthy", "gauge",
                  "1 when the service is up and its last health check passed (absent while it is down).",
                  [(labels(service=name), int(report.status == "healthy")) for name, report in checked
                   if report.status is not None])
    out += family("pys6_service_health_failures", "gauge",
                  "Health check failures in a row that count; the service is restarted when it reaches its retries.",
                  [(labels(service=name), report.failures) for name, report in checked])
    return out


def _stages(stages: Iterable[StageRecord]) -> list[str]:
    done = [record for record in stages if record.done]
    out = family("pys6_stage_duration_seconds", "gauge", "Seconds the stage's scripts took (once it ran).",
                 [(labels(stage=r.stage), round(r.seconds, 6)) for r in done])
    out += family("pys6_stage_failed_scripts", "gauge", "Scripts of the stage that exited non-zero (once it ran).",
                  [(labels(stage=r.stage), r.failures) for r in done])
    scripts = [(r.stage, name, code, seconds) for r in stages for name, code, seconds in r.scripts]
    out += family("pys6_stage_script_duration_seconds", "gauge", "Seconds one cont-init or cont-finish script took.",
                  [(labels(stage=stage, script=name), round(seconds, 6)) for stage, name, _code, seconds in scripts])
    out += family("pys6_stage_script_exit_code", "gauge",
                  "Exit code of one cont-init or cont-finish script, 128+N when killed by signal N.",
                  [(labels(stage=stage, script=name), code) for stage, name, code, _seconds in scripts])
    return out


def render(pod: PodFigures, now: float, wall: float) -> str:
    """The whole page; `now` is monotonic (the services' times), `wall` the epoch time at the same instant."""
    out = family("pys6_build_info", "gauge", "pys6's version, as a label; always 1.",
                 [(labels(version=__version__), 1)])
    out += family("pys6_container_stage", "gauge", "1 for the container's current stage: starting, running, stopping.",
                  [(labels(stage=stage), int(stage == pod.stage)) for stage in ("starting", "running", "stopping")])
    out += _services(pod.services, now, wall)
    out += family("pys6_orphans_reaped_total", "counter", "Processes reaped that no service or script was waiting for.",
                  [("", pod.orphans_reaped)])
    out += family("pys6_control_requests_total", "counter", "Requests on the control socket by verb and result.",
                  [(labels(verb=verb, result=result), count)
                   for (verb, result), count in sorted(pod.control.requests.items())])
    out += family("pys6_control_refused_total", "counter", "Control socket peers refused (not root, us or the group).",
                  [("", pod.control.refused)])
    out += _stages(pod.stages)
    out += family("pys6_metrics_file_rejected_lines", "gauge",
                  "Lines of a service's metrics file left out of the page: not valid, or a name that is pyinit's.",
                  [(labels(file=name), count) for name, count in sorted(pod.rejected_lines.items())])
    for name, kind, help_text in PROCESS_FAMILIES:
        if name in pod.process:
            out += family(name, kind, help_text, pod.process[name])
    return "\n".join(out) + "\n"

