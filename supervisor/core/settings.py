"""Settings from S6_*/PYS6_* variables and the optional YAML file, checked before anything starts.

The environment wins over the YAML file. PYS6_* variables and YAML keys are pys6's
own and checked strictly: every error names the variable or key. S6_* variables are
read as s6-overlay's scripts read them, so an image that boots under s6-overlay boots
here: a value that is not a whole number means the default there, and here too, with
a warning naming it (Settings.warnings).
"""

from __future__ import annotations

import os

from ..base.terms import parse_signal_name

TYPE_CHECKING = False  # typing's own costs the start path its import (and re's)
if TYPE_CHECKING:  # mypy reads real dataclasses; the start path builds them without importing dataclasses
    from collections.abc import Callable, Mapping
    from dataclasses import dataclass as record
    from dataclasses import field, fields, replace
    from typing import Any, TypeVar

    from .model import CrashPolicy  # the model's ~25 dataclasses: loaded at first use, off the start path

    Value = TypeVar("Value")
else:
    from ..base.record import field, fields, record, replace


class ConfigError(Exception):
    pass


@record(frozen=True)
class ServiceOverride:
    """One service's keys in the YAML file; None: not set there."""

    essential: bool | None = None
    crash_deaths: int | None = None
    crash_window: float | None = None
    timeout_kill: int | None = None
    timeout_finish: int | None = None
    down_signal: int | None = None
    # its health check (README: Health checks), as the files health, health-tcp, ... give it
    health: str | None = None
    health_tcp: str | None = None
    health_http: str | None = None
    health_interval: float | None = None
    health_timeout: float | None = None
    health_retries: int | None = None
    health_start: float | None = None


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
    if isinstance(value, float) or not text.isdecimal() or len(text) > MAX_DIGITS:
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


def parse_seconds_or_zero(value: object) -> float:
    text = _scalar(value)
    if text in ("0", "0.0"):
        return 0.0
    return parse_seconds(value)


def parse_health_tcp(value: object) -> str:
    from .health import parse_tcp

    text = _scalar(value)
    parse_tcp(text)
    return text


def parse_health_http(value: object) -> str:
    from .health import parse_http

    text = _scalar(value)
    parse_http(text, None)  # which addresses are the pod's is known when the service is read
    return text


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


def parse_listen_address(value: object) -> tuple[str, int]:
    from ..base.listenaddr import listen_address

    return listen_address(_scalar(value), None)


def parse_path(value: object) -> str:
    text = _scalar(value)
    if not text or len(text) > 4096 or "\0" in text:
        raise ValueError("must be a file path")
    return text


def group_id(group: str) -> int:
    """A group given by name or number, as its gid (KeyError if there is no such group)."""
    import grp

    return int(group) if group.isdecimal() else grp.getgrnam(group).gr_gid


def parse_group(value: object) -> str:
    import grp

    text = _scalar(value)
    try:
        if text.isdecimal():
            grp.getgrgid(int(text))
        else:
            grp.getgrnam(text)
    except KeyError:
        raise ValueError(f"no group {text!r}") from None
    return text


@record(frozen=True)
class Knob:
    """Where one setting comes from: whether the YAML file sets it (under the field's name), its
    PYS6_ variable and its S6_ variable. Declared with its Settings field (by `knob`), which holds
    its type and default, so each setting is one line of the Settings class and nowhere else.

    YAML values and PYS6_ variables go through `parser`, strictly: an error names the key or the
    variable. An S6_ variable is read as s6-overlay's scripts read it (`s6_kind`: "ms", "flag",
    "level", or "text" as written), a bad number meaning the default, with a warning."""

    field: str = ""
    yaml: bool = False
    pys6: str | None = None
    s6: str | None = None
    parser: Callable[[object], Any] | None = None
    s6_kind: str | None = None


def knob(default: Value, *, yaml: bool = False, pys6: str | None = None, s6: str | None = None,
         parser: Callable[[object], Any] | None = None, s6_kind: str | None = None) -> Value:
    """A Settings field with its default and where it is read from."""
    return field(default=default, metadata={"knob": Knob("", yaml, pys6, s6, parser, s6_kind)})


