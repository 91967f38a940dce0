"""Settings from the environment and the YAML file, and the errors that name the key."""

from __future__ import annotations

import signal

import pytest

from supervisor.core.settings import ConfigError, load_settings


def test_defaults_are_s6_overlays(tmp_path):
    settings = load_settings({"PYS6_ETC": str(tmp_path)})
    assert settings.behaviour_if_stage2_fails == 0
    assert (settings.kill_finish_maxtime, settings.services_gracetime, settings.kill_gracetime) == (5000, 3000, 3000)
    assert settings.cmd_wait_for_services_maxtime == 0
    assert (settings.crash.max_deaths, settings.crash.window) == (5, 60.0)


def test_environment_variables_are_read(tmp_path):
    settings = load_settings({
        "PYS6_ETC": str(tmp_path), "S6_BEHAVIOUR_IF_STAGE2_FAILS": "2", "S6_SERVICES_GRACETIME": "700",
        "PYS6_CRASH_DEATHS": "3", "PYS6_CRASH_WINDOW": "10", "PYS6_LOG_FORMAT": "json",
    })
    assert settings.behaviour_if_stage2_fails == 2 and settings.services_gracetime == 700
    assert (settings.crash.max_deaths, settings.crash.window, settings.log_format) == (3, 10.0, "json")


