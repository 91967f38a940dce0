"""`pyinit --install-s6-commands DIR`: the links in DIR and, for the image's own bin directory,
in s6-overlay v3's /command, where scripts written for v3 look (`#!/command/with-contenv sh`)
and which pyinit's PATH puts first; a /command holding anything but pys6's links is left alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from supervisor.base.links import console_script
from supervisor.s6 import commands

pytestmark = pytest.mark.skipif(console_script("pys6-with-contenv") is None, reason="pys6's console scripts not installed")


def _links(directory: Path) -> dict[str, str]:
    return {entry.name: os.readlink(entry) for entry in directory.iterdir() if entry.is_symlink()}


def test_a_missing_command_directory_gets_the_same_links(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    bin_dir, command = tmp_path / "bin", tmp_path / "command"
    bin_dir.mkdir()
    assert commands.install(str(bin_dir), False, command_dir=str(command)) == 0
    assert _links(command) == _links(bin_dir)
    assert set(_links(command)) == set(commands.COMMANDS)
    assert os.stat(command).st_mode & 0o777 == 0o755
    # a re-run (another venv's links there: still pys6's) replaces them
    (command / "with-contenv").unlink()
    (command / "with-contenv").symlink_to("/elsewhere/venv/bin/pys6-with-contenv")
    assert commands.install(str(bin_dir), True, command_dir=str(command)) == 0
    assert _links(command) == _links(bin_dir)


def test_a_command_directory_of_s6_overlays_is_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    bin_dir, command = tmp_path / "bin", tmp_path / "command"
    bin_dir.mkdir()
    command.mkdir()
    (command / "s6-svscan").write_bytes(b"\x7fELF")
    (command / "with-contenv").write_text("#!/bin/sh\n")  # s6-overlay's own: never replaced, not even --force
    assert commands.install(str(bin_dir), True, command_dir=str(command)) == 0
    assert sorted(p.name for p in command.iterdir()) == ["s6-svscan", "with-contenv"]
    assert (command / "with-contenv").read_text() == "#!/bin/sh\n"
    assert "left as it is" in capsys.readouterr().out
    assert set(_links(bin_dir)) == set(commands.COMMANDS)


def test_a_symlinked_command_directory_is_left_alone(tmp_path: Path):
    bin_dir, elsewhere, command = tmp_path / "bin", tmp_path / "package", tmp_path / "command"
    bin_dir.mkdir()
    elsewhere.mkdir()
    command.symlink_to(elsewhere)
    assert commands.install(str(bin_dir), False, command_dir=str(command)) == 0
    assert list(elsewhere.iterdir()) == []


def test_only_the_images_own_bin_directory_brings_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    made: list[Path] = []
    monkeypatch.setattr(commands, "_install_command_dir", lambda directory, targets: made.append(directory) or 0)
    assert commands.install(str(tmp_path), False) == 0  # a private directory: no /command on the host
    assert made == []
    monkeypatch.setattr(commands, "IMAGE_BIN_DIRS", (str(tmp_path),))
    assert commands.install(str(tmp_path), True) == 0
    assert made == [Path("/command")]