# Every setting, in the order they are read and checked (the first bad one is the one reported).
# Precedence: the S6_ variable over the PYS6_ one over the YAML key over the default.
@record(frozen=True)
class Settings:
    """Every setting, as read and checked once at boot (see `knob`)."""

    etc: str = "/etc"
    behaviour_if_stage2_fails: int = knob(0, yaml=True, s6="S6_BEHAVIOUR_IF_STAGE2_FAILS", parser=parse_behaviour,
                                          s6_kind="level")
    kill_finish_maxtime: int = knob(5000, yaml=True, s6="S6_KILL_FINISH_MAXTIME", parser=parse_ms,
                                    s6_kind="ms")  # ms, each cont-finish script
    services_gracetime: int = knob(3000, yaml=True, s6="S6_SERVICES_GRACETIME", parser=parse_ms,
                                   s6_kind="ms")  # ms, services' down-signal to SIGKILL
    kill_gracetime: int = knob(3000, yaml=True, s6="S6_KILL_GRACETIME", parser=parse_ms,
                               s6_kind="ms")  # ms, everything else: SIGTERM to SIGKILL
    cmd_wait_for_services: bool = knob(False, yaml=True, s6="S6_CMD_WAIT_FOR_SERVICES", parser=parse_bool,
                                       s6_kind="flag")
    cmd_wait_for_services_maxtime: int = knob(0, yaml=True, s6="S6_CMD_WAIT_FOR_SERVICES_MAXTIME", parser=parse_ms,
                                              s6_kind="ms")  # ms, 0 = forever (s6-overlay 3.2 and later)
    verbosity: int = knob(2, yaml=True, s6="S6_VERBOSITY", parser=parse_verbosity, s6_kind="level")
    log_format: str = knob("text", yaml=True, pys6="PYS6_LOG_FORMAT", parser=parse_log_format)
    # 0: pyinit's own text lines without their trailing time=... (a collector that stamps lines itself)
    log_timestamps: bool = knob(True, yaml=True, pys6="PYS6_LOG_TIMESTAMPS", parser=parse_bool)
    crash_deaths: int = knob(5, yaml=True, pys6="PYS6_CRASH_DEATHS", parser=parse_positive_int)
    crash_window: float = knob(60.0, yaml=True, pys6="PYS6_CRASH_WINDOW", parser=parse_seconds)  # seconds
    # pys6's departures from s6-overlay, each with its switch back (README: Migrating from s6-overlay)
    # 1: s6-overlay v3's order at shutdown, cont-finish once the services are down; 0: cont-finish first
    finish_after_services: bool = knob(True, yaml=True, pys6="PYS6_FINISH_AFTER_SERVICES", parser=parse_bool)
    # 0: a service's output reaches PID 1's stdout and stderr as written, without the `[name] ` prefix
    log_prefix: bool = knob(True, yaml=True, pys6="PYS6_LOG_PREFIX", parser=parse_bool)
    # 0: signals as s6-supervise sends them: to the service's pid, SIGKILL only at its own timeout-kill
    group_signals: bool = knob(True, yaml=True, pys6="PYS6_GROUP_SIGNALS", parser=parse_bool)
    # 0: never bail; a crash loop is restarted for ever, one start a second, as s6 does
    crash_bail: bool = knob(True, yaml=True, pys6="PYS6_CRASH_BAIL", parser=parse_bool)
    # a group (name or gid) also allowed on the control socket
    control_group: str = knob("", yaml=True, pys6="PYS6_CONTROL_GROUP", parser=parse_group)
    # ms a client has to send its request
    control_timeout: int = knob(5000, yaml=True, pys6="PYS6_CONTROL_TIMEOUT", parser=parse_positive_ms)
    # (host, port) of the Prometheus endpoint; None: none
    metrics_listen: tuple[str, int] | None = knob(None, yaml=True, pys6="PYS6_METRICS_LISTEN",
                                                  parser=parse_listen_address)
    # where the same page is written for a textfile collector
    metrics_file: str = knob("", yaml=True, pys6="PYS6_METRICS_FILE", parser=parse_path)
    # where the verdict goes as pyinit exits (container/verdict): "" /dev/termination-log where
    # Kubernetes mounted one, "-" or "off" nowhere. The environment only: a bad YAML file's fatal
    # error is written there too
    termination_log: str = knob("", pys6="PYS6_TERMINATION_LOG", parser=parse_path)
    # s6-overlay's own, read from the environment only (README: Migrating from s6-overlay)
    keep_env: int = knob(0, s6="S6_KEEP_ENV", s6_kind="level")  # unset is 0, as in s6-overlay v3: PATH only
    cmd_receive_signals: bool = knob(False, s6="S6_CMD_RECEIVE_SIGNALS", s6_kind="flag")
    cmd_use_terminal: bool = knob(False, s6="S6_CMD_USE_TERMINAL", s6_kind="flag")
    read_only_root: bool = knob(False, s6="S6_READ_ONLY_ROOT", s6_kind="flag")
    sync_disks: bool = knob(False, s6="S6_SYNC_DISKS", s6_kind="flag")
    logging: int = knob(0, s6="S6_LOGGING", s6_kind="level")
    fix_attrs_hidden: bool = knob(False, s6="S6_FIX_ATTRS_HIDDEN", s6_kind="flag")
    wait_for_closing_fd: int = knob(0, s6="S6_WAIT_FOR_CLOSING_FD", s6_kind="level")
    world_writable_run: bool = knob(False, s6="S6_YES_I_WANT_A_WORLD_WRITABLE_RUN_BECAUSE_KUBERNETES", s6_kind="flag")
    cmd_arg0: str = knob("", s6="S6_CMD_ARG0", s6_kind="text")
    stage2_hook: str = knob("", s6="S6_STAGE2_HOOK", s6_kind="text")
    runtime_profile: str = knob("", s6="S6_RUNTIME_PROFILE", s6_kind="text")
    logging_script: str = knob("", s6="S6_LOGGING_SCRIPT", s6_kind="text")
    runtime_bundledir: str = knob("", s6="S6_RUNTIME_BUNDLEDIR", s6_kind="text")
    # PYS6_S6_RUN=0: never lay out s6-overlay's paths under /run; read last: it decides on s6-overlay's /run
    s6_run: bool = knob(True, pys6="PYS6_S6_RUN", parser=parse_bool)
    services: Mapping[str, ServiceOverride] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def crash(self) -> CrashPolicy:
        from .model import CrashPolicy

        return CrashPolicy(self.crash_deaths, self.crash_window, self.crash_bail)

    def dirs(self, kind: str) -> str:
        """$PYS6_ETC/<kind>, or S6_RUNTIME_PROFILE's /etc/cont-profile.d/<profile>/<kind>."""
        if self.runtime_profile:
            return os.path.join(self.etc, "cont-profile.d", self.runtime_profile, kind)
        return os.path.join(self.etc, kind)


