"""The real image, built from the Dockerfile and run with rootful podman, checked from outside."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import REPO, free_port, wait_for

pytestmark = pytest.mark.image
BASE = "docker.io/library/debian:bookworm-slim"
TAG = "localhost/pys6:test"


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)}: {result.stderr.strip()[-2000:]}")
    return result


def _podman_problem() -> str | None:
    if os.geteuid() != 0:
        return "rootful podman needs root"
    if shutil.which("podman") is None:
        return "podman is not installed (scripts/podman-setup installs it, as .ci/run does)"
    if podman("image", "exists", BASE, check=False).returncode != 0:
        return f"no {BASE} in podman's storage (scripts/podman-setup makes it with debootstrap)"
    probe = podman("run", "--rm", "--network=none", BASE, "true", check=False, timeout=60)
    if probe.returncode != 0:
        return f"podman cannot run a container here: {probe.stderr.strip()[-300:]}"
    return None


def _built_early() -> bool:
    """Whether the session's early build (conftest) made the image: waited for if it runs."""
    from conftest import early_build_status

    for controller in {os.getppid(), os.getpid()}:  # parallel workers are the controller's children
        status = early_build_status(controller)
        log = status.with_suffix(".log")
        if not log.exists():
            continue
        code = wait_for(lambda done=status: done.exists() and done.read_text().strip(), 1200, "the early image build")
        return code == "0"
    return False


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    problem = _podman_problem()
    if problem:
        pytest.skip(problem)
    if _built_early():
        yield TAG  # the session removes it at its end: other workers may be using it now
        return
    # docker format: podman ignores HEALTHCHECK in OCI images
    podman("build", "--quiet", "--format", "docker", "-t", TAG, str(REPO), timeout=1200)
    try:
        yield TAG
    finally:
        podman("rmi", "-f", TAG, check=False)



class Container:
    def __init__(self, image: str) -> None:
        self.image = image
        self.work = Path(tempfile.mkdtemp(prefix="pys6-image-"))
        self.key = self.work / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True)
        self.secret = self.work / "secret"
        self.secret.mkdir()
        shutil.copy(str(self.key) + ".pub", self.secret / "authorized_keys")
        os.chmod(self.secret, 0o755)
        os.chmod(self.secret / "authorized_keys", 0o644)
        self.known_hosts = self.work / "known_hosts"
        self.volume = f"pys6-test-home-{uuid.uuid4().hex[:8]}"
        podman("volume", "create", self.volume)
        self.name = ""
        self.port = free_port()  # kept across runs: known_hosts names host and port
        # Mounted where Kubernetes mounts a container's terminationMessagePath (deploy/pod.yaml), as
        # Kubernetes does: an empty file the container's user may write, so pyinit's default finds it.
        self.verdict = self.work / "termination-log"
        self.verdict.touch()
        os.chown(self.verdict, 1000, 1000)
        os.chmod(self.work, 0o755)

    def run(self, *options: str) -> None:
        self.name = f"pys6-test-{uuid.uuid4().hex[:8]}"
        self.verdict.write_text("")
        podman("run", "-d", "--name", self.name, "--read-only", "--cap-drop=ALL", "--user", "1000:1000",
               "-p", f"127.0.0.1:{self.port}:2222", "-v", f"{self.volume}:/home/claude",
               "-v", f"{self.secret}:/etc/ssh-keys:ro", "-v", f"{self.verdict}:/dev/termination-log",
               *options, self.image)
        wait_for(lambda: podman("healthcheck", "run", self.name, check=False).returncode == 0, 60,
                 "the container's healthcheck")

    def ssh(self, command: str, strict: bool = False) -> subprocess.CompletedProcess[str]:
        checking = "yes" if strict else "accept-new"
        return subprocess.run(
            ["ssh", "-i", str(self.key), "-p", str(self.port), "-o", "BatchMode=yes",
             "-o", f"StrictHostKeyChecking={checking}", "-o", f"UserKnownHostsFile={self.known_hosts}",
             "-o", "LogLevel=ERROR", "claude@127.0.0.1", command], capture_output=True, text=True, timeout=30)

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def remove(self) -> None:
        if self.name:
            podman("rm", "-f", "-t", "0", self.name, check=False)
            self.name = ""

    def close(self) -> None:
        self.remove()
        podman("volume", "rm", "-f", self.volume, check=False)
        shutil.rmtree(self.work, ignore_errors=True)


@pytest.fixture
def container(image: str) -> Iterator[Container]:
    made = Container(image)
    try:
        yield made
    finally:
        made.close()


