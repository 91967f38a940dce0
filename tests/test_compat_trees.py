"""Trees in the shape of public s6-overlay images (tests/compat/), run unmodified with pyinit
as PID 1 of an image root made from this machine's /usr and the tree's /etc: once with
s6-overlay's own with-contenv over Debian's execline and s6 in /command, once with only
pys6's commands (`pyinit --install-s6-commands /usr/bin`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import REPO, wait_for

COMPAT = REPO / "tests" / "compat"
VARIANTS = ["s6-overlay", "pys6"]


def _problem(variant: str) -> str | None:
    if os.geteuid() != 0:
        return "building an image root needs root (mounts and chroot)"
    if not sys.executable.startswith("/opt/"):
        return f"the image root carries /opt only; this interpreter is {sys.executable} (scripts/run-tests uses /opt)"
    if variant == "s6-overlay" and (shutil.which("execlineb") is None or shutil.which("s6-envdir") is None):
        return "needs Debian's execline and s6 packages (.ci/run installs them)"
    probe = subprocess.run(["unshare", "--mount", "sh", "-c",
                            "d=$(mktemp -d) && mkdir $d/u $d/w $d/m && "
                            "mount -t overlay probe -o lowerdir=/usr,upperdir=$d/u,workdir=$d/w $d/m; "
                            "r=$?; umount $d/m 2>/dev/null; rm -rf $d; exit $r"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"the kernel refuses an overlay mount here: {probe.stderr.strip()[-200:]}"
    return None


def _installed_source() -> str:
    """Where this venv's python imports pyinit from (its editable install: the checkout the
    venv was bootstrapped from), which the image root must carry at the same path."""
    found = subprocess.run([sys.executable, "-c", "import os, supervisor; "
                            "print(os.path.dirname(os.path.dirname(os.path.abspath(supervisor.__file__))))"],
                           capture_output=True, text=True, timeout=30, cwd="/", env={"PATH": os.environ["PATH"]})
    assert found.returncode == 0, found.stderr
    return found.stdout.strip()


class Image:
    """One tree booted as a container: pyinit PID 1 in its own root, /config shared with the test."""

    def __init__(self, tree: str, variant: str) -> None:
        self.tree = COMPAT / tree
        self.variant = variant
        self.scratch = Path(tempfile.mkdtemp(prefix="pys6-compat-"))
        self.config = self.scratch / "config"
        self.config.mkdir()
        self.root = self.scratch / "root"
        self.root.mkdir()
        self.stdout_path = self.scratch / "stdout"
        self.stderr_path = self.scratch / "stderr"
        self.process: subprocess.Popen[bytes] | None = None

    def boot(self, *cmd: str, **extra: str) -> None:
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
               "LANG": "C.UTF-8", **extra}
        for line in (self.tree / "env").read_text().splitlines():
            name, _, value = line.partition("=")
            if name:
                env[name] = value
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", str(COMPAT / "boot-root"),
                 str(self.root), str(self.tree), self.variant, str(self.scratch), _installed_source(),
                 sys.executable, *cmd],
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True, cwd="/")

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(errors="replace")

    def seen(self, name: str) -> str:
        try:
            return (self.config / name).read_text()
        except OSError:
            return ""

    def wait_exit(self, timeout: float = 30) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the container did not end in {timeout} s:\n{self.output()[-3000:]}") from None

    def inside(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """A command run in the image's root (its PATH, its s6 programs), as `docker exec` would."""
        import psutil

        assert self.process is not None
        pid1 = psutil.Process(self.process.pid).children()[0].pid
        return subprocess.run(["chroot", f"/proc/{pid1}/root", "/usr/bin/env",
                               "PATH=/command:/usr/local/bin:/usr/bin:/bin", *argv],
                              capture_output=True, text=True, timeout=30)

    def stop(self) -> int:
        """`docker stop`: SIGTERM to the container's PID 1 (the child of unshare)."""
        assert self.process is not None
        import psutil

        children = psutil.Process(self.process.pid).children()
        assert children, "no PID 1 under unshare"
        os.kill(children[0].pid, signal.SIGTERM)
        return self.wait_exit()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # unshare --kill-child takes the namespace with it
            self.process.wait(30)
        shutil.rmtree(self.scratch, ignore_errors=True)


@pytest.fixture(params=VARIANTS)
def image_of(request: pytest.FixtureRequest) -> Iterator:
    problem = _problem(request.param)
    if problem:
        pytest.skip(problem)
    made: list[Image] = []

    def make(tree: str) -> Image:
        made.append(Image(tree, request.param))
        return made[-1]

    try:
        yield make
    finally:
        for image in made:
            image.close()


