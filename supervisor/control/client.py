"""A blocking client for the control socket. Standard library only: the CLIs must start fast.

It trusts only the real pyinit (SPEC.md). First, for each candidate runtime
directory, the abstract address where a pyinit that is PID 1 of our PID namespace
listens (paths.abstract_control_address): it has no file to rename or replace, and
it is trusted only if SO_PEERCRED shows pid 1, which no other process of our
namespace can be; anything else there (a squatter, another container's pyinit) is
sent nothing and ignored. Then the socket files: a candidate runtime directory must
belong to root or to the uid it is meant for, neither it nor the socket may be
writable by others, where others could have replaced it (a directory on its path
writable by others without the sticky bit, or owned by another uid) only root's or
our own uid's is trusted, and the server's SO_PEERCRED uid must be root or the
directory's owner. A candidate that exists but fails a check is an error (exit 111)
naming the path, its owner and its mode, never a reason to try the next one.
Connecting and answering have a timeout, and answers a size limit.
"""

import _socket
import errno
import os
import stat
import sys

from ..base.paths import SOCKET_NAME, abstract_control_address, candidate_rundirs, fallback_rundir
from . import protocol
from .protocol import ProtocolError

# The socket module is left out on purpose, as are typing and collections: socket imports
# enum and selectors, which would cost every fresh client more than its whole exchange.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

CONNECT_TIMEOUT = 5.0  # seconds
DEFAULT_MARGIN_MS = 10_000  # beyond a wait's own timeout; PYS6_CLIENT_TIMEOUT changes it


def answer_margin() -> float:
    """Seconds a client waits for pyinit beyond a wait's own timeout (PYS6_CLIENT_TIMEOUT, in ms)."""
    text = os.environ.get("PYS6_CLIENT_TIMEOUT", "")
    if text.isdecimal() and 0 < len(text) <= 9 and int(text) > 0:
        return int(text) / 1000
    return DEFAULT_MARGIN_MS / 1000


def _untrusted(message: str) -> ProtocolError:
    return ProtocolError(message, protocol.EXIT_SYSTEM)


def _described(info: os.stat_result) -> str:
    return f"owned by uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):04o}"


def _meant_for(rundir: str) -> int | None:
    """The uid a per-user fallback directory must belong to; None: whoever owns it (/run/pys6, PYS6_RUNDIR)."""
    return os.getuid() if rundir == fallback_rundir() else None


def _check_directory(rundir: str) -> os.stat_result | None:
    """The directory's status if it may be trusted, None if it is not there; anything else raises."""
    try:
        info = os.lstat(rundir)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise _untrusted(f"{rundir}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise _untrusted(f"{rundir} is not a directory ({_described(info)}): refusing it")
    owner = _meant_for(rundir)
    if owner is not None and info.st_uid not in (0, owner):
        raise _untrusted(f"{rundir} is {_described(info)}, not by uid {owner} or root: "
                         f"someone else made it; refusing it (remove it if it is not yours)")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise _untrusted(f"{rundir} is writable by others ({_described(info)}): refusing it")
    if info.st_uid not in (0, os.getuid()):
        weak = _replaceable_by_others(rundir, info.st_uid)
        if weak:
            raise _untrusted(f"{rundir} is {_described(info)}, but {weak}, so another uid may have put it "
                             f"there: only root's or uid {os.getuid()}'s own is trusted; refusing it")
    return info


def _replaceable_by_others(rundir: str, owner: int) -> str:
    """How someone other than root, us or `owner` could have renamed, replaced or deleted `rundir`
    (a directory on its path, as written and as resolved, that they may write without the sticky
    bit, or that another uid owns), "" if no one could. A Kubernetes emptyDir /run is 2777: anyone
    may rename /run/pys6 away and make their own, so its owner proves nothing there."""
    parent = os.path.dirname(os.path.abspath(rundir))
    ancestors: set[str] = set()
    for start in (parent, os.path.realpath(parent)):
        path = start
        while path not in ancestors:
            ancestors.add(path)
            path = os.path.dirname(path)
    for path in sorted(ancestors):
        try:
            info = os.lstat(path)
        except OSError as exc:
            return f"{path} cannot be checked ({exc.strerror})"
        if stat.S_ISLNK(info.st_mode):
            continue  # a symlink's own mode means nothing: the directory holding it, and its target, are checked
        if info.st_uid not in (0, os.getuid(), owner):
            return f"{path} is {_described(info)}"
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
            return f"{path} is writable by others without the sticky bit ({_described(info)})"
    return ""


def _check_socket(path: str, directory: os.stat_result) -> bool:
    """Whether a trustworthy socket file is there (False: none); anything else raises."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except PermissionError:
        raise _untrusted(f"permission denied: {os.path.dirname(path)} is {_described(directory)}") from None
    except OSError as exc:
        raise _untrusted(f"{path}: {exc.strerror}") from None
    if not stat.S_ISSOCK(info.st_mode):
        raise _untrusted(f"{path} is not a socket ({_described(info)}): refusing it")
    if info.st_uid not in (0, directory.st_uid) or info.st_mode & stat.S_IWOTH:
        raise _untrusted(f"{path} is {_described(info)} in a directory of uid {directory.st_uid}: refusing it")
    return True


def _server_credentials(sock: _socket.socket) -> tuple[int, int]:
    """The server's pid (in our PID namespace; 0: outside it) and uid, as it was when it called listen()."""
    data = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)  # struct ucred: pid, uid, gid
    return (int.from_bytes(data[0:4], sys.byteorder, signed=True),
            int.from_bytes(data[4:8], sys.byteorder, signed=True))


