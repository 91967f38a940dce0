"""pycrond's pure parts: schedules, crontab parsing and the scheduling loop on a fake clock."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import anyio
import pytest
from croniter import croniter

from supervisor.cron.crontab import parse_crontab
from supervisor.cron.schedule import CronSchedule, EverySchedule, ScheduleError, parse_duration
from supervisor.cron.scheduler import JobState, Scheduler

UTC = timezone.utc
NOW = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)  # a Monday


def nexts(schedule, start=NOW, count=3):
    out, when = [], start
    for _ in range(count):
        when = schedule.next_after(when)
        out.append(when)
    return out


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- expressions ---------------------------------------------------------------


@pytest.mark.parametrize("expression", [
    "*/15 * * * *", "0 0 * * *", "30 2 * * 1-5", "0 9 1,15 * *", "5 4 * * SUN", "0 0 1 JAN *", "0 12 * * 7",
    "0 0 L * *", "0 0 15W * *", "0 0 * * 5#2", "*/7 3-5 * * MON-FRI", "0 0 29 2 *",
])
def test_five_field_expressions_agree_with_croniter(expression):
    reference = croniter(expression, NOW.replace(tzinfo=None))
    expected = [reference.get_next(datetime).replace(tzinfo=UTC) for _ in range(5)]
    assert nexts(CronSchedule(expression), count=5) == expected


def test_seven_fields_are_seconds_five_fields_and_a_year():
    assert nexts(CronSchedule("*/5 * * * * * *")) == [at("2026-11-23 10:00:05"), at("2026-11-23 10:00:10"),
                                                      at("2026-11-23 10:00:15")]
    assert nexts(CronSchedule("0 30 2 * * * 2027"), count=1) == [at("2027-01-01 02:30:00")]


def test_six_fields_end_with_the_year_never_seconds():
    # croniter alone reads this as seconds and would run it every second.
    assert nexts(CronSchedule("0 0 * * * *")) == [at("2026-11-24 00:00"), at("2026-11-25 00:00"), at("2026-11-26 00:00")]
    assert nexts(CronSchedule("*/5 * * * * 2027"), count=2) == [at("2027-01-01 00:00"), at("2027-01-01 00:05")]


@pytest.mark.parametrize(("expression", "expected"), [
    ("0 0 LW * *", ["2026-11-30", "2026-12-31", "2027-01-29"]),  # last weekday: Jan 31 2027 is a Sunday
    ("0 0 * * 5L", ["2026-11-27", "2026-12-25", "2027-01-29"]),  # last Friday
    ("0 0 * * 1#1", ["2026-12-07", "2027-01-04", "2027-02-01"]),  # first Monday
    ("0 0 1W * *", ["2026-12-01", "2027-01-01", "2027-02-01"]),
    ("@weekly", ["2026-11-29", "2026-12-06", "2026-12-13"]),
    ("@monthly", ["2026-12-01", "2027-01-01", "2027-02-01"]),
])
def test_supercronics_extensions(expression, expected):
    assert [t.date().isoformat() for t in nexts(CronSchedule(expression))] == expected


@pytest.mark.parametrize("expression", ["61 * * * *", "* * 32 * *", "* * * 13 *", "* * * * 8", "0 0 1-5W * *",
                                        "* * *", "a b c d e", "0 0 * * * * 1969", "*/60 * * * *", "45 4 * * 6-5",
                                        "@midnight", "@DAILY", "0 0 * * * * * extra"])
def test_bad_expressions_are_refused(expression):
    with pytest.raises(ScheduleError):
        CronSchedule(expression)


def test_a_year_in_the_past_never_runs_again():
    assert CronSchedule("0 0 * * * * 2020").next_after(NOW) is None
    assert CronSchedule("0 0 1 1 * 2026").next_after(NOW) is None


# --- clock changes (Debian cron's rules) --------------------------------------------


def test_a_fixed_time_in_the_repeated_hour_runs_once():
    schedule = CronSchedule("30 1 * * *", ZoneInfo("America/New_York"))  # 2026-11-01: 02:00 EDT -> 01:00 EST
    runs = nexts(schedule, at("2026-11-01 04:00"), 2)
    assert runs == [at("2026-11-01 05:30"), at("2026-11-02 06:30")]  # 01:30 EDT once, then 01:30 EST next day


def test_the_issues_example_runs_once_on_the_fall_back_day():
    runs = nexts(CronSchedule("30 2 * * *", ZoneInfo("America/New_York")), at("2026-10-31 12:00"), 3)
    assert [r.astimezone(CronSchedule("30 2 * * *", ZoneInfo("America/New_York")).zone).strftime("%m-%d %H:%M") for r in runs] == [
        "11-01 02:30", "11-02 02:30", "11-03 02:30"]


def test_a_wildcard_job_runs_in_both_repeated_hours():
    runs = nexts(CronSchedule("30 * * * *", ZoneInfo("America/New_York")), at("2026-11-01 04:00"), 4)
    assert runs == [at("2026-11-01 04:30"), at("2026-11-01 05:30"), at("2026-11-01 06:30"), at("2026-11-01 07:30")]


def test_a_time_skipped_by_spring_forward_runs_at_the_jump():
    schedule = CronSchedule("30 2 * * *", ZoneInfo("America/New_York"))  # 2026-03-08: 02:00 EST -> 03:00 EDT
    runs = nexts(schedule, at("2026-03-08 05:00"), 2)
    assert runs == [at("2026-03-08 07:00"), at("2026-03-09 06:30")]  # 03:00 EDT (the jump), then 02:30 EDT


def test_cron_tz_moves_the_schedule():
    assert CronSchedule("0 9 * * *", ZoneInfo("Europe/Berlin")).next_after(NOW) == at("2026-11-24 08:00")


# --- @every and durations --------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("5m", 300), ("1h30m", 5400), ("1.5h", 5400),
                                                ("250ms", 0.25), ("2d", 172800), ("45", 45)])
def test_durations(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "5x", "m", "-5s", "0s"])
def test_bad_durations(text):
    with pytest.raises(ScheduleError):
        parse_duration(text)


def test_every_steps_from_its_anchor_without_drift():
    every = EverySchedule(timedelta(seconds=7), NOW)
    late = NOW + timedelta(hours=5, seconds=3.9)  # however late we ask, the grid stays
    assert every.next_after(late) == NOW + timedelta(seconds=7 * (int((5 * 3600 + 3.9) // 7) + 1))


# --- crontab parsing ---------------------------------------------------------------


CRONTAB = """\
# the pod's crontab
SHELL=/bin/bash
GREETING="hello world"
*/5 * * * * echo "$GREETING"
CRON_TZ=Europe/Berlin
PYCROND_TIMEOUT=30s
0 9 * * MON-FRI  run-report --daily
  @daily backup
