"""The environment each process pyinit starts gets, as real s6-overlay v3 gives it.

Measured under s6-overlay 3.2.3.2 (the rig of ../shared/s6-overlay-real, tests/test_env_parity.py):
- S6_KEEP_ENV unset or 0 (stage0's `test "0$S6_KEEP_ENV" -eq 0`): every script, service,
  oneshot and the main program starts with PATH only; `with-contenv` gives PATH plus the
  container environment directory as it stands when it runs (what a cont-init script wrote
  there included);
- S6_KEEP_ENV non-zero: the container's environment, unchanged, and `with-contenv` a no-op.

"The container's environment" is what pyinit was exec'd with, as s6-overlay's `/init` (a
`/bin/sh` script) hands it on: PATH made as `/init` makes it (pyinit's own, see init.py),
and PWD, which that shell exports, set to the working directory. It is read from
/proc/self/environ, the environment exactly as the process was exec'd: Python's C-locale
coercion sets LC_CTYPE in pyinit's own os.environ at interpreter start, and pyinit sets
PYS6_METRICS_DIR there; neither is the container's. PYS6_METRICS_DIR is handed on only when
pyinit serves metrics (PYS6_METRICS_LISTEN or PYS6_METRICS_FILE), as pys6's one addition.

What s6-rc adds on top (container/scripts.py, measured the same way): a oneshot's up and down
get RC_NAME=<its name> (s6-rc's oneshot runner sets it), cont-init.d and cont-finish.d scripts
RC_NAME=legacy-cont-init (s6-overlay's oneshot that runs them) and the PWD its /bin/sh script
exports (`shell_pwd`: the oneshot runner's directory, their working directory); the main
program PWD=<workdir> and OLDPWD=/ (rc.init's `cd`). Services and longruns get none of them.
"""

from __future__ import annotations

import os

from ..base.environ import exec_environment

TYPE_CHECKING = False  # collections.abc's import brings collections' (a millisecond of the start path)
if TYPE_CHECKING:
    from collections.abc import Mapping

METRICS_DIR_VARIABLE = b"PYS6_METRICS_DIR"
__all__ = ["ChildEnvironment", "container_environment", "exec_environment", "main_program_environment", "shell_pwd"]


def _working_directory(given: bytes | None) -> bytes | None:
    """PWD as a POSIX shell exports it: the inherited value when it is absolute and names the
    working directory, else the physical one (None when even that cannot be had)."""
    try:
        return shell_pwd(given, os.getcwdb())
    except OSError:  # a removed working directory: the shell exports none either
        return None


def shell_pwd(given: bytes | None, directory: bytes) -> bytes:
    """PWD as a POSIX shell started in `directory` exports it to what it runs: `given` (the
    PWD it inherited) when absolute and naming that directory, else the physical path (dash,
    s6-overlay's /bin/sh, on startup). OSError when `directory` cannot be resolved."""
    if given and given.startswith(b"/"):
        try:
            there, here = os.stat(given), os.stat(directory)
            if (there.st_dev, there.st_ino) == (here.st_dev, here.st_ino):
                return given
        except OSError:  # it names nothing: the physical one, as the shell does
            pass
    return os.path.realpath(directory, strict=True)


def container_environment(own: Mapping[bytes, bytes], metrics_dir: str, serves_metrics: bool,
                          exec_env: Mapping[bytes, bytes] | None = None) -> dict[bytes, bytes]:
    """What s6-overlay's /init would hand on: the environment pyinit was exec'd with (`exec_env`,
    else `own` when /proc could not tell), with pyinit's PATH and the shell's PWD, and
    PYS6_METRICS_DIR only when metrics are served. `own` is pyinit's os.environb."""
    base = dict(own if exec_env is None else exec_env)
    if b"PATH" in own:
        base[b"PATH"] = own[b"PATH"]
    base.pop(METRICS_DIR_VARIABLE, None)
    if serves_metrics and metrics_dir:
        base[METRICS_DIR_VARIABLE] = os.fsencode(metrics_dir)
    pwd = _working_directory(base.get(b"PWD"))
    if pwd is not None:
        base[b"PWD"] = pwd
    return base


def main_program_environment(env: dict[bytes, bytes], given_pwd: bytes | None) -> dict[bytes, bytes]:
    """`env` as s6-overlay's rc.init hands it to the CMD: that /bin/sh script, started in /,
    does `cd <workdir>` first, so PWD=<workdir> (as /init's shell exported it: `given_pwd`, the
    PWD pyinit was exec'd with, where it names the working directory) and OLDPWD=/."""
    try:
        env[b"PWD"] = shell_pwd(given_pwd, os.getcwdb())
    except OSError:  # a removed working directory: no cd, none of the two
        return env
    env[b"OLDPWD"] = b"/"
    return env


class ChildEnvironment:
    """Call it for the environment of the next process started (a new dict each time: a
    caller may add to it)."""

    def __init__(self, keep_env: int, container: dict[bytes, bytes]) -> None:
        self.keep_env = keep_env
        self.container = container
        self._minimal = {b"PATH": container.get(b"PATH", os.defpath.encode())}

    def __call__(self) -> dict[bytes, bytes]:
        if self.keep_env > 0:
            return dict(self.container)
        return dict(self._minimal)