def _connect_to_pid1(rundir: str) -> _socket.socket | None:
    """A connection to the pyinit that is PID 1 of our PID namespace and runs on `rundir`, by its
    abstract address; None if nobody listens there, or someone other than our PID 1 does (a
    squatter; another container's process shows pid 0), which is then sent nothing at all."""
    address = abstract_control_address(rundir)
    if address is None:
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT)
    try:
        sock.connect(address)
        pid, _uid = _server_credentials(sock)
    except OSError:  # nobody (refused), or a full backlog (EAGAIN at once, never a wait): the socket files are next
        sock.close()
        return None
    if pid != 1:
        sock.close()
        return None
    return sock


def _connect_to(rundir: str) -> _socket.socket | None:
    """A connection to the pyinit of `rundir` once every check passed; None if nobody is there."""
    directory = _check_directory(rundir)
    if directory is None:
        return None
    path = os.path.join(rundir, SOCKET_NAME)
    if not _check_socket(path, directory):
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT)
    try:
        sock.connect(path)
        _pid, server = _server_credentials(sock)
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None  # a stale socket: no pyinit listens there
    except PermissionError:
        sock.close()
        raise _untrusted(f"permission denied: {path} ({_described(directory)} for its directory)") from None
    except TimeoutError:
        sock.close()
        raise _untrusted(f"{path}: pyinit did not accept the connection within {CONNECT_TIMEOUT:g} s") from None
    except OSError as exc:
        sock.close()
        raise _untrusted(f"{path}: {exc.strerror}") from None
    if server not in (0, directory.st_uid):
        sock.close()
        raise _untrusted(f"{path} is served by uid {server}, not by root or the directory's owner "
                         f"uid {directory.st_uid}: refusing it")
    return sock


def _connect() -> _socket.socket:
    """Our PID 1's abstract address for a candidate; else the first candidate's socket file where a
    pyinit answers, in the order SPEC.md gives (works from an SSH login)."""
    rundirs = candidate_rundirs(os.environ)
    for rundir in rundirs:
        pid1 = _connect_to_pid1(rundir)
        if pid1 is not None:
            return pid1
    tried: list[str] = []
    for rundir in rundirs:
        sock = _connect_to(rundir)
        if sock is not None:
            return sock
        tried.append(os.path.join(rundir, SOCKET_NAME))
    raise ProtocolError(f"pyinit is not running (no socket answers at {', '.join(tried)})", protocol.EXIT_NOT_RUNNING)


