"""Hostile and careless input read from files and variables: never a hang, never a crash (issue 7)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from harness import alias_bomb
from supervisor.base.files import read_regular_file, read_small_text
from supervisor.base.terms import parse_signal_name, signal_name
from supervisor.core import settings as config
from supervisor.core.servicedir import read_service
from supervisor.core.settings import ConfigError, load_settings

HUGE = "9" * 400


# --- signal names ---------------------------------------------------------------


def test_every_signal_number_from_1_to_64_has_a_name():
    names = {n: signal_name(n) for n in range(1, 65)}
    assert names[9] == "SIGKILL" and names[34] == "SIGRTMIN" and names[40] == "SIGRTMIN+6"
    assert names[64] == "SIGRTMAX" and names[32] == "SIG32"
    assert len(set(names.values())) == 64


@pytest.mark.parametrize("number", [n for n in range(1, 65) if n not in (32, 33)])
def test_names_parse_back_to_their_number(number):
    assert parse_signal_name(signal_name(number)) == number


@pytest.mark.parametrize("text", [HUGE, "0", "65", "SIGRTMIN+99", "SIGRTMIN+x", "nope", "", "-1"])
def test_bad_signal_names_are_a_value_error(text):
    with pytest.raises(ValueError):
        parse_signal_name(text)


# --- files ------------------------------------------------------------------------


def test_a_fifo_is_refused_at_once_instead_of_blocking(tmp_path):
    fifo = tmp_path / "timeout-kill"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(OSError, match="not a regular file.*FIFO"):
        read_regular_file(str(fifo), 4096)
    assert time.monotonic() - started < 5  # it returned: a blocking open would never have


def test_a_device_and_a_large_file_are_refused(tmp_path):
    with pytest.raises(OSError, match="character device"):
        read_regular_file("/dev/zero", 4096)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 5000)
    with pytest.raises(OSError, match="larger than 4096"):
        read_regular_file(str(big), 4096)
    assert read_small_text(str(tmp_path / "missing")) is None


# --- settings ---------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["PYS6_CRASH_DEATHS", "PYS6_CRASH_WINDOW", "PYS6_CONTROL_TIMEOUT"])
@pytest.mark.parametrize("value", [HUGE, "1e400", "inf", "nan", "-1", "4294967296"])
def test_numbers_out_of_range_are_refused_naming_the_variable(tmp_path, variable, value):
    if variable == "PYS6_CRASH_WINDOW" and value == "4294967296":
        value = "1e12"
    with pytest.raises(ConfigError, match=variable):
        load_settings({"PYS6_ETC": str(tmp_path), variable: value})


@pytest.mark.parametrize("variable", ["S6_SERVICES_GRACETIME", "S6_KILL_GRACETIME", "S6_KILL_FINISH_MAXTIME",
                                      "S6_CMD_WAIT_FOR_SERVICES_MAXTIME", "S6_VERBOSITY"])
@pytest.mark.parametrize("value", [HUGE, "1e400", "inf", "nan", "-1"])
def test_s6_numbers_that_are_no_numbers_give_the_default_and_a_warning_naming_the_variable(tmp_path, variable, value):
    # s6-overlay boots on them (its scripts fall back to the default), so pyinit does too, saying so.
    settings = load_settings({"PYS6_ETC": str(tmp_path), variable: value})
    defaults = load_settings({"PYS6_ETC": str(tmp_path)})
    assert [getattr(settings, f) for f in ("services_gracetime", "kill_gracetime", "kill_finish_maxtime",
                                           "cmd_wait_for_services_maxtime", "verbosity")] == \
           [getattr(defaults, f) for f in ("services_gracetime", "kill_gracetime", "kill_finish_maxtime",
                                           "cmd_wait_for_services_maxtime", "verbosity")]
    assert len(settings.warnings) == 1 and variable in settings.warnings[0] and len(settings.warnings[0]) < 200


@pytest.mark.parametrize("key", ["crash_window", "timeout_kill", "down_signal", "essential"])
def test_a_yaml_alias_bomb_is_refused_quickly_without_expanding(tmp_path, key):
    path = tmp_path / "pys6.yaml"
    path.write_text(alias_bomb(key))
    assert path.stat().st_size < 600
    started = time.monotonic()
    with pytest.raises(ConfigError, match=rf"services\.x\.{key}: bad value a list: must be a plain value") as caught:
        load_settings({"PYS6_ETC": str(tmp_path), "PYS6_CONFIG": str(path)})
    assert time.monotonic() - started < 5
    assert len(str(caught.value)) < 1000


def test_a_yaml_list_where_a_number_belongs_is_named_by_type(tmp_path):
    path = tmp_path / "pys6.yaml"
    path.write_text("services:\n  cron:\n    timeout_kill: &x [1, 2]\n    down_signal: *x\n")
    with pytest.raises(ConfigError, match=r"services\.cron\.timeout_kill: bad value a list: must be a plain value"):
        load_settings({"PYS6_ETC": str(tmp_path), "PYS6_CONFIG": str(path)})


def test_a_large_or_fifo_or_deep_yaml_is_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * config.MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_settings({"PYS6_ETC": str(tmp_path), "PYS6_CONFIG": str(big)})
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_settings({"PYS6_ETC": str(tmp_path), "PYS6_CONFIG": str(fifo)})
    deep = tmp_path / "deep.yaml"
    deep.write_text("services: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ConfigError):
        load_settings({"PYS6_ETC": str(tmp_path), "PYS6_CONFIG": str(deep)})


# --- service directories -----------------------------------------------------------


def _service(tmp_path, **files: str):
    directory = tmp_path / "svc"
    directory.mkdir()
    run = directory / "run"
    run.write_text("#!/bin/sh\nexec sleep 1000\n")
    run.chmod(0o755)
    for name, text in files.items():
        (directory / name.replace("_", "-")).write_text(text)
    return directory


@pytest.mark.parametrize("filename", ["timeout-kill", "timeout-finish", "notification-fd", "down-signal"])
def test_a_fifo_service_file_is_a_problem_not_a_hang(tmp_path, filename):
    directory = _service(tmp_path)
    os.mkfifo(directory / filename)
    spec = read_service(str(directory), load_settings({"PYS6_ETC": str(tmp_path)}))
    assert any(p.startswith(f"{filename}: not a regular file (a FIFO)") for p in spec.problems), spec.problems


@pytest.mark.parametrize("files", [{"timeout_kill": HUGE}, {"timeout_finish": HUGE}, {"notification_fd": HUGE},
                                   {"notification_fd": "2"}, {"notification_fd": "70000"},
                                   {"down_signal": HUGE}, {"down_signal": "SIGRTMIN+99"}])
def test_numbers_out_of_range_in_service_files_keep_the_default(tmp_path, files):
    directory = _service(tmp_path, **files)
    spec = read_service(str(directory), load_settings({"PYS6_ETC": str(tmp_path)}))
    assert len(spec.problems) == 1 and "the default is used" in spec.problems[0]
    assert (spec.timeout_kill_ms, spec.timeout_finish_ms, spec.notification_fd, spec.down_signal) == (
        None, 5000, None, signal.SIGTERM)


def test_a_real_time_down_signal_is_accepted(tmp_path):
    directory = _service(tmp_path, down_signal="SIGRTMIN+3\n", timeout_kill="0\n", timeout_finish="0")
    spec = read_service(str(directory), load_settings({"PYS6_ETC": str(tmp_path)}))
    assert (spec.down_signal, spec.timeout_kill_ms, spec.timeout_finish_ms, spec.problems) == (
        signal.SIGRTMIN + 3, 0, 0, ())
