"""Read services.d/<name>/ (s6's servicedir: run, finish, down, notification-fd, timeout-*, down-signal),
and copy it to where it runs from.

A broken definition still becomes a service, with its problems listed: starting it
fails, which counts as a death, so it is paced, logged and bails like any crash loop.

s6-overlay v3 never runs a service from /etc: its services-up copies /etc/services.d/<name>
to /run/s6/legacy-services/<name> with s6-hiercopy and supervises the copy, so the run
script's working directory, what it writes there, supervise/, event/ and s6-svc -D's down
file are all under /run. `copy_service` makes that copy the same way (symlinks as links,
modes kept, owners kept when root, times not kept).
"""

from __future__ import annotations

import errno
import os
import stat

from ..base.files import read_small_text
from ..base.terms import valid_name
from .model import ServiceSpec
from .settings import (
    ConfigError,
    ServiceOverride,
    Settings,
    parse_ms,
    parse_positive_int,
    parse_seconds,
    parse_seconds_or_zero,
    parse_signal,
)

TYPE_CHECKING = False  # no typing at run time: pyinit's start path copies services.d (container/early)
if TYPE_CHECKING:  # mypy reads dataclasses; base/record builds them without importing dataclasses
    from collections.abc import Callable, Iterable
    from dataclasses import replace

    from .health import HealthSpec
else:
    from ..base.record import replace


def is_executable_file(path: str) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and os.access(path, os.X_OK)


def read_service(directory: str, settings: Settings) -> ServiceSpec:
    name = os.path.basename(directory.rstrip("/"))
    problems: list[str] = []
    spec = ServiceSpec(name=name, directory=directory, crash=settings.crash, group_signals=settings.group_signals)
    run = os.path.join(directory, "run")
    try:
        os.listdir(directory)
    except OSError as exc:
        problems.append(f"cannot read the directory: {exc.strerror}")
    if not os.path.exists(run):
        problems.append("no run file")
    elif not is_executable_file(run):
        # a plain file without its x bit (a script copied in, a lost mode): say the fix
        fix = f" (chmod +x {run})" if os.path.isfile(run) and not os.stat(run).st_mode & 0o111 else ""
        problems.append(f"run is not an executable file{fix}")
    finish = os.path.join(directory, "finish")
    has_finish = os.path.exists(finish)
    if has_finish and not is_executable_file(finish):
        problems.append("finish is not an executable file; it is ignored")
        has_finish = False
    fields: dict[str, object] = {
        "has_finish": has_finish,
        "normally_up": not os.path.exists(os.path.join(directory, "down")),
        "essential": os.path.exists(os.path.join(directory, "essential")),
    }
    readers = (
        ("timeout-kill", "timeout_kill_ms", parse_ms),
        ("timeout-finish", "timeout_finish_ms", parse_ms),
        ("down-signal", "down_signal", parse_signal),
        ("notification-fd", "notification_fd", _parse_notification_fd),
    )
    fields.update(_read_settings_files(directory, readers, problems))
    override = settings.services.get(name)
    fields["health"] = read_health(directory, override, problems)
    spec = replace(spec, problems=tuple(problems), **fields)  # type: ignore[arg-type]
    return apply_override(spec, override)


# --- health checks (pys6's addition: docs/health-checks.md) -----------------------------

HEALTH_FILES = ("health", "health-tcp", "health-http")
HEALTH_NUMBERS = (("health-interval", "interval", parse_seconds), ("health-timeout", "timeout", parse_seconds),
                  ("health-retries", "retries", parse_positive_int), ("health-start", "start", parse_seconds_or_zero))


def _local_addresses() -> frozenset[str]:
    """The pod's own addresses, for a health-http that is not on loopback (read only then)."""
    import socket  # here: its enums would hold up the start path, which copies services.d

    import psutil

    return frozenset(address.address.split("%")[0] for addresses in psutil.net_if_addrs().values()
                     for address in addresses if address.family in (socket.AF_INET, socket.AF_INET6))


def _health_check(kind: str, text: str) -> HealthSpec:
    """One check from its file (or the YAML's key): ValueError names what is wrong."""
    from .health import HealthSpec, parse_http, parse_tcp  # only for a service that has a check

    if kind == "health":
        return HealthSpec("exec", text)
    if kind == "health-tcp":
        host, port = parse_tcp(text)
        return HealthSpec("tcp", text.strip(), host, port)
    try:
        host, port, target = parse_http(text)
    except ValueError:
        host, port, target = parse_http(text, _local_addresses())
    return HealthSpec("http", text.strip(), host, port, target)


