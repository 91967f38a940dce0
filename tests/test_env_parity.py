"""What every process pyinit starts finds in its environment, against real s6-overlay's (issue 23).

The expected values below were MEASURED under the real s6-overlay 3.2.3.2 with the rig of
../shared/s6-overlay-real (boot.sh, one tree booted under s6-overlay, pys6 and pys6-bare, with
S6_KEEP_ENV unset, 0 and 1): a plain `#!/bin/sh` and a `with-contenv` cont-init script, a
services.d service of each kind, an s6-rc oneshot (up) and longrun (run), a cont-finish script
of each kind and a CMD, each writing /proc/$$/environ. What s6-overlay gave, by S6_KEEP_ENV
(C is the container's environment: what PID 1 was exec'd with, PATH as /init makes it, and
PWD=<the working directory>, which /init's shell exports):

| process                        | unset or 0                      | 1                 |
| ------------------------------ | ------------------------------- | ----------------- |
| plain cont-init, cont-finish   | PATH (+ RC_NAME, PWD=its cwd)   | C (+ the same)    |
| with-contenv cont-init, finish | C + what cont-init wrote there  | C (+ the same)    |
| plain service, s6-rc longrun   | PATH                            | C                 |
| with-contenv service           | C + what cont-init wrote there  | C                 |
| s6-rc oneshot's up             | PATH (+ RC_NAME=<its name>)     | C (+ RC_NAME)     |
| the CMD                        | PATH (+ PWD, OLDPWD)            | C (+ OLDPWD)      |
| /run/s6/container_environment  | C, one file each, value + "\n"  | not made          |

and `printcontenv GREETING` printed the file and a newline ("hello-from-env\n\n"), and
`printcontenv` of a name with no file exited 2. Never LC_CTYPE (Python's C-locale coercion
sets it in pyinit's own os.environ) nor PYS6_METRICS_DIR (pys6's own, handed on only when
metrics are served). The parenthesised extras come from s6-overlay's own machinery around
those scripts (s6-rc's oneshot runner sets RC_NAME; its `/bin/sh` wrappers export PWD and
OLDPWD), which pyinit does not have: they are the one difference left, named in UNMATCHED and
left out of the comparison for those processes only. pys6 writes the directory under
S6_KEEP_ENV=1 too (nothing reads it then), also not compared.

pyinit runs here with LANG and LC_ALL unset, in the C locale, so every case also shows that
LC_CTYPE does not leak.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from harness import REPO, Pod, wait_for
from supervisor.init import s6_path

# s6-overlay's own machinery around these processes sets these; pyinit has none of it (above).
UNMATCHED = {"RC_NAME", "PWD", "OLDPWD"}
# (process, S6_KEEP_ENV) -> what s6-overlay 3.2.3.2 gave: "PATH" (PATH only), "C" (the container's
# environment), "C+written" (C and what cont-init wrote into the directory); wrapped: UNMATCHED left out.
MEASURED: dict[str, dict[str | None, str]] = {
    "cont-init-plain": {None: "PATH", "0": "PATH", "1": "C"},
    "cont-init-contenv": {None: "C+written", "0": "C+written", "1": "C"},
    "svc-plain": {None: "PATH", "0": "PATH", "1": "C"},
    "svc-contenv": {None: "C+written", "0": "C+written", "1": "C"},
    "rc-oneshot": {None: "PATH", "0": "PATH", "1": "C"},
    "rc-longrun": {None: "PATH", "0": "PATH", "1": "C"},
    "cont-finish-plain": {None: "PATH", "0": "PATH", "1": "C"},
    "cont-finish-contenv": {None: "C+written", "0": "C+written", "1": "C"},
    "cmd": {None: "PATH", "0": "PATH", "1": "C"},
}
WRAPPED = {"cont-init-plain", "cont-init-contenv", "cont-finish-plain", "cont-finish-contenv", "rc-oneshot", "cmd"}
SERVICES = ("svc-plain", "svc-contenv", "rc-longrun", "rc-oneshot")


def _pys6_command(directory: Path, name: str, function: str) -> Path:
    """This checkout's with-contenv or printcontenv, as `pyinit --install-s6-commands` links them,
    without changing the environment (no PYTHONPATH: it finds the checkout itself)."""
    path = directory / name
    path.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(REPO)!r})\n"
                    f"from supervisor.s6.commands import {function}\nsys.exit({function}(sys.argv[1:]))\n")
    path.chmod(0o755)
    return path


def _s6_overlay_with_contenv(directory: Path) -> Path:
    from test_s6_overlay import S6_OVERLAY_WITH_CONTENV, needs

    needs("execlineb", "s6-envdir")
    path = directory / "with-contenv"
    path.write_text(S6_OVERLAY_WITH_CONTENV)
    path.chmod(0o755)
    return path


def _build(pod: Pod, with_contenv: Path, printcontenv: Path) -> list[str]:
    """The measured tree; the CMD's argv."""
    dumps = pod.root / "dumps"
    dumps.mkdir()
    dump = pod.root / "dump"
    dump.write_text(f"#!/bin/sh\ntr '\\0' '\\n' < /proc/$2/environ | sort > {dumps}/$1.env.new\n"
                    f"mv {dumps}/$1.env.new {dumps}/$1.env\n")
    dump.chmod(0o755)
    pod.script("cont-init.d/10-plain", f"#!/bin/sh\n{dump} cont-init-plain $$\n"
                                       f"cp -r /run/s6/container_environment {dumps}/contenv-dir\n"
                                       f"{printcontenv} GREETING > {dumps}/printcontenv\n"
                                       f"{printcontenv} NOTHING; echo $? > {dumps}/printcontenv-missing\n")
    pod.script("cont-init.d/15-write", "#!/bin/sh\n"
                                       "printf written > /run/s6/container_environment/WRITTEN 2>/dev/null || true\n")
    pod.script("cont-init.d/20-contenv", f"#!{with_contenv} sh\n{dump} cont-init-contenv $$\n")
    pod.script("services.d/plain/run", f"#!/bin/sh\n{dump} svc-plain $$\nexec sleep 1000\n")
    pod.script("services.d/contenv/run", f"#!{with_contenv} sh\n{dump} svc-contenv $$\nexec sleep 1000\n")
    rc = pod.etc / "s6-overlay" / "s6-rc.d"
    (rc / "once").mkdir(parents=True)
    (rc / "once" / "type").write_text("oneshot\n")
    up = pod.root / "once-up"
    up.write_text(f"#!/bin/sh\n{dump} rc-oneshot $$\n")
    up.chmod(0o755)
    (rc / "once" / "up").write_text(f"{up}\n")
    (rc / "rclong").mkdir()
    (rc / "rclong" / "type").write_text("longrun\n")
    pod.script("s6-overlay/s6-rc.d/rclong/run", f"#!/bin/sh\n{dump} rc-longrun $$\nexec sleep 1000\n")
    contents = pod.etc / "s6-overlay" / "user-bundles.d" / "user" / "contents.d"
    contents.mkdir(parents=True)
    (contents / "once").touch()
    (contents / "rclong").touch()
    pod.script("cont-finish.d/50-plain", f"#!/bin/sh\n{dump} cont-finish-plain $$\n")
    pod.script("cont-finish.d/51-contenv", f"#!{with_contenv} sh\n{dump} cont-finish-contenv $$\n")
    cmd = pod.root / "cmd"
    # The CMD ends the container: first, a bounded wait for the services' dumps.
    waits = " && ".join(f"[ -e {dumps}/{name}.env ]" for name in SERVICES)
    cmd.write_text(f"#!/bin/sh\n{dump} cmd $$\ni=0\n"
                   f"until {waits} || [ $i -ge 200 ]; do sleep 0.05; i=$((i + 1)); done\n")
    cmd.chmod(0o755)
    return [str(cmd)]


