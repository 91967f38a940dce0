"""A command does only what it is asked (issue 25): every installed command, and every name
`pyinit --install-s6-commands` links, answers --help and --version touching nothing.

pys6's own names (pyinit, pysvc, pysvstat, pycrond, pys6-*) print their usage on stdout (exit 0)
and the distribution's version; the s6 names (s6-svc, s6-svstat, ...) answer as the real s6
programs do (usage on stderr, exit 100: measured against Debian's /usr/bin/s6-*). Each runs from
a script of this checkout, made as pip makes the console scripts, in a throwaway directory with
no pod: a control socket and an s6-svscan FIFO wait where a client would reach for them, and
neither may be touched, nor any file created.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from harness import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SCRIPTS: dict[str, str] = PYPROJECT["project"]["scripts"]
SITE = next(Path(p) for p in sys.path if p.endswith("site-packages"))
S6_NAMES = ("s6-svc", "s6-svstat", "s6-svwait", "s6-svscanctl", "s6-notifyoncheck", "s6-log",
            "s6-setuidgid", "logutil-service")


def _wrapper(entry: str) -> str:
    module, _, function = entry.partition(":")
    return (f"#!{sys.executable}\nimport sys\nfrom {module} import {function}\n"
            f"sys.exit({function}())\n")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv-like bin/ of this checkout's commands, then `pyinit --install-s6-commands` into links/."""
    root = tmp_path_factory.mktemp("venv")
    shutil.copy(Path(sys.prefix) / "pyvenv.cfg", root / "pyvenv.cfg")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    for name, entry in SCRIPTS.items():
        (bin_dir / name).write_text(_wrapper(entry))
    for name in PYPROJECT["tool"]["setuptools"]["script-files"]:
        text = (REPO / name).read_text().replace("#!python", f"#!{sys.executable}", 1)
        (bin_dir / Path(name).name).write_text(text)
    for path in bin_dir.iterdir():
        if not path.is_symlink():
            path.chmod(0o755)
    links = root / "links"
    links.mkdir()
    done = subprocess.run([str(bin_dir / "python"), "-m", "supervisor", "--install-s6-commands", str(links)],
                          env=_env(root), capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return root


def _env(root: Path) -> dict[str, str]:
    return {"PATH": f"{root / 'bin'}:/usr/bin:/bin", "PYTHONPATH": f"{REPO}:{SITE}", "HOME": str(root / "home"),
            "PYS6_RUNDIR": str(root / "run"), "LANG": "C.UTF-8"}


def _own_commands(root: Path) -> list[Path]:
    return sorted(p for p in (root / "bin").iterdir() if p.name != "python")


def _linked(root: Path) -> list[Path]:
    return sorted((root / "links").iterdir())


def _tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def _run_untouched(root: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run argv with a bait socket and FIFO in its runtime directory; assert nothing reached or made."""
    work = root / "work"
    for directory in (work, root / "home", root / "run"):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(mode=0o700)
    fifo = root / "run" / "service" / ".s6-svscan" / "control"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    bait = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bait.bind(str(root / "run" / "control.sock"))
    bait.listen(8)
    before = {path: _tree(path) for path in (work, root / "home", root / "run")}
    run_pys6_existed = os.path.exists("/run/pys6")
    try:
        done = subprocess.run(argv, cwd=work, env=_env(root), capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
        assert select.select([bait], [], [], 0)[0] == [], f"{argv}: connected to the control socket"
        try:
            written = os.read(reader, 100)
        except BlockingIOError:
            written = b""
        assert written == b"", f"{argv}: wrote {written!r} to s6-svscan's control FIFO"
    finally:
        os.close(reader)
        bait.close()
    for path, tree in before.items():
        assert _tree(path) == tree, f"{argv}: created {sorted(_tree(path) - tree)} in {path}"
    assert os.path.exists("/run/pys6") == run_pys6_existed, f"{argv}: made /run/pys6"
    return done


VERSION = PYPROJECT["project"]["version"]


def test_the_package_version_is_the_distributions() -> None:
    import supervisor

    assert supervisor.__version__ == VERSION


def test_every_own_command_answers_help_on_stdout(installed: Path) -> None:
    names = [p.name for p in _own_commands(installed)]
    assert {"pyinit", "pysvc", "pysvstat", "pycrond", "pys6-halt", "pys6-tmux-save"} <= set(names)
    for command in _own_commands(installed):
        for flag in ("--help", "-h"):
            if command.name in ("pysvc", "pys6-s6-svc", "pys6-s6-svscanctl") and flag == "-h":
                continue  # their -h is SIGHUP, as s6-svc's and s6-svscanctl's (tested below)
            done = _run_untouched(installed, [str(command), flag])
            assert done.returncode == 0, (command.name, flag, done.stderr)
            assert "usage" in done.stdout.lower(), (command.name, flag, done.stdout)


def test_every_own_command_answers_version(installed: Path) -> None:
    for command in _own_commands(installed):
        done = _run_untouched(installed, [str(command), "--version"])
        assert done.returncode == 0, (command.name, done.stderr)
        assert VERSION in done.stdout, (command.name, done.stdout)


def test_an_unknown_option_is_a_usage_error_with_a_hint(installed: Path) -> None:
    for command in _own_commands(installed):
        done = _run_untouched(installed, [str(command), "--no-such-option"])
        expected = 2 if command.name == "pycrond" else 100
        assert done.returncode == expected, (command.name, done.returncode, done.stderr)
        assert "--help" in done.stderr, (command.name, done.stderr)
        assert "--no-such-option" in done.stderr, (command.name, done.stderr)


def test_the_s6_names_answer_as_the_real_s6_programs(installed: Path) -> None:
    linked = {p.name: p for p in _linked(installed)}
    assert {*S6_NAMES, "s6-svok"} <= set(linked)
    for name in S6_NAMES:
        real = shutil.which(name, path="/usr/bin")
        for flag in ("--help", "--version"):
            done = _run_untouched(installed, [str(linked[name]), flag])
            assert done.stdout == "", (name, flag, done.stdout)
            assert done.returncode == 100, (name, flag, done.returncode, done.stderr)
            assert f"{name}: usage:" in done.stderr, (name, flag, done.stderr)
            if real is not None and name != "logutil-service":  # same code, same stream, as Debian's s6
                measured = subprocess.run([real, flag], capture_output=True, text=True, timeout=10, cwd="/")
                assert measured.returncode == done.returncode and not measured.stdout, (name, flag)
    for flag in ("--help", "--version"):  # s6-svok takes no option: "--help" is a directory, not supervised
        assert _run_untouched(installed, [str(linked["s6-svok"]), flag]).returncode == 1


def test_halt_and_the_contenv_commands_under_s6_overlays_names(installed: Path) -> None:
    linked = {p.name: p for p in _linked(installed)}
    done = _run_untouched(installed, [str(linked["halt"]), "--help"])
    assert done.returncode == 100 and "halt: usage:" in done.stderr, done.stderr
    # with-contenv's arguments are a program (it is a shebang's interpreter): "--help" is one to
    # run in the container environment, as under s6-overlay's execline script, and with none here
    # it fails as that script's s6-envdir does (111) where there is none (root's /run), or as its
    # exec of "--help" does where one is found (uid 1000's runtime directory); never a usage text.
    # printcontenv's is a variable's name.
    done = _run_untouched(installed, [str(linked["with-contenv"]), "--help"])
    assert (done.returncode == 111 and "unable to envdir" in done.stderr) or \
        (done.returncode in (126, 127) and "unable to exec --help" in done.stderr), done.stderr
    assert "usage" not in done.stdout + done.stderr
    assert _run_untouched(installed, [str(linked["printcontenv"]), "--help"]).returncode == 2


def test_s6_svc_h_is_still_sighup(installed: Path) -> None:
    """-h with a service is s6-svc's SIGHUP: it goes to pyinit (none here: exit 102 as for any command)."""
    for command in (installed / "links" / "s6-svc", installed / "bin" / "pys6-s6-svc"):
        done = subprocess.run([str(command), "-h", "cron"], env={**_env(installed), "PYS6_RUNDIR": str(installed / "none")},
                              capture_output=True, text=True, timeout=30)
        assert "usage" not in done.stderr, done.stderr
    done = subprocess.run([str(installed / "bin" / "pysvc"), "-h", "cron"],
                          env={**_env(installed), "PYS6_RUNDIR": str(installed / "none")},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 102, done.stderr


def test_pyinit_refuses_a_program_that_looks_like_an_option(installed: Path) -> None:
    pyinit = str(installed / "bin" / "pyinit")
    done = _run_untouched(installed, [pyinit, "-x"])
    assert done.returncode == 100 and "--help" in done.stderr, done.stderr
    done = _run_untouched(installed, [pyinit, "--install-s6-commands"])
    assert done.returncode == 100, done.stderr


def test_pyinit_runs_a_dash_program_after_double_dash(installed: Path, tmp_path: Path) -> None:
    """`pyinit -- -prog`: the refusal above is of options only; after -- a program is a program."""
    etc = tmp_path / "etc"
    etc.mkdir()
    prog = installed / "bin" / "-prog"
    prog.write_text("#!/bin/sh\necho ran-dash-prog\n")
    prog.chmod(0o755)
    try:
        env = {**_env(installed), "PYS6_ETC": str(etc), "PYS6_RUNDIR": str(tmp_path / "run")}
        done = subprocess.run([str(installed / "bin" / "pyinit"), "--", "-prog"], env=env, capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)
    finally:
        prog.unlink()
    assert done.returncode == 0, done.stderr
    assert "ran-dash-prog" in done.stdout

