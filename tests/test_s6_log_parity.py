"""pys6-log (s6-log's stand-in for images without s6-overlay) against the real s6-log: the same
script and input, the same log directory as a reader sees it: the files there and their modes
(the directory 0700, `lock`, `state`, `current` with the owner's execute bit once closed), the
lines and their stamps, rotation into @<TAI64N>.s, a `current` left unclosed archived as .u,
SIGTERM's last line, and a second logger refused while the first holds `lock`."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness import wait_for

CHECKOUT = Path(__file__).resolve().parent.parent
# s6-overlay 3.2.3.2's own (s6 2.15) first: the one pys6 stands in for; Debian's (2.11) has no -t.
REAL = next((p for p in (Path(os.environ.get("S6O_PREFIX", "/opt/s6-overlay-real")) / "rootfs-overlay/command/s6-log",
                         Path("/usr/bin/s6-log"))
             if p.exists()), None)
pytestmark = pytest.mark.skipif(REAL is None, reason="needs a real s6-log (s6-overlay's, or Debian's s6 package)")

TAI = re.compile(rb"@[0-9a-f]{24}")
ISO = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9}")
ARCHIVE = re.compile(r"@[0-9a-f]{24}\.[su]")


def pys6_log(tmp_path: Path) -> Path:
    """This checkout's pys6-log, linked as s6-log (as --install-s6-commands links it)."""
    script = tmp_path / "bin" / "pys6-log"
    if not script.exists():
        script.parent.mkdir()
        script.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(CHECKOUT)!r})\n"
                          "from supervisor.s6.logger import main\nmain()\n")
        script.chmod(0o755)
        (script.parent / "s6-log").symlink_to(script)
    return script.parent / "s6-log"


def loggers(tmp_path: Path) -> dict[str, Path]:
    assert REAL is not None
    return {"s6-log": REAL, "pys6-log": pys6_log(tmp_path)}


def listing(directory: Path) -> dict[str, str]:
    """Each file of the log directory (archives by kind, not by name) -> its type and mode."""
    found = {".": f"{stat.filemode(directory.stat().st_mode)}"}
    for path in sorted(directory.iterdir()):
        name = ARCHIVE.sub(lambda m: "@ARCHIVE" + m.group(0)[-2:], path.name)
        found[name if name not in found else f"{name}#2"] = stat.filemode(path.lstat().st_mode)
    return found


def content(path: Path) -> bytes:
    return ISO.sub(b"ISO", TAI.sub(b"TAI", path.read_bytes()))


