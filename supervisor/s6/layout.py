"""The paths an s6-overlay image expects under /run, made at boot: the container
environment, the scan directories' control FIFOs (so `s6-svscanctl -t` and `halt`
stop the container), the exit-code files, /run/s6/legacy-services and /var/run.

s6-overlay's own paths are made only where pyinit is the container's init (PID 1), /run
is writable and PYS6_S6_RUN is not 0: a subreaper in a developer's shell never touches
the host's /run, and nothing existing is removed (a FIFO already there is used), only
the previous boot's exit code. Everywhere else the same things live under
$PYS6_RUNDIR, where pys6's own commands (with-contenv, halt) look for them.

services.d's services run from copies in the legacy-services directory (/run/s6/legacy-services,
else $PYS6_RUNDIR/legacy-services), as s6-overlay's services-up makes them: never from /etc.

s6-rc's live directory, as s6-rc-init makes it under s6-overlay: /run/s6-rc:s6-rc-init:XXXXXX
(a new random name each boot), /run/s6-rc a link to it, servicedirs/ in it holding the copies
the s6-rc longruns run from and the directory of s6-rc's oneshot runner, where cont-init.d,
cont-finish.d and every oneshot's up and down run. Only what a script can observe is made
(the names, its working directory there), not s6-rc's own files. Where /run is not pyinit's
the longruns' copies are under $PYS6_RUNDIR/s6-rc and scripts run in their own directories.

An image that kept s6-overlay's own commands (its with-contenv knows only
/run/s6/container_environment) cannot run on a PID 1 that cannot lay out /run: `run_problem`
says so before anything runs, in one line with the fix, instead of a boot whose every
with-contenv script fails.
"""

from __future__ import annotations

import os
import stat

from .contenv import DIRECTORY_NAME, S6_CONTAINER_ENVIRONMENT, write_environment

TYPE_CHECKING = False  # typing's own costs the start path its import (and re's)
if TYPE_CHECKING:  # mypy reads real dataclasses; the start path builds them without importing dataclasses
    from collections.abc import Mapping
    from dataclasses import dataclass as record
    from dataclasses import field
else:
    from ..base.record import field, record

V3_EXITCODE = "/run/s6-linux-init-container-results/exitcode"
V2_EXITCODE = "/run/s6/env-stage3/S6_STAGE2_EXITED"  # /var/run/s6/env-stage3/... once /var/run is /run
V3_SCANDIR = "/run/service"
V2_SCANDIR = "/run/s6/services"  # /var/run/s6/services
HALT = "/run/s6/basedir/bin/halt"
LEGACY_SERVICES = "/run/s6/legacy-services"
LEGACY_DIRECTORY_NAME = "legacy-services"
RC_COMPILED_NAME = "s6-rc"  # beside the container environment: where s6-rc longruns are copied to run (rcrun)
RC_LIVE_LINK = "/run/s6-rc"  # s6-rc-init's -l default; s6-overlay's rc.init passes it
RC_LIVE_PREFIX = "s6-rc:s6-rc-init:"  # s6-rc-init's name for the directory the link points at
RC_LIVE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"  # its XXXXXX, as mkdtemp draws it
RC_SERVICEDIRS = "servicedirs"
ONESHOT_RUNNER = "s6rc-oneshot-runner"  # s6-rc's service that runs every oneshot's up and down
CONTROL_FIFO = os.path.join(".s6-svscan", "control")


