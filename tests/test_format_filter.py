"""pys6's s6-format-filter (for images without s6-overlay) against s6-portable-utils' own:
s6-overlay 3.2.3.2's build (/opt/s6-overlay-real) or a distribution's, the same input and
arguments, the same stdout, stderr and exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parent.parent
REAL = next((p for p in (Path("/usr/bin/s6-format-filter"),
                         Path(os.environ.get("S6O_PREFIX", "/opt/s6-overlay-real")) / "rootfs-overlay/command/s6-format-filter")
             if p.exists()), None)
needs_real = pytest.mark.skipif(REAL is None, reason="needs a real s6-format-filter (s6-overlay's, tests/differential/rig/install.sh)")


def ours(tmp_path: Path) -> Path:
    """pys6-format-filter from this checkout, linked as s6-format-filter (as --install-s6-commands links it)."""
    script = tmp_path / "pys6-format-filter"
    if not script.exists():
        script.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(CHECKOUT)!r})\n"
                          "from supervisor.s6.formatfilter import main\nmain()\n")
        script.chmod(0o755)
        (tmp_path / "s6-format-filter").symlink_to(script)
    return tmp_path / "s6-format-filter"


def run(program: Path, args: list[str], data: bytes) -> tuple[bytes, bytes, int]:
    done = subprocess.run(["s6-format-filter", *args], executable=str(program), input=data, capture_output=True,
                          timeout=20, env={"PATH": "/usr/bin:/bin"})
    return done.stdout, done.stderr, done.returncode


CASES = [
    (["[%s]"], b"one\ntwo\n"),
    (["%s"], b""),
    (["<%s>"], b"last line with no newline"),
    (["%% %s %%"], b"100%\n\n\n"),
    (["%0: %1 %2 [%s] %1"], b"a\nb\n"),
    (["%9"], b"x\n"),  # no ninth argument: refused
    (["%9 %s"] + [str(i) for i in range(1, 12)], b"x\ny\n"),  # only nine are kept
    (["%q"], b"x\n"),
    (["ends with %"], b"x\n"),
    (["%"], b""),
    (["\\n%s\\t"], b"no escapes\n"),
    (["cut [%s]"], b"before\0after\nnext\n"),
    (["--help"], b"a\n"),  # no options: --help is a format
    ([], b"x\n"),
    (["%1%s"], b"y\n"),
    (["%s"], bytes(range(1, 256)) + b"\n" + b"long " * 5000 + b"\n"),
]


@needs_real
@pytest.mark.parametrize("args,data", CASES, ids=[repr(c[0])[:40] for c in CASES])
def test_pys6_format_filter_does_what_s6_format_filter_does(tmp_path: Path, args: list[str], data: bytes) -> None:
    if any("\0" in a for a in args):
        pytest.skip("an argument cannot hold a NUL")
    assert REAL is not None
    assert run(ours(tmp_path), args, data) == run(REAL, args, data)


def test_pys6_format_filter_names_itself_by_the_path_it_was_started_from(tmp_path: Path) -> None:
    """%0: s6's is argv[0] as the caller wrote it; a script started by its #! line gets only the
    path the kernel found it at (the name a PATH search gave is not passed on), so that is %0."""
    program = ours(tmp_path)
    assert run(program, ["%0|%s"], b"x\n") == (f"{program}|x\n".encode(), b"", 0)


def test_pys6_format_filter_formats_each_line_as_it_comes(tmp_path: Path) -> None:
    """A pipeline's filter passes each line on before the next is written (no wait for EOF)."""
    proc = subprocess.Popen([str(ours(tmp_path)), "x %s"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(b"first\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == b"x first\n"  # a blocking read: fails by timeout if it never comes
        proc.stdin.write(b"second\n")
        proc.stdin.close()
        assert proc.stdout.read() == b"x second\n"
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


def test_pys6_format_filter_answers_help_under_its_own_name(tmp_path: Path) -> None:
    ours(tmp_path)
    done = subprocess.run([str(tmp_path / "pys6-format-filter"), "--help"], capture_output=True, timeout=20)
    assert done.returncode == 0 and b"usage: pys6-format-filter" in done.stdout
    done = subprocess.run([str(tmp_path / "pys6-format-filter"), "--bogus"], capture_output=True, timeout=20)
    assert (done.returncode, done.stdout) == (100, b"") and b"unknown option" in done.stderr
    done = subprocess.run([str(tmp_path / "pys6-format-filter"), "--", "--%s"], input=b"x\n", capture_output=True,
                          timeout=20)
    assert (done.returncode, done.stdout) == (0, b"--x\n")


def test_install_s6_commands_links_s6_format_filter() -> None:
    from supervisor.s6.commands import COMMANDS

    assert COMMANDS["s6-format-filter"] == "pys6-format-filter"
    text = (CHECKOUT / "pyproject.toml").read_text()
    assert 'pys6-format-filter = "supervisor.s6.formatfilter:main"' in text
