"""Reading services.d/<name>/ into service specs."""

from __future__ import annotations

import os
import signal

from supervisor.core.servicedir import scan
from supervisor.core.settings import load_settings


def make(base, name, run="#!/bin/sh\nexec sleep 1\n", mode=0o755, **files):
    directory = base / name
    directory.mkdir(parents=True)
    if run is not None:
        (directory / "run").write_text(run)
        os.chmod(directory / "run", mode)
    for filename, content in files.items():
        (directory / filename.replace("_", "-")).write_text(content)
    return directory


def test_scan_reads_s6s_files_in_byte_order(tmp_path):
    services = tmp_path / "services.d"
    make(services, "b", down="", notification_fd="3\n", timeout_kill="1500", down_signal="SIGHUP", essential="")
    make(services, "a", timeout_finish="200")
    (services / "a" / "finish").write_text("#!/bin/sh\n")
    os.chmod(services / "a" / "finish", 0o755)
    (services / "README").write_text("not a service")
    specs, skipped = scan(str(services), load_settings({"PYS6_ETC": str(tmp_path)}))
    assert [s.name for s in specs] == ["a", "b"]
    a, b = specs
    assert a.has_finish and a.timeout_finish_ms == 200 and a.normally_up and not a.problems
    assert (b.normally_up, b.notification_fd, b.timeout_kill_ms, b.down_signal, b.essential) == (
        False, 3, 1500, signal.SIGHUP, True)
    assert skipped == ["README: not a directory"]


def test_broken_definitions_are_kept_with_their_problems(tmp_path):
    services = tmp_path / "services.d"
    make(services, "norun", run=None)
    make(services, "noexec", mode=0o644)
    make(services, "badfiles", notification_fd="1", timeout_kill="soon", down_signal="SIGNOPE")
    specs, _ = scan(str(services), load_settings({"PYS6_ETC": str(tmp_path)}))
    problems = {s.name: " ".join(s.problems) for s in specs}
    assert "no run file" in problems["norun"]
    assert "not an executable" in problems["noexec"]
    assert "notification-fd" in problems["badfiles"] and "timeout-kill" in problems["badfiles"]
    assert "down-signal" in problems["badfiles"]
    badfiles = next(s for s in specs if s.name == "badfiles")
    assert badfiles.down_signal == signal.SIGTERM and badfiles.notification_fd is None


def test_yaml_overrides_apply_per_service(tmp_path):
    services = tmp_path / "services.d"
    make(services, "cron")
    (tmp_path / "pys6.yaml").write_text("services:\n  cron:\n    essential: yes\n    crash_deaths: 2\n")
    specs, _ = scan(str(services), load_settings({"PYS6_ETC": str(tmp_path)}))
    assert specs[0].essential and specs[0].crash.max_deaths == 2 and specs[0].crash.window == 60.0


def test_invalid_names_are_skipped(tmp_path):
    services = tmp_path / "services.d"
    make(services, "bad name")
    make(services, "-dash")
    specs, skipped = scan(str(services), load_settings({"PYS6_ETC": str(tmp_path)}))
    assert specs == [] and len(skipped) == 2
