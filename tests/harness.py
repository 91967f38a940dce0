"""Start a real pyinit on a throw-away tree and watch it from outside.

pyinit runs as PID 1 of a new PID namespace (`unshare --pid --fork --mount-proc`,
root only), optionally dropped to an unprivileged uid with setpriv, or as a plain
subreaper child of the test. Every wait polls a condition with a deadline.
Everything started is killed by pid at the end: SIGKILL to the namespace's PID 1
takes the whole namespace with it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil

REPO = Path(__file__).resolve().parent.parent
UNPRIVILEGED_UID = 1000
# A service's run script: writes its pid to $STATE/<name>.pid, then sleeps as that very process.
SLEEPER = 'echo $$ > "$STATE/$1.pid"\nexec sleep 1000\n'
# The same, saying hello on stdout first (for tests of the merged log and log tails).
GREETING_SLEEPER = 'echo $$ > "$STATE/$1.pid"\necho "$1 says hello"\nexec sleep 1000\n'
T = TypeVar("T")


@contextmanager
def killed_at_exit(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """The process, SIGKILLed and reaped on the way out if it still runs (the test failed first)."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for(condition: Callable[[], T], timeout: float = 10.0, what: str = "condition", interval: float = 0.01) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def can_unshare() -> str | None:
    """None if PID namespaces work here, else why not."""
    if os.geteuid() != 0:
        return "PID namespaces need root here (unshare --pid)"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True)
    if probe.returncode != 0:
        return f"the kernel refuses PID namespaces: {probe.stderr.decode(errors='replace').strip()}"
    return None


_shared_source: Path | None = None


def world_readable_source() -> Path:
    """A copy of the package that any uid can import (the checkout may sit under /root)."""
    global _shared_source
    if _shared_source is None:
        base = Path(tempfile.mkdtemp(prefix="pys6-src-"))
        os.chmod(base, 0o755)
        shutil.copytree(REPO / "supervisor", base / "supervisor", ignore=shutil.ignore_patterns("__pycache__"))
        for path in base.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        _shared_source = base
    return _shared_source


def unprivileged_python_problem() -> str | None:
    """None if uid 1000 can run this interpreter with our dependencies, else why not."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return "needs root and setpriv to drop to uid 1000"
    probe = subprocess.run(
        ["setpriv", f"--reuid={UNPRIVILEGED_UID}", f"--regid={UNPRIVILEGED_UID}", "--clear-groups",
         sys.executable, "-c", "import anyio, structlog, psutil"],
        capture_output=True, cwd="/",
    )
    if probe.returncode != 0:
        return (f"uid {UNPRIVILEGED_UID} cannot run {sys.executable} with the dependencies "
                f"(run the tests from /opt/pys6-venv as scripts/run-tests does): {probe.stderr.decode(errors='replace')[-200:]}")
    return None


# --- pyinit's own events, read as records ------------------------------------------------------
# A test that checks one of pyinit's (or pycrond's) own events reads its name and fields, not its
# wording: the text renderer (supervisor/logs/events.render_text) writes
# `[source] event key=value ... level=warning`, a value JSON-quoted when it is empty or holds a
# space, =, " or a newline, a dict or list as compact JSON; the JSON mode writes one object a line.
_FIELD = re.compile(r" ([A-Za-z_][A-Za-z0-9_]*)=")
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class Event:
    source: str  # pyinit, pycrond
    event: str
    level: str  # info unless the line says otherwise
    fields: dict[str, Any] = field(default_factory=dict)  # scalars as the text shows them (str); JSON as decoded

    def matches(self, event: str, **fields: Any) -> bool:
        """This event, with these fields (compared as the log shows them: 42 matches "42")."""
        return self.event == event and all(
            key in self.fields and (self.fields[key] == value or
                                    not isinstance(value, dict | list) and self.fields[key] == str(value))
            for key, value in fields.items())

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]


def _value(text: str, start: int) -> tuple[Any, int]:
    """The value at `start` and where it ends: JSON when quoted or a list/dict, else up to the next space."""
    if text.startswith(('"', "[", "{"), start):
        try:
            value, end = _DECODER.raw_decode(text, start)
            if end == len(text) or text[end] == " ":
                return value, end
        except ValueError:
            pass
    end = text.find(" ", start)
    end = len(text) if end < 0 else end
    return text[start:end], end


def parse_event_line(line: str, source: str = "pyinit") -> Event | None:
    """One of `source`'s own events from a line of its output, or None for any other line."""
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            return None
        if not isinstance(record, dict) or record.get("source") != source or "event" not in record:
            return None
        fields = {k: v for k, v in record.items() if k not in ("source", "level", "time", "event")}
        return Event(source, str(record["event"]), str(record.get("level", "info")), fields)
    prefix = f"[{source}] "
    if not line.startswith(prefix):
        return None
    body = line[len(prefix):]
    first = _FIELD.search(body)
    name = body if first is None else body[:first.start()]
    fields: dict[str, Any] = {}
    at = len(body) if first is None else first.start()
    while at < len(body):
        found = _FIELD.match(body, at)
        if found is None:  # not a field after all: part of the name (never seen; kept readable)
            return Event(source, body, "info")
        value, at = _value(body, found.end())
        fields[found.group(1)] = value
    level = fields.pop("level", "info") if fields.get("level") in ("warning", "error", "critical") else "info"
    return Event(source, name, str(level), fields)