def read_health(directory: str, override: ServiceOverride | None, problems: list[str]) -> HealthSpec | None:
    """The service's health check, from its files and then the YAML's keys, or None.

    One check per service: the first of health, health-tcp, health-http that is there; a
    second is a problem (ignored). A bad file is a problem and leaves the service unchecked;
    a bad number leaves its default."""
    found: list[tuple[str, str]] = []
    if is_executable_file(os.path.join(directory, "health")):
        found.append(("health", "./health"))
    elif os.path.lexists(os.path.join(directory, "health")):
        problems.append("health is not an executable file; there is no health check")
        return None
    for filename in HEALTH_FILES[1:]:
        try:
            text = read_small_text(os.path.join(directory, filename))
        except OSError as exc:
            problems.append(f"{filename}: {exc.strerror}; there is no health check")
            return None
        if text is not None:
            found.append((filename, text))
    if override is not None:
        yaml = [("health", override.health), ("health-tcp", override.health_tcp), ("health-http", override.health_http)]
        given = [(kind, text) for kind, text in yaml if text is not None]
        if given:
            found = given  # the YAML's check replaces the directory's
    if not found:
        return None
    if len(found) > 1:
        problems.append(f"more than one health check ({', '.join(kind for kind, _text in found)}): "
                        f"{found[0][0]} is used")
    kind, text = found[0]
    try:
        check = _health_check(kind, text)
    except ValueError as exc:
        problems.append(f"{kind}: {exc}; there is no health check")
        return None
    numbers = _read_settings_files(directory, HEALTH_NUMBERS, problems)
    for filename, attribute, _parser in HEALTH_NUMBERS:
        value = getattr(override, filename.replace("-", "_"), None) if override is not None else None
        if value is not None:
            numbers[attribute] = value
    return replace(check, **numbers)  # type: ignore[arg-type]


def _read_settings_files(directory: str, readers: Iterable[tuple[str, str, Callable[[str], object]]],
                         problems: list[str]) -> dict[str, object]:
    """attribute -> value for each (file, attribute, parser) whose file is there; a file that
    cannot be read or parsed is a problem, and its default stays."""
    found: dict[str, object] = {}
    for filename, attribute, parser in readers:
        try:
            text = read_small_text(os.path.join(directory, filename))
            if text is not None:
                found[attribute] = parser(text)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else exc
            problems.append(f"{filename}: {reason}; the default is used")
    return found


MAX_UNKNOWN_TOLD = 20  # entries of the YAML's services: named one by one; the rest counted


def unknown_overrides(settings: Settings, known: Iterable[str]) -> tuple[list[tuple[str, str | None]], int]:
    """The YAML's `services:` entries that name no service (a typo: `crn` for `cron`), each with
    the closest known name if one is close (difflib), at most MAX_UNKNOWN_TOLD of them, and how
    many more there are. An entry for no service changes nothing, so this is only a warning."""
    names = set(known)
    unknown = [name for name in settings.services if name not in names]
    if not unknown:
        return [], 0
    import difflib  # only once there is something to tell

    candidates = sorted(names)
    told = [(name, next(iter(difflib.get_close_matches(name, candidates, n=1)), None))
            for name in unknown[:MAX_UNKNOWN_TOLD]]
    return told, len(unknown) - len(told)


MAX_NOTIFICATION_FD = 1023


def _parse_notification_fd(text: str) -> int:
    if not text.isdecimal() or len(text) > 4 or not 3 <= int(text) <= MAX_NOTIFICATION_FD:
        raise ValueError(f"must be a whole number from 3 to {MAX_NOTIFICATION_FD} "
                         "(0, 1 and 2 are stdin, stdout and stderr)")
    return int(text)


def apply_override(spec: ServiceSpec, override: ServiceOverride | None) -> ServiceSpec:
    if override is None:
        return spec
    crash = replace(  # PYS6_CRASH_BAIL is the container's, kept
        spec.crash,
        max_deaths=override.crash_deaths if override.crash_deaths is not None else spec.crash.max_deaths,
        window=override.crash_window if override.crash_window is not None else spec.crash.window,
    )
    return replace(
        spec,
        crash=crash,
        essential=override.essential if override.essential is not None else spec.essential,
        timeout_kill_ms=override.timeout_kill if override.timeout_kill is not None else spec.timeout_kill_ms,
        timeout_finish_ms=override.timeout_finish if override.timeout_finish is not None else spec.timeout_finish_ms,
        down_signal=override.down_signal if override.down_signal is not None else spec.down_signal,
    )


def scan(services_dir: str, settings: Settings) -> tuple[list[ServiceSpec], list[str]]:
    """Every service below `services_dir`, in byte order, and the entries skipped (with why)."""
    try:
        entries = sorted(os.listdir(os.fsencode(services_dir)))
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        raise ConfigError(f"{services_dir}: cannot read: {exc.strerror}") from None
    specs: list[ServiceSpec] = []
    skipped: list[str] = []
    for raw in entries:
        name = os.fsdecode(raw)
        path = os.path.join(services_dir, name)
        if name.startswith("."):
            continue
        if not os.path.isdir(path):
            skipped.append(f"{name}: not a directory")
        elif not valid_name(name):
            skipped.append(f"{name}: not a valid service name (letters, digits, and _ . @ + - only)")
        else:
            specs.append(read_service(path, settings))
    return specs, skipped


MAX_COPY_DEPTH = 32  # a service directory is a few levels deep; deeper is a mistake, not a reason to recurse on