@every 10m poll
@reboot warm-cache
not a job
* * * * *
TZ=Nowhere/Special
@fortnightly nope
"""


def test_variables_apply_to_every_job_of_the_file_the_last_value_winning_as_in_supercronic():
    parsed = parse_crontab(CRONTAB, "ct", NOW)
    assert [(j.line, j.command) for j in parsed.jobs] == [
        (4, 'echo "$GREETING"'), (7, "run-report --daily"), (8, "backup"), (9, "poll"), (10, "warm-cache")]
    for job in parsed.jobs:  # CRON_TZ and PYCROND_TIMEOUT below the first job apply to it too
        assert job.shell == "/bin/bash" and job.timeout == timedelta(seconds=30)
        assert job.environ == {"SHELL": "/bin/bash", "GREETING": "hello world", "CRON_TZ": "Europe/Berlin",
                               "PYCROND_TIMEOUT": "30s", "TZ": "Nowhere/Special"}
    assert parsed.jobs[1].schedule.next_after(NOW) == at("2026-11-24 08:00")  # 09:00 in Berlin
    assert parsed.jobs[0].schedule.zone == ZoneInfo("Europe/Berlin")
    assert [j.position for j in parsed.jobs] == [0, 1, 2, 3, 4]
    assert [(n.level, n.message) for n in parsed.notices] == [
        ("info", "processes will be spawned using shell: /bin/bash"),
        ("info", "processes will be spawned using TZ: Europe/Berlin")]


def test_every_bad_line_is_reported_with_its_number_and_reason():
    bad = parse_crontab(CRONTAB, "ct", NOW).bad
    assert [(b.line, b.reason.split(" (")[0]) for b in bad] == [
        (11, "expected a schedule of 5, 6 or 7 fields and a command"),
        (12, "expected a schedule of 5, 6 or 7 fields and a command"),
        (14, "unknown macro @fortnightly"),
    ]
    assert bad[0].supercronic_message == "bad crontab line: 'not a job' (use -debug for details)"


def test_without_cron_tz_the_local_zone_is_followed_and_tz_is_only_a_job_variable():
    paris = ZoneInfo("Europe/Paris")
    parsed = parse_crontab("TZ=Asia/Tokyo\n0 12 * * * noon\n", "ct", NOW, local=paris)
    assert parsed.jobs[0].schedule.next_after(NOW) == at("2026-11-23 11:00")  # 12:00 in Paris (UTC+1)
    assert parsed.jobs[0].environ == {"TZ": "Asia/Tokyo"}
    summer = datetime(2026, 7, 1, tzinfo=UTC)
    assert parsed.jobs[0].schedule.next_after(summer) == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)  # CEST, UTC+2
    utc = parse_crontab("CRON_TZ=UTC\n0 12 * * * noon\n", "ct", NOW, local=paris)
    assert utc.jobs[0].schedule.next_after(NOW) == at("2026-11-23 12:00")


def test_local_zone_is_found_as_go_finds_it(tmp_path):
    from supervisor.cron.load import local_zone

    assert local_zone({"TZ": "Europe/Paris"}) == ZoneInfo("Europe/Paris")
    assert local_zone({"TZ": ":Europe/Paris"}) == ZoneInfo("Europe/Paris")
    assert local_zone({"TZ": ""}) == timezone.utc
    assert local_zone({"TZ": "No/Such_Zone"}) == timezone.utc
    zone_file = tmp_path / "zone"
    zone_file.write_bytes(Path("/usr/share/zoneinfo/Asia/Tokyo").read_bytes())
    tokyo = local_zone({"TZ": str(zone_file)})
    assert datetime(2026, 1, 1, tzinfo=tokyo).utcoffset() == timedelta(hours=9)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert local_zone({"TZ": str(fifo)}) == timezone.utc  # refused at once, never waited on


# supercronic's crontab package tests (crontab/crontab_test.go), restated: the text, then each job's
# schedule and command, and the file's environment; None where supercronic refuses the crontab.
SUPERCRONIC_CRONTABS = [
    ("", [], {}),
    ("\n", [], {}),
    ("FOO=bar\n", [], {"FOO": "bar"}),
    ("FOO=bar", [], {"FOO": "bar"}),
    ('FOO="bar"', [], {"FOO": "bar"}),
    ("FOO='bar'", [], {"FOO": "bar"}),
    ("FOO='", [], {"FOO": "'"}),
    ("FOO=''", [], {"FOO": ""}),
    ("CRON_TZ=UTC", [], {"CRON_TZ": "UTC"}),
    ("* * * * * foo some # qux", [("* * * * *", "foo some # qux")], {}),
    ("* * * * * foo\nSHELL=some\n1 1 1 1 1 bar\nKEY=VAL", [("* * * * *", "foo"), ("1 1 1 1 1", "bar")],
     {"SHELL": "some", "KEY": "VAL"}),
    ("* * * * * * with year\n* * * * * * * with seconds\n@daily with shorthand",
     [("* * * * * *", "with year"), ("* * * * * * *", "with seconds"), ("@daily", "with shorthand")], {}),
    ("# * * * * * * commented\n\n\n  # some\n\t\n\t# more\n  \t  */2 * * * * will run", [("*/2 * * * *", "will run")], {}),
    ("* * * * *        \twith plenty of whitespace", [("* * * * *", "with plenty of whitespace")], {}),
    ("*\t*\t*\t*\t*\ttabs everywhere\n", [("*\t*\t*\t*\t*", "tabs everywhere")], {}),
    ("@hourly foo1 foo2 foo3 foo4 foo5 foo6", [("@hourly", "foo1 foo2 foo3 foo4 foo5 foo6")], {}),
    ("* foo \n", None, None),
    ("* some * * *  more\n", None, None),
    ("* some * * *  \n", None, None),
    ("FOO\n", None, None),
]


@pytest.mark.parametrize(("text", "jobs", "environ"), SUPERCRONIC_CRONTABS)
def test_supercronics_crontab_cases(text, jobs, environ):
    parsed = parse_crontab(text, "ct", NOW)
    if jobs is None:
        assert parsed.bad and not parsed.jobs
        return
    assert not parsed.bad
    assert [(j.schedule_text, j.command) for j in parsed.jobs] == jobs
    assert all(j.environ == environ and j.shell == environ.get("SHELL", "/bin/sh") for j in parsed.jobs)


# supercronic's cronexpr tests (cronexpr/cronexpr_test.go), restated: expression, then (from, next) pairs.
SUPERCRONIC_EXPRESSIONS = [
    ("* * * * * * *", [("2013-01-01 00:00:00", "2013-01-01 00:00:01"), ("2013-01-01 00:00:59", "2013-01-01 00:01:00"),
                       ("2013-01-01 00:59:59", "2013-01-01 01:00:00"), ("2013-01-01 23:59:59", "2013-01-02 00:00:00"),
                       ("2013-02-28 23:59:59", "2013-03-01 00:00:00"), ("2016-02-28 23:59:59", "2016-02-29 00:00:00"),
                       ("2012-12-31 23:59:59", "2013-01-01 00:00:00")]),
    ("*/5 * * * * * *", [("2013-01-01 00:00:00", "2013-01-01 00:00:05"), ("2013-01-01 00:00:59", "2013-01-01 00:01:00"),
                         ("2013-01-01 00:59:59", "2013-01-01 01:00:00"), ("2013-01-01 23:59:59", "2013-01-02 00:00:00"),
                         ("2013-02-28 23:59:59", "2013-03-01 00:00:00"), ("2016-02-28 23:59:59", "2016-02-29 00:00:00"),
                         ("2012-12-31 23:59:59", "2013-01-01 00:00:00")]),
    ("* * * * *", [("2013-01-01 00:00:00", "2013-01-01 00:01:00"), ("2013-01-01 00:00:59", "2013-01-01 00:01:00"),
                   ("2013-01-01 00:59:00", "2013-01-01 01:00:00"), ("2013-01-01 23:59:00", "2013-01-02 00:00:00"),
                   ("2013-02-28 23:59:00", "2013-03-01 00:00:00"), ("2016-02-28 23:59:00", "2016-02-29 00:00:00"),
                   ("2012-12-31 23:59:00", "2013-01-01 00:00:00")]),
    ("17-43/5 * * * *", [("2013-01-01 00:00:00", "2013-01-01 00:17:00"), ("2013-01-01 00:16:59", "2013-01-01 00:17:00"),
                         ("2013-01-01 00:30:00", "2013-01-01 00:32:00"), ("2013-01-01 00:50:00", "2013-01-01 01:17:00"),
                         ("2013-01-01 23:50:00", "2013-01-02 00:17:00"), ("2013-02-28 23:50:00", "2013-03-01 00:17:00"),
                         ("2016-02-28 23:50:00", "2016-02-29 00:17:00"), ("2012-12-31 23:50:00", "2013-01-01 00:17:00")]),
    ("15-30/4,55 * * * *", [("2013-01-01 00:00:00", "2013-01-01 00:15:00"), ("2013-01-01 00:16:00", "2013-01-01 00:19:00"),
                            ("2013-01-01 00:30:00", "2013-01-01 00:55:00"), ("2013-01-01 00:55:00", "2013-01-01 01:15:00"),
                            ("2013-01-01 23:55:00", "2013-01-02 00:15:00"), ("2013-02-28 23:55:00", "2013-03-01 00:15:00"),
                            ("2016-02-28 23:55:00", "2016-02-29 00:15:00"), ("2012-12-31 23:54:00", "2012-12-31 23:55:00"),
                            ("2012-12-31 23:55:00", "2013-01-01 00:15:00")]),
    ("0 0 * * MON", [("2013-01-01 00:00:00", "2013-01-07 00:00:00"), ("2013-01-28 00:00:00", "2013-02-04 00:00:00"),
                     ("2013-12-30 00:30:00", "2014-01-06 00:00:00")]),
    ("0 0 * * friday", [("2013-01-01 00:00:00", "2013-01-04 00:00:00"), ("2013-01-28 00:00:00", "2013-02-01 00:00:00"),
                        ("2013-12-30 00:30:00", "2014-01-03 00:00:00")]),
    ("0 0 * * 6,7", [("2013-01-01 00:00:00", "2013-01-05 00:00:00"), ("2013-01-28 00:00:00", "2013-02-02 00:00:00"),
                     ("2013-12-30 00:30:00", "2014-01-04 00:00:00")]),
    ("0 0 * * 6#5", [("2013-09-02 00:00:00", "2013-11-30 00:00:00")]),
    ("0 0 14W * *", [("2013-03-31 00:00:00", "2013-04-15 00:00:00"), ("2013-08-31 00:00:00", "2013-09-13 00:00:00")]),
    ("0 0 30W * *", [("2013-03-02 00:00:00", "2013-03-29 00:00:00"), ("2013-06-02 00:00:00", "2013-06-28 00:00:00"),
                     ("2013-09-02 00:00:00", "2013-09-30 00:00:00"), ("2013-11-02 00:00:00", "2013-11-29 00:00:00")]),
    ("0 0 L * *", [("2013-09-02 00:00:00", "2013-09-30 00:00:00"), ("2014-01-01 00:00:00", "2014-01-31 00:00:00"),
                   ("2014-02-01 00:00:00", "2014-02-28 00:00:00"), ("2016-02-15 00:00:00", "2016-02-29 00:00:00")]),
    ("0 0 LW * *", [("2013-09-02 00:00:00", "2013-09-30 00:00:00"), ("2013-11-02 00:00:00", "2013-11-29 00:00:00"),
                    ("2014-08-15 00:00:00", "2014-08-29 00:00:00")]),
    ("0 0 28 02 * *", [("2013-09-02 00:00:00", "2014-02-28 00:00:00"), ("2014-08-15 00:00:00", "2015-02-28 00:00:00")]),
    ("0 0 * * 6#5", [("2013-09-02 08:44:30", "2013-11-30 00:00:00")]),  # and then, as NextN goes on:
    ("0 0 * * 6#5", [("2013-11-30 00:00:00", "2014-03-29 00:00:00"), ("2014-03-29 00:00:00", "2014-05-31 00:00:00"),
                     ("2014-05-31 00:00:00", "2014-08-30 00:00:00"), ("2014-08-30 00:00:00", "2014-11-29 00:00:00")]),
    ("*/5 * * * *", [("2013-09-02 08:44:32", "2013-09-02 08:45:00"), ("2013-09-02 08:45:00", "2013-09-02 08:50:00")]),
    # pys6's cases from the issue: a year out to 2099, and a date that never comes
    ("0 0 1 1 * 2099", [("2026-12-04 00:00:00", "2099-01-01 00:00:00"), ("2099-01-01 00:00:00", None)]),
    ("11 1 31 2 * *", [("2013-08-31 00:00:00", None)]),
    ("* * * * * 1980", [("2013-08-31 00:00:00", None)]),
    ("* * * * * 2050", [("2013-08-31 00:00:00", "2050-01-01 00:00:00")]),
]


@pytest.mark.parametrize(("expression", "pairs"), SUPERCRONIC_EXPRESSIONS)
def test_supercronics_expression_cases(expression, pairs):
    schedule = CronSchedule(expression)  # in UTC: no clock change to think of
    for start, expected in pairs:
        got = schedule.next_after(at(start))
        assert got == (at(expected) if expected else None), (expression, start)


# supercronic refuses these (TestInterval_Interval60Issue, TestRange_OutOfOrder, TestTooManyFields and its macro
# table), each with its reason.
@pytest.mark.parametrize(("line", "reason"), [
    ("*/60 * * * * * cmd", "invalid interval */60"),
    ("*/61 * * * * * cmd", "invalid interval */61"),
    ("2/60 * * * * * cmd", "invalid interval 2/60"),
    ("2-20/61 * * * * * cmd", "invalid interval 2-20/61"),
    ("*/60 * * * * cmd", "invalid interval */60"),
    ("0 */24 * * * cmd", "invalid interval */24"),
    ("45 4 *  *  6-7 cmd", "invalid interval 6-7 (normalized to 6-0)"),
    ("45 4 *  *  6-5 cmd", "invalid interval 6-5 (normalized to 6-5)"),
    ("60 * * * * cmd", "syntax error in minute field: '60'"),
    ("0 0 * * fri-mon cmd", "invalid interval fri-mon (normalized to 5-1)"),
    ("@midnight cmd", "unknown macro @midnight"),
    ("@DAILY cmd", "unknown macro @DAILY"),
    ("@Hourly cmd", "unknown macro @Hourly"),
])
def test_what_supercronic_refuses_is_refused_with_its_reason(line, reason):
    bad = parse_crontab(line + "\n", "ct", NOW).bad
    assert len(bad) == 1 and bad[0].reason.startswith(reason), bad


def test_full_and_short_names_in_any_case():
    for expression in ("0 0 * * friday", "0 0 * * FRI", "0 0 * * Friday", "0 0 * * 5"):
        assert CronSchedule(expression).next_after(NOW) == at("2026-11-27 00:00"), expression
    for expression in ("0 0 1 january *", "0 0 1 JAN *", "0 0 1 1 *", "0 0 1 january-march *"):
        assert CronSchedule(expression).next_after(NOW) == at("2027-01-01 00:00"), expression


# --- the scheduling loop on a fake clock ----------------------------------------------


class FakeClock:
    """Time jumps straight to whatever the loop sleeps until."""

    def __init__(self, start: datetime, end: datetime) -> None:
        self.time, self.end = start, end
        self.sleeps = 0

    def now(self) -> datetime:
        return self.time

    async def sleep_until(self, when, wake) -> None:
        self.sleeps += 1
        if wake.is_set():
            return
        self.time = min(when or self.end, self.end)
        await anyio.sleep(0)


class QuietLog:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def __getattr__(self, level):
        return lambda event, **fields: self.events.append((event, fields))


def run_loop(crontab: str, hours: float, duration: float = 0.0, overlapping: bool = False):
    clock = FakeClock(NOW, NOW + timedelta(hours=hours))
    log = QuietLog()
    fired: list[tuple[int, datetime, datetime]] = []

    async def launch(state: JobState, run: int, scheduled: datetime) -> None:
        fired.append((state.spec.line, scheduled, clock.now()))
        if duration == 0:
            state.finished(True, False, 0.0, clock.now().timestamp())
        else:
            pending.append((clock.now() + timedelta(seconds=duration), state))

    pending: list[tuple[datetime, JobState]] = []

    async def main() -> None:
        runner = Scheduler(clock, launch, log, overlapping)
        runner.load(parse_crontab(crontab, "ct", NOW).jobs, boot=True)

        async def finisher() -> None:
            while clock.time < clock.end:
                for item in [p for p in pending if p[0] <= clock.time]:
                    pending.remove(item)
                    item[1].finished(True, False, duration, clock.time.timestamp())
                await anyio.sleep(0)
            runner.stop()

        async with anyio.create_task_group() as group:
            group.start_soon(finisher)
            await runner.run()

    anyio.run(main)
    return fired, clock, log


def test_ten_hours_of_a_five_second_job_start_exactly_on_schedule():
    fired, clock, _ = run_loop("*/5 * * * * * * tick\n", hours=10)
    assert len(fired) == 10 * 3600 // 5 - 1  # the fake clock's end is exclusive
    assert all(scheduled == now and scheduled.second % 5 == 0 for _, scheduled, now in fired)
    assert [s for _, s, _ in fired] == [NOW + timedelta(seconds=5 * (i + 1)) for i in range(len(fired))]


def test_the_loop_sleeps_until_the_next_due_time_rather_than_ticking():
    fired, clock, _ = run_loop("0 * * * * hourly\n*/30 * * * * half\n", hours=24)
    assert len(fired) == 23 + 47  # the end (exclusive) falls on both
    assert clock.sleeps <= len(fired) + 2  # one sleep per due time, not one per second


def test_a_job_still_running_is_skipped():
    fired, _, _ = run_loop("* * * * * * * slow\n", hours=0.1, duration=2.5)
    assert len(fired) == 360 // 3  # starts every 3 s: the two seconds in between are skipped (the run's watch says so)


def test_overlapping_lets_runs_pile_up():
    fired, _, _ = run_loop("* * * * * * * slow\n", hours=0.01, duration=2.5, overlapping=True)
    assert len(fired) == 35  # every second but the exclusive end


def test_reboot_runs_once_and_jobs_that_can_never_run_retire_with_one_warning_each():
    fired, _, log = run_loop("@reboot boot\n0 0 * * * * 2020 stale\n0 0 31 2 * never\n", hours=1)
    assert [line for line, _, _ in fired] == [1]
    assert [e[0] for e in log.events].count("job can never run again, retired") == 2
