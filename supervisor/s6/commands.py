"""pys6's own with-contenv, printcontenv, s6-setuidgid and halt, for images that removed
s6-overlay (installed under those names by `pyinit --install-s6-commands DIR` only).

They behave as s6-overlay's: `#!/usr/bin/with-contenv bash` runs bash in the container
environment (unless S6_KEEP_ENV is non-zero, when it changes nothing); `printcontenv
NAME` prints one variable of it; `s6-setuidgid USER PROG...` runs PROG as USER; `halt`
stops the container. Standard library only: a shebang pays their start-up on every script.
"""

import os
import sys
from collections.abc import Callable, Sequence

from ..base import cli
from ..base.environ import exec_environment, exec_program
from ..base.terms import EXIT_SYSTEM, EXIT_USAGE, exec_failure_code
from . import contenv

TYPE_CHECKING = False  # typing's own costs every with-contenv shebang milliseconds

# s6-overlay's printcontenv of a name with no file there: `s6-cat < FILE` under `sh -e`, whose
# failed redirection exits 2 (measured under 3.2.3.2); an empty value under S6_KEEP_ENV is 1.
NO_SUCH_FILE = 2

if TYPE_CHECKING:
    from pathlib import Path  # only install() imports it: a shebang's start-up stays small


def _fatal(program: str, message: str, code: int = EXIT_SYSTEM) -> int:
    sys.stderr.write(f"{program}: fatal: {message}\n")
    return code


def _keep_env(environ: dict[str, str]) -> bool:
    """s6-overlay's test: `eltest 0${S6_KEEP_ENV} -eq 0`: only digits count, and only non-zero keeps."""
    value = environ.get("S6_KEEP_ENV", "")
    return value.isascii() and value.isdecimal() and int(value[:18]) > 0


def _own_environment() -> dict[bytes, bytes]:
    """The environment this command was exec'd with, not Python's os.environ: in the C locale
    Python's start-up adds LC_CTYPE there, which s6-overlay's execline commands never pass on."""
    found = exec_environment()
    return dict(os.environb) if found is None else found


def _exec(program: str, argv: Sequence[str], environ: dict[bytes, bytes] | None = None) -> int:
    environ = _own_environment() if environ is None else environ
    try:
        exec_program(argv, environ)  # searched on its PATH (else os.defpath), none added
    except OSError as exc:
        return _fatal(program, f"unable to exec {argv[0]}: {exc.strerror}", exec_failure_code(exc))
    return EXIT_SYSTEM  # not reached


def with_contenv(argv: Sequence[str]) -> int:
    if not argv:
        return _fatal("with-contenv", "too few arguments", EXIT_USAGE)
    if _keep_env(dict(os.environ)):
        return _exec("with-contenv", argv)
    directory = contenv.find_directory(os.environ)
    if directory is None:
        where = ", ".join(contenv.candidate_directories(os.environ))
        return _fatal("with-contenv", f"unable to envdir: no container environment at {where}")
    path = os.environb.get(b"PATH")
    base = {b"PATH": path} if path is not None else {}  # s6-overlay's `emptyenv -p`
    try:
        reading = contenv.applied(base, directory)
    except OSError as exc:
        return _fatal("with-contenv", f"unable to envdir {directory}: {exc.strerror}")
    # What pyinit leaves out of every start, with-contenv leaves out too (the same reader): a value
    # no exec can pass would make this exec fail with E2BIG, and with it every such script.
    for entry in reading.left_out:
        sys.stderr.write(f"with-contenv: warning: {directory}/{entry.name} left out: {entry.reason}\n")
    if reading.left_out_count > len(reading.left_out):
        sys.stderr.write(f"with-contenv: warning: {reading.left_out_count} entries of {directory} left out in all\n")
    return _exec("with-contenv", argv, reading.environment)


def printcontenv(argv: Sequence[str]) -> int:
    if not argv:
        return _fatal("printcontenv", "too few arguments", EXIT_USAGE)
    name = argv[0]
    if _keep_env(dict(os.environ)):
        value = _own_environment().get(os.fsencode(name), b"")
        if not value:
            return 1
        sys.stdout.buffer.write(value + b"\n")
        return 0
    directory = contenv.find_directory(os.environ)
    if directory is None:
        return NO_SUCH_FILE
    content = contenv.read_variable(directory, name)  # a FIFO is not waited on, a huge file not read
    if content is None:
        return NO_SUCH_FILE
    if isinstance(content, str):
        sys.stderr.write(f"printcontenv: warning: {directory}/{name} left out: {content}\n")
        return 1
    sys.stdout.buffer.write(content + b"\n")  # as s6-overlay's: the file as is, then a newline
    return 0


