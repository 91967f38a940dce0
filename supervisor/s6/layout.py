"""The paths an s6-overlay image expects under /run, made at boot: the container
environment, the scan directories' control FIFOs (so `s6-svscanctl -t` and `halt`
stop the container), the exit-code files, /run/s6/legacy-services and /var/run.

s6-overlay's own paths are made only where pyinit is the container's init (PID 1), /run
is writable and PYS6_S6_RUN is not 0: a subreaper in a developer's shell never touches
the host's /run, and nothing existing is removed (a FIFO already there is used), only
the previous boot's exit code. Everywhere else the same things live under
$PYS6_RUNDIR, where pys6's own commands (with-contenv, halt) look for them.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from .contenv import DIRECTORY_NAME, S6_CONTAINER_ENVIRONMENT, write_environment

V3_EXITCODE = "/run/s6-linux-init-container-results/exitcode"
V2_EXITCODE = "/run/s6/env-stage3/S6_STAGE2_EXITED"  # /var/run/s6/env-stage3/... once /var/run is /run
V3_SCANDIR = "/run/service"
V2_SCANDIR = "/run/s6/services"  # /var/run/s6/services
HALT = "/run/s6/basedir/bin/halt"
LEGACY_SERVICES = "/run/s6/legacy-services"
CONTROL_FIFO = os.path.join(".s6-svscan", "control")


@dataclass
class Layout:
    """Where this boot put things; `problems` are what could not be made (each a warning)."""

    container_environment: str
    scandirs: list[str]
    exitcode_files: list[str]
    legacy_services: str | None = None
    problems: list[str] = field(default_factory=list)

    def control_fifos(self) -> list[str]:
        return [os.path.join(scandir, CONTROL_FIFO) for scandir in self.scandirs]


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


def prepare(rundir: str, environ: dict[bytes, bytes], is_pid1: bool, allow_world_writable: bool = False) -> Layout:
    """Make the paths; OSError only when even the runtime directory's cannot be made."""
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
            return Layout(S6_CONTAINER_ENVIRONMENT, [V3_SCANDIR, V2_SCANDIR], [V3_EXITCODE, V2_EXITCODE],
                          LEGACY_SERVICES, problems)
        except OSError as exc:
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
    return Layout(ours, [own_scandir], [exitcode], None, problems)


def _replace_with_link(path: str, target: str) -> None:
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        import shutil

        shutil.rmtree(path)
    os.symlink(target, path)


def link_legacy_services(layout: Layout, directories: dict[str, str]) -> None:
    """/run/s6/legacy-services/<name> for each service, where scripts of v3 images look for it."""
    if layout.legacy_services is None:
        return
    for stale in os.listdir(layout.legacy_services):
        if stale not in directories:
            _forget(os.path.join(layout.legacy_services, stale))
    for name, directory in directories.items():
        link = os.path.join(layout.legacy_services, name)
        try:
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(directory, link)
        except OSError as exc:
            layout.problems.append(f"{link}: {exc.strerror}")


MAX_EXITCODE_BYTES = 64


def read_exit_code(layout: Layout) -> int | None:
    """The code a script left for the container (v3's exitcode file, else v2's), as s6-overlay reads it."""
    from ..base.files import read_regular_file

    for path in layout.exitcode_files:
        try:
            text = read_regular_file(path, MAX_EXITCODE_BYTES).decode("ascii", "replace").strip()
        except (OSError, ValueError):
            continue
        if text.isdigit() and len(text) <= 10:
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
    import shutil

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
                shutil.rmtree(path, ignore_errors=True)