def copy_tree(source: str, destination: str) -> None:
    """`source` (a directory) to `destination` (absent) as s6-hiercopy copies it: directories,
    regular files, FIFOs and symlinks (as links, never followed), each with its mode, and its
    owner when pyinit is root; anything else (a socket, a device) is an error."""
    _copy_directory(source, destination, os.geteuid() == 0, 0)


def _copy_directory(source: str, destination: str, as_root: bool, depth: int) -> None:
    if depth > MAX_COPY_DEPTH:
        raise OSError(errno.ELOOP, f"nested more than {MAX_COPY_DEPTH} levels deep", source)
    info = os.lstat(source)
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", source)
    os.mkdir(destination, 0o700)  # its own mode once it is filled: a 0555 directory can still be filled
    for name in sorted(os.listdir(source)):
        _copy_entry(os.path.join(source, name), os.path.join(destination, name), as_root, depth)
    _keep_attributes(destination, info, as_root)


def _copy_entry(source: str, destination: str, as_root: bool, depth: int) -> None:
    info = os.lstat(source)
    kind = stat.S_IFMT(info.st_mode)
    if kind == stat.S_IFLNK:
        os.symlink(os.readlink(source), destination)
        if as_root:
            os.lchown(destination, info.st_uid, info.st_gid)
    elif kind == stat.S_IFDIR:
        _copy_directory(source, destination, as_root, depth + 1)
    elif kind == stat.S_IFREG:
        reader = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            writer = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with open(reader, "rb", closefd=False) as inp, open(writer, "wb") as out:
                while chunk := inp.read(1 << 16):
                    out.write(chunk)
        finally:
            os.close(reader)
        _keep_attributes(destination, info, as_root)
    elif kind == stat.S_IFIFO:
        os.mkfifo(destination, 0o600)
        _keep_attributes(destination, info, as_root)
    else:
        raise OSError(errno.EOPNOTSUPP, "a socket or device file: not copied", source)


def _keep_attributes(path: str, info: os.stat_result, as_root: bool) -> None:
    if as_root:
        os.chown(path, info.st_uid, info.st_gid, follow_symlinks=False)
    try:
        os.chmod(path, stat.S_IMODE(info.st_mode), follow_symlinks=False)
    except PermissionError:  # a setgid bit for a group this uid is not in
        os.chmod(path, stat.S_IMODE(info.st_mode) & ~stat.S_ISGID, follow_symlinks=False)


def remove_tree(path: str) -> None:
    """A previous copy (or a previous boot's link to /etc): removed without following a link.
    By hand rather than shutil.rmtree, whose import (bz2, lzma, fnmatch, re) the start path
    would wait for; by descriptor as rmtree does, so a directory swapped for a link meanwhile
    has the link removed, never what it points to."""
    if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
        os.unlink(path)
    elif os.path.isdir(path):
        parent = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _remove_entry(parent, os.path.basename(path), 0)
        finally:
            os.close(parent)


def _remove_entry(parent: int, name: str, depth: int) -> None:
    try:
        directory = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        os.unlink(name, dir_fd=parent)  # a file, a link (to a directory, too): itself only
        return
    try:
        if depth > MAX_COPY_DEPTH:
            raise OSError(errno.ELOOP, f"nested more than {MAX_COPY_DEPTH} levels deep", name)
        for entry in os.listdir(directory):
            _remove_entry(directory, entry, depth + 1)
    finally:
        os.close(directory)
    os.rmdir(name, dir_fd=parent)


def copy_service(spec: ServiceSpec, root: str, settings: Settings) -> ServiceSpec:
    """`spec`'s directory copied to root/<name> (a previous copy replaced), and the service as
    read from the copy, which is what runs. When it cannot be copied, the service keeps its
    definition with the reason among its problems and the copy as its directory: it fails
    to start, paced as any crash loop, and is never run from its source instead."""
    destination = os.path.join(root, spec.name)
    try:
        remove_tree(destination)
        copy_tree(spec.directory, destination)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and exc.filename != spec.directory else ""
        problem = f"cannot be copied to {destination} to run from: {exc.strerror or exc}{where}"
        try:
            remove_tree(destination)  # half a copy would run: a run file without the data/ it needs
        except OSError:
            pass
        return replace(spec, directory=destination, problems=(*spec.problems, problem))
    return held(read_service(destination, settings))


def held(spec: ServiceSpec, parent: ServiceSpec | None = None) -> ServiceSpec:
    """`spec` with pyinit's handle on its directory (ServiceSpec.directory_fd), opened from
    `parent`'s handle when it lies inside it (a services.d logger, `log/` of its service's
    copy), so no path another uid could rename is followed; unchanged if it cannot be opened
    (gone already: its start fails, paced as any crash loop)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        if parent is not None and parent.directory_fd is not None:
            handle = os.open(os.path.relpath(spec.directory, parent.directory), flags, dir_fd=parent.directory_fd)
        else:
            handle = os.open(spec.directory, flags)
    except OSError:
        return spec
    return replace(spec, directory_fd=handle)