def run_logger(program: Path, args: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
    # from a file, not a pipe: each read then gets all it asks for, so where a rotation falls
    # does not depend on how a loaded machine interleaves the writer's 4 KiB chunks with reads
    with tempfile.TemporaryFile() as source:
        source.write(data)
        source.seek(0)
        return subprocess.run([str(program), *args], stdin=source, capture_output=True, timeout=30)


@pytest.mark.parametrize("script", [["T"], ["t"], ["t", "T"], ["T", "t"], ["n3"], []], ids=str)
def test_the_log_directory_and_lines_are_s6_logs(tmp_path: Path, script: list[str]) -> None:
    data = b"one\n\ntwo  spaced\ttab\nthree without newline"
    seen = {}
    for name, program in loggers(tmp_path).items():
        logdir = tmp_path / name
        done = run_logger(program, [*script, str(logdir)], data)
        assert done.returncode == 0, done.stderr
        seen[name] = (listing(logdir), content(logdir / "current"))
    assert seen["pys6-log"] == seen["s6-log"]
    assert seen["s6-log"][0] == {".": "drwx------", "current": "-rwxr--r--", "lock": "-rw-r--r--",
                                 "state": "-rw-r--r--"}


def test_rotation_archives_and_keeps_n_as_s6_log(tmp_path: Path) -> None:
    data = b"".join(b"line %04d " % i + b"x" * 90 + b"\n" for i in range(200))  # 20 kB: five rotations at s4096
    seen = {}
    for name, program in loggers(tmp_path).items():
        logdir = tmp_path / name
        assert run_logger(program, ["n3", "s4096", str(logdir)], data).returncode == 0
        archives = sorted(p for p in logdir.iterdir() if ARCHIVE.fullmatch(p.name))
        seen[name] = (listing(logdir), [content(p) for p in archives], content(logdir / "current"))
    assert seen["pys6-log"] == seen["s6-log"]
    assert len(seen["s6-log"][1]) == 3


def test_a_current_left_unclosed_becomes_a_u_archive_and_a_closed_one_is_appended_to(tmp_path: Path) -> None:
    seen = {}
    for name, program in loggers(tmp_path).items():
        logdir = tmp_path / name
        assert run_logger(program, [str(logdir)], b"first run\n").returncode == 0
        assert run_logger(program, [str(logdir)], b"second run\n").returncode == 0  # closed: appended
        (logdir / "current").chmod(0o644)  # as a logger killed while writing leaves it
        assert run_logger(program, [str(logdir)], b"third run\n").returncode == 0
        archives = [p for p in logdir.iterdir() if ARCHIVE.fullmatch(p.name)]
        seen[name] = (listing(logdir), [content(p) for p in archives], content(logdir / "current"))
    assert seen["pys6-log"] == seen["s6-log"]
    assert seen["s6-log"][1] == [b"first run\nsecond run\n"] and "@ARCHIVE.u" in seen["s6-log"][0]


def test_sigterm_logs_the_line_begun_and_closes_current(tmp_path: Path) -> None:
    """SIGTERM: the line begun gets -t's time to end, then is logged with a newline added, and
    `current` gets its execute bit (s6-log's clean close) as at EOF."""
    seen = {}
    for name, program in loggers(tmp_path).items():
        logdir = tmp_path / name
        proc = subprocess.Popen([str(program), "-t", "200", str(logdir)], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdin is not None
        try:
            proc.stdin.write(b"whole\npartial")
            proc.stdin.flush()
            wait_for(lambda d=logdir: (d / "current").exists() and b"whole" in (d / "current").read_bytes(), 10,
                     f"{name} logged the whole line")
            proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            assert proc.wait(timeout=10) == 0
            waited = time.monotonic() - started
        finally:
            proc.kill()
            proc.wait()
            try:
                proc.stdin.close()
            except BrokenPipeError:  # the buffered "partial" was already read: nothing is lost
                pass
        assert 0.1 < waited < 5, f"{name} waited {waited:.2f} s for the line's end"
        seen[name] = (listing(logdir), content(logdir / "current"))
    assert seen["pys6-log"] == seen["s6-log"]
    assert seen["s6-log"][1] == b"whole\npartial\n"


def test_a_second_logger_on_a_locked_directory_fails(tmp_path: Path) -> None:
    codes = {}
    for name, program in loggers(tmp_path).items():
        logdir = tmp_path / name
        first = subprocess.Popen([str(program), str(logdir)], stdin=subprocess.PIPE)
        try:
            wait_for(lambda d=logdir: (d / "lock").exists() and (d / "current").exists(), 10, f"{name} started")
            second = run_logger(program, [str(logdir)], b"from the second\n")
            codes[name] = second.returncode
        finally:
            assert first.stdin is not None
            first.stdin.close()
            first.wait(timeout=10)
        assert b"from the second" not in (logdir / "current").read_bytes()
    assert codes == {"s6-log": 111, "pys6-log": 111}


def test_a_long_line_is_cut_at_the_line_limit(tmp_path: Path) -> None:
    data = b"a" * 100 + b"\n" + b"b" * 20000 + b"\n"
    seen = {}
    for name, program in loggers(tmp_path).items():
        logdir = tmp_path / name
        assert run_logger(program, ["-l", "64", "n5", "s1000000", str(logdir)], data).returncode == 0
        seen[name] = content(logdir / "current")
    assert seen["pys6-log"] == seen["s6-log"]