def _account(spec: str) -> tuple[int, int, list[int]] | str:
    """USER, or UID:GID as s6-envuidgid reads them: (uid, gid, supplementary groups) or an error."""
    import grp
    import pwd

    if ":" in spec:
        uid_text, _, gid_text = spec.partition(":")
        if uid_text.isdecimal() and gid_text.isdecimal():
            return int(uid_text), int(gid_text), [int(gid_text)]
        return f"invalid uid:gid {spec!r}"
    try:
        record = pwd.getpwnam(spec)
    except KeyError:
        return f"unknown user: {spec}"
    groups = [g.gr_gid for g in grp.getgrall() if spec in g.gr_mem]
    return record.pw_uid, record.pw_gid, sorted({record.pw_gid, *groups})


def setuidgid(argv: Sequence[str]) -> int:
    if argv and argv[0] == "--":  # s6's getopt: no option of its own, but -- ends them
        argv = argv[1:]
    if len(argv) < 2 or argv[0].startswith("-"):  # as s6-setuidgid: --help is no account
        sys.stderr.write("s6-setuidgid: usage: s6-setuidgid username prog...\n")
        return EXIT_USAGE
    account = _account(argv[0])
    if isinstance(account, str):
        return _fatal("s6-setuidgid", account)
    uid, gid, groups = account
    if os.geteuid() != 0:
        if (os.geteuid(), os.getegid()) == (uid, gid):
            return _exec("s6-setuidgid", argv[1:])  # already that user: nothing to drop
        return _fatal("s6-setuidgid", f"only root can become {argv[0]} (uid {uid}); this runs as uid {os.geteuid()}")
    try:
        os.setgroups(groups)
        os.setgid(gid)
        os.setuid(uid)
    except OSError as exc:
        return _fatal("s6-setuidgid", f"unable to become {argv[0]}: {exc.strerror}")
    return _exec("s6-setuidgid", argv[1:])


def control_fifos(environ: dict[str, str]) -> list[str]:
    """Where pyinit reads s6-svscanctl's commands, in the order halt tries them."""
    found = ["/run/service/.s6-svscan/control"]
    for rundir in ([environ["PYS6_RUNDIR"]] if environ.get("PYS6_RUNDIR") else []) + ["/run/pys6", f"/tmp/pys6-{os.getuid()}"]:
        found.append(os.path.join(rundir, "service", ".s6-svscan", "control"))
    return found


def write_control(letter: bytes, fifos: list[str]) -> str | None:
    """Write `letter` to the first FIFO a pyinit reads; the reason, if none does."""
    reasons = []
    for fifo in fifos:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        except OSError as exc:  # ENXIO: nobody reads it
            reasons.append(f"{fifo}: {exc.strerror}")
            continue
        try:
            os.write(fd, letter)
            return None
        except OSError as exc:
            reasons.append(f"{fifo}: {exc.strerror}")
        finally:
            os.close(fd)
    return "; ".join(reasons) or f"no pyinit control FIFO at {', '.join(fifos)}"


HALT_USAGE = "halt [ -n ] [ -d | -f ] [ -w ] [ -W ]"


def halt(argv: Sequence[str]) -> int:
    """s6-overlay's halt is `s6-linux-init-hpr -h`: its flags are taken (none changes how pyinit
    stops, but -w only writes wtmp: nothing to do), anything else is a usage error, never a halt."""
    letters = ""
    for arg in argv:
        if arg == "--" or not arg.startswith("-") or arg == "-":
            sys.stderr.write(f"halt: usage: {HALT_USAGE}\n")
            return EXIT_USAGE
        letters += arg[1:]
    if any(letter not in "ndfwWhpr" for letter in letters):
        sys.stderr.write(f"halt: usage: {HALT_USAGE}\n")
        return EXIT_USAGE
    if "w" in letters:
        return 0
    problem = write_control(b"t", control_fifos(dict(os.environ)))
    if problem:
        return _fatal("halt", f"unable to reach pyinit: {problem}")
    return 0


def _entry(command: Callable[[Sequence[str]], int], program: str, usage: str) -> Callable[[], None]:
    """Under pys6's own name (pys6-halt) --help, --version and unknown options are answered as by
    every pys6 command; under s6-overlay's (halt, with-contenv) the arguments are s6-overlay's."""
    def main() -> None:
        argv = sys.argv[1:]
        if cli.own_name():
            answered = cli.answer(argv, program, f"usage: {usage}")
            if answered is not None:
                sys.exit(answered)
            if argv and argv[0].startswith("-") and argv[0] != "--" and program != "pys6-halt":
                sys.exit(cli.usage_error(program, f"unknown option {argv[0][:100]!r}"))
            if program == "pys6-halt" and any(arg.startswith("--") for arg in argv):
                sys.exit(cli.usage_error(program, f"unknown option {next(a for a in argv if a.startswith('--'))[:100]!r}"))
        sys.exit(command(argv))

    return main