@record
class Layout:
    """Where this boot put things; `problems` are what could not be made (each a warning)."""

    container_environment: str
    scandirs: list[str]
    exitcode_files: list[str]
    legacy_services: str = ""  # where services.d's services are copied to run from; "": beside the environment
    problems: list[str] = field(default_factory=list)
    rc_live: str = ""  # s6-rc's live directory under /run (/run/s6-rc:s6-rc-init:XXXXXX); "": none

    def __post_init__(self) -> None:
        if not self.legacy_services:  # /run/s6/legacy-services beside /run/s6/container_environment, and so on
            self.legacy_services = os.path.join(os.path.dirname(self.container_environment), LEGACY_DIRECTORY_NAME)

    def control_fifos(self) -> list[str]:
        return [os.path.join(scandir, CONTROL_FIFO) for scandir in self.scandirs]

    @property
    def rc_compiled(self) -> str:
        """Where s6-rc longruns are copied to run from: the live directory's servicedirs/ (as
        s6-rc-init copies them), else beside the container environment."""
        if self.rc_live:
            return os.path.join(self.rc_live, RC_SERVICEDIRS)
        return os.path.join(os.path.dirname(self.container_environment), RC_COMPILED_NAME)

    @property
    def oneshot_runner(self) -> str | None:
        """The working directory s6-overlay's oneshots and cont-init.d/cont-finish.d scripts get
        (s6-rc's oneshot runner's service directory); None: each script's own directory."""
        return os.path.join(self.rc_live, RC_SERVICEDIRS, ONESHOT_RUNNER) if self.rc_live else None

    def runs_from_copy(self, directory: str) -> bool:
        """Whether `directory` is a copy pyinit made to run a service from (services.d's or an
        s6-rc longrun's): then its supervise/ and event/ live in it, as s6-supervise keeps them."""
        return any(directory.startswith(root + os.sep) for root in (self.legacy_services, self.rc_compiled))


def run_is_ours(is_pid1: bool, allow_world_writable: bool = False) -> bool:
    """Whether s6-overlay's paths under /run are ours to make: the container's init with a
    /run it may write that no other user may (a world-writable /run owned by root is
    refused unless the operator says it is Kubernetes' doing, as s6-overlay does)."""
    if not is_pid1:
        return False
    try:
        info = os.stat("/run")
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode) or not os.access("/run", os.W_OK | os.X_OK):
        return False
    shared = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and info.st_uid != os.geteuid()
    return not shared or allow_world_writable


def _fifo(path: str) -> None:
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        os.mkfifo(path, 0o600)
        return
    if not stat.S_ISFIFO(info.st_mode):
        os.unlink(path)
        os.mkfifo(path, 0o600)


def _forget(path: str) -> None:
    """A file left by the previous boot of this container (docker restart keeps /run)."""
    if os.path.lexists(path) and not os.path.isdir(path):
        os.unlink(path)


def _var_run_points_at_run(problems: list[str]) -> None:
    """/var/run -> /run, as s6-overlay's preinit arranges; a /var/run with contents is left alone."""
    try:
        if os.path.islink("/var/run"):
            if os.path.realpath("/var/run") == "/run":
                return
            os.unlink("/var/run")
        elif os.path.isdir("/var/run"):
            os.rmdir("/var/run")  # only when empty: ENOTEMPTY is reported below
        elif not os.path.isdir("/var"):
            return
        os.symlink("/run", "/var/run")
    except OSError as exc:
        problems.append(f"/var/run is not a link to /run and cannot be made one: {exc.strerror}")


