"""The man pages scripts/make-man makes from each command's --help (the Dockerfile makes them at
build time from the installed commands): one per command, rendered by groff without a warning,
naming every option the command's --help names, copyable (ASCII hyphens)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from harness import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
COMMANDS = sorted([*PYPROJECT["project"]["scripts"], *(Path(p).name for p in PYPROJECT["tool"]["setuptools"]["script-files"])])
GROFF = shutil.which("groff")


def make_man() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("make_man", str(REPO / "scripts" / "make-man"))
    spec = importlib.util.spec_from_loader("make_man", loader)
    assert spec
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every command of this checkout, as pip installs them (console scripts, and bin/'s script files)."""
    directory = tmp_path_factory.mktemp("bin")
    for name, entry in PYPROJECT["project"]["scripts"].items():
        module, _, function = entry.partition(":")
        (directory / name).write_text(f"#!{sys.executable}\nimport sys\nfrom {module} import {function}\nsys.exit({function}())\n")
    for name in (Path(path).name for path in PYPROJECT["tool"]["setuptools"]["script-files"]):
        (directory / name).write_text((REPO / "bin" / name).read_text().replace("#!python", f"#!{sys.executable}", 1))
    for path in directory.iterdir():
        path.chmod(0o755)
    return directory


def run(bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80"}, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def pages(bin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("man1")
    made = subprocess.run([sys.executable, str(REPO / "scripts" / "make-man"), "--bin", str(bin_dir), str(out)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert made.returncode == 0, made.stderr
    return out


def render(page: Path) -> str:
    if GROFF is None:
        pytest.skip("no groff (Debian: groff-base)")
    # -ww: every warning; grotty -cbou: plain text, no overstriking, bold or underline
    result = subprocess.run([GROFF, "-man", "-Tutf8", "-ww", "-P-cbou", str(page)], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "MANWIDTH": "80"})
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return result.stdout


def test_one_page_per_command_each_with_a_summary(pages: Path):
    assert sorted(path.stem for path in pages.glob("*.1")) == COMMANDS
    assert sorted(make_man().SUMMARIES) == COMMANDS, "scripts/make-man's SUMMARIES: one line per command"


@pytest.mark.parametrize("command", COMMANDS)
def test_the_page_renders_and_names_every_option_of_the_help(command: str, bin_dir: Path, pages: Path):
    text = render(pages / f"{command}.1")
    lines = text.split("\n")
    assert lines[0].split() == [f"{command.upper()}(1)", "pys6", "commands", f"{command.upper()}(1)"], lines[0]
    summary = make_man().SUMMARIES[command]
    name_section = " ".join(text.split("\nNAME\n", 1)[1].split("\n\n", 1)[0].split())
    assert name_section == f"{command} - {summary}"
    help_text = run(bin_dir, command, "--help").stdout
    options = set(re.findall(r"(?<![\w-])--?[A-Za-z][A-Za-z0-9-]*", help_text))
    flat = " ".join(text.split())
    missing = sorted(option for option in options if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", flat))
    assert not missing, f"{command}.1 lacks {missing}"
    # the page is the help, not a paraphrase: its usage is the SYNOPSIS, the rest the DESCRIPTION,
    # every word in its order
    usage, rest = make_man().split_help(help_text)
    assert usage and usage[0].startswith(command)
    synopsis = " ".join(text.split("\nSYNOPSIS\n", 1)[1].split("\nDESCRIPTION\n", 1)[0].split())
    assert synopsis == " ".join(" ".join(usage).split())
    description = " ".join(text.split("\nDESCRIPTION\n", 1)[1].split("\nSEE ALSO\n", 1)[0].split())
    assert description.startswith(f"The text of {command} --help:")
    assert " ".join(" ".join(rest).split()) in description
    assert "\u2010" not in text and "\u2212" not in text, "a hyphen that would not paste as -"


def test_escaping_keeps_roff_requests_and_backslashes_out_of_the_text():
    module = make_man()
    page = module.page("tool", "usage: tool [-x]\n\n.TH not a request\n'also not\na \\n backslash -- and --opt\n",
                       "1.0", ["tool"])
    if GROFF is None:
        pytest.skip("no groff")
    result = subprocess.run([GROFF, "-man", "-Tutf8", "-ww", "-P-cbou"], input=page, capture_output=True, text=True,
                            timeout=60)
    assert result.stderr == ""
    assert ".TH not a request" in result.stdout and "'also not" in result.stdout
    assert "a \\n backslash -- and --opt" in result.stdout
