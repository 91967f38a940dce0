"""What an s6-overlay image finds under pyinit: the container environment and with-contenv,
the exit-code files and halt, s6-overlay's variables, fix-attrs.d and the opt-in commands.

PID 1 tests run in a PID namespace with a tmpfs /run of their own (the harness mounts it),
where pyinit lays out s6-overlay's paths as in a container; subreaper tests check the
same things under $PYS6_RUNDIR.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import REPO, SLEEPER, UNPRIVILEGED_UID, Pod, wait_for, world_readable_source
from supervisor.init import s6_path
from supervisor.s6 import fixattrs as compat

BIN = Path(sys.executable).parent

# s6-overlay v3's with-contenv, as its README describes it: execline, S6_KEEP_ENV non-zero
# runs the program as is, else in PATH plus the container environment.
S6_OVERLAY_WITH_CONTENV = """#!/usr/bin/execlineb -S0
ifelse
{
  importas -D 0 S6_KEEP_ENV S6_KEEP_ENV
  eltest 0${S6_KEEP_ENV} -eq 0
}
{
  emptyenv -p
  s6-envdir -Lf -- /run/s6/container_environment
  exec
  $@
}
$@
"""


def needs(*programs: str) -> None:
    missing = [program for program in programs if shutil.which(program) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian's execline and s6 packages; .ci/run installs them)")


@pytest.fixture
def commands() -> Iterator[Path]:
    """A directory holding pys6's own commands under s6-overlay's names, as
    `pyinit --install-s6-commands` makes it, readable by every uid."""
    directory = Path(tempfile.mkdtemp(prefix="pys6-cmds-"))
    directory.chmod(0o755)
    try:
        result = subprocess.run([str(BIN / "pyinit"), "--install-s6-commands", str(directory)],
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def s6_overlay_commands() -> Iterator[Path]:
    """s6-overlay's own with-contenv, over Debian's execline and s6."""
    needs("execlineb", "s6-envdir")
    directory = Path(tempfile.mkdtemp(prefix="pys6-s6o-"))
    directory.chmod(0o755)
    (directory / "with-contenv").write_text(S6_OVERLAY_WITH_CONTENV)
    (directory / "with-contenv").chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# --- PATH -----------------------------------------------------------------------------


def test_path_gets_command_first_and_bin_and_usr_bin_as_s6_overlays_init_makes_it():
    assert s6_path("/usr/local/bin:/usr/bin:/bin", True) == "/command:/usr/local/bin:/usr/bin:/bin"
    assert s6_path("/usr/local/bin", True) == "/command:/usr/bin:/bin:/usr/local/bin"
    assert s6_path("", False) == "/usr/bin:/bin"
    assert s6_path("/command:/usr/bin:/bin", True) == "/command:/usr/bin:/bin"  # nothing twice
    assert s6_path("/usr/bin:/bin", False) == "/usr/bin:/bin"  # no /command where there is none


# --- the container environment ------------------------------------------------------------


@pytest.mark.namespace
def test_the_container_environment_is_one_file_per_variable_where_s6_overlay_keeps_it(pod: Pod):
    pod.service("look", """
        cd /run/s6/container_environment && ls > "$STATE/names"
        cat GREETING > "$STATE/greeting"
        readlink "$PYS6_RUNDIR/container_environment" > "$STATE/link"
        readlink -f /var/run/s6/container_environment > "$STATE/var-run"
        ls /run/s6/legacy-services > "$STATE/legacy"
        exec sleep 1000
    """)
    pod.start(env={"GREETING": "hello\nworld"})
    wait_for(lambda: pod.read_state("legacy"), what="the service's look")
    assert {"GREETING", "PATH", "PYS6_ETC", "STATE"} <= set(pod.read_state("names").split())
    # as s6-linux-init writes it (measured under s6-overlay 3.2.3.2): the value, then one newline
    assert pod.read_state("greeting") == "hello\nworld\n"
    assert pod.read_state("link").strip() == "/run/s6/container_environment"
    assert pod.read_state("var-run").strip() == "/run/s6/container_environment"
    assert pod.read_state("legacy").split() == ["look"]
    assert pod.stop() == 0


def test_without_a_writable_run_the_container_environment_is_under_the_runtime_directory(subreaper_pod: Pod):
    pod = subreaper_pod
    pod.service("look", 'ls "$PYS6_RUNDIR/container_environment" > "$STATE/names"\nexec sleep 1000\n')
    pod.start(env={"GREETING": "hi"})
    names = wait_for(lambda: pod.read_state("names").split(), what="the listing")
    assert "GREETING" in names and "PATH" in names
    assert not os.path.islink(pod.rundir / "container_environment")
    assert pod.stop() == 0


@pytest.mark.parametrize("directory", ["/var/run/s6/container_environment", "$PYS6_RUNDIR/container_environment"])
def test_what_a_cont_init_script_adds_or_removes_reaches_later_with_contenv_scripts_and_services(
        pod: Pod, directory: str):
    if pod.default_mode != "namespace":
        pytest.skip("with S6_KEEP_ENV unset, with-contenv finds the directory where a PID 1 lays it out")
    # This checkout's with-contenv, which finds the checkout itself: under S6_KEEP_ENV unset (0)
    # the scripts have PATH only, no PYTHONPATH.
    with_contenv = pod.root / "with-contenv"
    with_contenv.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(REPO)!r})\n"
                            "from supervisor.s6.commands import with_contenv\nsys.exit(with_contenv(sys.argv[1:]))\n")
    with_contenv.chmod(0o755)
    # LinuxServer's FILE__ secrets: a cont-init script reads the file and writes the variable.
    secret = pod.root / "db_password"
    secret.write_text("s3cret\n")
    pod.script("cont-init.d/10-secrets", f"""#!{with_contenv} sh
        for var in $(env | sed -n 's/^FILE__\\([A-Za-z_]*\\)=.*/\\1/p'); do
            path=$(printenv "FILE__$var")
            printf '%s' "$(cat "$path")" > "{directory}/$var"
        done
        rm "{directory}/REMOVE_ME"
    """)
    pod.script("cont-init.d/20-later", f'#!{with_contenv} sh\n'
                                       'echo "${DB_PASSWORD-unset} ${REMOVE_ME-unset}" > "$STATE/later"\n')
    pod.script("cont-init.d/30-plain", f'#!/bin/sh\necho "${{DB_PASSWORD-unset}} ${{STATE-unset}}" > "{pod.state}/plain"\n')
    pod.script("services.d/app/run", f'#!{with_contenv} sh\n'
                                     'echo "${DB_PASSWORD-unset} ${REMOVE_ME-unset}" > "$STATE/app"\nexec sleep 1000\n')
    pod.start(env={"S6_KEEP_ENV": None, "FILE__DB_PASSWORD": str(secret), "REMOVE_ME": "x"})
    assert wait_for(lambda: pod.read_state("app"), what="the service") == "s3cret unset\n"
    assert pod.read_state("later") == "s3cret unset\n"
    assert pod.read_state("plain") == "unset unset\n"  # s6-overlay v3's default: PATH only
    assert pod.stop() == 0


def commands_of(implementation: str, request: pytest.FixtureRequest) -> Path:
    """The directory of with-contenv and its kin: s6-overlay's own, or pys6's."""
    return request.getfixturevalue("s6_overlay_commands" if implementation == "s6-overlay" else "commands")


@pytest.mark.namespace
@pytest.mark.parametrize("implementation", ["s6-overlay", "pys6"])
def test_s6_keep_env_0_gives_the_minimal_environment_and_with_contenv_restores_it(
        pod: Pod, implementation: str, request: pytest.FixtureRequest):
    with_contenv = commands_of(implementation, request) / "with-contenv"
    pod.script("cont-init.d/10-add", 'printf added > /run/s6/container_environment/ADDED\n',)
    pod.service("plain", f'env > "{pod.state}/plain"\nexec sleep 1000\n')  # no STATE here: PATH only
    pod.script("services.d/full/run", f'#!{with_contenv} sh\nenv > "$STATE/full"\nexec sleep 1000\n')
    pod.start(env={"S6_KEEP_ENV": "0", "GREETING": "hi"})
    full = wait_for(lambda: pod.read_state("full"), what="the with-contenv service")
    plain = wait_for(lambda: pod.read_state("plain"), what="the plain service")
    assert "GREETING=hi" in full.splitlines() and "ADDED=added" in full.splitlines()
    assert "GREETING=hi" not in plain.splitlines()
    assert {line.split("=")[0] for line in plain.splitlines()} <= {"PATH", "PWD", "SHLVL", "_", "OLDPWD"}
    assert pod.stop() == 0


@pytest.mark.namespace
@pytest.mark.parametrize("implementation", ["s6-overlay", "pys6"])
def test_s6_keep_env_1_keeps_the_original_environment_and_with_contenv_changes_nothing(
        pod: Pod, implementation: str, request: pytest.FixtureRequest):
    with_contenv = commands_of(implementation, request) / "with-contenv"
    pod.script("cont-init.d/10-add", 'printf added > /run/s6/container_environment/ADDED\n')
    pod.script("services.d/full/run", f'#!{with_contenv} sh\nenv > "$STATE/full"\nexec sleep 1000\n')
    pod.start(env={"S6_KEEP_ENV": "1", "GREETING": "hi"})
    full = wait_for(lambda: pod.read_state("full"), what="the with-contenv service").splitlines()
    assert "GREETING=hi" in full and "S6_KEEP_ENV=1" in full
    assert not any(line.startswith("ADDED=") for line in full)
    assert pod.stop() == 0


def test_printcontenv_prints_one_variable_of_the_container_environment(subreaper_pod: Pod, commands: Path):
    pod = subreaper_pod
    pod.service("ask", f'{commands}/printcontenv GREETING > "$STATE/greeting"\n'
                       f'{commands}/printcontenv NOTHING > "$STATE/nothing"; echo $? >> "$STATE/nothing"\n'
                       f'{commands}/printcontenv; echo $? > "$STATE/usage"\nexec sleep 1000\n')
    pod.start(env={"GREETING": "hi there"})
    wait_for(lambda: pod.read_state("usage"), what="the service")
    assert pod.read_state("greeting") == "hi there\n"
    assert pod.read_state("nothing") == "1\n"
    assert pod.read_state("usage") == "100\n"
    # the service may have run before pyinit's loop reads its pipes: its line comes a moment later
    wait_for(lambda: "[ask] printcontenv: fatal: too few arguments" in pod.stdout() + pod.stderr(),
             what="printcontenv's complaint")
    assert pod.stop() == 0


def test_with_contenv_without_a_container_environment_says_where_it_looked(commands: Path, tmp_path: Path):
    result = subprocess.run([str(commands / "with-contenv"), "true"], capture_output=True, text=True, timeout=30,
                            env={"PATH": os.environ["PATH"], "PYS6_RUNDIR": str(tmp_path / "none")})
    if os.path.isdir("/run/s6/container_environment") or os.path.isdir(f"/tmp/pys6-{os.getuid()}/container_environment"):
        pytest.skip("this machine has a container environment of its own")
    assert result.returncode == 111
    assert "with-contenv: fatal: unable to envdir: no container environment at /run/s6/container_environment" in result.stderr


# --- the exit code and halt ---------------------------------------------------------------


@pytest.mark.namespace
def test_s6_overlays_finish_recipe_writes_the_exit_code_and_halts(pod: Pod):
    needs("execlineb")
    # README, "Writing a service script": the finish script, with 3 instead of 0 to be seen
    pod.service("myapp", "exit 0", finish="""#!/usr/bin/execlineb -S0