def _write_halt(path: str, fifo: str) -> None:
    """s6-overlay's /run/s6/basedir/bin/halt: here, a word to pyinit's scan control FIFO."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    temporary = path + ".new"
    with open(temporary, "w") as script:
        script.write(f"#!/bin/sh\n# pyinit: stop the container, as s6-overlay's halt does\nprintf t > {fifo}\n")
    os.chmod(temporary, 0o755)
    os.rename(temporary, path)


def prepare(rundir: str, environ: dict[bytes, bytes], is_pid1: bool, allow_world_writable: bool = False,
            needed_by: str | None = None) -> Layout:
    """Make the paths; OSError only when even the runtime directory's cannot be made. With
    `needed_by` (the image's own s6-overlay command, run_problem's caller checked /run first),
    /run's paths failing half way is RunUnusable, not a boot on the runtime directory's."""
    problems: list[str] = []
    ours = os.path.join(rundir, DIRECTORY_NAME)
    own_scandir = os.path.join(rundir, "service")
    if run_is_ours(is_pid1, allow_world_writable):
        try:
            _var_run_points_at_run(problems)
            write_environment(S6_CONTAINER_ENVIRONMENT, environ)
            for exitcode in (V3_EXITCODE, V2_EXITCODE):
                os.makedirs(os.path.dirname(exitcode), mode=0o755, exist_ok=True)
                _forget(exitcode)
            for scandir in (V3_SCANDIR, V2_SCANDIR):
                _fifo(os.path.join(scandir, CONTROL_FIFO))
            _write_halt(HALT, os.path.join(V3_SCANDIR, CONTROL_FIFO))
            os.makedirs(LEGACY_SERVICES, mode=0o755, exist_ok=True)
            _replace_with_link(ours, S6_CONTAINER_ENVIRONMENT)
            _replace_with_link(own_scandir, V3_SCANDIR)
            live = make_rc_live(RC_LIVE_LINK)
            return Layout(S6_CONTAINER_ENVIRONMENT, [V3_SCANDIR, V2_SCANDIR], [V3_EXITCODE, V2_EXITCODE],
                          LEGACY_SERVICES, problems, live)
        except OSError as exc:
            if needed_by is not None:
                raise RunUnusable(_unusable(exc.filename or "/run", exc.strerror or str(exc), needed_by)) from None
            problems.append(f"cannot arrange s6-overlay's paths under /run ({exc.filename}: {exc.strerror}); "
                            f"they are under {rundir} instead")
    for path in (ours, own_scandir):
        if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
            os.unlink(path)  # a previous boot's link to /run/s6, which this boot does not use
    write_environment(ours, environ)
    _fifo(os.path.join(own_scandir, CONTROL_FIFO))
    results = os.path.join(rundir, "s6-linux-init-container-results")
    os.makedirs(results, mode=0o700, exist_ok=True)
    exitcode = os.path.join(results, "exitcode")
    _forget(exitcode)
    legacy = os.path.join(rundir, LEGACY_DIRECTORY_NAME)
    os.makedirs(legacy, mode=0o755, exist_ok=True)
    return Layout(ours, [own_scandir], [exitcode], legacy, problems)


def make_rc_live(link: str) -> str:
    """s6-rc-init's live directory: a fresh `s6-rc:s6-rc-init:XXXXXX` beside `link` with
    servicedirs/ and the oneshot runner's directory in it, `link` pointing at it (relative, as
    s6-rc-init makes it); the previous boot's (docker restart keeps a /run that is no tmpfs)
    removed first. Returns the directory's path."""
    parent = os.path.dirname(link)
    if os.path.islink(link):
        from ..core.servicedir import remove_tree  # only here: it loads the service model

        previous = os.readlink(link)
        target = os.path.join(parent, previous)
        if os.path.basename(previous).startswith(RC_LIVE_PREFIX) and os.path.isdir(target) \
                and not os.path.islink(target):
            remove_tree(target)
    while True:  # a name no other directory has (s6-rc-init's mkdtemp; os.urandom: `secrets` costs ~5 ms)
        name = RC_LIVE_PREFIX + "".join(RC_LIVE_ALPHABET[byte % len(RC_LIVE_ALPHABET)] for byte in os.urandom(6))
        live = os.path.join(parent, name)
        try:
            os.mkdir(live, 0o755)
            break
        except FileExistsError:
            continue
    os.makedirs(os.path.join(live, RC_SERVICEDIRS, ONESHOT_RUNNER), mode=0o755)
    _replace_with_link(link, name)
    return live


def _replace_with_link(path: str, target: str) -> None:
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        import shutil

        shutil.rmtree(path)
    os.symlink(target, path)


def clear_legacy_services(layout: Layout) -> None:
    """Every copy of the previous boot (or a previous pys6's links to /etc) gone, as services-up's
    s6-rmrf does before it copies: a copy is made fresh from services.d on every boot."""
    from ..core.servicedir import remove_tree

    directory = layout.legacy_services
    if os.path.islink(directory) or not os.path.isdir(directory):
        remove_tree(directory)
        os.makedirs(directory, mode=0o755)
        return
    for entry in os.listdir(directory):
        remove_tree(os.path.join(directory, entry))


MAX_EXITCODE_BYTES = 64


def read_exit_code(layout: Layout) -> int | None:
    """The code a script left for the container (v3's exitcode file, else v2's), as s6-overlay reads it."""
    from ..base.files import read_regular_file

    for path in layout.exitcode_files:
        try:
            text = read_regular_file(path, MAX_EXITCODE_BYTES).decode("ascii", "replace").strip()
        except (OSError, ValueError):
            continue
        if text.isdecimal() and len(text) <= 10:
            return int(text) & 0xFF
    return None


