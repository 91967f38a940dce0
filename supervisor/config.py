"""Settings from S6_*/PYS6_* variables and the optional YAML file, checked before anything starts.

The environment wins over the YAML file. Every error names the variable or key.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .model import CrashPolicy
from .signames import parse_signal_name


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


# --- value parsers: each takes the raw value and returns the typed one or raises ValueError.
# A value is checked for its type before anything converts it: str() of a YAML
# alias bomb is gigabytes, and int() of a 400-digit string is a number no timer takes.

MAX_MS = 2**32 - 1  # s6 reads its timeouts as unsigned ints: about 49.7 days
MAX_COUNT = 100_000
MAX_SECONDS = 10 * 365 * 86400.0
MAX_DIGITS = 12


def _scalar(value: object) -> str:
    """The text of a plain scalar (string, number, boolean); anything else is refused unread."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float | str):
        text = str(value).strip() if not isinstance(value, str) or len(value) <= 1000 else value[:1001]
        if len(text) > 1000:
            raise ValueError("too long")
        return text
    raise ValueError(f"must be a plain value, not a {type(value).__name__}")


def _whole(value: object, low: int, high: int, what: str) -> int:
    text = _scalar(value)
    if isinstance(value, float) or not text.isdigit() or len(text) > MAX_DIGITS:
        raise ValueError(f"must be {what}")
    number = int(text)
    if not low <= number <= high:
        raise ValueError(f"must be {what}")
    return number


def parse_ms(value: object) -> int:
    return _whole(value, 0, MAX_MS, f"a whole number of milliseconds from 0 to {MAX_MS}")


def parse_positive_ms(value: object) -> int:
    return _whole(value, 1, MAX_MS, f"a whole number of milliseconds from 1 to {MAX_MS}")


def parse_positive_int(value: object) -> int:
    return _whole(value, 1, MAX_COUNT, f"a whole number from 1 to {MAX_COUNT}")


def parse_seconds(value: object) -> float:
    text = _scalar(value)
    try:
        number = float(text)
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not 0 < number <= MAX_SECONDS:
        raise ValueError(f"must be a number of seconds above 0 and at most {MAX_SECONDS:.0f}")
    return number


def parse_bool(value: object) -> bool:
    text = _scalar(value).lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be 0 or 1")


def parse_behaviour(value: object) -> int:
    text = _scalar(value)
    if text not in ("0", "1", "2"):
        raise ValueError("must be 0 (continue), 1 (continue with a warning) or 2 (stop the container)")
    return int(text)


def parse_verbosity(value: object) -> int:
    return _whole(value, 0, 9, "a whole number from 0 to 9")


def parse_log_format(value: object) -> str:
    text = _scalar(value).lower()
    if text not in ("text", "json"):
        raise ValueError("must be text or json")
    return text


def parse_signal(value: object) -> int:
    if isinstance(value, bool | float):
        raise ValueError("must be a signal name or number")
    return parse_signal_name(_scalar(value))


def group_id(group: str) -> int:
    """A group given by name or number, as its gid (KeyError if there is no such group)."""
    import grp

    return int(group) if group.isdigit() else grp.getgrnam(group).gr_gid


def parse_group(value: object) -> str:
    import grp

    text = _scalar(value)
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
    ("control_timeout", "PYS6_CONTROL_TIMEOUT", parse_positive_ms),
)

SERVICE_KNOBS: dict[str, Callable[[object], Any]] = {
    "essential": parse_bool,
    "crash_deaths": parse_positive_int,
    "crash_window": parse_seconds,
    "timeout_kill": parse_ms,
    "timeout_finish": parse_ms,
    "down_signal": parse_signal,
}


def shown(value: object) -> str:
    """A value for an error message: short, and never the expansion of a structure."""
    if isinstance(value, bool | int | float | str):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return f"a {type(value).__name__}"


def _key(value: object) -> str:
    """A YAML key inside a dotted path: as written, cut short."""
    text = str(value) if isinstance(value, str | int | float) else f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _convert(where: str, parser: Callable[[object], Any], value: object) -> Any:
    try:
        return parser(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: bad value {shown(value)}: {exc}") from None


MAX_CONFIG_BYTES = 1 << 20


def _read_yaml(path: str) -> dict[str, Any]:
    import yaml  # only when a config file exists: it costs start-up time

    from .files import read_regular_file

    try:
        text = read_regular_file(path, MAX_CONFIG_BYTES)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: a 1 MiB file in milliseconds
    try:
        data = yaml.load(text, Loader=loader)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc)[:500]}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deep") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings")
    return data


def _service_overrides(path: str, raw: object) -> dict[str, ServiceOverride]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: services: must be a mapping of service name to settings")
    if len(raw) > MAX_COUNT:
        raise ConfigError(f"{path}: services: more than {MAX_COUNT} entries")
    result: dict[str, ServiceOverride] = {}
    for name, knobs in raw.items():
        if not isinstance(knobs, dict):
            raise ConfigError(f"{path}: services.{_key(name)}: must be a mapping")
        values: dict[str, Any] = {}
        for key, value in knobs.items():
            if key not in SERVICE_KNOBS:
                known = ", ".join(sorted(SERVICE_KNOBS))
                raise ConfigError(f"{path}: services.{_key(name)}.{_key(key)}: unknown setting (known: {known})")
            values[key] = _convert(f"{path}: services.{_key(name)}.{key}", SERVICE_KNOBS[key], value)
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
                raise ConfigError(f"{config_path}: {_key(key)}: unknown setting (known: {', '.join(sorted(known))})")
            if key == "services":
                values["services"] = _service_overrides(config_path, value)
        for name, _env, parser in KNOBS:
            if name in data:
                values[name] = _convert(f"{config_path}: {name}", parser, data[name])
    for name, env, parser in KNOBS:
        if env in environ and environ[env] != "":
            values[name] = _convert(env, parser, environ[env])
    return Settings(**values)
