"""The container environment directory: one file per variable, as s6-overlay v3 keeps it.

Written at boot as s6-linux-init's -s writes /run/s6/container_environment: each value as
is, newlines in it included, then one newline (measured under s6-overlay 3.2.3.2: `GREETING=hi`
is the file "hi\n", which its printcontenv prints as "hi\n\n"), and read as
`s6-envdir -Lf` reads it: the whole file is the value, one trailing newline is chomped
(so `echo v > FILE` works too), NUL bytes become newlines, an empty file removes the
variable, and names starting with a dot or holding '=' are not variables.

Anyone of the pod's uid may write there, so what is read is bounded, and what could not
be exec'd is left out (named, so the reader can say so) rather than failing every start:
- a variable whose "NAME=value" is longer than Linux's MAX_ARG_STRLEN (128 KiB): no
  execve can pass it, so every service start would fail with E2BIG;
- past MAX_TOTAL_BYTES for the directory's variables together (as execve counts them: the
  strings and a pointer each), the largest are left out until the rest fit: one big value
  is the usual culprit, and leaving it out keeps the most variables;
- anything but a regular file (a FIFO is never waited on, a symlink never followed), and
  a file that grew while it was read;
- past MAX_ENTRIES directory entries, the rest is not looked at.
A file is sized by lstat before it is opened and read up to that size only, so the
reader never holds more than about MAX_TOTAL_BYTES of values, whatever is written there.

Standard library only: with-contenv and printcontenv import this.
"""

from __future__ import annotations

import errno
import heapq
import os
import stat

TYPE_CHECKING = False  # collections.abc's import brings collections' (a millisecond of the start path)
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

S6_CONTAINER_ENVIRONMENT = "/run/s6/container_environment"
DIRECTORY_NAME = "container_environment"  # under $PYS6_RUNDIR
MAX_ARG_STRLEN = 32 * 4096  # Linux: one string of an execve, its NUL included, is at most this
MAX_TOTAL_BYTES = 256 * 1024  # the directory's share of an exec: far under ARG_MAX, room left for argv
POINTER_BYTES = 8  # execve counts each variable's pointer too
MAX_ENTRIES = 65_536  # directory entries looked at per read
MAX_NAMED = 32  # left-out entries a reading names; the others are counted

NOT_A_FILE = "not a regular file"
TOO_LONG = f"NAME=value longer than an exec can pass ({MAX_ARG_STRLEN // 1024} KiB)"
OVER_TOTAL = f"the variables together over {MAX_TOTAL_BYTES // 1024} KiB: the largest left out"
CHANGED = "changed while read"
TOO_MANY = f"more than {MAX_ENTRIES} entries: the rest not looked at"


class LeftOut:
    """An entry not taken, and why. Plain classes here, not dataclasses: a shebang's
    with-contenv would pay for importing them (inspect, re) on every script."""

    __slots__ = ("name", "reason", "size", "mtime_ns")

    def __init__(self, name: str, reason: str, size: int = 0, mtime_ns: int = 0) -> None:
        self.name = name
        self.reason = reason
        self.size = size
        self.mtime_ns = mtime_ns

    def version(self) -> tuple[str, str, int, int]:
        """What tells one version of the entry from another: warned about once each."""
        return self.name, self.reason, self.size, self.mtime_ns


class Reading:
    """The environment made, and the entries left out: the first MAX_NAMED, and how many in all."""

    __slots__ = ("environment", "left_out", "left_out_count")

    def __init__(self) -> None:
        self.environment: dict[bytes, bytes] = {}
        self.left_out: list[LeftOut] = []
        self.left_out_count = 0

    def leave_out(self, entry: "LeftOut") -> None:
        self.left_out_count += 1
        if len(self.left_out) < MAX_NAMED:
            self.left_out.append(entry)


def is_variable_name(name: bytes) -> bool:
    return bool(name) and not name.startswith(b".") and b"=" not in name and b"/" not in name and b"\0" not in name


def exec_cost(name: bytes, value_length: int) -> int:
    """What "NAME=value" weighs against an execve's budget: the string, its NUL and its pointer."""
    return len(name) + 1 + value_length + 1 + POINTER_BYTES


def _value(content: bytes) -> bytes:
    return (content[:-1] if content.endswith(b"\n") else content).replace(b"\0", b"\n")


