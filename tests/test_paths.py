"""The runtime directory rule: ours and private, or a clear refusal."""

from __future__ import annotations

import os

import pytest

from supervisor.base import paths


def test_an_explicit_rundir_is_created_private(tmp_path):
    target = tmp_path / "rd"
    assert paths.prepare_rundir({"PYS6_RUNDIR": str(target)}) == str(target)
    assert os.stat(target).st_mode & 0o777 == 0o700


def test_a_rundir_others_can_write_is_refused(tmp_path):
    target = tmp_path / "rd"
    target.mkdir()
    os.chmod(target, 0o777)
    with pytest.raises(paths.RuntimeDirError, match="writable by others"):
        paths.prepare_rundir({"PYS6_RUNDIR": str(target)})


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to plant a directory owned by someone else")
def test_a_rundir_owned_by_someone_else_is_refused(tmp_path):
    target = tmp_path / "rd"
    target.mkdir(mode=0o700)
    os.chown(target, 4242, 4242)
    with pytest.raises(paths.RuntimeDirError, match="belongs to uid 4242"):
        paths.prepare_rundir({"PYS6_RUNDIR": str(target)})


def test_clients_look_in_run_then_tmp_unless_told():
    assert paths.candidate_rundirs({}) == ["/run/pys6", f"/tmp/pys6-{os.getuid()}"]
    assert paths.candidate_rundirs({"PYS6_RUNDIR": "/x"}) == ["/x"]