def _read(path: Path) -> dict[str, str]:
    return dict(line.partition("=")[::2] for line in path.read_text().splitlines() if line)


def _boot(pod: Pod, keep: str | None, with_contenv_kind: str, extra: dict[str, str] | None = None,
          ) -> tuple[dict[str, dict[str, str]], dict[str, str], Path]:
    commands = pod.root / "commands"
    commands.mkdir()
    if with_contenv_kind == "s6-overlay":
        with_contenv = _s6_overlay_with_contenv(commands)
    else:
        with_contenv = _pys6_command(commands, "with-contenv", "with_contenv")
    printcontenv = _pys6_command(commands, "printcontenv", "printcontenv")
    argv = _build(pod, with_contenv, printcontenv)
    # LANG and LC_ALL unset: the C locale, where Python coerces LC_CTYPE in its own os.environ.
    pod.start(*argv, env={"S6_KEEP_ENV": keep, "LANG": None, "LC_ALL": None, "GREETING": "hello-from-env",
                          "SPACED": "a b  c", "S6_VERBOSITY": "2", **(extra or {})})
    assert pod.wait_exit(30) == 0, pod.stderr()[-3000:]
    dumps = pod.root / "dumps"
    seen = {path.name.removesuffix(".env"): _read(path) for path in dumps.glob("*.env")}
    # pyinit's own environment, as exec'd: what s6-overlay calls the container's, before PWD
    container = dict(pod.env)
    container["PWD"] = "/"  # the harness starts pyinit in /; /init's shell exports it
    return seen, container, dumps


def _expected(kind: str, container: dict[str, str], path: str) -> dict[str, str]:
    if kind == "PATH":
        return {"PATH": path}
    expected = {**container, "PATH": path}
    if kind == "C+written":
        expected["WRITTEN"] = "written"
    return expected


