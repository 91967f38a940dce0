"""The services' metrics directory follows no symlink (issue 21, point 10).

pyinit may run as root and reads every *.prom file of $PYS6_METRICS_DIR for its page: a link
there to a root-only file of `name value` lines (or to /proc/self/environ, pyinit's own
environment) would serve that file to anyone who can scrape. Links are not followed, the
directory's own included, and a link is counted as a file not read (-1).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import Pod, wait_for
from supervisor.metrics.page import ServicesFiles

SECRET = "# HELP secret_metric root's only\n# TYPE secret_metric gauge\nsecret_metric 42\n"


def root_only_file(path: Path, text: str) -> Path:
    path.write_text(text)
    os.chown(path, 0, 0)
    os.chmod(path, 0o600)
    return path


def scrape(pod: Pod) -> str:
    result = pod.cli("svstat", "--prometheus")
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def root_pod(pod: Pod) -> Pod:
    if os.geteuid() != 0:
        pytest.skip("pyinit as root, reading a root-only file, needs root")
    return pod


def test_a_prom_symlink_to_a_root_only_file_or_to_pyinits_environment_is_not_served(root_pod: Pod):
    pod = root_pod
    # pyinit's environment carries a line that would parse as a sample, were /proc/self/environ read.
    pod.start(env={"PYS6_TEST_NOISE": "1\nenviron_secret 42\n"})
    pod.wait_control()
    directory = wait_for(lambda: (pod.rundir / "metrics").is_dir() and pod.rundir / "metrics", 10, "the directory")
    secret = root_only_file(pod.root / "secret", SECRET)
    (directory / "leak.prom").symlink_to(secret)
    (directory / "environ.prom").symlink_to("/proc/self/environ")
    (directory / "fine.prom").write_text("# HELP fine_metric a service's own\nfine_metric 1\n")
    page = wait_for(lambda: "fine_metric 1" in (text := scrape(pod)) and text, 10, "the service's file served")
    assert "secret_metric" not in page and "environ_secret" not in page
    assert 'pys6_metrics_file_rejected_lines{file="leak.prom"} -1\n' in page
    assert 'pys6_metrics_file_rejected_lines{file="environ.prom"} -1\n' in page
    assert pod.process is not None and pod.process.poll() is None


def test_a_metrics_directory_swapped_for_a_symlink_is_not_followed(root_pod: Pod):
    pod = root_pod
    pod.start()
    pod.wait_control()
    directory = wait_for(lambda: (pod.rundir / "metrics").is_dir() and pod.rundir / "metrics", 10, "the directory")
    (directory / "fine.prom").write_text("# HELP fine_metric a service's own\nfine_metric 1\n")
    wait_for(lambda: "fine_metric 1" in scrape(pod), 10, "the service's file served")
    elsewhere = pod.root / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    root_only_file(elsewhere / "secret.prom", SECRET)
    directory.rename(pod.rundir / "metrics.moved")
    directory.symlink_to(elsewhere)  # the path pyinit reads is now a link to a root-only directory
    page = wait_for(lambda: "fine_metric" not in (text := scrape(pod)) and text, 10, "the directory read again")
    assert "secret_metric" not in page
    assert pod.process is not None and pod.process.poll() is None


def test_a_link_to_a_fifo_is_never_opened_and_a_replaced_link_is_not_read(tmp_path: Path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "pipe.prom").symlink_to(tmp_path / "fifo")
    target = tmp_path / "target"
    target.write_text("# HELP linked_metric x\nlinked_metric 1\n")
    (tmp_path / "link.prom").symlink_to(target)
    files = ServicesFiles(str(tmp_path))
    merged = files.read()
    assert merged.rejected == {"link.prom": -1, "pipe.prom": -1} and "linked_metric" not in merged.text()
    target.write_text("# HELP linked_metric x\nlinked_metric 2\n")  # the link unchanged, its target changed
    assert "linked_metric" not in files.read().text()