with_contenv_main = _entry(with_contenv, "pys6-with-contenv", "pys6-with-contenv PROG ARGS...  (as s6-overlay's "
                           "with-contenv: PROG in the container environment)")
printcontenv_main = _entry(printcontenv, "pys6-printcontenv", "pys6-printcontenv NAME  (one variable of the "
                           "container environment, as s6-overlay's printcontenv)")
setuidgid_main = _entry(setuidgid, "pys6-setuidgid", "pys6-setuidgid ACCOUNT PROG...  (ACCOUNT: a user name or "
                        "UID:GID; as s6-setuidgid)")
halt_main = _entry(halt, "pys6-halt", f"pys6-halt  (stops the container, as s6-overlay's halt: {HALT_USAGE})")

# The names `pyinit --install-s6-commands` gives, and the console script each points at.
COMMANDS = {
    "with-contenv": "pys6-with-contenv",
    "printcontenv": "pys6-printcontenv",
    "s6-setuidgid": "pys6-setuidgid",
    "halt": "pys6-halt",
    "s6-svc": "pys6-s6-svc",
    "s6-svstat": "pys6-s6-svstat",
    "s6-svwait": "pys6-s6-svwait",
    "s6-svok": "pys6-s6-svok",
    "s6-svscanctl": "pys6-s6-svscanctl",
    "s6-notifyoncheck": "pys6-s6-notifyoncheck",
    "s6-log": "pys6-log",
    "s6-format-filter": "pys6-format-filter",
    "logutil-service": "pys6-logutil-service",
    "supercronic": "pycrond",
}


# The image's own directories for commands: installing there is installing for the whole
# image, which then gets s6-overlay v3's /command too (not for a private directory: a test's,
# a venv's bin, where a /command on the host would be a surprise).
IMAGE_BIN_DIRS = ("/usr/bin", "/bin", "/usr/local/bin", "/usr/sbin", "/sbin", "/usr/local/sbin")
S6_COMMAND_DIR = "/command"


def install(directory: str, force: bool, command_dir: str | None = None) -> int:
    """Link COMMANDS' names in `directory` to pys6's console scripts; with the image's own bin
    directory, the same links in s6-overlay v3's /command (`command_dir`), where scripts
    written for v3 find them (`#!/command/with-contenv sh`) and pyinit's PATH puts it first."""
    from pathlib import Path

    from ..base.links import console_script, install_link

    if command_dir is None and os.path.realpath(directory) in {os.path.realpath(d) for d in IMAGE_BIN_DIRS}:
        command_dir = S6_COMMAND_DIR
    problems = 0
    targets: dict[str, Path] = {}
    for name, script in COMMANDS.items():
        target = console_script(script)
        if target is None:
            sys.stderr.write(f"pyinit: {script} is not installed; {name} skipped\n")
            problems += 1
            continue
        targets[name] = target
        problem = install_link(Path(directory) / name, target, force)
        if problem:
            sys.stderr.write(f"pyinit: {problem}\n")
            problems += 1
        else:
            sys.stdout.write(f"{Path(directory) / name} -> {target}\n")
    if command_dir is not None and targets:
        problems += _install_command_dir(Path(command_dir), targets)
    return 1 if problems else 0


def _install_command_dir(command_dir: "Path", targets: "dict[str, Path]") -> int:
    """The links in `command_dir` when it is missing or holds only links pys6 made (a re-run,
    another venv's); anything else there (s6-overlay's own programs) is left alone, --force or
    not: the image has its /command. The number of links that failed."""
    from ..base.links import install_link

    ours = set(COMMANDS.values())  # a link to any pys6 console script, this venv's or another's
    try:
        if command_dir.is_symlink() or (command_dir.exists() and not command_dir.is_dir()):
            foreign = [command_dir.name]
        elif command_dir.exists():
            foreign = [entry.name for entry in command_dir.iterdir()
                       if not (entry.is_symlink() and os.path.basename(os.readlink(entry)) in ours)]
        else:
            foreign = []
        if foreign:
            sys.stdout.write(f"{command_dir} holds programs not pys6's ({', '.join(sorted(foreign)[:3])}...): "
                             "left as it is\n")
            return 0
        command_dir.mkdir(mode=0o755, exist_ok=True)
    except OSError as exc:
        sys.stderr.write(f"pyinit: cannot make {command_dir}: {exc.strerror}\n")
        return 1
    problems = 0
    for name, target in targets.items():
        problem = install_link(command_dir / name, target, force=True)  # only pys6's links are there
        if problem:
            sys.stderr.write(f"pyinit: {problem}\n")
            problems += 1
        else:
            sys.stdout.write(f"{command_dir / name} -> {target}\n")
    return problems