def parse_events(text: str, source: str = "pyinit") -> list[Event]:
    return [event for line in text.splitlines() if (event := parse_event_line(line, source)) is not None]


class Pod:
    """A tree of cont-init.d, services.d, cont-finish.d and a pyinit running on it."""

    def __init__(self, root: Path, uid: int | None = None) -> None:
        self.root = root
        self.uid = uid
        self.etc = root / "etc"
        self.state = root / "state"  # scripts write what they see here
        self.rundir = root / "run"
        for sub in ("cont-init.d", "services.d", "cont-finish.d"):
            (self.etc / sub).mkdir(parents=True, exist_ok=True)
        self.state.mkdir(exist_ok=True)
        self.stdout_path = root / "stdout.log"
        self.stderr_path = root / "stderr.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}
        self.returncode: int | None = None
        self.default_mode = "namespace"  # the pod fixture makes it "subreaper" where namespaces are refused

    # --- building the tree -----------------------------------------------------

    def script(self, relative: str, body: str, executable: bool = True) -> Path:
        path = self.etc / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        text = textwrap.dedent(body).lstrip("\n")
        if not text.startswith("#!"):
            text = "#!/bin/bash\n" + text
        path.write_text(text)
        os.chmod(path, 0o755 if executable else 0o644)
        return path

    def service(self, name: str, run: str, **files: str) -> Path:
        self.script(f"services.d/{name}/run", run)
        for filename, content in files.items():
            filename = filename.replace("_", "-")
            if filename == "finish":
                self.script(f"services.d/{name}/finish", content)
            else:
                (self.etc / "services.d" / name / filename).write_text(content)
        return self.etc / "services.d" / name

    def read_state(self, name: str) -> str:
        try:
            return (self.state / name).read_text()
        except FileNotFoundError:
            return ""

    # --- running ---------------------------------------------------------------

    def _chown_tree(self) -> None:
        assert self.uid is not None
        for path in [self.root, *self.root.rglob("*")]:
            os.lchown(path, self.uid, self.uid)
        os.chmod(self.root, 0o755)

    def start(self, *args: str, mode: str | None = None, env: Mapping[str, str | None] | None = None,
              stdout: int | None = None, default_rundir: bool = False, wrapper: list[str] | None = None,
              pass_fds: tuple[int, ...] = (), stdin: int = subprocess.DEVNULL) -> None:
        environ = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYS6_ETC": str(self.etc),
            "PYS6_RUNDIR": str(self.rundir),
            "STATE": str(self.state),
            "PYTHONPATH": str(REPO),
            "LANG": "C.UTF-8",
            # The suite's scripts are plain `#!/bin/sh` reading what was passed to pyinit ($STATE...):
            # s6-overlay gives them that only with S6_KEEP_ENV=1 (unset is 0: PATH only), so that is
            # the default here; a test sets another value, or None to leave it unset.
            "S6_KEEP_ENV": "1",
        }
        for name, value in (env or {}).items():  # None: not in pyinit's environment at all
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
        mode = mode or self.default_mode
        if default_rundir:
            del environ["PYS6_RUNDIR"]
        command = [*(wrapper or []), sys.executable, "-m", "supervisor", *args]
        if self.uid is not None:
            environ["PYTHONPATH"] = str(world_readable_source())
            self._chown_tree()
            command = ["setpriv", f"--reuid={self.uid}", f"--regid={self.uid}", "--clear-groups", *command]
        if mode == "namespace":
            # Its own /run, as a container has: a PID 1 lays out s6-overlay's paths there.
            command = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
                       "sh", "-c", 'mount -t tmpfs -o mode=0755 pys6-test-run /run && exec "$@"', "sh", *command]
        self.env = environ
        self._stdout_file = open(self.stdout_path, "wb")
        self._stderr_file = open(self.stderr_path, "wb")
        self.process = subprocess.Popen(
            command, env=environ, cwd="/", stdin=stdin,
            stdout=self._stdout_file if stdout is None else stdout, stderr=self._stderr_file,
            start_new_session=True, pass_fds=pass_fds,
        )
        self.mode = mode

    def scan_entry(self, name: str) -> Path:
        """A service's entry in the scan directory (its copy's supervise/, down...), from the host:
        /run/service/NAME as PID 1 with s6's /run paths, else under the runtime directory."""
        if self.mode == "namespace" and self.seen_from_pyinit(f"/run/service/{name}").exists():
            return self.seen_from_pyinit(f"/run/service/{name}")
        return (self.rundir / "service" / name).resolve()

    def seen_from_pyinit(self, path: str) -> Path:
        """`path` as pyinit sees it (its root, its /run), from the host: absolute symlinks on the
        way (/run/service/NAME -> /run/s6/legacy-services/NAME) resolved inside pyinit's root."""
        root = Path(f"/proc/{self.init_pid}/root") if self.mode == "namespace" else Path("/")
        parts = Path(path).parts[1:]
        here = Path("/")
        for _hop in range(64):
            if not parts:
                return root / here.relative_to("/")
            head, parts = parts[0], parts[1:]
            candidate = root / (here / head).relative_to("/")
            if candidate.is_symlink():
                target = Path(os.readlink(candidate))
                parts = (target.parts[1:] if target.is_absolute() else target.parts) + parts
                if target.is_absolute():
                    here = Path("/")
                continue
            here = here / head
        raise AssertionError(f"too many links under {path}")

    @property
    def init_pid(self) -> int:
        """Host pid of pyinit: the child of unshare, or the process itself as subreaper."""
        assert self.process is not None
        if self.mode != "namespace":
            return self.process.pid

        def find() -> int | None:
            try:
                children = psutil.Process(self.process.pid).children()  # type: ignore[union-attr]
            except psutil.NoSuchProcess:
                return None
            return children[0].pid if children else None

        return wait_for(find, 10, "pyinit to start inside unshare")

    def stdout(self) -> str:
        return self.stdout_path.read_bytes().decode("utf-8", "replace")

    def stderr(self) -> str:
        return self.stderr_path.read_bytes().decode("utf-8", "replace")

    def wait_stderr(self, text: str, timeout: float = 10.0) -> str:
        return wait_for(lambda: text in self.stderr() and self.stderr(), timeout, f"{text!r} in pyinit's stderr")

    def wait_stdout(self, text: str, timeout: float = 10.0) -> str:
        return wait_for(lambda: text in self.stdout() and self.stdout(), timeout, f"{text!r} in pyinit's stdout")

    def events(self, event: str | None = None, stream: str = "stderr", **fields: Any) -> list[Event]:
        """pyinit's own events in its output, as records; only those named `event` with `fields` if given."""
        found = parse_events(self.stderr() if stream == "stderr" else self.stdout())
        return found if event is None else [e for e in found if e.matches(event, **fields)]

    def event(self, event: str, **fields: Any) -> Event | None:
        """The first such event, or None."""
        found = self.events(event, **fields)
        return found[0] if found else None

    def wait_event(self, event: str, timeout: float = 10.0, **fields: Any) -> Event:
        return wait_for(lambda: self.event(event, **fields), timeout, f"the event {event!r} {fields or ''} from pyinit")

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.init_pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def descendant_info(self) -> list[tuple[int, str, list[str]]]:
        """(pid, status, cmdline) of every descendant, skipping those gone meanwhile."""
        info = []
        for proc in self.descendants():
            try:
                info.append((proc.pid, proc.status(), proc.cmdline()))
            except psutil.Error:
                continue
        return info

    def host_pid(self, ns_pid: int) -> int:
        """The host pid of a process known by its pid inside the namespace."""
        if self.mode != "namespace":
            return ns_pid
        for proc in self.descendants():
            try:
                with open(f"/proc/{proc.pid}/status") as status:
                    for line in status:
                        if line.startswith("NSpid:") and int(line.split()[-1]) == ns_pid:
                            return proc.pid
            except OSError:
                continue
        raise LookupError(f"no process with namespace pid {ns_pid}")

    def cli(self, tool: str, *args: str, uid: int | None = None, env: dict[str, str] | None = None,
            rundir: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run pysvstat or pysvc (`tool` is svstat or svc) as a fresh process, maybe as another uid."""
        environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "LANG": "C.UTF-8"}
        if rundir:
            environ["PYS6_RUNDIR"] = str(self.rundir)
        environ.update(env or {})
        command = [sys.executable, "-m", f"supervisor.control.{tool}", *args]
        if uid is not None:
            environ["PYTHONPATH"] = str(world_readable_source())
            command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *command]
        return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=timeout, cwd="/")

    def wait_control(self, timeout: float = 10.0) -> None:
        """Until pysvstat answers (the socket is up and services are scanned)."""
        wait_for(lambda: self.cli("svstat").returncode == 0 and "services:" in self.cli("svstat").stdout,
                 timeout, "the control socket to answer")

    def signal(self, signum: int) -> None:
        os.kill(self.init_pid, signum)

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        self.returncode = self.process.wait(timeout)
        return self.returncode

    def stop(self, timeout: float = 30.0) -> int:
        self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            for proc in [psutil.Process(self.process.pid), *self._all_below()]:
                try:
                    proc.kill()
                except psutil.Error:
                    pass
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                pass
        for handle in (self._stdout_file, self._stderr_file):
            handle.close()

    def _all_below(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children(recursive=True)  # type: ignore[union-attr]
        except psutil.NoSuchProcess:
            return []


def is_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def gone_within(pid: int, timeout: float = 5.0) -> bool:
    """Whether `pid` is gone (or a zombie of another parent: gone for us) within `timeout`."""
    try:
        wait_for(lambda: not alive(pid), timeout, f"process {pid} gone")
    except AssertionError:
        return False
    return True


def stop_tmux_server(env: dict[str, str], pids: list[int]) -> None:
    """`tmux kill-server` on env's socket, then SIGKILL to any of its pids still there; pids emptied."""
    subprocess.run(["tmux", "kill-server"], env=env, capture_output=True, timeout=10)
    for pid in pids:
        if not gone_within(pid):
            os.kill(pid, signal.SIGKILL)
            gone_within(pid)
    pids.clear()


def pycrond_on_path(directory: Path) -> Path:
    """A `pycrond` command on PATH, as the image has, running this checkout's."""
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "pycrond"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -m supervisor.cron.main \"$@\"\n")
    wrapper.chmod(0o755)
    return bin_dir