KNOBS: tuple[Knob, ...] = tuple(replace(f.metadata["knob"], field=f.name) for f in fields(Settings) if "knob" in f.metadata)

SERVICE_KNOBS: dict[str, Callable[[object], Any]] = {
    "essential": parse_bool,
    "crash_deaths": parse_positive_int,
    "crash_window": parse_seconds,
    "timeout_kill": parse_ms,
    "timeout_finish": parse_ms,
    "down_signal": parse_signal,
    "health": parse_path,
    "health_tcp": parse_health_tcp,
    "health_http": parse_health_http,
    "health_interval": parse_seconds,
    "health_timeout": parse_seconds,
    "health_retries": parse_positive_int,
    "health_start": parse_seconds_or_zero,
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

    from ..base.files import read_regular_file

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
        known = {knob.field for knob in KNOBS if knob.yaml} | {"services"}
        for key, value in data.items():
            if key not in known:
                raise ConfigError(f"{config_path}: {_key(key)}: unknown setting (known: {', '.join(sorted(known))})")
            if key == "services":
                values["services"] = _service_overrides(config_path, value)
        for knob in KNOBS:
            if knob.yaml and knob.parser is not None and knob.field in data:
                values[knob.field] = _convert(f"{config_path}: {knob.field}", knob.parser, data[knob.field])
    pys6_values: dict[str, Any] = {}
    for knob in KNOBS:
        if knob.pys6 is not None and knob.parser is not None and environ.get(knob.pys6, "") != "":
            pys6_values[knob.field] = _convert(knob.pys6, knob.parser, environ[knob.pys6])
    warnings: list[str] = []
    s6_values = s6_variables(environ, warnings)
    values.update(pys6_values)
    values.update(s6_values)
    values["warnings"] = tuple(warnings)
    return Settings(**values)


# --- s6-overlay's variables, parsed as its scripts parse them ------------------------------
# Its scripts test `eltest "$X" =~ '^[[:digit:]]+$'` (or `test "0$X" -ne 0`): anything but
# digits is the default. A number too large for a timer is the largest one s6 takes.

MAX_S6_DIGITS = 18

# Read by s6-overlay, and what pys6 does instead (one warning each when set).
S6_INSTEAD = {
    "S6_SERVICES_READYTIME": "not needed: pys6 knows when a service is up without sleeping first",
    "S6_CATCHALL_USER": "pyinit writes the catch-all log itself, as its own user",
}
NOT_SETTINGS = {"S6_OVERLAY_VERSION", "S6_OVERLAY_ARCH"}  # set by images' Dockerfiles, read by nothing


def _s6_number(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdecimal() and len(raw) <= MAX_S6_DIGITS else None


def s6_variables(environ: Mapping[str, str], warnings: list[str]) -> dict[str, Any]:
    """The settings s6-overlay's variables give; `warnings` gets one line for each value used
    otherwise than written and each variable pys6 reads differently."""
    values: dict[str, Any] = {}
    for knob in KNOBS:
        raw = environ.get(knob.s6) if knob.s6 is not None and knob.s6_kind != "text" else None
        if raw is None or raw == "":
            continue
        number = _s6_number(raw)
        if number is None:
            warnings.append(f"{knob.s6}={shown(raw)} is not a whole number; s6-overlay's default applies, as there")
            continue
        if knob.s6_kind == "ms":
            values[knob.field] = min(number, MAX_MS)
        elif knob.s6_kind == "flag":
            values[knob.field] = number > 0
        else:
            values[knob.field] = number
    for knob in KNOBS:
        if knob.s6 is not None and knob.s6_kind == "text" and environ.get(knob.s6):
            values[knob.field] = environ[knob.s6]
    if values.get("read_only_root"):
        warnings.append("S6_READ_ONLY_ROOT is set: pyinit writes only under /run and $PYS6_RUNDIR, so there is "
                        "nothing to copy; the trees run where they are")
    if values.get("logging_script") and not values.get("logging", 0):
        warnings.append("S6_LOGGING_SCRIPT is set but S6_LOGGING is 0: no catch-all log is kept")
    for variable, instead in S6_INSTEAD.items():
        if environ.get(variable):
            warnings.append(f"{variable} is set: {instead}")
    profile = values.get("runtime_profile", "")
    if profile and ("/" in profile or profile in (".", "..")):
        warnings.append(f"S6_RUNTIME_PROFILE={shown(profile)} is not a directory name; ignored")
        values["runtime_profile"] = ""
    known = {knob.s6 for knob in KNOBS if knob.s6 is not None} | set(S6_INSTEAD) | NOT_SETTINGS
    for variable in sorted(environ):
        if variable.startswith("S6_") and variable not in known:
            warnings.append(f"{variable} is not an s6-overlay setting pys6 knows; ignored")
    return values