@pytest.mark.parametrize(("name", "value"), [
    ("PYS6_CONTROL_TIMEOUT", "soon"), ("PYS6_CONTROL_TIMEOUT", "-1"), ("PYS6_S6_RUN", "maybe"),
    ("PYS6_CRASH_DEATHS", "0"), ("PYS6_CRASH_WINDOW", "0"), ("PYS6_LOG_FORMAT", "xml"),
    ("PYS6_FINISH_AFTER_SERVICES", "maybe"), ("PYS6_METRICS_LISTEN", "9746"), ("PYS6_METRICS_LISTEN", "host:0"),
    ("PYS6_METRICS_LISTEN", "[::1"), ("PYS6_METRICS_LISTEN", ":" + "9" * 400), ("PYS6_METRICS_FILE", "a\0b"),
])
def test_a_bad_variable_is_an_error_naming_it(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings({"PYS6_ETC": str(tmp_path), name: value})


def test_yaml_sets_knobs_and_service_overrides_and_the_environment_wins(tmp_path):
    (tmp_path / "pys6.yaml").write_text(
        "crash_deaths: 7\nservices_gracetime: 1000\nservices:\n  cron:\n    essential: true\n    down_signal: HUP\n"
    )
    settings = load_settings({"PYS6_ETC": str(tmp_path), "S6_SERVICES_GRACETIME": "2000"})
    assert settings.crash_deaths == 7 and settings.services_gracetime == 2000
    assert settings.services["cron"].essential is True
    assert settings.services["cron"].down_signal == signal.SIGHUP


def test_metrics_are_off_unless_an_address_is_given_in_yaml_or_the_environment(tmp_path):
    assert load_settings({"PYS6_ETC": str(tmp_path)}).metrics_listen is None
    (tmp_path / "pys6.yaml").write_text("metrics_listen: 127.0.0.1:9746\nmetrics_file: /var/lib/node/pys6.prom\n")
    settings = load_settings({"PYS6_ETC": str(tmp_path)})
    assert (settings.metrics_listen, settings.metrics_file) == (("127.0.0.1", 9746), "/var/lib/node/pys6.prom")
    assert load_settings({"PYS6_ETC": str(tmp_path), "PYS6_METRICS_LISTEN": "[::1]:9100"}).metrics_listen == ("::1", 9100)
    assert load_settings({"PYS6_ETC": str(tmp_path), "PYS6_METRICS_LISTEN": ":9100"}).metrics_listen == ("", 9100)


@pytest.mark.parametrize(("text", "key"), [
    ("crash_deaths: many\n", "crash_deaths"),
    ("bogus: 1\n", "bogus"),
    ("services:\n  cron:\n    timeout_kill: -5\n", "services.cron.timeout_kill"),
    ("services:\n  cron:\n    colour: red\n", "services.cron.colour"),
    ("services: [1, 2]\n", "services"),
    ("metrics_listen: [1, 2]\n", "metrics_listen"),
    ("metrics_listen: 9746\n", "metrics_listen"),
    ("key: [unclosed\n", "not valid YAML"),
    ("- a list\n", "top level"),
])
def test_bad_yaml_is_an_error_naming_the_key(tmp_path, text, key):
    path = tmp_path / "custom.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=key.replace("[", r"\[")):
        load_settings({"PYS6_ETC": str(tmp_path), "PYS6_CONFIG": str(path)})


def test_a_named_config_file_that_is_missing_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings({"PYS6_CONFIG": str(tmp_path / "nope.yaml")})


@pytest.mark.parametrize(("name", "value", "field", "expected", "warned"), [
    # s6-overlay's scripts: `eltest "$X" =~ '^[[:digit:]]+$'`, else the default
    ("S6_BEHAVIOUR_IF_STAGE2_FAILS", "3", "behaviour_if_stage2_fails", 3, False),  # acts as 2 (">= 2")
    ("S6_BEHAVIOUR_IF_STAGE2_FAILS", "yes", "behaviour_if_stage2_fails", 0, True),
    ("S6_KILL_GRACETIME", "-1", "kill_gracetime", 3000, True),
    ("S6_KILL_GRACETIME", "soon", "kill_gracetime", 3000, True),
    ("S6_KILL_GRACETIME", "9" * 400, "kill_gracetime", 3000, True),  # 400 digits: no number s6 takes
    ("S6_SERVICES_GRACETIME", "99999999999", "services_gracetime", 2**32 - 1, False),  # the largest s6 takes
    ("S6_VERBOSITY", "12", "verbosity", 12, False),
    ("S6_VERBOSITY", "loud", "verbosity", 2, True),
    ("S6_KEEP_ENV", "0", "keep_env", 0, False),
    ("S6_KEEP_ENV", "2", "keep_env", 2, False),
    ("S6_CMD_WAIT_FOR_SERVICES", "7", "cmd_wait_for_services", True, False),
    ("S6_CMD_RECEIVE_SIGNALS", "1", "cmd_receive_signals", True, False),
    ("S6_SYNC_DISKS", "0", "sync_disks", False, False),
    ("S6_LOGGING", "1", "logging", 1, False),
    ("S6_WAIT_FOR_CLOSING_FD", "4", "wait_for_closing_fd", 4, False),
])
def test_s6_overlay_variables_are_read_as_its_scripts_read_them(tmp_path, name, value, field, expected, warned):
    settings = load_settings({"PYS6_ETC": str(tmp_path), name: value})
    assert getattr(settings, field) == expected
    assert any(name in warning for warning in settings.warnings) == warned, settings.warnings


@pytest.mark.parametrize("name", ["S6_SERVICES_READYTIME", "S6_CATCHALL_USER", "S6_LOGGING_SCRIPT",
                                  "S6_TYPO_OF_A_SETTING"])
def test_an_s6_variable_pys6_reads_otherwise_gets_one_warning_saying_so(tmp_path, name):
    settings = load_settings({"PYS6_ETC": str(tmp_path), name: "1", "S6_OVERLAY_VERSION": "3.2.0.2"})
    assert [warning for warning in settings.warnings if name in warning] != []
    assert len(settings.warnings) == 1  # S6_OVERLAY_VERSION is no setting: nothing to say


def test_a_runtime_profile_moves_the_trees(tmp_path):
    settings = load_settings({"PYS6_ETC": str(tmp_path), "S6_RUNTIME_PROFILE": "blue"})
    assert settings.dirs("cont-init.d") == str(tmp_path / "cont-profile.d" / "blue" / "cont-init.d")
    sneaky = load_settings({"PYS6_ETC": str(tmp_path), "S6_RUNTIME_PROFILE": "../x"})
    assert sneaky.dirs("cont-init.d") == str(tmp_path / "cont-init.d") and sneaky.warnings


def test_s6_runtime_bundledir_names_where_the_user_bundles_are(tmp_path):
    settings = load_settings({"PYS6_ETC": str(tmp_path), "S6_RUNTIME_BUNDLEDIR": "/opt/bundles"})
    assert settings.runtime_bundledir == "/opt/bundles" and settings.warnings == ()
