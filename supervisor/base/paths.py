"""Where the runtime directory and the control socket are: one rule for server and clients.

Standard library only: the client CLIs import this.
"""

import os
import stat

SYSTEM_RUNDIR = "/run/pys6"
SOCKET_NAME = "control.sock"
METRICS_DIRECTORY_NAME = "metrics"
ABSTRACT_PREFIX = "pys6-control/"
MAX_UNIX_ADDRESS = 108  # sizeof(sun_path): an abstract address is its leading NUL and up to 107 bytes


class RuntimeDirError(Exception):
    """The runtime directory cannot be used safely."""


def fallback_rundir(uid: int | None = None) -> str:
    return f"/tmp/pys6-{os.getuid() if uid is None else uid}"


def candidate_rundirs(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """Where a client looks for the socket, in order."""
    if environ.get("PYS6_RUNDIR"):
        return [environ["PYS6_RUNDIR"]]
    return [SYSTEM_RUNDIR, fallback_rundir()]


def abstract_control_address(rundir: str) -> bytes | None:
    """The abstract unix address where the pyinit that is PID 1 of our PID namespace also listens for `rundir`.

    An abstract address has no file, so no one can rename, replace or delete it. It names the
    PID namespace (its inode, as /proc/self/ns/pid shows it to every process inside) so that
    containers sharing a network namespace (a pod's sidecars) never meet, and the runtime
    directory so that a client whose PYS6_RUNDIR names another pyinit does not reach PID 1.
    Anyone in the network namespace may bind any name: what makes it pyinit is that SO_PEERCRED
    shows pid 1 to the client (see client.py). A runtime directory too long for an address is
    named by a hash of its path instead. None where it cannot be named (no /proc).
    """
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    head = b"\0" + f"{ABSTRACT_PREFIX}{namespace}".encode()
    path = os.fsencode(os.path.normpath(rundir))
    if len(head) + len(path) <= MAX_UNIX_ADDRESS:
        return head + path
    return head + b"#" + f"{_fnv1a(path):016x}".encode()


def _fnv1a(data: bytes) -> int:
    """FNV-1a, 64 bits: no hashlib (OpenSSL) for a client. Only the pyinit that is PID 1 listens on
    these names, so a collision could only take a client to that PID 1 for another directory."""
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def check_owned_private(path: str) -> None:
    """Refuse a directory we do not own or that others may write (a planted /tmp/pys6-1000)."""
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise RuntimeDirError(f"runtime directory {path} is not a directory")
    if info.st_uid != os.geteuid():
        raise RuntimeDirError(f"runtime directory {path} belongs to uid {info.st_uid}, not to us (uid {os.geteuid()})")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise RuntimeDirError(f"runtime directory {path} is writable by others (mode {stat.S_IMODE(info.st_mode):o})")


def _make_private(path: str) -> bool:
    """Create `path` 0700; False if it cannot be made (no permission, read-only /run)."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return True
    except OSError:
        return False
    return True


def prepare_rundir(environ: dict[str, str] | os._Environ[str]) -> str:
    """Choose, create and check the runtime directory as SPEC.md says.

    PYS6_RUNDIR when set; else /run/pys6 where it is ours or can be made;
    else /tmp/pys6-<uid>. The directory chosen must be ours and private.
    """
    explicit = environ.get("PYS6_RUNDIR")
    if explicit:
        if not _make_private(explicit):
            raise RuntimeDirError(f"cannot create runtime directory {explicit}")
        check_owned_private(explicit)
        return explicit
    if _make_private(SYSTEM_RUNDIR):
        try:
            check_owned_private(SYSTEM_RUNDIR)
            return SYSTEM_RUNDIR
        except RuntimeDirError:
            pass  # another user's /run/pys6: ours is the per-uid fallback
    path = fallback_rundir()
    if not _make_private(path):
        raise RuntimeDirError(f"cannot create runtime directory {path}")
    check_owned_private(path)
    return path


def metrics_directory(rundir: str, environ: dict[str, str] | os._Environ[str]) -> str:
    """Where services drop their metrics files for pyinit's page: $PYS6_METRICS_DIR, else $rundir/metrics."""
    return environ.get("PYS6_METRICS_DIR") or os.path.join(rundir, METRICS_DIRECTORY_NAME)


def prepare_metrics_directory(path: str) -> None:
    """Make the metrics directory (0755: services of other uids may read it; they write only if given the right), and
    remove the .prom files a previous boot left, which would be served as if current.

    A PYS6_METRICS_DIR that is a symlink, or belongs to another uid than ours or root (one squatted
    in /tmp), is refused (RuntimeDirError): its files would be served as the pod's own."""
    os.makedirs(path, 0o755, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise RuntimeDirError(f"metrics directory {path} is not a directory")
    if info.st_uid not in (0, os.geteuid()):
        raise RuntimeDirError(f"metrics directory {path} belongs to uid {info.st_uid}, not to us (uid {os.geteuid()})")
    for name in os.listdir(path):
        if name.endswith(".prom"):
            try:
                os.unlink(os.path.join(path, name))
            except OSError:
                pass