def mode_bits(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def lines_of(text: str, prefix: str) -> list[str]:
    return [line[len(prefix):] for line in text.splitlines() if line.startswith(prefix)]


def read_int(pod: Pod, name: str) -> int | None:
    text = pod.read_state(name).strip()
    return int(text) if text.isdigit() else None



def alias_bomb(key: str = "crash_window") -> str:
    """A billion laughs inside one legitimate key: 9**10 leaves, a few hundred bytes."""
    levels = ['&a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    levels += [f"&a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return f"services:\n  x:\n    {key}: [" + ", ".join(levels) + "]\n"


class Cron:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.crontab = root / "crontab"
        self.out = root / "out.log"
        self.err = root / "err.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *args: str, crontab: Path | None = None, readable: bool = True,
              environ: dict[str, str] | None = None) -> None:
        """Start pycrond; `readable`: in pycrond's own text format and --keep-going, as the older tests expect;
        `environ`: its whole environment instead of the test's (PYTHONPATH and STATE are added)."""
        env = {**(os.environ if environ is None else environ), "PYTHONPATH": str(REPO), "STATE": str(self.root)}
        self._files = (open(self.out, "wb"), open(self.err, "wb"))
        own = ["--log-format=text", "--keep-going"] if readable else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "supervisor.cron.main", *own, *args, str(crontab or self.crontab)],
            stdout=self._files[0], stderr=self._files[1], env=env, cwd=str(self.root), start_new_session=True)
        self.wait_err("crontab loaded" if (crontab or self.crontab).exists() else "waiting for the crontab")

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_out(self, text: str, timeout: float = 10) -> None:
        wait_for(lambda: text in self.stdout(), timeout, f"{text!r} in pycrond's stdout")

    def wait_err(self, text: str, timeout: float = 10) -> None:
        wait_for(lambda: text in self.stderr(), timeout, f"{text!r} in pycrond's stderr")

    def events(self, event: str | None = None, **fields: Any) -> list[Event]:
        """pycrond's own events (its text format, or its JSON one), as records."""
        found = parse_events(self.stderr(), "pycrond")
        return found if event is None else [e for e in found if e.matches(event, **fields)]

    def stop(self, timeout: float = 30) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            for proc in [*psutil.Process(self.process.pid).children(recursive=True), psutil.Process(self.process.pid)]:
                try:
                    proc.kill()
                except psutil.Error:
                    pass
            self.process.wait(10)
        for handle in getattr(self, "_files", ()):
            handle.close()


