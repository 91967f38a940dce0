"""posix_spawn called through ctypes, so that a child starts with every signal at its default.

os.posix_spawn cannot name signals 32 and 33 in `setsigdef`: glibc keeps them for itself
(thread cancellation and setxid), its sigaddset refuses them and Python skips them with a
warning. glibc's (and musl's) spawn child then sets them to SIG_IGN before its exec, and an
ignored signal stays ignored across exec: every process pyinit started had them ignored
(SigIgn 0000000180000000), where s6-overlay's children, and any fork+exec'd program, have
none. posix_spawnattr_setsigdefault copies a sigset_t as it is, so a set whose bits are
written here directly carries them, and the child resets them too. What else os.posix_spawn
does is done the same way: file actions, an empty signal mask, setsid, errors as OSError.

Where ctypes or the C library's functions are missing, `available` is False and spawn.py
keeps os.posix_spawn.
"""

from __future__ import annotations

import _signal  # not signal: its enums would bring enum onto the start path
import ctypes
import os
import sys

TYPE_CHECKING = False  # collections.abc's import brings collections' (a millisecond of the start path)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

_SETSIGDEF = 0x04  # glibc's and musl's values (spawn.h)
_SETSIGMASK = 0x08
_SETSID = 0x80
_OPAQUE = 1024  # bytes for posix_spawnattr_t (glibc: 336) and posix_spawn_file_actions_t (80)
_SIGSET = 128  # sizeof(sigset_t): 1,024 bits on glibc, musl's is as large

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _functions = {name: getattr(_libc, name) for name in (
        "posix_spawn", "posix_spawnp", "posix_spawnattr_init", "posix_spawnattr_destroy",
        "posix_spawnattr_setflags", "posix_spawnattr_setsigdefault", "posix_spawnattr_setsigmask",
        "posix_spawn_file_actions_init", "posix_spawn_file_actions_destroy",
        "posix_spawn_file_actions_adddup2", "posix_spawn_file_actions_addopen")}
    available = True
    # glibc 2.29 and later, musl 1.1.24: the child changes directory itself, so spawning never moves
    # PID 1's own working directory (and two threads may spawn at once: core/prestart)
    try:
        _chdir = {name: getattr(_libc, name) for name in ("posix_spawn_file_actions_addchdir_np",
                                                          "posix_spawn_file_actions_addfchdir_np")}
        can_chdir = True
    except AttributeError:
        _chdir, can_chdir = {}, False
except (OSError, AttributeError):
    available = can_chdir = False


def _every_signal() -> bytes:
    """A sigset_t with each signal the kernel lets a process reset: 1 to 64 but SIGKILL and SIGSTOP."""
    mask = 0
    for signum in range(1, 65):
        if signum not in (_signal.SIGKILL, _signal.SIGSTOP):
            mask |= 1 << (signum - 1)
    return mask.to_bytes(8, sys.byteorder).ljust(_SIGSET, b"\0")  # one word, as the kernel's


# Made once: libc only reads them (posix_spawnattr_setsig* copy the set into the attributes).
_EVERY_SIGNAL = ctypes.create_string_buffer(_every_signal(), _SIGSET)
_NO_SIGNAL = ctypes.create_string_buffer(_SIGSET)


def _strings(items: Sequence[bytes]) -> ctypes.Array[ctypes.c_char_p]:
    array = (ctypes.c_char_p * (len(items) + 1))()
    array[:len(items)] = list(items)
    array[len(items)] = None
    return array


def _check(code: int, what: str) -> None:
    if code != 0:
        raise OSError(code, f"{what}: {os.strerror(code)}")


FileAction = tuple[int, ...] | tuple[int, int, str, int, int]


def posix_spawn(path: str, argv: Sequence[str], env: Mapping[str, str] | Mapping[bytes, bytes], *,
                file_actions: Sequence[FileAction], setsid: bool, search_path: bool, cwd: str | int | None = None
                ) -> int:
    """os.posix_spawn(path, argv, env, file_actions=..., setsigdef=<every signal>, setsigmask=(),
    setsid=...), or posix_spawnp with `search_path`; the pid, or OSError naming `path`. `cwd` (a
    path or a directory's fd, changed to in the child after the file actions) needs `can_chdir`."""
    attr = ctypes.create_string_buffer(_OPAQUE)
    actions = ctypes.create_string_buffer(_OPAQUE)
    _check(_functions["posix_spawnattr_init"](attr), "posix_spawnattr_init")
    try:
        _check(_functions["posix_spawn_file_actions_init"](actions), "posix_spawn_file_actions_init")
        try:
            flags = _SETSIGDEF | _SETSIGMASK | (_SETSID if setsid else 0)
            _check(_functions["posix_spawnattr_setflags"](attr, ctypes.c_short(flags)), "posix_spawnattr_setflags")
            _check(_functions["posix_spawnattr_setsigdefault"](attr, _EVERY_SIGNAL), "posix_spawnattr_setsigdefault")
            _check(_functions["posix_spawnattr_setsigmask"](attr, _NO_SIGNAL), "posix_spawnattr_setsigmask")
            kept: list[bytes] = []  # the paths of open actions, alive until the call returns
            # first: a directory's fd may have the number of a descriptor the dup2s below replace
            if isinstance(cwd, int):
                _check(_chdir["posix_spawn_file_actions_addfchdir_np"](actions, cwd), "posix_spawn_file_actions_addfchdir_np")
            elif cwd is not None:
                kept.append(os.fsencode(cwd))
                _check(_chdir["posix_spawn_file_actions_addchdir_np"](actions, kept[-1]),
                       "posix_spawn_file_actions_addchdir_np")
            for action in file_actions:
                if action[0] == os.POSIX_SPAWN_DUP2:
                    _check(_functions["posix_spawn_file_actions_adddup2"](actions, action[1], action[2]),
                           "posix_spawn_file_actions_adddup2")
                elif action[0] == os.POSIX_SPAWN_OPEN:
                    _, fd, name, oflag, mode = action
                    kept.append(os.fsencode(str(name)))
                    _check(_functions["posix_spawn_file_actions_addopen"](actions, fd, kept[-1], oflag, mode),
                           "posix_spawn_file_actions_addopen")
                else:
                    raise ValueError(f"file action {action[0]} is not one spawn uses")
            arguments = _strings([os.fsencode(a) for a in argv])
            environment = _strings([os.fsencode(k) + b"=" + os.fsencode(v) for k, v in env.items()])
            pid = ctypes.c_int()
            launcher = _functions["posix_spawnp" if search_path else "posix_spawn"]
            code = launcher(ctypes.byref(pid), os.fsencode(path), actions, attr, arguments, environment)
            if code != 0:
                raise OSError(code, os.strerror(code), path)
            return pid.value
        finally:
            _functions["posix_spawn_file_actions_destroy"](actions)
    finally:
        _functions["posix_spawnattr_destroy"](attr)
