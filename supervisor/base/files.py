"""Reading small configuration files that anyone may have put there.

`open()` of a FIFO blocks until a writer comes (PID 1 would hang in boot, deaf
to SIGTERM), and /dev/zero never ends. So a file is opened without blocking,
must turn out to be a regular file, and is read up to a limit.
"""

from __future__ import annotations

import errno
import os
import stat


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular_file(path: str, limit: int, *, dir_fd: int | None = None, follow_symlinks: bool = True) -> bytes:
    """The whole content of the regular file `path` (relative to `dir_fd` if given), at most `limit` bytes.

    Raises FileNotFoundError when it is missing, and OSError with a readable
    strerror when it is not a regular file, is larger than `limit`, or cannot be read,
    or (with follow_symlinks=False) is a symbolic link.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket, or a FIFO's far end: not a file either way
            raise OSError(errno.EINVAL, "not a regular file") from None
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise OSError(errno.ELOOP, "a symbolic link, not followed") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, f"not a regular file ({_kind(info.st_mode)})")
        if info.st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes ({info.st_size})")
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(65536, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # it grew while we read it
                raise OSError(errno.EFBIG, f"larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_small_text(path: str, limit: int = 4096) -> str | None:
    """A small settings file (timeout-kill, down-signal, ...), stripped; None when missing."""
    try:
        data = read_regular_file(path, limit)
    except FileNotFoundError:
        return None
    return data.decode("utf-8", "replace").strip()


def write_atomically(path: str, text: str, prefix: str = ".tmp-") -> None:
    """Write `text` to `path` so that a reader (node-exporter's textfile collector) never sees half a file."""
    import tempfile

    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=prefix)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:  # not the locale's: readers take UTF-8
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
