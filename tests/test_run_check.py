"""A non-root PID 1 with a /run it cannot use, in an image that kept s6-overlay's own commands
(issue 23, point 4).

Real s6-overlay's setuid preinit fixes such a /run (`/run belongs to uid 0 instead of 1000 -
fixing it`) or, unprivileged, refuses it with exit 100. pyinit cannot chown /run as uid 1000, and
the image's with-contenv knows only /run/s6/container_environment: so it stops before anything
runs, with one line naming /run, its owner and mode and the fix, instead of booting with every
with-contenv script failing. Without s6-overlay's commands (pys6's own, or none), uid 1000 boots
on its runtime directory as before (test_unprivileged.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from harness import SLEEPER, Pod, wait_for

# What s6-overlay's with-contenv does, in sh: the container environment from /run, nowhere else.
S6_OVERLAYS_WITH_CONTENV = """#!/bin/sh
for f in /run/s6/container_environment/*; do :; done
exec s6-envdir -Lf /run/s6/container_environment "$@"
"""


def image_commands(pod: Pod, with_contenv: str | None = None, link_to: str | None = None) -> str:
    """A bin directory with the image's with-contenv, first on PATH."""
    bindir = pod.root / "image-bin"
    bindir.mkdir()
    if link_to is not None:
        os.symlink(link_to, bindir / "with-contenv")
    else:
        (bindir / "with-contenv").write_text(with_contenv or S6_OVERLAYS_WITH_CONTENV)
        os.chmod(bindir / "with-contenv", 0o755)
    return f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}"


def test_s6_overlays_commands_on_a_run_uid_1000_cannot_write_stop_the_boot_in_one_line(unprivileged_pod: Pod):
    pod = unprivileged_pod
    pod.script("cont-init.d/10-mark", 'touch "$STATE/init.ran"')
    pod.service("svc", SLEEPER)
    path = image_commands(pod)
    pod.start(env={"PATH": path})  # the harness's /run: a tmpfs of root's, mode 0755
    assert pod.wait_exit(10) == 100
    lines = pod.stderr().splitlines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("pyinit: fatal: /run belongs to uid 0 with mode 0755 (uid 1000 cannot write it)"), line
    assert str(Path(path.split(":")[0]) / "with-contenv") in line and "/run/s6/container_environment" in line
    assert "--tmpfs /run:exec,uid=1000,gid=1000" in line
    assert not (pod.state / "init.ran").exists() and not (pod.state / "svc.pid").exists()  # nothing ran
    assert pod.stdout() == ""


def test_pys6s_own_with_contenv_boots_uid_1000_on_its_runtime_directory(unprivileged_pod: Pod):
    pod = unprivileged_pod
    pod.service("svc", SLEEPER)
    pod.start(env={"PATH": image_commands(pod, link_to=str(Path(sys.executable).parent / "pys6-with-contenv"))})
    wait_for(lambda: pod.read_state("svc.pid"), what="svc")
    assert pod.stop() == 0


def test_with_s6_run_off_the_operator_takes_charge_of_run(unprivileged_pod: Pod):
    pod = unprivileged_pod
    pod.service("svc", SLEEPER)
    pod.start(env={"PATH": image_commands(pod), "PYS6_S6_RUN": "0"})
    wait_for(lambda: pod.read_state("svc.pid"), what="svc")
    assert pod.stop() == 0