def _exec_able(name: bytes, content: bytes) -> bool:
    return exec_cost(name, len(_value(content))) - POINTER_BYTES <= MAX_ARG_STRLEN


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
        data = value + b"\n"  # s6-linux-init's newline, which the reader chomps
        held = _holding(path, len(data))
        if held == data:
            continue  # written already (pyinit writes it twice at boot: the second pass changes a few)
        # A new name is written in place; one that holds another value is replaced whole, by a rename,
        # so that a reader sees the old value or the new one, never a part of either.
        target = path if held is None else os.path.join(os.fsencode(directory), b".pys6-" + name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_EXCL if held is None else os.O_TRUNC)
        fd = os.open(target, flags, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        if target != path:
            os.rename(target, path)
    return skipped


def _holding(path: bytes, size: int) -> bytes | None:
    """What the regular file at `path` holds when it is `size` bytes long (b"" when it is another
    size or not a regular file: to be replaced); None when there is nothing there."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:  # a symlink (ELOOP), a socket (ENXIO): replaced by the rename
        return b""
    try:
        info = os.fstat(fd)
        return os.read(fd, size + 1) if stat.S_ISREG(info.st_mode) and info.st_size == size else b""
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return f"{NOT_A_FILE} ({name})"
    return NOT_A_FILE


def _read_content(directory_fd: int, name: bytes, size: int) -> bytes | str:
    """The file's content, read up to the `size` lstat gave it; else why not (a reason)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=directory_fd)  # never blocks on a FIFO swapped in meanwhile
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW: a symlink swapped in meanwhile
            return _kind(stat.S_IFLNK)
        if exc.errno == errno.ENXIO:  # a socket
            return NOT_A_FILE
        return f"unreadable: {exc.strerror}"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return _kind(info.st_mode)
        chunks = []
        got = 0
        while got <= size:  # one byte past `size` tells it grew
            chunk = os.read(fd, min(65536, size + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return CHANGED if got > size else b"".join(chunks)
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    finally:
        os.close(fd)


def _scan(directory_fd: int, base: Mapping[bytes, bytes], reading: "Reading") -> tuple[list[tuple[bytes, int]], set[bytes]]:
    """The files to read (name, size by lstat) and the base's names to remove, by lstat alone.

    The chosen are kept in a heap by weight, the heaviest popped while the whole is over
    MAX_TOTAL_BYTES, so what is held is bounded by the budget however many entries there are.
    """
    heaviest_first: list[tuple[int, bytes, int, int]] = []  # (-cost, name, size, mtime_ns)
    total = 0
    to_unset: set[bytes] = set()
    with os.scandir(directory_fd) as entries:
        for seen, entry in enumerate(entries):
            if seen >= MAX_ENTRIES:
                reading.leave_out(LeftOut("...", TOO_MANY))
                break
            name = os.fsencode(entry.name)
            if not is_variable_name(name):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone meanwhile
            if not stat.S_ISREG(info.st_mode):
                reading.leave_out(LeftOut(entry.name, _kind(info.st_mode), 0, info.st_mtime_ns))
                continue
            if info.st_size == 0:
                if name in base:
                    to_unset.add(name)
                continue
            if exec_cost(name, info.st_size - 1) - POINTER_BYTES > MAX_ARG_STRLEN:  # even with a newline chomped
                reading.leave_out(LeftOut(entry.name, TOO_LONG, info.st_size, info.st_mtime_ns))
                continue
            cost = exec_cost(name, info.st_size)
            heapq.heappush(heaviest_first, (-cost, name, info.st_size, info.st_mtime_ns))
            total += cost
            while total > MAX_TOTAL_BYTES:
                minus_cost, dropped, size, mtime_ns = heapq.heappop(heaviest_first)
                total += minus_cost
                reading.leave_out(LeftOut(os.fsdecode(dropped), OVER_TOTAL, size, mtime_ns))
    return sorted((name, size) for _, name, size, _ in heaviest_first), to_unset


def applied(base: Mapping[bytes, bytes], directory: str) -> "Reading":
    """`base` with the directory's variables set and its empty files' variables removed, as
    `s6-envdir -Lf directory` makes it, within the bounds above; what was left out, named.
    Raises OSError only when the directory itself cannot be opened."""
    reading = Reading()
    directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        chosen, to_unset = _scan(directory_fd, base, reading)
        to_set: dict[bytes, bytes] = {}
        for name, size in chosen:
            content = _read_content(directory_fd, name, size)
            if isinstance(content, str):
                reading.leave_out(LeftOut(os.fsdecode(name), content, size))
            elif content == b"":  # emptied meanwhile
                if name in base:
                    to_unset.add(name)
            elif not _exec_able(name, content):  # no newline to chomp after all
                reading.leave_out(LeftOut(os.fsdecode(name), TOO_LONG, size))
            else:
                to_set[name] = _value(content)
    finally:
        os.close(directory_fd)
    reading.environment = {name: value for name, value in base.items() if name not in to_unset}
    reading.environment.update(to_set)
    return reading


def read_variable(directory: str, name: str) -> bytes | str | None:
    """One file's content as is (printcontenv's); None when there is no such file; else why it is
    no variable of the environment (not a regular file, too long to be exec'd): `applied`'s rule."""
    encoded = os.fsencode(name)
    if not is_variable_name(encoded):
        return None
    try:
        directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    try:
        info = os.stat(encoded, dir_fd=directory_fd, follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode):
            return _kind(info.st_mode)
        if exec_cost(encoded, info.st_size - 1) - POINTER_BYTES > MAX_ARG_STRLEN:  # not read: it may be huge
            return TOO_LONG
        content = _read_content(directory_fd, encoded, info.st_size)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    finally:
        os.close(directory_fd)
    if isinstance(content, bytes) and not _exec_able(encoded, content):
        return TOO_LONG
    return content


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