def assert_answer_head(reply: bytes) -> dict:
    """The first line of a control answer is a head: ok, and on error a message and an exit code."""
    import json

    answer = json.loads(reply.split(b"\n", 1)[0])
    assert "ok" in answer
    if answer["ok"] is False:
        assert isinstance(answer["error"], str) and isinstance(answer["code"], int)
    return answer


_PORTS_PER_WORKER = 2000
_PORT_BASE = 20000  # below Linux's ephemeral range (32768+), which the kernel hands out for bind(0)
_next_port: list[int] = []


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, from a range of this test
    process's own: parallel workers (pytest-xdist's gwN) never pick the same port, and a port
    given out here is never the kernel's choice for another test's bind(0) or connect()."""

    if not _next_port:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "").removeprefix("gw")  # "" without xdist
        slot = int(worker) + 1 if worker.isdigit() else 0
        _next_port.append(_PORT_BASE + (slot % 6) * _PORTS_PER_WORKER)
    start = _next_port[0]
    lowest = start - (start - _PORT_BASE) % _PORTS_PER_WORKER
    for _ in range(_PORTS_PER_WORKER):
        port = _next_port[0]
        _next_port[0] = lowest + (port + 1 - lowest) % _PORTS_PER_WORKER
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {lowest}-{lowest + _PORTS_PER_WORKER - 1}")


def wait_ready_for_more_than(pod: Pod, name: str, seconds: float, timeout: float = 10.0) -> None:
    """Until pysvstat says `name` has been ready for more than `seconds` (s6's "ready long enough")."""
    import json

    def ready_long_enough() -> bool:
        result = pod.cli("svstat", "--json", name)
        if result.returncode != 0:
            return False
        record = json.loads(result.stdout)
        return record["ready_seconds"] is not None and record["ready_seconds"] > seconds

    wait_for(ready_long_enough, timeout, f"{name} ready for more than {seconds} s")


# --- the control socket, raw (test_control.py, test_control_fuzz.py) --------------------------


def started(pod: Pod, *names: str, env: dict[str, str] | None = None) -> Pod:
    """The pod started with a greeting sleeper for each name, once the socket answers and each has written its pid."""
    for name in names:
        pod.service(name, GREETING_SLEEPER)
    pod.start(env=env)
    pod.wait_control()
    for name in names:
        wait_for(lambda name=name: read_int(pod, f"{name}.pid"), what=name)
    return pod


def control_path(pod: Pod) -> str:
    return str(pod.rundir / "control.sock")


def raw_exchange(pod: Pod, data: bytes, timeout: float = 10.0) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(control_path(pod))  # blocking, as the real client: a full backlog makes it wait
        sock.settimeout(timeout)
        sock.sendall(data)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


# --- pyinit as uid 1000, found without any environment (test_control_uid.py, the sshd fixture) ----


def start_as_1000(pod: Pod, *names: str, env: dict[str, str] | None = None) -> None:
    for name in names:
        pod.service(name, SLEEPER)
    pod.start(default_rundir=True, env=env)
    wait_for(lambda: all(read_int(pod, f"{n}.pid") for n in names), 15, "the services")
    wait_for(lambda: pod.cli("svstat", uid=1000, rundir=False).returncode == 0, 10, "the control socket")


# --- a pyinit that must have survived (test_faults.py, test_faults_at_scale.py) ---------------


def pyinit_alive(pod: Pod) -> None:
    assert pod.process is not None and pod.process.poll() is None
    assert pod.cli("svstat").returncode in (0,)


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# --- supercronic's restated suites (test_supercronic_compat.py, test_supercronic_cli.py) -------

# integration/*.crontab
CRONTABS = {
    "env": '* * * * * * * echo "$VAR"\n',
    "exit": '* * * * * * * echo "$MSG_START" && sleep 2 && echo "$MSG_DONE"\n',
    "hello": '* * * * * * * echo "hello from crontab"\n',
    "invalid": "oops\n",
    "noop": "",
    "normal": "* * * * * * * echo 1\n",
    "override": 'VAR="hello from bar"\n* * * * * * * echo "$VAR"\n',
    "timeout": "* * * * * * * sleep 2.5\n",
    "user": "USER=foo\n",
    "zombie": "* * * * * * * /bin/sleep 0.1 & exec /bin/sleep 0\n",
}


def environment(**extra: str) -> dict[str, str]:
    # This checkout's code, whatever the installed console script was made from.
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


def run_supercronic(exe: Path, crontab: Path, until: str, args: tuple[str, ...] = (), count: int = 1,
                    **env: str) -> str:
    """test.bats' run_supercronic (`timeout --preserve-status 1s supercronic ARGS CRONTAB 2>&1`) with its fixed
    time made a condition: run until `until` (a regular expression) has matched `count` times (at most 20 s),
    then SIGTERM, and return all it said, the shutdown included."""
    output = Path(tempfile.mkdtemp()) / "out"
    with open(output, "wb") as handle:
        process = subprocess.Popen([str(exe), *args, str(crontab)], stdout=handle, stderr=subprocess.STDOUT,
                                   env=environment(**env))
    with killed_at_exit(process):
        wait_for(lambda: len(re.findall(until, output.read_text())) >= count, 20, f"{count} x {until!r}")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    text = output.read_text()
    shutil.rmtree(output.parent)
    return text
