"""The container environment directory: one file per variable, as s6-overlay v3 keeps it.

Written at boot as s6-linux-init writes /run/s6/container_environment (each value as
is, no newline added, so s6-overlay's printcontenv prints it back exactly) and read as
`s6-envdir -Lf` reads it: the whole file is the value, one trailing newline is chomped
(so `echo v > FILE` works too), NUL bytes become newlines, an empty file removes the
variable, and names starting with a dot or holding '=' are not variables.

Standard library only: with-contenv and printcontenv import this.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping

S6_CONTAINER_ENVIRONMENT = "/run/s6/container_environment"
DIRECTORY_NAME = "container_environment"  # under $PYS6_RUNDIR
MAX_VALUE_BYTES = 1 << 20  # a variable of the container's environment is never this large
MAX_VARIABLES = 10_000


def is_variable_name(name: bytes) -> bool:
    return bool(name) and not name.startswith(b".") and b"=" not in name and b"/" not in name and b"\0" not in name


def write_environment(directory: str, environ: Mapping[bytes, bytes]) -> list[str]:
    """Make `directory` (0755) hold exactly `environ`; the names that cannot be files, skipped."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    os.chmod(directory, 0o755)
    skipped = []
    for entry in os.listdir(os.fsencode(directory)):
        if is_variable_name(entry) and entry not in environ:
            os.unlink(os.path.join(os.fsencode(directory), entry))
    for name, value in environ.items():
        if not is_variable_name(name):
            skipped.append(os.fsdecode(name))
            continue
        path = os.path.join(os.fsencode(directory), name)
        temporary = os.path.join(os.fsencode(directory), b".pys6-" + name)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, value)
        finally:
            os.close(fd)
        os.rename(temporary, path)
    return skipped


def _read_value(directory_fd: int, name: bytes) -> bytes | None:
    """The value a file holds; None when it is not a readable regular file (a FIFO is never opened)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=directory_fd)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        size = 0
        while size <= MAX_VALUE_BYTES:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_VALUE_BYTES:
            return None
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_changes(directory: str) -> tuple[dict[bytes, bytes], set[bytes], list[str]]:
    """What `s6-envdir -Lf directory` would do: variables to set, variables to remove, and
    the entries it could not read (named, so a caller can say so)."""
    to_set: dict[bytes, bytes] = {}
    to_unset: set[bytes] = set()
    unreadable: list[str] = []
    directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        names = sorted(os.listdir(directory_fd))
        for raw in names[:MAX_VARIABLES]:
            name = os.fsencode(raw)
            if not is_variable_name(name):
                continue
            value = _read_value(directory_fd, name)
            if value is None:
                unreadable.append(os.fsdecode(name))
            elif value == b"":
                to_unset.add(name)
            else:
                to_set[name] = (value[:-1] if value.endswith(b"\n") else value).replace(b"\0", b"\n")
    finally:
        os.close(directory_fd)
    return to_set, to_unset, unreadable


def applied(base: Mapping[bytes, bytes], directory: str) -> tuple[dict[bytes, bytes], list[str]]:
    """`base` with the directory's variables set and its empty files' variables removed."""
    to_set, to_unset, unreadable = read_changes(directory)
    result = {name: value for name, value in base.items() if name not in to_unset}
    result.update(to_set)
    return result, unreadable


def candidate_directories(environ: Mapping[str, str], uid: int | None = None) -> Iterable[str]:
    """Where the container environment is, in the order with-contenv looks: s6-overlay's
    path (pyinit writes it where /run is writable), then the runtime directory's."""
    yield S6_CONTAINER_ENVIRONMENT
    if environ.get("PYS6_RUNDIR"):
        yield os.path.join(environ["PYS6_RUNDIR"], DIRECTORY_NAME)
    yield os.path.join("/run/pys6", DIRECTORY_NAME)
    yield os.path.join(f"/tmp/pys6-{os.getuid() if uid is None else uid}", DIRECTORY_NAME)


def find_directory(environ: Mapping[str, str]) -> str | None:
    for candidate in candidate_directories(environ):
        if os.path.isdir(candidate):
            return candidate
    return None