foreground { redirfd -w 1 /run/s6-linux-init-container-results/exitcode echo 3 }
/run/s6/basedir/bin/halt
""")
    pod.service("other", SLEEPER)
    pod.script("cont-finish.d/10-bye", 'touch "$STATE/finished"\n')
    pod.start()
    assert pod.wait_exit(20) == 3
    assert (pod.state / "finished").exists()
    assert any(e.fields.get("reason") == "s6-svscanctl -t /run/service" for e in pod.events())


@pytest.mark.namespace
def test_the_docker_stop_recipe_exits_with_the_code_the_finish_script_computes(pod: Pod):
    # README: "it will write either myapp's exit code or 128 + the signal"
    pod.service("myapp", "exec sleep 1000", finish="""#!/bin/sh
if test "$1" -eq 256 ; then
  e=$((128 + $2))
else
  e="$1"
fi
echo "$e" > /run/s6-linux-init-container-results/exitcode
""")
    pod.start()
    wait_for(lambda: any("sleep" in " ".join(cmd) for _, _, cmd in pod.descendant_info()), what="myapp")
    pod.signal(signal.SIGTERM)
    assert pod.wait_exit(20) == 128 + signal.SIGTERM


@pytest.mark.namespace
def test_s6_overlay_v2s_stage2_exited_file_and_s6_svscanctl_stop_the_container(pod: Pod):
    needs("s6-svscanctl")
    pod.service("app", "exit 5", finish="""#!/bin/sh
