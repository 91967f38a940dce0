"""Settings from S6_*/PYS6_* variables and the optional YAML file, checked before anything starts.

The environment wins over the YAML file. Every error names the variable or key.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .model import CrashPolicy


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class ServiceOverride:
    essential: bool | None = None
    crash_deaths: int | None = None
    crash_window: float | None = None
    timeout_kill: int | None = None
    timeout_finish: int | None = None
    down_signal: int | None = None


@dataclass(frozen=True)
class Settings:
    etc: str = "/etc"
    behaviour_if_stage2_fails: int = 0
    kill_finish_maxtime: int = 5000  # ms, each cont-finish script
    services_gracetime: int = 3000  # ms, services' down-signal to SIGKILL
    kill_gracetime: int = 3000  # ms, everything else: SIGTERM to SIGKILL
    cmd_wait_for_services: bool = False
    cmd_wait_for_services_maxtime: int = 0  # ms, 0 = forever (s6-overlay 3.2 and later)
    verbosity: int = 2
    log_format: str = "text"
    crash_deaths: int = 5
    crash_window: float = 60.0  # seconds
    finish_after_services: bool = False
    control_group: str = ""  # group (name or gid) also allowed on the control socket
    control_timeout: int = 5000  # ms a client has to send its request
    services: Mapping[str, ServiceOverride] = field(default_factory=dict)

    @property
    def crash(self) -> CrashPolicy:
        return CrashPolicy(self.crash_deaths, self.crash_window)

    def dirs(self, kind: str) -> str:
        return os.path.join(self.etc, kind)


# --- value parsers: each takes the raw value and returns the typed one or raises ValueError


def parse_ms(value: object) -> int:
    number = int(str(value).strip())
    if number < 0:
        raise ValueError("must be a whole number of milliseconds, 0 or more")
    return number


def parse_positive_int(value: object) -> int:
    number = int(str(value).strip())
    if number < 1:
        raise ValueError("must be a whole number, 1 or more")
    return number


def parse_seconds(value: object) -> float:
    number = float(str(value).strip())
    if not number > 0:
        raise ValueError("must be a number of seconds above 0")
    return number


def parse_bool(value: object) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be 0 or 1")


def parse_behaviour(value: object) -> int:
    number = int(str(value).strip())
    if number not in (0, 1, 2):
        raise ValueError("must be 0 (continue), 1 (continue with a warning) or 2 (stop the container)")
    return number


def parse_verbosity(value: object) -> int:
    number = int(str(value).strip())
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


def parse_log_format(value: object) -> str:
    text = str(value).strip().lower()
    if text not in ("text", "json"):
        raise ValueError("must be text or json")
    return text


def parse_signal(value: object) -> int:
    text = str(value).strip().upper()
    if text.isdigit():
        number = int(text)
        if number not in {int(s) for s in signal.valid_signals()}:
            raise ValueError(f"{number} is not a signal number")
        return number
    name = text if text.startswith("SIG") else "SIG" + text
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ValueError(f"{value!r} is not a signal name") from None


def parse_group(value: object) -> str:
    import grp

    text = str(value).strip()
    try:
        if text.isdigit():
            grp.getgrgid(int(text))
        else:
            grp.getgrnam(text)
    except KeyError:
        raise ValueError(f"no group {text!r}") from None
    return text


# (Settings field, environment variable, parser); the YAML key is the field name.
KNOBS: tuple[tuple[str, str, Callable[[object], Any]], ...] = (
    ("behaviour_if_stage2_fails", "S6_BEHAVIOUR_IF_STAGE2_FAILS", parse_behaviour),
    ("kill_finish_maxtime", "S6_KILL_FINISH_MAXTIME", parse_ms),
    ("services_gracetime", "S6_SERVICES_GRACETIME", parse_ms),
    ("kill_gracetime", "S6_KILL_GRACETIME", parse_ms),
    ("cmd_wait_for_services", "S6_CMD_WAIT_FOR_SERVICES", parse_bool),
    ("cmd_wait_for_services_maxtime", "S6_CMD_WAIT_FOR_SERVICES_MAXTIME", parse_ms),
    ("verbosity", "S6_VERBOSITY", parse_verbosity),
    ("log_format", "PYS6_LOG_FORMAT", parse_log_format),
    ("crash_deaths", "PYS6_CRASH_DEATHS", parse_positive_int),
    ("crash_window", "PYS6_CRASH_WINDOW", parse_seconds),
    ("finish_after_services", "PYS6_FINISH_AFTER_SERVICES", parse_bool),
    ("control_group", "PYS6_CONTROL_GROUP", parse_group),
    ("control_timeout", "PYS6_CONTROL_TIMEOUT", parse_positive_int),
)

SERVICE_KNOBS: dict[str, Callable[[object], Any]] = {
    "essential": lambda v: v if isinstance(v, bool) else parse_bool(v),
    "crash_deaths": parse_positive_int,
    "crash_window": parse_seconds,
    "timeout_kill": parse_ms,
    "timeout_finish": parse_ms,
    "down_signal": parse_signal,
}


def _convert(where: str, parser: Callable[[object], Any], value: object) -> Any:
    try:
        return parser(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: bad value {value!r}: {exc}") from None


def _read_yaml(path: str) -> dict[str, Any]:
    import yaml  # only when a config file exists: it costs start-up time

    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    return data


def _service_overrides(path: str, raw: object) -> dict[str, ServiceOverride]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: services: must be a mapping of service name to settings")
    result: dict[str, ServiceOverride] = {}
    for name, knobs in raw.items():
        if not isinstance(knobs, dict):
            raise ConfigError(f"{path}: services.{name}: must be a mapping")
        values: dict[str, Any] = {}
        for key, value in knobs.items():
            if key not in SERVICE_KNOBS:
                known = ", ".join(sorted(SERVICE_KNOBS))
                raise ConfigError(f"{path}: services.{name}.{key}: unknown setting (known: {known})")
            values[key] = _convert(f"{path}: services.{name}.{key}", SERVICE_KNOBS[key], value)
        result[str(name)] = ServiceOverride(**values)
    return result


def load_settings(environ: Mapping[str, str]) -> Settings:
    etc = os.path.abspath(environ.get("PYS6_ETC") or "/etc")
    config_path = environ.get("PYS6_CONFIG") or os.path.join(etc, "pys6.yaml")
    explicit = bool(environ.get("PYS6_CONFIG"))
    values: dict[str, Any] = {"etc": etc}
    if explicit or os.path.exists(config_path):
        data = _read_yaml(config_path)
        known = {knob[0] for knob in KNOBS} | {"services"}
        for key, value in data.items():
            if key not in known:
                raise ConfigError(f"{config_path}: {key}: unknown setting (known: {', '.join(sorted(known))})")
            if key == "services":
                values["services"] = _service_overrides(config_path, value)
        for name, _env, parser in KNOBS:
            if name in data:
                values[name] = _convert(f"{config_path}: {name}", parser, data[name])
    for name, env, parser in KNOBS:
        if env in environ and environ[env] != "":
            values[name] = _convert(env, parser, environ[env])
    return Settings(**values)