@pytest.mark.namespace
@pytest.mark.parametrize("with_contenv_kind", ["pys6", "s6-overlay"])
@pytest.mark.parametrize("keep", [None, "0", "1"], ids=["unset", "0", "1"])
def test_every_process_sees_what_s6_overlay_gives_it(pod: Pod, keep: str | None, with_contenv_kind: str):
    if keep == "1" and with_contenv_kind == "s6-overlay":
        pytest.skip("S6_KEEP_ENV=1: every with-contenv is a no-op; the pys6 case covers it")
    seen, container, dumps = _boot(pod, keep, with_contenv_kind)
    path = s6_path(container["PATH"], os.path.isdir("/command"))  # as /init makes it
    assert set(seen) == set(MEASURED), sorted(seen)
    for process, by_keep in MEASURED.items():
        got = dict(seen[process])
        if process == "rc-oneshot":  # Debian's execlineb (a wrapper) puts its own directory first
            got["PATH"] = got["PATH"].removeprefix("/usr/lib/execline/bin:")
        expected = _expected(by_keep[keep], container, path)
        if process in WRAPPED:
            for name in UNMATCHED:
                got.pop(name, None)
                expected.pop(name, None)
        assert got == expected, (process, sorted(set(got.items()) ^ set(expected.items())))
    for environment in seen.values():
        assert "LC_CTYPE" not in environment and "PYS6_METRICS_DIR" not in environment
    if keep != "1":
        copied = {entry.name: entry.read_text() for entry in (dumps / "contenv-dir").iterdir()}
        assert copied == {name: value + "\n" for name, value in _expected("C", container, path).items()}
        assert (dumps / "printcontenv").read_text() == "hello-from-env\n\n"
        assert (dumps / "printcontenv-missing").read_text() == "2\n"


@pytest.mark.namespace
def test_lc_ctype_does_not_leak_from_a_pyinit_in_the_c_locale(pod: Pod):
    """The sharpest case: S6_KEEP_ENV=1 hands pyinit's environment to everyone, and the container
    environment directory is what with-contenv reads under 0."""
    pod.service("look", f'''#!/bin/sh
        tr '\\0' '\\n' < /proc/$$/environ > {pod.state}/environ
        ls /run/s6/container_environment > {pod.state}/names
        exec sleep 1000
    ''')
    pod.start(env={"S6_KEEP_ENV": "1", "LANG": None, "LC_ALL": None})
    names = wait_for(lambda: pod.read_state("names"), what="the service").split()
    environ = pod.read_state("environ").splitlines()
    assert "PYTHONPATH" in names and "S6_KEEP_ENV" in names  # the listing is pyinit's environment
    assert not any(line.startswith("LC_CTYPE=") for line in environ), environ
    assert "LC_CTYPE" not in names
    assert pod.stop() == 0


@pytest.mark.namespace
@pytest.mark.parametrize("metrics", [False, True], ids=["without-metrics", "with-metrics"])
def test_pys6_metrics_dir_reaches_children_only_when_metrics_are_served(pod: Pod, metrics: bool):
    pod.service("look", f'''#!/bin/sh
        echo "${{PYS6_METRICS_DIR-unset}}" > {pod.state}/seen
        cat /run/s6/container_environment/PYS6_METRICS_DIR > {pod.state}/file 2>/dev/null || echo none > {pod.state}/file
        exec sleep 1000
    ''')
    env: dict[str, str | None] = {"S6_KEEP_ENV": "1"}
    if metrics:
        env["PYS6_METRICS_FILE"] = str(pod.state / "metrics.prom")
    pod.start(env=env)
    wait_for(lambda: pod.read_state("file"), what="the service")  # written last
    seen = pod.read_state("seen").strip()
    if metrics:
        assert seen == str(pod.rundir / "metrics")  # pycrond's run script finds it there
        assert pod.read_state("file") == f"{pod.rundir / 'metrics'}\n"
    else:
        assert seen == "unset"
        assert pod.read_state("file") == "none\n"
    assert pod.stop() == 0


def test_the_container_environment_is_what_pyinit_was_execd_with(tmp_path: Path):
    """/proc's copy, not os.environ; PATH as pyinit made it; PWD as a shell exports it."""
    from supervisor.s6.childenv import ChildEnvironment, container_environment

    environ = tmp_path / "environ"
    environ.write_bytes(b"PATH=/usr/bin\0HOME=/root\0PYS6_METRICS_DIR=/given\0PWD=/nowhere\0HOME=/second\0")
    from supervisor.base.environ import exec_environment

    execd = exec_environment(str(environ))
    assert execd == {b"PATH": b"/usr/bin", b"HOME": b"/root", b"PYS6_METRICS_DIR": b"/given", b"PWD": b"/nowhere"}
    own = {b"PATH": b"/command:/usr/bin:/bin", b"HOME": b"/root", b"LC_CTYPE": b"C.UTF-8"}
    made = container_environment(own, "/run/pys6/metrics", False, execd)
    assert made == {b"PATH": b"/command:/usr/bin:/bin", b"HOME": b"/root", b"PWD": str(Path.cwd()).encode()}
    served = container_environment(own, "/run/pys6/metrics", True, execd)
    assert served[b"PYS6_METRICS_DIR"] == b"/run/pys6/metrics"
    assert container_environment(own, "", False, None)[b"LC_CTYPE"] == b"C.UTF-8"  # no /proc: os.environ it is
    assert ChildEnvironment(0, made)() == {b"PATH": b"/command:/usr/bin:/bin"}
    assert ChildEnvironment(1, made)() == made
    assert exec_environment(str(tmp_path / "absent")) is None
