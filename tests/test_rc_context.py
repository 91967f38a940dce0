"""What s6-rc gives the scripts it runs: the working directory, RC_NAME and PWD of each kind of
process, as real s6-overlay 3.2.3.2 gives them.

Measured under s6-overlay 3.2.3.2 (the rig of ../shared/s6-overlay-real booting its minimal
tree, each process's environment as it was exec'd, /proc/PID/environ, and its cwd):
- s6-rc-init makes the live directory /run/s6-rc:s6-rc-init:XXXXXX (six random letters and
  digits), /run/s6-rc a link to it (`s6-rc:s6-rc-init:XXXXXX`, relative); in its servicedirs/
  a directory per longrun and s6rc-oneshot-runner (and s6rc-fdholder, s6-rc's own, not made).
- cont-init.d and cont-finish.d scripts (run by the legacy-cont-init oneshot's /bin/sh loop):
  cwd .../servicedirs/s6rc-oneshot-runner, RC_NAME=legacy-cont-init, PWD=that directory (the
  loop's shell exports it), with S6_KEEP_ENV 0 and 1 alike.
- a oneshot's up and down: the same cwd, RC_NAME=<the oneshot>; PWD as in the environment it
  gets: unset with S6_KEEP_ENV=0 (PATH only), / with S6_KEEP_ENV=1 (the container's).
- an s6-rc longrun: cwd .../servicedirs/<name>; services.d's: /run/s6/legacy-services/<name>;
  none of them gets RC_NAME; PWD=/ with S6_KEEP_ENV=1, unset with 0.
- the CMD: cwd / (the workdir), PWD=/ and OLDPWD=/ with S6_KEEP_ENV 0 and 1 (rc.init, a /bin/sh
  script started in /, does `cd <workdir>` before it; test_env_parity's table measured it too).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from harness import Pod

RUNNER = "servicedirs/s6rc-oneshot-runner"
KINDS = ("cont-init", "once-up", "once-down", "long", "svc", "main", "cont-finish")


def _look(state: Path, label: str) -> str:
    """Shell lines that record the process's own exec'd environment and cwd (not what its shell
    made of them) into state/label."""
    return (f'tr "\\0" "\\n" < /proc/$$/environ | grep -E "^(PWD|OLDPWD|RC_NAME)=" > {state}/{label}.env\n'
            f'readlink /proc/$$/cwd > {state}/{label}.cwd\n')


def tree(pod: Pod) -> None:
    state = pod.state
    pod.script("cont-init.d/10-look", "#!/bin/sh\n" + _look(state, "cont-init"))
    pod.script("cont-finish.d/10-look", "#!/bin/sh\n" + _look(state, "cont-finish"))
    pod.script("s6-overlay/scripts/look", '#!/bin/sh\nlabel="$1"\n'
               + _look(state, "$label"))
    pod.service("svc", "#!/bin/sh\n" + _look(state, "svc") + "exec sleep 1000\n")
    rc = pod.etc / "s6-overlay" / "s6-rc.d"
    for name, kind in (("look-once", "oneshot"), ("look-long", "longrun"), ("user", "bundle")):
        (rc / name).mkdir(parents=True)
        (rc / name / "type").write_text(f"{kind}\n")
    script = pod.etc / "s6-overlay" / "scripts" / "look"
    (rc / "look-once" / "up").write_text(f"{script} once-up\n")
    (rc / "look-once" / "down").write_text(f"{script} once-down\n")
    (rc / "look-long" / "run").write_text("#!/bin/sh\n" + _look(state, "long") + "exec sleep 1000\n")
    (rc / "user" / "contents.d").mkdir()
    for name in ("look-once", "look-long"):
        (rc / "user" / "contents.d" / name).write_text("")
    # the CMD: once the services have recorded, what it sees, and s6-rc's live directory
    pod.script("main", "#!/bin/sh\n" + _look(state, "main") + f"""
        for i in $(seq 100); do [ -e {state}/long.cwd ] && [ -e {state}/svc.cwd ] && break; sleep 0.1; done
        readlink /run/s6-rc > {state}/live.link 2>/dev/null
        ls /run/s6-rc/servicedirs > {state}/live.servicedirs 2>/dev/null
        exit 0
        """)


def seen(pod: Pod, label: str) -> tuple[str, dict[str, str]]:
    env = dict(line.split("=", 1) for line in pod.read_state(f"{label}.env").splitlines())
    return pod.read_state(f"{label}.cwd").strip(), env


def boot(pod: Pod, keep_env: str) -> None:
    tree(pod)
    pod.start(str(pod.etc / "main"), env={"S6_KEEP_ENV": keep_env})
    assert pod.wait_exit() == 0, pod.stderr()
    missing = [kind for kind in KINDS if not (pod.state / f"{kind}.cwd").exists()]
    assert not missing, f"never ran: {missing}\n{pod.stderr}"


@pytest.mark.namespace
@pytest.mark.parametrize("keep_env", ["0", "1"])
def test_what_s6_rc_gives_each_kind_of_process(pod: Pod, keep_env: str) -> None:
    boot(pod, keep_env)
    link = pod.read_state("live.link").strip()
    assert re.fullmatch(r"s6-rc:s6-rc-init:[A-Za-z0-9]{6}", link), link
    live = "/run/" + link
    assert {"s6rc-oneshot-runner", "look-long"} <= set(pod.read_state("live.servicedirs").split())
    runner = f"{live}/{RUNNER}"
    container_pwd = {"PWD": "/"} if keep_env == "1" else {}
    expected = {
        "cont-init": (runner, {"PWD": runner, "RC_NAME": "legacy-cont-init"}),
        "cont-finish": (runner, {"PWD": runner, "RC_NAME": "legacy-cont-init"}),
        "once-up": (runner, {**container_pwd, "RC_NAME": "look-once"}),
        "once-down": (runner, {**container_pwd, "RC_NAME": "look-once"}),
        "long": (f"{live}/servicedirs/look-long", container_pwd),
        "svc": ("/run/s6/legacy-services/svc", container_pwd),
        "main": ("/", {"PWD": "/", "OLDPWD": "/"}),
    }
    assert {kind: seen(pod, kind) for kind in KINDS} == expected


def test_where_run_is_not_pyinits_scripts_run_in_their_own_directories(subreaper_pod: Pod) -> None:
    """No /run of its own (a subreaper): nothing made under /run, s6-rc's longruns copied
    under the runtime directory; RC_NAME and the shell's PWD as under s6-overlay."""
    pod = subreaper_pod
    host_had = os.path.lexists("/run/s6-rc")
    boot(pod, "1")
    init_dir = str(pod.etc / "cont-init.d")
    assert seen(pod, "cont-init") == (init_dir, {"PWD": init_dir, "RC_NAME": "legacy-cont-init"})
    assert seen(pod, "once-up") == (str(pod.etc / "s6-overlay" / "s6-rc.d" / "look-once"),
                                    {"PWD": "/", "RC_NAME": "look-once"})
    assert seen(pod, "long") == (str(pod.rundir / "s6-rc" / "look-long"), {"PWD": "/"})
    assert os.path.lexists("/run/s6-rc") == host_had  # the host's /run is left alone