def record_exit_code(layout: Layout, code: int) -> None:
    """What pyinit decided (the main program's code, a failed stage), where a later script may overwrite it."""
    try:
        with open(layout.exitcode_files[0], "w") as file:
            file.write(f"{code}\n")
    except OSError:
        pass


def link_into(scandir: str, name: str, target: str) -> None:
    """scandir/name -> target (v2's /var/run/s6/services/<name> is v3's /run/service/<name>)."""
    link = os.path.join(scandir, name)
    if os.path.islink(link) or os.path.isfile(link):
        os.unlink(link)
    elif os.path.isdir(link):
        import shutil

        shutil.rmtree(link)
    os.symlink(target, link)


def forget_other_services(layout: Layout, names: set[str]) -> None:
    """A previous boot's entries for services this one does not have (a restarted container keeps /run)."""
    for scandir in layout.scandirs:
        try:
            entries = os.listdir(scandir)
        except OSError:
            continue
        for entry in entries:
            path = os.path.join(scandir, entry)
            if entry.startswith(".") or entry in names:
                continue
            if os.path.islink(path):
                os.unlink(path)
            elif os.path.isdir(os.path.join(path, "supervise")):
                import shutil  # only when there is one to remove: it brings bz2, lzma and fnmatch

                shutil.rmtree(path, ignore_errors=True)


# --- can this PID 1 serve s6-overlay's /run paths? -------------------------------------

class RunUnusable(Exception):
    """One line: which path, its owner and mode, and what the container's manager should do."""


def s6_command_needing_run(environ: Mapping[str, str]) -> str | None:
    """The image's own s6-overlay with-contenv on PATH (it reads /run/s6/container_environment
    and nothing else), or None where there is none or it is pys6's (which finds the runtime
    directory's)."""
    from ..base.environ import find_program

    found = find_program("with-contenv", environ.get("PATH", os.defpath))
    if found is None or os.path.basename(os.path.realpath(found)) == "pys6-with-contenv":
        return None
    return found


def run_problem(environ: Mapping[str, str], allow_world_writable: bool = False) -> str | None:
    """Why s6-overlay's paths under /run cannot be laid out by this (PID 1) pyinit although the
    image's own commands need them, as one line with the fix; None when they can be, or when
    nothing of the image needs them. Only looks: nothing is made or changed."""
    needed_by = s6_command_needing_run(environ)
    if needed_by is None or run_is_ours(True, allow_world_writable):
        return None
    try:
        info = os.stat("/run")
    except OSError as exc:
        return f"/run: {exc.strerror}, but {needed_by} needs /run/s6/container_environment: " \
               f"give the container a /run (a tmpfs owned by uid {os.geteuid()})"
    if not stat.S_ISDIR(info.st_mode):
        return _unusable("/run", "not a directory", needed_by)
    if os.access("/run", os.W_OK | os.X_OK):  # writable, but by others too: refused as s6-overlay refuses it
        return (f"/run belongs to uid {info.st_uid} with mode {stat.S_IMODE(info.st_mode):04o}, which others "
                f"can write, and {needed_by} needs /run/s6/container_environment: "
                f"{_fix()}, or set S6_YES_I_WANT_A_WORLD_WRITABLE_RUN_BECAUSE_KUBERNETES=1")
    return _unusable("/run", f"uid {os.geteuid()} cannot write it", needed_by)


def _fix() -> str:
    uid, gid = os.geteuid(), os.getegid()
    return (f"mount /run as a tmpfs owned by uid {uid} (docker run --tmpfs /run:exec,uid={uid},gid={gid}; "
            f"compose: tmpfs: [\"/run:exec,uid={uid},gid={gid}\"])")


def _unusable(path: str, reason: str, needed_by: str) -> str:
    try:
        info = os.stat(path)
        owner = f"belongs to uid {info.st_uid} with mode {stat.S_IMODE(info.st_mode):04o}"
    except OSError:
        owner = "is missing"
    return f"{path} {owner} ({reason}), and {needed_by} needs /run/s6/container_environment: {_fix()}"