echo "$1" > /var/run/s6/env-stage3/S6_STAGE2_EXITED
s6-svscanctl -t /var/run/s6/services
""")
    pod.start()
    assert pod.wait_exit(20) == 5


def test_halt_without_a_writable_run_finds_pyinit_through_the_runtime_directory(subreaper_pod: Pod, commands: Path):
    pod = subreaper_pod
    pod.service("app", "exit 0", finish=f"""
echo 42 > "$PYS6_RUNDIR/s6-linux-init-container-results/exitcode"
exec {commands}/halt
""")
    pod.start()
    assert pod.wait_exit(20) == 42
    assert any(str(e.fields.get("reason", "")).startswith("s6-svscanctl -t ") for e in pod.events())


def test_a_main_program_the_shutdown_ends_leaves_the_container_at_0(subreaper_pod: Pod):
    # s6-overlay's rc.init dies beside its CMD at the shutdown and never writes the CMD's code
    pod = subreaper_pod
    pod.start("sh", "-c", 'trap "exit 9" TERM; touch "$STATE/main"; while :; do sleep 0.05; done')
    wait_for(lambda: (pod.state / "main").exists(), what="the main program")
    pod.signal(signal.SIGTERM)
    assert pod.wait_exit(20) == 0
    assert pod.wait_event("main program exited")["exitcode"] == "9"


def test_s6_cmd_receive_signals_passes_signals_to_the_main_program_instead(subreaper_pod: Pod):
    pod = subreaper_pod
    pod.script("cont-finish.d/10-order", 'test -e "$STATE/term" && echo after-main > "$STATE/finish"\n')
    pod.start("sh", "-c", 'trap "touch \\"$STATE/usr1\\"" USR1; trap "touch \\"$STATE/term\\"; exit 7" TERM; '
                          'touch "$STATE/main"; while :; do sleep 0.05; done',
              env={"S6_CMD_RECEIVE_SIGNALS": "1"})
    wait_for(lambda: (pod.state / "main").exists(), what="the main program")
    pod.signal(signal.SIGUSR1)
    wait_for(lambda: (pod.state / "usr1").exists(), what="SIGUSR1 to reach the main program")
    assert pod.process is not None and pod.process.poll() is None  # the container goes on
    pod.signal(signal.SIGTERM)
    assert pod.wait_exit(20) == 7
    assert pod.read_state("finish") == "after-main\n"  # the shutdown began when the main program ended
    assert pod.event("signal passed to the main program", signal="SIGTERM")


# --- S6_* variables -------------------------------------------------------------------------


@pytest.mark.parametrize(("behaviour", "code", "cont_init_ran"), [("0", 0, True), ("2", 4, False)])
def test_s6_stage2_hook_runs_first_and_its_failure_follows_the_behaviour(
        subreaper_pod: Pod, behaviour: str, code: int, cont_init_ran: bool):
    pod = subreaper_pod
    pod.script("cont-init.d/10-after-hook", 'test -e "$STATE/hook" && touch "$STATE/cont-init"\n')
    pod.start(env={"S6_STAGE2_HOOK": 'touch "$STATE/hook"; exit 4', "S6_BEHAVIOUR_IF_STAGE2_FAILS": behaviour})
    if cont_init_ran:
        wait_for(lambda: (pod.state / "cont-init").exists(), what="cont-init after the hook")
        pod.wait_event("stage 2 hook failed")  # the event may reach the file after the script ran
        assert pod.stop() == 0
    else:
        assert pod.wait_exit(20) == code
        assert not (pod.state / "cont-init").exists()


def test_s6_cmd_arg0_is_put_before_the_main_program(subreaper_pod: Pod):
    pod = subreaper_pod
    pod.start("from", "cmd", env={"S6_CMD_ARG0": "/bin/echo arg0"})
    assert pod.wait_exit(20) == 0
    assert "arg0 from cmd\n" in pod.stdout()


@pytest.mark.parametrize(("behaviour", "main_runs", "code"), [("0", True, 0), ("1", True, 0), ("2", False, 1)])
def test_services_not_ready_by_the_maxtime_follow_s6_behaviour_if_stage2_fails(
        subreaper_pod: Pod, behaviour: str, main_runs: bool, code: int):
    pod = subreaper_pod
    pod.service("never", "exec sleep 1000", notification_fd="3\n")
    pod.start("sh", "-c", 'touch "$STATE/main"', env={
        "S6_CMD_WAIT_FOR_SERVICES": "1", "S6_CMD_WAIT_FOR_SERVICES_MAXTIME": "300",
        "S6_BEHAVIOUR_IF_STAGE2_FAILS": behaviour})
    assert pod.wait_exit(20) == code
    assert (pod.state / "main").exists() == main_runs
    said = [e for e in pod.events() if e.event.startswith("services were not ready in time")]
    assert bool(said) == (behaviour != "0")


def test_s6_wait_for_closing_fd_holds_the_boot_until_the_manager_closes_it(subreaper_pod: Pod):
    pod = subreaper_pod
    pod.script("cont-init.d/10-mark", 'touch "$STATE/booted"\n')
    read_end, write_end = os.pipe()  # the child has read_end at the same number, as a manager's fd 3 or 4
    try:
        pod.start(env={"S6_WAIT_FOR_CLOSING_FD": str(read_end)}, pass_fds=(read_end,))
    finally:
        os.close(read_end)
    os.write(write_end, b"not yet\n")

    def reading_the_fd() -> bool:  # blocked in read(2) (syscall 0 on x86-64) on that fd
        try:
            fields = Path(f"/proc/{pod.init_pid}/syscall").read_text().split()
        except OSError:
            return False
        return len(fields) > 1 and fields[0] == "0" and int(fields[1], 16) == read_end

    if os.uname().machine != "x86_64":
        pytest.skip("reads the x86-64 syscall number of read(2)")
    wait_for(reading_the_fd, what="pyinit to wait on the fd")
    assert not (pod.state / "booted").exists()
    os.close(write_end)
    wait_for(lambda: (pod.state / "booted").exists(), what="the boot once the fd closed")
    assert pod.stop() == 0


def test_s6_variables_pyinit_reads_otherwise_are_named_at_boot_and_never_stop_it(subreaper_pod: Pod):
    pod = subreaper_pod
    pod.service("svc", SLEEPER)
    pod.start(env={"S6_BEHAVIOUR_IF_STAGE2_FAILS": "3", "S6_KILL_GRACETIME": "soon", "S6_VERBOSITY": "12",
                   "S6_SERVICES_READYTIME": "100", "S6_CATCHALL_USER": "nobody", "S6_SYNC_DISKS": "1"})
    pod.wait_event("services started")  # the service may be up before pyinit's first line is written
    warnings = [e.event for e in pod.events() if e.level == "warning"]
    for said in ("S6_KILL_GRACETIME='soon' is not a whole number", "S6_SERVICES_READYTIME is set: not needed",
                 "S6_CATCHALL_USER is set"):
        assert any(warning.startswith(said) for warning in warnings), said
    assert pod.stop() == 0
    assert pod.event("syncing disks") is not None


def test_a_tree_pyinit_does_not_run_is_named_in_one_warning(subreaper_pod: Pod):
    pod = subreaper_pod
    for name in ("myapp", "myapp-log"):  # s6-rc definitions are read (and run when in a bundle)
        (pod.etc / "s6-overlay" / "s6-rc.d" / name).mkdir(parents=True)
        (pod.etc / "s6-overlay" / "s6-rc.d" / name / "type").write_text("longrun\n")
        (pod.etc / "s6-overlay" / "s6-rc.d" / name / "run").write_text("#!/bin/sh\nexec sleep 1000\n")
    (pod.etc / "s6-overlay" / "scripts").mkdir()
    (pod.etc / "s6-overlay" / "user-bundles.d").mkdir()
    (pod.etc / "s6-overlay" / "extra.conf").write_text("x\n")
    pod.start()
    pod.wait_event("services started")
    naming = [e for e in pod.events()
              if any("/etc/s6-overlay" in text or "s6-overlay holds" in text for text in (e.event, *map(str, e.fields.values())))]
    assert len(naming) == 1, naming
    assert naming[0].event == "/etc/s6-overlay holds what pyinit does not handle" and naming[0].level == "warning"
    # scripts/ is s6-overlay's documented place for what up and run files call: accepted, as s6-overlay does
    assert naming[0]["found"] == "extra.conf not read"
    assert pod.stop() == 0


# --- fix-attrs.d ------------------------------------------------------------------------------


def test_fix_attrs_lines_set_owners_and_modes_recursively(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("changing owners needs root")
    user = pwd.getpwuid(UNPRIVILEGED_UID).pw_name if _has_uid(UNPRIVILEGED_UID) else None
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "file").write_text("x")
    (data / ".hidden").write_text("x")
    compat.fix_line(f"{data} true nosuchuser,{UNPRIVILEGED_UID}:{UNPRIVILEGED_UID} 0600 0750", hidden=False)
    for path, mode in ((data, 0o750), (data / "sub", 0o750), (data / "sub" / "file", 0o600)):
        info = path.stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o7777) == (UNPRIVILEGED_UID, UNPRIVILEGED_UID, mode)
    assert (data / ".hidden").stat().st_uid == 0  # S6_FIX_ATTRS_HIDDEN=0: hidden entries are left
    compat.fix_line(f"{data} true root 0644 0755", hidden=True)
    assert (data / ".hidden").stat().st_mode & 0o777 == 0o644
    if user:
        compat.fix_line(f"{data}/sub/file false {user}:{grp.getgrgid(0).gr_name} 0640 0750", hidden=False)
        assert ((data / "sub" / "file").stat().st_uid, (data / "sub" / "file").stat().st_gid) == (UNPRIVILEGED_UID, 0)
    for bad in ("only three fields", f"{data} true nosuchuser 0600 0700", f"{data} true root 0999 0700",
                f"{tmp_path}/missing false root 0600 0700"):
        with pytest.raises(compat.FixError):
            compat.fix_line(bad, hidden=False)


def _has_uid(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def test_fix_attrs_d_is_applied_before_cont_init(subreaper_pod: Pod):
    if os.geteuid() != 0:
        pytest.skip("changing owners needs root")
    pod = subreaper_pod
    target = pod.root / "volume"
    target.mkdir()
    (pod.etc / "fix-attrs.d").mkdir()
    (pod.etc / "fix-attrs.d" / "01-volume").write_text(f"# the data volume\n{target} false 0:0 0600 0711\n")
    (pod.etc / "fix-attrs.d" / "02-broken").write_text("not a line\n")
    pod.script("cont-init.d/10-see", f'stat -c %a {target} > "$STATE/mode"\n')
    pod.start(env={"S6_BEHAVIOUR_IF_STAGE2_FAILS": "1"})
    assert wait_for(lambda: pod.read_state("mode"), what="cont-init") == "711\n"
    pod.wait_event("fix-attrs.d failed, continuing")
    assert pod.event("fix-attrs line failed")
    assert pod.stop() == 0


# --- pyinit --install-s6-commands and s6-setuidgid ----------------------------------------


def test_install_s6_commands_links_them_and_never_overwrites_what_it_did_not_install(tmp_path: Path):
    pyinit = str(BIN / "pyinit")
    (tmp_path / "halt").write_text("#!/bin/sh\necho the image's own halt\n")
    first = subprocess.run([pyinit, "--install-s6-commands", str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert first.returncode == 1 and f"{tmp_path / 'halt'} exists and is not pys6's" in first.stderr
    assert (tmp_path / "halt").read_text().startswith("#!/bin/sh")  # untouched
    for name in ("with-contenv", "printcontenv", "s6-setuidgid", "supercronic"):
        assert os.readlink(tmp_path / name).startswith(str(BIN))
    again = subprocess.run([pyinit, "--install-s6-commands", str(tmp_path), "--force"], capture_output=True, text=True,
                           timeout=30)
    assert again.returncode == 0, again.stderr
    assert os.readlink(tmp_path / "halt") == str(BIN / "pys6-halt")
    assert subprocess.run([pyinit, "--install-s6-commands"], capture_output=True, timeout=30).returncode == 100


def test_s6_setuidgid_drops_to_the_user_as_root_and_says_clearly_why_not_otherwise(commands: Path, tmp_path: Path):
    if os.geteuid() != 0 or not _has_uid(UNPRIVILEGED_UID):
        pytest.skip("needs root and a user with uid 1000")
    user = pwd.getpwuid(UNPRIVILEGED_UID).pw_name
    dropped = subprocess.run([str(commands / "s6-setuidgid"), user, "id", "-u"], capture_output=True, text=True,
                             timeout=30, env={"PATH": os.environ["PATH"]})
    assert dropped.returncode == 0 and dropped.stdout == f"{UNPRIVILEGED_UID}\n", dropped.stderr
    numeric = subprocess.run([str(commands / "s6-setuidgid"), "1000:1000", "id", "-g"], capture_output=True,
                             text=True, timeout=30)
    assert numeric.stdout == "1000\n"
    src = world_readable_source()
    as_user = ["setpriv", f"--reuid={UNPRIVILEGED_UID}", f"--regid={UNPRIVILEGED_UID}", "--clear-groups",
               sys.executable, "-c", "import sys; from supervisor.s6.commands import setuidgid_main; setuidgid_main()"]
    refused = subprocess.run([*as_user, "root", "id"], capture_output=True, text=True, timeout=30, cwd="/",
                             env={"PATH": os.environ["PATH"], "PYTHONPATH": str(src)})
    assert refused.returncode == 111
    assert f"s6-setuidgid: fatal: only root can become root (uid 0); this runs as uid {UNPRIVILEGED_UID}" in refused.stderr
    same = subprocess.run([*as_user, f"{UNPRIVILEGED_UID}:{UNPRIVILEGED_UID}", "id", "-u"], capture_output=True,
                          text=True, timeout=30, cwd="/", env={"PATH": os.environ["PATH"], "PYTHONPATH": str(src)})
    assert same.returncode == 0 and same.stdout == f"{UNPRIVILEGED_UID}\n"  # already that user: nothing to drop
    unknown = subprocess.run([str(commands / "s6-setuidgid"), "no-such-user-here", "true"], capture_output=True,
                             text=True, timeout=30)
    assert unknown.returncode == 111 and "unknown user: no-such-user-here" in unknown.stderr


def test_the_commands_import_only_the_standard_library():
    code = ("import sys; import supervisor.s6.commands; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('anyio', 'structlog', 'psutil', 'yaml')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                            env={"PYTHONPATH": str(REPO), "PATH": os.environ["PATH"]})
    assert result.stdout == "[]\n", result.stderr


# --- S6_LOGGING=2: the catch-all log ------------------------------------------------------------


def test_s6_logging_2_sends_everything_to_the_catch_all_log_and_rotates_it(pod: Pod):
    pod.service("chatty", 'for i in $(seq 1 400); do echo "line $i of a service that talks a lot"; done\n'
                          'touch "$STATE/said"\nexec sleep 1000\n')
    env = {"S6_LOGGING": "2", "S6_LOGGING_SCRIPT": "n3 s4096 T"}
    main = 'until test -e "$STATE/said"; do sleep 0.05; done; echo "from the main program"; exec sleep 1000'
    if os.geteuid() == 0:
        # /var/log/s6-uncaught-logs, in a /var/log of its own: a tmpfs mounted in its namespace
        pod.start("sh", "-c", main, env=env, wrapper=["sh", "-c", 'mount -t tmpfs pys6-test-log /var/log && exec "$@"', "sh"])
        logs = Path(f"/proc/{pod.init_pid}/root/var/log/s6-uncaught-logs")
    else:  # /var/log is not ours: the runtime directory's uncaught-logs
        pod.start("sh", "-c", main, env=env)
        logs = pod.rundir / "uncaught-logs"

    def everything() -> str:
        try:
            return "".join(path.read_text(errors="replace") for path in sorted(logs.glob("*")))
        except OSError:
            return ""

    wait_for(lambda: "line 400 of a service" in everything(), 20, "the service's last line in the catch-all log")
    wait_for(lambda: "from the main program" in everything(), 20, "the main program's line")
    archives = sorted(path.name for path in logs.glob("@*.s"))
    assert 1 <= len(archives) <= 3, archives  # n3: the oldest are gone
    assert all(path.stat().st_size <= 4096 for path in logs.glob("*"))
    current = (logs / "current").read_text()
    assert current and all(line[:4].isdigit() and line[10] == " " for line in current.splitlines())  # T stamps
    assert "line 400" not in pod.stdout() and "from the main program" not in pod.stdout()
    assert "[chatty] line 1 of a service" in everything() or len(archives) == 3  # the first lines may be rotated out
    assert pod.stop() == 0  # the shutdown ended the main program: its code is not the container's (s6-overlay's rc.init)


def test_s6_cmd_use_terminal_gives_the_main_program_the_terminal_instead_of_the_catch_all_log(subreaper_pod: Pod):
    import pty

    pod = subreaper_pod
    master, slave = pty.openpty()
    try:
        pod.start("sh", "-c", 'echo "to the terminal"; echo "also stderr" >&2; exec sleep 1000', stdin=slave,
                  env={"S6_LOGGING": "2", "S6_CMD_USE_TERMINAL": "1", "PYS6_RUNDIR": str(pod.rundir)},
                  wrapper=[] if os.geteuid() != 0 else ["unshare", "--mount", "sh", "-c",
                                                        'mount -t tmpfs pys6-test-log /var/log && exec "$@"', "sh"])
        seen = b""

        def on_the_terminal() -> bool:
            nonlocal seen
            import select

            while select.select([master], [], [], 0)[0]:
                seen += os.read(master, 4096)
            return b"to the terminal" in seen and b"also stderr" in seen

        wait_for(on_the_terminal, 20, "the main program's lines on the terminal")
        assert "to the terminal" not in pod.stdout()
    finally:
        pod.stop()
        os.close(master)
        os.close(slave)


def test_a_tree_too_deep_for_fix_attrs_is_a_failed_line_not_an_exception(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("changing owners needs root")
    deep = tmp_path / "deep"
    deep.mkdir()
    fd = os.open(deep, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(1500):  # deeper than Python's recursion limit; os.makedirs itself recurses
            os.mkdir("a", dir_fd=fd)
            inner = os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)
    try:
        with pytest.raises(compat.FixError, match="nested too deep"):
            compat.fix_line(f"{deep} true root 0600 0700", hidden=False)
    finally:
        subprocess.run(["rm", "-rf", str(deep)], timeout=60)