def test_a_linuxserver_style_base_image_boots_with_its_secret_and_its_user(image_of) -> None:
    image = image_of("linuxserver-base")
    (image.config / "secret").write_text("hunter2\n")
    image.boot()
    seen = wait_for(lambda: image.seen("app/seen"), 30, f"the app's line\n{image.output()[-2000:]}")
    # with-contenv gave the service the secret a cont-init script wrote; s6-setuidgid made it abc,
    # whom the first cont-init script gave PUID and PGID
    assert seen == "uid=1000 gid=1000 password=hunter2 tz=Europe/London\n", image.output()[-2000:]
    # the lines come once the loop is up, which may be after the start path started the app
    wait_for(lambda: "User UID:    1000" in image.output(), 30, f"the boot's lines\n{image.output()[-2000:]}")
    assert "[cont-init.d/20-envfile] [env-init] DB_PASSWORD set from FILE__DB_PASSWORD" in image.output()
    assert "fatal" not in image.output() and "mode=pid1" in image.output()
    assert image.stop() == 0


def test_an_s6_overlay_v2_image_generates_its_services_at_boot(image_of) -> None:
    image = image_of("overlay-v2-generated")
    (image.config / "data").mkdir()
    (image.config / "data" / "file").write_text("x")
    image.boot()
    for n in (1, 2, 3):
        assert wait_for(lambda n=n: image.seen(f"worker-{n}"), 30, f"worker {n}\n{image.output()[-2000:]}") == \
            f"worker {n} up after step 14\n"
    steps = image.seen("steps").splitlines()
    assert steps[0] == "step 01, previous none" and steps[13] == "step 14, previous 13"
    assert steps[-1] == "services generated"
    # fix-attrs.d ran before cont-init
    assert ((image.config / "data").stat().st_mode & 0o777, (image.config / "data" / "file").stat().st_mode & 0o777) == \
        (0o700, 0o600)
    assert (image.config / "data").stat().st_uid == 65534
    assert image.stop() == 0
    assert image.seen("finish") == "finished after step 14\n"


def test_a_finish_script_that_writes_the_exit_code_and_halts_ends_the_container(image_of) -> None:
    image = image_of("finish-halt")
    image.boot()
    assert image.wait_exit() == 3, image.output()[-3000:]
    assert image.seen("job") == "job ran\n"


def test_a_main_program_waits_for_the_services_and_gives_the_container_its_code(image_of) -> None:
    image = image_of("main-program")
    image.boot(*(COMPAT / "main-program" / "cmd").read_text().splitlines())
    assert image.wait_exit() == 4, image.output()[-3000:]
    assert image.seen("main") == "the db was ready\n"


def test_a_read_only_root_with_a_tmpfs_run_boots_and_halts_with_the_code(image_of) -> None:
    image = image_of("finish-halt")
    image.boot(COMPAT_READ_ONLY="1", S6_READ_ONLY_ROOT="1")
    assert image.wait_exit() == 3, image.output()[-3000:]
    assert image.seen("job") == "job ran\n"
    assert "S6_READ_ONLY_ROOT is set: pyinit writes only under /run" in image.output()
    assert "/var/run is not a link to /run and cannot be made one: Read-only file system" in image.output()


def test_a_linuxserver_v3_tree_runs_its_s6_rc_services_in_order(image_of) -> None:
    image = image_of("linuxserver-v3")
    image.boot()
    wait_for(lambda: image.seen("renewals") and "web-" in image.seen("order"), 30,
             f"the services\n{image.output()[-3000:]}")
    wait_for(lambda: "boss-done" in image.seen("order"), 30, f"svc-boss\n{image.output()[-3000:]}")
    order = image.seen("order").split()
    assert order[:2] == ["adduser", "config"] and "web-after-db-ready" in order, image.output()[-3000:]
    assert "web-too-early" not in order
    # the web server's stdout went through its logger pipeline (pipeline-name web-pipeline)
    wait_for(lambda: "GET / 200" in _read(image.config / "logs" / "web" / "current"), 20,
             f"the web log\n{image.output()[-3000:]}")
    assert "GET / 200" not in image.output()
    # svc-boss steered svc-worker with s6-svc -O and -k: it ran once and stays down
    assert image.seen("workers") == "worker\n"
    # restarted from inside the image, with its own s6-svc: back, after its database again, logged again
    assert image.inside("s6-svc", "-wr", "-r", "/run/service/svc-web").returncode == 0
    wait_for(lambda: image.seen("order").split().count("web-after-db-ready") == 2, 20, "the restarted web server")
    wait_for(lambda: _read(image.config / "logs" / "web" / "current").count("GET / 200") == 2, 20, "its second line")
    assert (image.config / "made" / "by-execline").exists()  # a oneshot's one-line execline up
    assert "s6-rc longrun ready service=svc-db" in image.output()
    # svc-renew asked (s6-svc -O) not to be started again: it ran once and stays down
    wait_for(lambda: "service=svc-renew" in image.output() and "once-at-most" in image.output(), 20,
             "svc-renew's s6-svc -O")
    assert image.seen("renewals") == "renewed\n"
    assert image.stop() == 0
    assert image.seen("renewals") == "renewed\n"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def test_an_s6_rc_finish_stops_the_container_with_s6_svscanctl(image_of) -> None:
    image = image_of("rc-finish-svscanctl")
    image.boot()
    assert image.wait_exit() == 4, image.output()[-3000:]
    assert image.seen("main") == "main ran\n"
