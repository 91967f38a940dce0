"""The services' metrics directory as pyinit reads it: parsed again only on change, and bounded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from supervisor.base.paths import RuntimeDirError, prepare_metrics_directory
from supervisor.metrics.page import MAX_FILES, MAX_SKIPPED_REPORTED, ServicesFiles


def test_an_unchanged_directory_is_not_parsed_again_and_a_replaced_file_is(tmp_path: Path):
    (tmp_path / "a.prom").write_text("# HELP a_things how many\na_things 1\n")
    files = ServicesFiles(str(tmp_path))
    first = files.read()
    assert files.read() is first
    (tmp_path / ".a.tmp").write_text("# HELP a_things how many\na_things 2\n")
    os.replace(tmp_path / ".a.tmp", tmp_path / "a.prom")  # as a service should write it: a new inode
    assert "a_things 2" in files.read().text()
    (tmp_path / "a.prom").unlink()
    assert files.read().text() == ""


def test_what_is_parsed_is_bounded_in_files_and_in_bytes(tmp_path: Path):
    megabyte_of_lines = "".join(f"big_value{{n=\"{n:07d}\"}} 1\n" for n in range(40000))[: 1 << 20]
    megabyte_of_lines = megabyte_of_lines[: megabyte_of_lines.rindex("\n") + 1]
    for name in ("a", "b", "c", "d", "e"):
        (tmp_path / f"{name}.prom").write_text(megabyte_of_lines)
    merged = ServicesFiles(str(tmp_path)).read()
    assert merged.rejected == {"e.prom": -1}  # 4 MiB in all were parsed; the fifth is not read
    for name in ("a", "b", "c", "d", "e"):
        (tmp_path / f"{name}.prom").unlink()
    for n in range(MAX_FILES + 30):
        (tmp_path / f"f{n:03d}.prom").write_text(f"# HELP m{n} one\nm{n} 1\n")
    merged = ServicesFiles(str(tmp_path)).read()
    # past the 64 read, a few names are reported (never one series per file a service makes)
    assert sorted(merged.rejected) == [f"f{n:03d}.prom" for n in range(MAX_FILES, MAX_FILES + MAX_SKIPPED_REPORTED)]
    assert f"m{MAX_FILES - 1} 1" in merged.text() and f"m{MAX_FILES} 1" not in merged.text()


def test_a_directory_that_is_gone_serves_nothing(tmp_path: Path):
    assert ServicesFiles(str(tmp_path / "missing")).read().text() == ""


def test_an_earlier_boots_files_are_removed_and_others_kept(tmp_path: Path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "stale.prom").write_text("old 1\n")
    (directory / "notes.txt").write_text("kept")
    prepare_metrics_directory(str(directory))
    assert sorted(p.name for p in directory.iterdir()) == ["notes.txt"]


def test_a_metrics_directory_squatted_by_another_uid_or_a_symlink_is_refused(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("giving a directory to another uid needs root")
    squatted = tmp_path / "squatted"
    squatted.mkdir()
    os.chown(squatted, 4321, 4321)
    with pytest.raises(RuntimeDirError, match="belongs to uid 4321"):
        prepare_metrics_directory(str(squatted))
    (tmp_path / "link").symlink_to(tmp_path)
    with pytest.raises(RuntimeDirError, match="not a directory"):
        prepare_metrics_directory(str(tmp_path / "link"))