def test_the_image_runs_hardened_and_stops_cleanly(container: Container):
    container.run()
    pid1 = podman("exec", container.name, "cat", "/proc/1/status", "/proc/1/cmdline").stdout
    assert "\nUid:\t1000\t1000\t1000\t1000\n" in pid1 and "/init" in pid1
    assert "CapEff:\t0000000000000000" in pid1
    status = container.ssh("pysvstat")
    assert status.returncode == 0, status.stderr
    assert "sshd: up (pid " in status.stdout and "cron: up (pid " in status.stdout
    # cron's check passes on the read-only root: pycrond's heartbeat is in its service directory (pyinit's copy
    # under /run), where pyinit runs the check (the first one, pyinit's own, comes only 30 s after it is ready).
    directory = podman("exec", container.name, "sh", "-c", 'readlink "/proc/$(pysvstat -p cron)/cwd"').stdout.strip()
    assert directory.startswith("/run/"), directory
    checked = podman("exec", "-w", directory, container.name, "./health", "cron", check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    made = container.ssh("tmux new-session -d -s work -c /home/claude && tmux list-sessions")
    assert made.returncode == 0, made.stderr
    wait_for(lambda: "[sshd] " in container.logs() and "[cron] " in container.logs(), 20, "both services' lines")

    started = time.monotonic()
    podman("stop", "-t", "30", container.name, timeout=60)
    assert time.monotonic() - started < 20
    state = podman("inspect", container.name, "--format", "{{.State.ExitCode}}").stdout.strip()
    assert state == "0", container.logs()[-3000:]
    assert "[cont-finish.d/02-tmux-save] tmux layout saved to" in container.logs()
    assert container.verdict.read_text() == "received SIGTERM\nexit code: 0\n"  # what kubectl describe shows
    first_host_key = container.known_hosts.read_text()
    container.remove()

    container.run()  # the same home volume: the same host keys
    assert container.ssh("true", strict=True).returncode == 0
    assert container.known_hosts.read_text() == first_host_key
    assert "host keys kept" in container.logs()
    podman("stop", "-t", "30", container.name, timeout=60)


def test_the_kubernetes_manifests_run_under_podman_kube_play(image: str, tmp_path: Path):
    import yaml

    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copy(str(key) + ".pub", keys / "authorized_keys")
    for path in (tmp_path, keys, keys / "authorized_keys"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    port, metrics_port = free_port(), free_port()
    documents = [doc for doc in yaml.safe_load_all((REPO / "deploy" / "pod.yaml").read_text())
                 if doc["kind"] in ("PersistentVolumeClaim", "Deployment")]
    volume = next(doc for doc in documents if doc["kind"] == "PersistentVolumeClaim")["metadata"]["name"]
    for doc in documents:  # the two substitutions the manifest's comment names, and the image under test
        if doc["kind"] == "Deployment":
            spec = doc["spec"]["template"]["spec"]
            spec["containers"][0]["image"] = image
            spec["containers"][0]["ports"][0].update({"hostPort": port, "hostIP": "127.0.0.1"})
            spec["containers"][0]["ports"][1].update({"hostPort": metrics_port, "hostIP": "127.0.0.1"})
            for entry in spec["volumes"]:
                if "secret" in entry:
                    entry.pop("secret")
                    entry["hostPath"] = {"path": str(keys), "type": "Directory"}
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(yaml.safe_dump_all(documents))
    podman("volume", "rm", "-f", volume, check=False)
    try:
        podman("kube", "play", str(manifest), timeout=120)

        def login(command: str = "pysvstat --check") -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["ssh", "-i", str(key), "-p", str(port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                 "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "claude@127.0.0.1", command],
                capture_output=True, text=True, timeout=30)

        def scrape() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
                    return response.read().decode()
            except OSError:
                return ""

        wait_for(lambda: login().returncode == 0, 60, "an SSH login to the played pod")
        # One scrape target for the pod: pyinit's services, and pycrond's jobs through its metrics file.
        page = wait_for(lambda: scrape() or None, 30, "the pod's metrics endpoint")
        assert 'pys6_service_up{service="sshd"} 1' in page and 'pys6_service_up{service="cron"} 1' in page
        assert login("echo '* * * * * * * true' >> ~/.crontab").returncode == 0
        wait_for(lambda: 'supercronic_successful_executions{command="true"' in scrape(), 30,
                 "the user's cron job on the pod's endpoint")
        started = time.monotonic()
        podman("kube", "down", str(manifest), timeout=120)
        assert time.monotonic() - started < 30
    finally:
        podman("kube", "down", str(manifest), check=False, timeout=120)
        podman("volume", "rm", "-f", volume, check=False)


def test_an_essential_services_bail_ends_the_container_with_its_verdict(container: Container):
    """The pod's cron made essential (the YAML, docs/configuration.md: per-service overrides), then killed until it
    bails: the container ends with its code, and the verdict names it with its last lines."""
    config = container.work / "config"
    config.mkdir()
    (config / "pys6.yaml").write_text("services:\n  cron:\n    essential: true\n")
    os.chmod(config, 0o755)
    os.chmod(config / "pys6.yaml", 0o644)
    container.run("-e", "PYS6_CONFIG=/etc/pys6-test/pys6.yaml", "-v", f"{config}:/etc/pys6-test:ro")

    def running() -> bool:
        state = podman("inspect", container.name, "--format", "{{.State.Running}}", check=False)
        return state.stdout.strip() == "true"

    def cron_pid() -> int | None:
        answer = podman("exec", container.name, "pysvstat", "-p", "cron", check=False, timeout=30)
        text = answer.stdout.strip()
        return int(text) if answer.returncode == 0 and text.isdigit() and int(text) > 0 else None

    killed: list[int] = []
    deadline = time.monotonic() + 90  # 5 deaths at one start a second, and a podman exec per step
    while running():
        assert time.monotonic() < deadline, f"cron killed {len(killed)} times, the container still runs"
        pid = cron_pid()
        if pid is None or pid in killed:
            time.sleep(0.2)  # between two polls of its state (pysvstat -wu would outlive the container)
            continue
        podman("exec", container.name, "kill", "-KILL", str(pid), check=False, timeout=30)
        killed.append(pid)
    assert len(killed) == 5, killed  # PYS6_CRASH_DEATHS' default: the fifth death in 60 s bails
    code = podman("inspect", container.name, "--format", "{{.State.ExitCode}}").stdout.strip()
    assert code == "137", container.logs()[-3000:]  # 128 + SIGKILL, the service's last code
    verdict = container.verdict.read_text()
    lines = verdict.splitlines()
    assert lines[:3] == ["essential service cron bailed (its last run was killed by SIGKILL)", "exit code: 137",
                         "last lines of cron:"], verdict
    assert any("msg=\"read crontab: /home/claude/.crontab\"" in line for line in lines[3:]), verdict
    assert len(verdict.encode()) <= 4096