class _LineReader:
    """Lines of an answer, each and all of them within the protocol's limits."""

    def __init__(self, sock: _socket.socket, limit: int | None = protocol.MAX_ANSWER) -> None:
        self.sock = sock
        self.buffer = b""
        self.total = 0
        self.limit = limit  # of the whole answer; None: an answer that never ends (a log followed)

    def line(self) -> bytes | None:
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line, self.buffer = self.buffer[:end], self.buffer[end + 1:]
                return line
            if len(self.buffer) > protocol.MAX_ANSWER_LINE:
                raise _untrusted(f"an answer line is larger than {protocol.MAX_ANSWER_LINE} bytes")
            try:
                chunk = self.sock.recv(1 << 16)
            except TimeoutError:
                raise _untrusted("pyinit did not answer in time") from None
            except OSError as exc:
                if exc.errno in (errno.ECONNRESET, errno.EPIPE):
                    raise ProtocolError("pyinit closed the connection", protocol.EXIT_NOT_RUNNING) from None
                raise _untrusted(f"control socket: {exc.strerror}") from None
            if not chunk:
                return None
            self.total += len(chunk)
            if self.limit is not None and self.total > self.limit:
                raise _untrusted(f"the answer is larger than {protocol.MAX_ANSWER} bytes")
            self.buffer += chunk


def _items(reader: "_LineReader", count: int, close: bool = True) -> "Iterator[dict[str, Any]]":
    try:
        for _ in range(count):
            line = reader.line()
            if line is None:
                raise _untrusted("pyinit's answer was cut short")
            yield protocol.decode_answer_item(line)
    finally:
        if close:
            reader.sock.close()


def _follow_items(reader: "_LineReader", count: int) -> "Iterator[dict[str, Any]]":
    """The backlog's `count` items, then each line pyinit sends until it closes the connection."""
    yield from _items(reader, count, close=False)
    reader.sock.settimeout(None)  # a quiet service sends nothing for as long as it likes
    reader.limit = None
    try:
        while True:
            line = reader.line()
            if line is None:
                return
            yield protocol.decode_answer_item(line)
    finally:
        reader.sock.close()


def call_follow(body: dict[str, object]) -> "tuple[dict[str, Any], Iterator[dict[str, Any]]]":
    """A log request with "follow": the head, and an iterator over the backlog and then every line
    as pyinit sends it; it ends when pyinit closes the connection (it stopped)."""
    return call_stream(body, _follow=True)


def call_stream(body: dict[str, object], timeout: float | None = -1.0,
                _follow: bool = False) -> "tuple[dict[str, Any], Iterator[dict[str, Any]]]":
    """Send one request; return the answer's head and an iterator over its items (read as they come).

    A refusal or error raises ProtocolError with its exit code. `timeout` bounds
    each wait for the server (None: for ever, for a wait without a limit; the
    default: the margin alone).
    """
    if timeout is not None and timeout < 0:
        timeout = answer_margin()
    sock = _connect()
    try:
        sock.settimeout(timeout)
        try:
            sock.sendall(protocol.encode(body))
        except (BrokenPipeError, ConnectionResetError):
            pass  # pyinit may have answered (a refusal) before reading: read what it said
        except TimeoutError:
            raise _untrusted("pyinit did not take the request in time") from None
        reader = _LineReader(sock)
        line = reader.line()
        if line is None:
            raise ProtocolError("pyinit closed the connection without answering", protocol.EXIT_NOT_RUNNING)
        head = protocol.decode_answer_head(line)
    except BaseException:
        sock.close()
        raise
    if not head.get("ok"):
        sock.close()
        raise ProtocolError(str(head.get("error", "failed"))[:4000], _exit_code(head.get("code")))
    if _follow and head.get("follow"):
        return head, _follow_items(reader, head.get("items", 0))
    return head, _items(reader, head.get("items", 0))


def _exit_code(code: object) -> int:
    if isinstance(code, int) and not isinstance(code, bool) and 0 < code < 256:
        return code
    return protocol.EXIT_SYSTEM


def call(body: dict[str, object], timeout: float | None = -1.0) -> "dict[str, Any]":
    """Send one request; the head of the answer, its items (if any) as a list under "items"."""
    head, items = call_stream(body, timeout)
    head["items"] = list(items)
    return head


def answer_timeout(wait_ms: int) -> float | None:
    """How long to wait for the answer to a wait of `wait_ms` (0: for ever)."""
    return None if wait_ms == 0 else wait_ms / 1000 + answer_margin()
