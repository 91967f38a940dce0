"""services.d's services run from a copy, as s6-overlay v3's services-up copies them, and pyinit
writes nothing into the image's /etc (issue 23, points 1 and 2).

Under real s6-overlay 3.2.3.2 (the rig, as root) /etc/services.d/svc is copied by s6-hiercopy to
/run/s6/legacy-services/svc: symlinks as links, modes and owners kept, times not, a log/
subdirectory, data/, env/, down, notification-fd and FIFOs all in it. The service runs there
(cwd /run/s6/legacy-services/svc, $0 ./run, its logger's cwd .../svc/log), supervise/ and event/
are made in the copy, and /run/service/svc is a link to it; /etc is left as it was.
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from harness import Pod, wait_for
from supervisor.core.servicedir import copy_tree

READ_ONLY_ETC = ["sh", "-c", 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"', "sh"]


def listing(top: Path) -> dict[str, tuple[int, int, int, int]]:
    """Every path below `top` (itself included) with its mode, owner, size and mtime: what a write would change."""
    found = {}
    for directory, dirs, files in os.walk(top):
        for name in [".", *dirs, *files]:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            found[os.path.relpath(path, top)] = (info.st_mode, info.st_uid, info.st_size, info.st_mtime_ns)
    return found


def service_tree(pod: Pod) -> None:
    svc = pod.service("svc", """
        echo "$(pwd) $0 $1" > "$STATE/svc.where"
        echo written > relative-file && echo ok > "$STATE/svc.wrote"
        [ -L supervise ] || [ -d supervise ] && echo yes > "$STATE/svc.supervise-here"
        exec sleep 1000
    """, notification_fd="3\n")
    pod.script("services.d/svc/log/run", 'echo "$(pwd)" > "$STATE/log.where"\nexec cat > /dev/null\n')
    (svc / "data").mkdir()
    (svc / "data" / "secret").write_text("s\n")
    os.chmod(svc / "data" / "secret", 0o600)
    os.symlink("data/secret", svc / "link")
    pod.service("off", 'echo up > "$STATE/off.up"\nexec sleep 1000\n', down="")
    rc = pod.etc / "s6-overlay" / "s6-rc.d"
    for name, kind in (("once", "oneshot"), ("rclong", "longrun")):
        (rc / name).mkdir(parents=True)
        (rc / name / "type").write_text(f"{kind}\n")
    (rc / "once" / "up").write_text(f'touch {pod.state}/once.ran\n')
    (rc / "rclong" / "run").write_text('#!/bin/sh\necho "$(pwd)" > "$STATE/rclong.where"\nexec sleep 1000\n')
    (rc / "rclong" / "dependencies.d").mkdir()
    (rc / "rclong" / "dependencies.d" / "once").write_text("")
    (rc / "user" / "contents.d").mkdir(parents=True)  # no user/type: s6-overlay 3.2.3.2's rc.init writes it
    for name in ("once", "rclong"):
        (rc / "user" / "contents.d" / name).write_text("")


@pytest.mark.namespace
def test_services_run_from_their_copy_under_run_and_a_read_only_etc_is_left_as_it_was(pod: Pod):
    service_tree(pod)
    pod.script("cont-init.d/10-mark", 'touch "$STATE/init.ran"')
    before = listing(pod.etc)
    pod.start(wrapper=[*READ_ONLY_ETC, str(pod.etc)])
    wait_for(lambda: pod.read_state("svc.wrote") and pod.read_state("log.where") and pod.read_state("rclong.where"),
             what="svc, its logger and the s6-rc longrun")
    assert pod.read_state("svc.where").split() == ["/run/s6/legacy-services/svc", "./run", "svc"]
    assert pod.read_state("log.where").strip() == "/run/s6/legacy-services/svc/log"
    assert pod.read_state("svc.supervise-here").strip() == "yes"
    assert (pod.state / "init.ran").exists() and (pod.state / "once.ran").exists()
    assert pod.read_state("rclong.where").startswith("/run/")
    run = Path(f"/proc/{pod.init_pid}/root/run")  # the pod's own /run, through its mount namespace
    copy = run / "s6" / "legacy-services" / "svc"
    assert os.readlink(run / "service" / "svc") == "/run/s6/legacy-services/svc"
    assert (copy / "relative-file").read_text() == "written\n"
    assert stat.S_ISFIFO((copy / "supervise" / "control").stat().st_mode) and (copy / "event").is_dir()
    assert os.readlink(copy / "link") == "data/secret" and stat.S_IMODE((copy / "data" / "secret").stat().st_mode) == 0o600
    assert (copy / "notification-fd").read_text() == "3\n" and (copy / "log" / "supervise").is_dir()
    assert (run / "s6" / "legacy-services" / "off" / "down").exists() and not pod.read_state("off.up")
    # s6-svc -U and -D: the down file of the copy, as s6-svc writes ./down of the service directory
    assert pod.cli("svc", "-U", "off").returncode == 0
    wait_for(lambda: pod.read_state("off.up"), what="off up")
    assert not (run / "s6" / "legacy-services" / "off" / "down").exists()
    assert pod.cli("svc", "-D", "svc").returncode == 0
    wait_for(lambda: (copy / "down").exists(), what="svc's down file in its copy")
    assert pod.stop() == 0
    assert listing(pod.etc) == before
    assert not (pod.etc / "services.d" / "svc" / "relative-file").exists()


def test_without_s6_overlays_run_the_copy_is_under_the_runtime_directory(subreaper_pod: Pod):
    pod = subreaper_pod
    service_tree(pod)
    os.chmod(pod.etc / "services.d" / "svc", 0o555)  # an image's read-only directory: still supervised
    before = listing(pod.etc)
    pod.start()
    wait_for(lambda: pod.read_state("svc.where") and pod.read_state("log.where"), what="svc and its logger")
    copy = pod.rundir / "legacy-services" / "svc"
    assert pod.read_state("svc.where").split() == [str(copy), "./run", "svc"]
    assert os.readlink(pod.rundir / "service" / "svc") == str(copy)
    assert (copy / "supervise" / "status").exists()
    # s6-svscanctl -a: a service added since boot also runs from a copy
    pod.service("late", 'echo "$(pwd)" > "$STATE/late.where"\nexec sleep 1000\n')
    before = listing(pod.etc)
    with open(pod.rundir / "service" / ".s6-svscan" / "control", "wb", buffering=0) as control:
        control.write(b"a")
    wait_for(lambda: pod.read_state("late.where"), what="the late service")
    assert pod.read_state("late.where").strip() == str(pod.rundir / "legacy-services" / "late")
    assert pod.stop() == 0
    assert listing(pod.etc) == before


def test_a_service_that_cannot_be_copied_is_broken_and_never_runs_from_etc(subreaper_pod: Pod):
    pod = subreaper_pod
    bad = pod.service("bad", 'touch "$STATE/bad.ran"\nexec sleep 1000\n')
    pod.service("good", 'touch "$STATE/good.ran"\nexec sleep 1000\n')
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(bad / "a-socket"))  # s6-hiercopy copies no socket either
    try:
        pod.start(env={"PYS6_CRASH_DEATHS": "2"})
        broken = pod.wait_event("service definition is broken", service="bad")
        assert "cannot be copied to" in broken["problem"] and "a-socket" in broken["problem"]
        wait_for(lambda: (pod.state / "good.ran").exists(), what="the good service")
        pod.wait_event("service bailed", 15, service="bad")
        assert not (pod.state / "bad.ran").exists()
        assert not (pod.rundir / "legacy-services" / "bad" / "run").exists()  # no half copy left to run
        assert pod.stop() == 0
    finally:
        listener.close()


def test_the_copy_is_s6_hiercopys(tmp_path: Path):
    source = tmp_path / "svc"
    (source / "data" / "sub").mkdir(parents=True)
    (source / "run").write_text("#!/bin/sh\n")
    os.chmod(source / "run", 0o755)
    (source / "data" / "sub" / "file").write_text("x")
    os.chmod(source / "data" / "sub" / "file", 0o400)
    os.chmod(source / "data", 0o750)
    os.symlink("/nowhere/at/all", source / "dangling")
    os.symlink("data/sub", source / "relative")
    os.mkfifo(source / "fifo", 0o640)
    os.utime(source / "run", (1_000_000_000, 1_000_000_000))
    if os.geteuid() == 0:
        os.lchown(source / "data" / "sub" / "file", 1234, 5678)
    os.chmod(source, 0o555)
    copy_tree(str(source), str(tmp_path / "copy"))
    copy = tmp_path / "copy"
    assert sorted(os.listdir(copy)) == ["dangling", "data", "fifo", "relative", "run"]
    assert os.readlink(copy / "dangling") == "/nowhere/at/all" and os.readlink(copy / "relative") == "data/sub"
    assert stat.S_ISFIFO(os.lstat(copy / "fifo").st_mode) and stat.S_IMODE(os.lstat(copy / "fifo").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(copy).st_mode) == 0o555 and stat.S_IMODE(os.stat(copy / "data").st_mode) == 0o750
    assert stat.S_IMODE(os.stat(copy / "run").st_mode) == 0o755 and (copy / "run").read_text() == "#!/bin/sh\n"
    assert os.stat(copy / "run").st_mtime != 1_000_000_000  # times are not kept, as s6-hiercopy keeps none
    if os.geteuid() == 0:
        info = os.stat(copy / "data" / "sub" / "file")
        assert (info.st_uid, info.st_gid) == (1234, 5678)
    os.chmod(source, 0o755)
    deep = source / "data"
    for _ in range(40):
        deep = deep / "d"
    deep.mkdir(parents=True)
    with pytest.raises(OSError, match="nested more than"):
        copy_tree(str(source), str(tmp_path / "deep-copy"))


def test_an_s6_rc_user_bundle_without_a_type_file_is_a_bundle_without_writing_one(tmp_path: Path):
    from supervisor.s6 import rcplan

    source = tmp_path / "s6-rc.d"
    (source / "app").mkdir(parents=True)
    (source / "app" / "type").write_text("oneshot\n")
    (source / "app" / "up").write_text("true\n")
    (source / "user" / "contents.d").mkdir(parents=True)
    (source / "user" / "contents.d" / "app").write_text("")
    os.chmod(source / "user", 0o555)  # as on a read-only root: nothing may be written there
    result = rcplan.plan(rcplan.load(str(source), []))
    assert result.problems == () and result.first == ("app",)
    assert not (source / "user" / "type").exists()
